"""The order HTTP filters run in on a sidecar or a gateway, one entry per builder.

As Istio orders them: authentication (jwt_authn) first, since authorization reads the
verified token's claims; then authorization, CUSTOM (ext_authz) before DENY, ALLOW and
AUDIT (rbac); then the filters that act per route (cors, fault), the outbound proxy's
resolver of unknown hosts and its ALPN for HTTP to ports of protocol AUTO; the router last.
Each builder decides whether it applies to the chain being built (inbound, outbound or a
gateway's, which proxy, which port) and returns its filters, or none: a gateway gets the
authentication and authorization filters, as an inbound side does, and the route filters,
as an outbound side does.

Rate limits come after authorization (a request that is denied spends no quota). Where
the next ones go: telemetry (stats) just before the router, ext_proc after
authorization.
"""

from __future__ import annotations

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.translate import rate_limit_quota
from heddle.translate.filters import (
    alpn,
    cors,
    dynamic_forward_proxy,
    ext_authz,
    fault,
    internal_headers,
    jwt_authn,
    ratelimit,
    rbac,
    router,
)
from heddle.translate.filters.context import FilterBuilder, FilterContext
from heddle.translate.metrics.wiring import peer_filters

HTTP_FILTERS: tuple[tuple[str, FilterBuilder], ...] = (
    # Before anything reads them: the headers only Heddle's filters may set, as sent.
    ("internal_headers", internal_headers.build),
    # Then, so that a request a later filter refuses is counted with its peer's labels.
    ("peer_metadata", peer_filters),
    ("jwt_authn", jwt_authn.build),
    ("ext_authz", ext_authz.build),
    ("rbac", rbac.build),
    # After authorization: a request refused there spends no quota.
    ("local_ratelimit", ratelimit.build_local),
    ("ratelimit", ratelimit.build_global),
    # Global rules in lease mode: enforced from quota the rate-limit service assigns.
    ("rate_limit_quota", rate_limit_quota.build),
    ("cors", cors.build),
    ("fault", fault.build),
    ("dynamic_forward_proxy", dynamic_forward_proxy.build),
    ("alpn", alpn.build),
    ("router", router.build),
)


def http_filters(context: FilterContext,
                 registry: tuple[tuple[str, FilterBuilder], ...] | None = None,
                 ) -> list[hcm.HttpFilter]:
    """The chain for one connection manager: every builder's filters, in registry order
    (`HTTP_FILTERS` unless another registry is given)."""
    return [found for _, build in (HTTP_FILTERS if registry is None else registry)
            for found in build(context)]
