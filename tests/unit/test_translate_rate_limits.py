"""Envoy Gateway's BackendTrafficPolicy rate limits, on a gateway's routes and on a Service's
sidecars: the model, the Envoy configuration (golden, and accepted by real Envoy) and the
rate-limit service's descriptor tree."""

from __future__ import annotations

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2 as local_rl
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2 as global_rl
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import check_golden
from test_translate_gateway import ROOT, snapshot

from heddle.api.loader import load_text
from heddle.model.gateways import gateway_workloads
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.rate_limits import MatchKind, Mode, Source, limit_policies, policy_status
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.gateway import gateway_config
from heddle.translate.rate_limits import (
    GLOBAL_FILTER,
    LOCAL_FILTER,
    RLS_CLUSTER,
    SHADOW_LOCAL_FILTER,
    policies,
    service_config,
)
from heddle.translate.sidecar import CLUSTER, LISTENER, ROUTE, sidecar_resources

LIMITS = (ROOT / "tests" / "golden" / "ratelimit" / "ratelimit.yaml").read_text()
BACKEND = Proxy(ProxyType.SIDECAR, "backend-1", "default", "127.0.10.3", "127.255.10.3",
                (("app", "backend"), ("version", "v1")), "backend")
CLIENT = Proxy(ProxyType.SIDECAR, "client", "default", "127.0.10.1", "127.255.10.1",
               (("app", "client"),), "client")


def limited() -> MeshSnapshot:
    return snapshot(LIMITS, fixture=False)


def web_gateway(mesh: MeshSnapshot) -> Proxy:
    [workload] = [w for w in gateway_workloads(mesh) if w.name.startswith("web")]
    return Proxy(ProxyType.ROUTER, workload.name, workload.namespace, "127.0.10.249",
                 "127.0.10.249", workload.labels, workload.service_account)


def routes_by_name(mesh: MeshSnapshot, proxy: Proxy) -> dict[str, rc.Route]:
    config = gateway_config(mesh, proxy).resources.of(ROUTE)
    return {route.name: route for rc_ in config.values() for host in rc_.virtual_hosts
            for route in host.routes}


def test_a_backend_traffic_policy_reads_as_targets_and_rules() -> None:
    found = {(p.key.name, p.mode): p for p in limit_policies(
        limited().of_kind("gateway.envoyproxy.io", "BackendTrafficPolicy"))}
    assert sorted(found) == [("backend-limits", Mode.GLOBAL), ("backend-limits", Mode.LOCAL),
                             ("shop-local", Mode.LOCAL), ("web-global", Mode.GLOBAL)]
    shop = found[("shop-local", Mode.LOCAL)]
    assert [(t.kind, t.name) for t in shop.targets] == [("HTTPRoute", "shop")]
    assert [(r.requests, r.unit) for r in shop.rules] == [(10, "SECOND"), (3, "MINUTE"),
                                                         (1, "SECOND")]
    [distinct] = shop.rules[1].conditions
    assert (distinct.source, distinct.kind, distinct.name) == (
        Source.HEADER, MatchKind.DISTINCT, "x-user-id")
    assert shop.rules[2].shadow
    web = found[("web-global", Mode.GLOBAL)]
    assert web.rules[0].shared and web.rules[1].cost == 2


def test_the_route_carries_its_own_local_buckets_and_the_gateways_global_actions() -> None:
    mesh = limited()
    routes = routes_by_name(mesh, web_gateway(mesh))
    cart = routes["default.shop.0"]
    local = local_rl.LocalRateLimit()
    cart.typed_per_filter_config[LOCAL_FILTER].Unpack(local)
    assert [d.token_bucket.max_tokens for d in local.descriptors] == [10, 3]
    assert local.max_dynamic_descriptors.value > 0  # Distinct: a bucket per x-user-id
    # The shadow rule has a filter of its own, never enforced: it cannot refuse.
    shadow = local_rl.LocalRateLimit()
    cart.typed_per_filter_config[SHADOW_LOCAL_FILTER].Unpack(shadow)
    assert [d.token_bucket.max_tokens for d in shadow.descriptors] == [1]
    assert shadow.filter_enforced.default_value.numerator == 0
    assert local.filter_enforced.default_value.numerator == 100
    # The route has no global policy of its own: the Gateway's apply.
    per_route = global_rl.RateLimitPerRoute()
    cart.typed_per_filter_config[GLOBAL_FILTER].Unpack(per_route)
    assert len(per_route.rate_limits) == 2
    assert per_route.rate_limits[1].hits_addend.number.value == 2
    # A route of another HTTPRoute: the Gateway's global rules only, no local buckets.
    blog = routes["default.blog.0"]
    assert GLOBAL_FILTER in blog.typed_per_filter_config
    assert LOCAL_FILTER not in blog.typed_per_filter_config


def test_rate_limit_filters_sit_after_authorization_and_before_the_router() -> None:
    mesh = limited()
    config = gateway_config(mesh, web_gateway(mesh))
    [listener] = config.resources.of(LISTENER).values()
    manager = hcm.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(manager)
    names = [f.name for f in manager.http_filters]
    assert names.index(LOCAL_FILTER) < names.index(GLOBAL_FILTER) < names.index(
        "envoy.filters.http.router")
    assert RLS_CLUSTER in config.resources.of(CLUSTER)


