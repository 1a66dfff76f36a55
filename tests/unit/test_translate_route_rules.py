"""VirtualService rules that depend on who sends or hand over to another VirtualService:
delegation, sourceLabels/sourceNamespace, CORS, and tcp/tls routes through CONNECT."""

from __future__ import annotations

import textwrap
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.cors.v3 import cors_pb2

from heddle.api.loader import load_text
from heddle.api.models import VirtualServiceSpec
from heddle.api.models.virtual_service_parts import HTTPMatch, HTTPRoute
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.delegation import INHERITED, merge_match
from heddle.translate.route_actions import CORS_FILTER
from heddle.translate.sidecar import ROUTE, sidecar_resources

SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  selector: {app: db}
  ports: [{name: tcp, port: 5432}, {name: tls, port: 5433}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: db}
spec:
  host: db
  subsets: [{name: primary, labels: {role: primary}}, {name: replica, labels: {role: replica}}]
"""

REVIEWS = "reviews.default.svc.cluster.local"
DB = "db.default.svc.cluster.local"


def proxy(labels: dict[str, str], namespace: str = "default") -> Proxy:
    return Proxy(ProxyType.SIDECAR, "client", namespace, "127.0.40.1", "127.255.40.1",
                 tuple(sorted(labels.items())), "client")


def routes_of(config_text: str, host: str, client: Proxy) -> list[rc.Route]:
    result = load_text(SERVICES + "\n---\n" + textwrap.dedent(config_text), "mesh.yaml")
    assert result.errors == [], result.errors
    [config] = sidecar_resources(MeshSnapshot.build(1, result.resources), client) \
        .of(ROUTE).values()
    [vhost] = [h for h in config.virtual_hosts if h.name == host]  # type: ignore[attr-defined]
    if not host.endswith((":5432", ":5433")):  # HTTP: the routes before the CONNECT tunnel
        *http, connect = vhost.routes
        assert connect.match.HasField("connect_matcher")
        return list(http)
    return list(vhost.routes)


def merged(root: dict[str, Any], leaf: dict[str, Any]) -> dict[str, Any] | None:
    """merge_match on matches written as YAML mappings, the result as one."""
    found = merge_match(HTTPMatch.model_validate(root), HTTPMatch.model_validate(leaf))
    return None if found is None else found.model_dump(exclude_none=True)


def test_delegate_matches_narrow_the_root_match_and_conflicting_ones_never_apply() -> None:
    root = {"uri": {"prefix": "/api"}, "headers": {"x-team": {"exact": "a"}}}
    assert merged(root, {"uri": {"prefix": "/api/v2"}}) == {
        "uri": {"prefix": "/api/v2"}, "headers": {"x-team": {"exact": "a"}}}
    assert merged(root, {"uri": {"prefix": "/other"}}) is None
    assert merged(root, {"headers": {"x-team": {"exact": "b"}}}) is None
    assert merged({"method": {"exact": "GET"}}, {"method": {"exact": "POST"}}) is None
    # A header prefix narrows like a uri prefix; regexes never narrow anything.
    assert merged({"headers": {"x-team": {"prefix": "a"}}},
                  {"headers": {"x-team": {"exact": "ab"}}}) == {
        "headers": {"x-team": {"exact": "ab"}}}
    assert merged({"uri": {"regex": "/api/.*"}}, {"uri": {"regex": "/api/.*"}}) is None


def test_a_delegate_rule_inherits_what_it_leaves_unset_and_conflicting_rules_drop_whole(
        ) -> None:
    from heddle.translate.delegation import merged_rules

    root = HTTPRoute.model_validate({"match": [{"uri": {"prefix": "/api"}}], "timeout": "3s",
                                     "retries": {"attempts": 0}, "delegate": {"name": "d"}})
    rules = [rule.model_dump(exclude_none=True) for rule in merged_rules(
        root, VirtualServiceSpec.model_validate({"http": [
            {"match": [{"uri": {"prefix": "/api/v1"}}],
             "route": [{"destination": {"host": "a"}}]},
            {"match": [{"uri": {"prefix": "/api/v2"}}, {"uri": {"prefix": "/other"}}],
             "route": [{"destination": {"host": "b"}}]},
            {"route": [{"destination": {"host": "c"}}], "timeout": "1s"}]}))]
    assert [(r["match"], r["timeout"], r["route"][0]["destination"]["host"]) for r in rules] == [
        ([{"uri": {"prefix": "/api/v1"}}], "3s", "a"),
        ([{"uri": {"prefix": "/api"}}], "1s", "c")]
    assert all(r["retries"] == {"attempts": 0} for r in rules)


def test_what_a_delegate_rule_inherits_are_fields_of_an_http_rule() -> None:
    assert set(INHERITED) <= set(HTTPRoute.model_fields)


def test_a_delegate_virtual_service_supplies_the_routes_of_a_root_rule() -> None:
    config = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: root}
    spec:
      hosts: [reviews]
      http:
      - match: [{uri: {prefix: /api}}]
        delegate: {name: reviews-team, namespace: team}
      - route: [{destination: {host: reviews, subset: v1}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews-team, namespace: team}
    spec:
      http:
      - match: [{uri: {prefix: /api/v2}}]
        route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
      - match: [{uri: {prefix: /elsewhere}}]
        route: [{destination: {host: reviews.default.svc.cluster.local, subset: v2}}]
    """
    v2, default = routes_of(config, f"{REVIEWS}:9080", proxy({}))
    assert (v2.match.prefix, v2.route.cluster) == ("/api/v2", f"outbound|9080|v2|{REVIEWS}")
    assert (default.match.prefix, default.route.cluster) == ("/", f"outbound|9080|v1|{REVIEWS}")


