"""The rate-limit filters, where a policy acts: a gateway (its routes carry the buckets and
actions) and the inbound side of a workload of a targeted Service. Each filter does nothing
on a route without its per-route configuration."""

from __future__ import annotations

from envoy.config.core.v3 import config_source_pb2, grpc_service_pb2
from envoy.config.ratelimit.v3 import rls_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as local_rl
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2 as global_rl
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import duration_pb2

from heddle.model.rate_limits import Mode
from heddle.translate.filters.context import Direction, FilterContext, http_filter
from heddle.translate.rate_limits import (
    DOMAIN,
    GLOBAL_FILTER,
    LOCAL_FILTER,
    RLS_CLUSTER,
    SHADOW_LOCAL_FILTER,
    STAT_PREFIX,
    has_policies,
    has_shadow_local_rules,
    inbound_attachment,
)


def _milliseconds(value: int) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromMilliseconds(value)
    return duration


def _acts(context: FilterContext, mode: Mode) -> bool:
    if not has_policies(context.snapshot, mode):
        return False
    if context.direction is Direction.GATEWAY:
        return True
    if context.direction is Direction.INBOUND:
        attachment = inbound_attachment(context.snapshot, context.proxy, context.port)
        return bool(attachment.of_mode(mode))
    return False


def build_local(context: FilterContext) -> list[hcm.HttpFilter]:
    if not _acts(context, Mode.LOCAL):
        return []
    found = [http_filter(LOCAL_FILTER, local_rl.LocalRateLimit(stat_prefix=STAT_PREFIX))]
    if has_shadow_local_rules(context.snapshot):
        found.append(http_filter(SHADOW_LOCAL_FILTER, local_rl.LocalRateLimit(
            stat_prefix=f"{STAT_PREFIX}_shadow")))
    return found


def build_global(context: FilterContext) -> list[hcm.HttpFilter]:
    if not _acts(context, Mode.GLOBAL):
        return []
    config = global_rl.RateLimit(
        domain=DOMAIN,
        # Fail open, as Envoy Gateway does: a rate-limit service that cannot answer in time
        # lets the request through rather than taking the route down.
        failure_mode_deny=False,
        timeout=_milliseconds(context.snapshot.mesh_config.rate_limit_timeout_ms),
        enable_x_ratelimit_headers=global_rl.RateLimit.DRAFT_VERSION_03,
        rate_limit_service=rls_pb2.RateLimitServiceConfig(
            grpc_service=grpc_service_pb2.GrpcService(
                envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=RLS_CLUSTER)),
            transport_api_version=config_source_pb2.V3))
    return [http_filter(GLOBAL_FILTER, config)]