def test_a_service_policy_acts_on_its_workloads_inbound_side_only() -> None:
    mesh = limited()
    backend = sidecar_resources(mesh, BACKEND)
    assert RLS_CLUSTER in backend.of(CLUSTER)
    client = sidecar_resources(mesh, CLIENT)
    assert RLS_CLUSTER not in client.of(CLUSTER)
    dumped = str(MessageToDict(backend.of(LISTENER)["127.0.10.3_9090"]))
    assert LOCAL_FILTER in dumped and GLOBAL_FILTER in dumped
    assert LOCAL_FILTER not in str(MessageToDict(client.of(LISTENER)["virtualOutbound"]))


def test_without_policies_nothing_changes() -> None:
    mesh = snapshot(fixture=False)
    assert LOCAL_FILTER not in str(MessageToDict(sidecar_resources(mesh, BACKEND).of(
        LISTENER)["127.0.10.3_9090"]))


def test_the_rate_limit_service_gets_a_branch_per_global_rule() -> None:
    config = service_config(policies(limited()))
    assert config["domain"] == "heddle"
    check_golden("../ratelimit/service-config.json", config)
    shared, per_user = [d for d in config["descriptors"]
                        if d["value"].startswith("default/web-global/")]
    # Shared: no place level; the address level is Distinct (any value its own bucket).
    assert shared["descriptors"][0] == {"key": "masked_remote_address", "rate_limit": {
        "unit": "SECOND", "requests_per_unit": 100}}
    assert per_user["descriptors"][0] == {"key": "heddle.place", "descriptors": [
        {"key": "c0", "value": "match", "descriptors": [
            {"key": "c1", "rate_limit": {"unit": "MINUTE", "requests_per_unit": 5}}]}]}


def test_rate_limits_match_golden_and_real_envoy_accepts_them() -> None:
    mesh = limited()
    gateway = gateway_config(mesh, web_gateway(mesh)).resources
    check_golden("../ratelimit/gateway-routes.json", {
        name: MessageToDict(m) for name, m in sorted(gateway.of(ROUTE).items())})
    backend = sidecar_resources(mesh, BACKEND)
    check_golden("../ratelimit/backend-inbound.json",
                 MessageToDict(backend.of(LISTENER)["127.0.10.3_9090"]))
    for resources in (gateway, backend):
        out = validate_bootstrap(sidecar_bootstrap(resources))
        assert out.returncode == 0, out.stdout + out.stderr


def test_a_field_heddle_does_not_act_on_is_an_error_naming_it() -> None:
    text = """
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: p, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}]
  retry: {numRetries: 3}
  rateLimit:
    local:
      rules:
      - limit: {requests: 1, unit: Second}
        cost: {response: {from: Number, number: 1}}
"""
    result = load_text(text, "p.yaml")
    messages = [f"{e.field}: {e.message}" for e in result.errors]
    assert any(m.startswith("spec.retry:") for m in messages), messages
    assert any("cost.response" in m for m in messages), messages
    assert result.resources == []


def test_a_policy_is_accepted_per_target_that_exists_and_not_for_one_that_does_not() -> None:
    missing = """
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: strays, namespace: default}
spec:
  targetRefs:
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop}
  - {group: gateway.networking.k8s.io, kind: HTTPRoute, name: nowhere}
  - {group: "", kind: Service, name: backend}
  rateLimit: {local: {rules: [{limit: {requests: 1, unit: Second}}]}}
"""
    mesh = snapshot(LIMITS, missing, fixture=False)
    resource = mesh.get("gateway.envoyproxy.io", "BackendTrafficPolicy", "default", "strays")
    assert resource is not None
    status = policy_status(mesh, resource)
    assert status is not None
    verdicts = [(a["ancestorRef"]["name"], a["conditions"][0]["status"],
                 a["conditions"][0]["reason"]) for a in status["ancestors"]]
    assert verdicts == [("shop", "True", "Accepted"), ("nowhere", "False", "TargetNotFound"),
                        ("backend", "True", "Accepted")]


def test_limits_envoy_would_refuse_or_could_not_honour_are_errors() -> None:
    text = """
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: p, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: shop, sectionName: a}]
  rateLimit:
    local:
      rules:
      - limit: {requests: 0, unit: Second}
      - limit: {requests: 1, unit: Second}
        cost: {request: {from: Number, number: -1}}
      - clientSelectors: [{sourceCIDR: {value: 10.0.0.0/8, invert: true}}]
        limit: {requests: 1, unit: Second}
"""
    fields = [e.field for e in load_text(text, "p.yaml").errors]
    assert "spec.targetRefs[0].sectionName" in fields
    assert "spec.rateLimit.local.rules[0].limit.requests" in fields
    assert "spec.rateLimit.local.rules[1].cost.request.number" in fields
    assert "spec.rateLimit.local.rules[2].clientSelectors[0].sourceCIDR.invert" in fields


def test_a_cidr_is_compared_as_envoy_writes_a_masked_address() -> None:
    text = LIMITS + """---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: office, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: blog}]
  rateLimit:
    global:
      rules:
      - clientSelectors: [{sourceCIDR: {value: 10.1.2.3/8}}]
        limit: {requests: 9, unit: Minute}
"""
    mesh = snapshot(text, fixture=False)
    [office] = [p for p in policies(mesh) if p.key.name == "office"]
    assert office.rules[0].conditions[0].value == "10.0.0.0/8"
