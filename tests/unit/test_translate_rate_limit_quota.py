"""Global rate limits in lease mode (`heddle.dev/rate-limit-mode: lease`): each rule is a
rate-limit quota filter of its own, disabled on the connection manager and enabled by the
routes it acts on; its bucket id is the rule, the route's place and each Distinct value; the
per-request RLS actions are gone. Golden, and accepted by real Envoy."""

from __future__ import annotations

from envoy.extensions.filters.http.rate_limit_quota.v3 import rate_limit_quota_pb2 as rlq
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import check_golden
from test_translate_gateway import ROOT, snapshot
from test_translate_rate_limits import BACKEND, CLIENT, routes_by_name, web_gateway

from heddle.model.rate_limits import limit_policies
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.gateway import gateway_config
from heddle.translate.rate_limit_quota import FILTER_PREFIX, PLACE_FILTER, PLACE_HEADER
from heddle.translate.rate_limits import GLOBAL_FILTER, RLS_CLUSTER, policies, service_config
from heddle.translate.sidecar import CLUSTER, LISTENER, ROUTE, sidecar_resources

LEASED = (ROOT / "tests" / "golden" / "ratelimit" / "quota.yaml").read_text()
SHARED = FILTER_PREFIX + "default/web-leased/global/0"
PER_USER = FILTER_PREFIX + "default/web-leased/global/1"


def leased() -> MeshSnapshot:
    return snapshot(LEASED, fixture=False)


def gateway_filters(mesh: MeshSnapshot) -> list[hcm.HttpFilter]:
    [listener] = gateway_config(mesh, web_gateway(mesh)).resources.of(LISTENER).values()
    manager = hcm.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)
    return list(manager.http_filters)


def test_the_annotation_makes_a_policys_global_rules_leased() -> None:
    found = {p.key.name: p.leased for p in limit_policies(
        leased().of_kind("gateway.envoyproxy.io", "BackendTrafficPolicy"))}
    assert found == {"web-leased": True, "backend-leased": True}


def test_each_leased_rule_is_a_disabled_quota_filter_after_the_place_header() -> None:
    filters = gateway_filters(leased())
    names = [f.name for f in filters]
    assert names.index(PLACE_FILTER) < names.index(SHARED) < names.index(PER_USER) < (
        names.index("envoy.filters.http.router"))
    by_name = {f.name: f for f in filters}
    assert by_name[SHARED].disabled and by_name[PER_USER].disabled
    config = rlq.RateLimitQuotaFilterConfig()
    by_name[PER_USER].typed_config.Unpack(config)
    assert config.domain == "heddle"
    assert config.rlqs_server.envoy_grpc.cluster_name == RLS_CLUSTER


def test_a_route_enables_its_rules_names_its_place_and_asks_the_rls_nothing() -> None:
    mesh = leased()
    route = routes_by_name(mesh, web_gateway(mesh))["default.shop.0"]
    assert {SHARED, PER_USER, PLACE_FILTER} <= set(route.typed_per_filter_config)
    assert GLOBAL_FILTER not in route.typed_per_filter_config  # no call per request
    assert PLACE_HEADER in route.request_headers_to_remove  # never forwarded upstream


def test_the_rate_limit_service_still_knows_the_leased_limits() -> None:
    # The quota service takes each bucket's limit from the same domain config.
    rules = [d["value"] for d in service_config(policies(leased()))["descriptors"]]
    assert sorted(rules) == ["default/backend-leased/global/0", "default/web-leased/global/0",
                             "default/web-leased/global/1"]


def test_a_service_policy_leases_on_its_workloads_inbound_side_only() -> None:
    mesh = leased()
    backend = sidecar_resources(mesh, BACKEND)
    assert RLS_CLUSTER in backend.of(CLUSTER)
    assert FILTER_PREFIX in str(MessageToDict(backend.of(LISTENER)["127.0.10.3_9090"]))
    assert FILTER_PREFIX not in str(MessageToDict(sidecar_resources(mesh, CLIENT).of(
        LISTENER)["virtualOutbound"]))


def test_leased_limits_match_golden_and_real_envoy_accepts_them() -> None:
    mesh = leased()
    gateway = gateway_config(mesh, web_gateway(mesh)).resources
    check_golden("../ratelimit/quota-gateway-filters.json",
                 [MessageToDict(f) for f in gateway_filters(mesh)])
    check_golden("../ratelimit/quota-gateway-routes.json", {
        name: MessageToDict(m) for name, m in sorted(gateway.of(ROUTE).items())})
    backend = sidecar_resources(mesh, BACKEND)
    check_golden("../ratelimit/quota-backend-inbound.json",
                 MessageToDict(backend.of(LISTENER)["127.0.10.3_9090"]))
    for resources in (gateway, backend):
        out = validate_bootstrap(sidecar_bootstrap(resources))
        assert out.returncode == 0, out.stdout + out.stderr