def test_source_labels_and_namespace_pick_routes_per_sending_proxy() -> None:
    config = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - match: [{sourceLabels: {app: productpage, version: v2}}]
        route: [{destination: {host: reviews, subset: v2}}]
      - match: [{sourceNamespace: testing}]
        route: [{destination: {host: reviews, subset: v2}}]
      - route: [{destination: {host: reviews, subset: v1}}]
    """
    host = f"{REVIEWS}:9080"
    canary = routes_of(config, host, proxy({"app": "productpage", "version": "v2"}))
    assert [r.route.cluster for r in canary] == [f"outbound|9080|v2|{REVIEWS}",
                                                 f"outbound|9080|v1|{REVIEWS}"]
    stable = routes_of(config, host, proxy({"app": "productpage", "version": "v1"}))
    assert [r.route.cluster for r in stable] == [f"outbound|9080|v1|{REVIEWS}"]
    tester = routes_of(config, host, proxy({}, namespace="testing"))
    assert len(tester) == 2


def test_cors_policy_becomes_per_route_cors_config() -> None:
    config = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - corsPolicy:
          allowOrigins: [{exact: https://shop.example.com}, {regex: "https://.*\\\\.example\\\\.org"}]
          allowMethods: [GET, POST]
          allowHeaders: [x-token]
          maxAge: 24h
          allowCredentials: true
        route: [{destination: {host: reviews}}]
    """
    [route] = routes_of(config, f"{REVIEWS}:9080", proxy({}))
    policy = cors_pb2.CorsPolicy()
    route.typed_per_filter_config[CORS_FILTER].Unpack(policy)
    assert [m.exact or m.safe_regex.regex for m in policy.allow_origin_string_match] == [
        "https://shop.example.com", "https://.*\\.example\\.org"]
    assert (policy.allow_methods, policy.allow_headers, policy.max_age) == (
        "GET,POST", "x-token", "86400")
    assert policy.allow_credentials.value is True


def test_tcp_and_tls_rules_route_connect_tunnels_with_weights() -> None:
    config = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: db}
    spec:
      # Istio's validation wants each SNI host within the hosts as written (no short names).
      hosts: [db.default.svc.cluster.local]
      tls:
      - match: [{port: 5433, sniHosts: [db.default.svc.cluster.local]}]
        route: [{destination: {host: db, subset: primary}}]
      tcp:
      - match: [{port: 5432}]
        route:
        - {destination: {host: db, subset: primary}, weight: 80}
        - {destination: {host: db, subset: replica}, weight: 20}
    """
    [tcp] = routes_of(config, f"{DB}:5432", proxy({}))
    assert tcp.match.HasField("connect_matcher")
    assert [(c.name, c.weight.value) for c in tcp.route.weighted_clusters.clusters] == [
        (f"outbound|5432|primary|{DB}", 80), (f"outbound|5432|replica|{DB}", 20)]
    [tls] = routes_of(config, f"{DB}:5433", proxy({}))
    assert tls.route.cluster == f"outbound|5433|primary|{DB}"


def test_real_envoy_accepts_delegated_cors_and_tcp_routes() -> None:
    config = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - match: [{uri: {prefix: /api}}]
        delegate: {name: api}
        corsPolicy: {allowOrigins: [{prefix: https://}], unmatchedPreflights: IGNORE}
      - corsPolicy: {allowOrigins: [{prefix: https://}], unmatchedPreflights: IGNORE}
        route: [{destination: {host: reviews, subset: v1}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: api}
    spec:
      http:
      - route: [{destination: {host: reviews, subset: v2}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: db}
    spec:
      hosts: [db]
      tcp:
      - route:
        - {destination: {host: db, subset: primary}, weight: 50}
        - {destination: {host: db, subset: replica}, weight: 50}
    """
    result = load_text(SERVICES + "\n---\n" + textwrap.dedent(config), "mesh.yaml")
    assert result.errors == []
    resources = sidecar_resources(MeshSnapshot.build(1, result.resources), proxy({}))
    out = validate_bootstrap(sidecar_bootstrap(resources))
    assert out.returncode == 0, out.stdout + out.stderr


def test_routes_hash_by_the_destination_rule_the_client_sees() -> None:
    config = """
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: reviews-sticky, namespace: team}
    spec:
      host: reviews.default.svc.cluster.local
      trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
    """
    host = f"{REVIEWS}:9080"
    [team_route] = routes_of(config, host, proxy({}, namespace="team"))
    assert [h.header.header_name for h in team_route.route.hash_policy] == ["x-user"]
    assert not team_route.route.retry_policy.retry_host_predicate  # retries stay on the host
    [default_route] = routes_of(config, host, proxy({}))
    assert not default_route.route.hash_policy  # the rule lives in team: not seen here


def test_without_headers_matches_a_request_that_lacks_the_header() -> None:
    """Istio sets treat_missing_header_as_empty on an inverted value match: Envoy otherwise
    fails it when the header is missing, and the rule would skip exactly those requests."""
    config = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - match: [{withoutHeaders: {x-canary: {exact: "true"}, x-debug: {}}}]
        route: [{destination: {host: reviews, subset: v1}}]
      - route: [{destination: {host: reviews, subset: v2}}]
    """
    stable, _ = routes_of(config, f"{REVIEWS}:9080", proxy({}))
    canary, debug = stable.match.headers
    assert (canary.name, canary.invert_match, canary.treat_missing_header_as_empty,
            canary.string_match.exact) == ("x-canary", True, True, "true")
    # `{}` is "the header is absent": a present match, inverted (no empty-value reading).
    assert (debug.name, debug.invert_match, debug.present_match,
            debug.treat_missing_header_as_empty) == ("x-debug", True, True, False)
