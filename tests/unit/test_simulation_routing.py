"""Routing, as simulated calls through a sidecar's generated config (ported from
test_translate_routes.py and test_translate_route_rules.py): first match wins, an exact host
beats a wildcard one, weights, delegation, who sends."""

from __future__ import annotations

import textwrap

from heddle.api.loader import load_text
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.simulation import Call, Error, Protocol, simulate
from heddle.translate.sidecar import ProxyResources, sidecar_resources

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
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  selector: {app: db}
  ports: [{name: tcp, port: 5432}]
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
RATINGS = "ratings.default.svc.cluster.local"
DB = "db.default.svc.cluster.local"


def client(labels: dict[str, str] | None = None, namespace: str = "default") -> Proxy:
    return Proxy(ProxyType.SIDECAR, "client", namespace, "127.0.40.1", "127.255.40.1",
                 tuple(sorted((labels or {}).items())), "client")


def proxy_config(*config: str, proxy: Proxy | None = None) -> ProxyResources:
    text = "\n---\n".join([SERVICES, *(textwrap.dedent(c) for c in config)])
    result = load_text(text, "mesh.yaml")
    assert result.errors == [], result.errors
    return sidecar_resources(MeshSnapshot.build(1, result.resources), proxy or client())


def v(subset: str, host: str = REVIEWS, port: int = 9080) -> str:
    return f"outbound|{port}|{subset}|{host}"


def test_a_service_without_virtual_service_gets_the_default_route() -> None:
    result = simulate(proxy_config(), Call(host="reviews", port=9080, path="/anything"))
    assert (result.listener, result.virtual_host, result.route) == (
        "virtualOutbound", f"{REVIEWS}:9080", "default")
    assert result.cluster == f"outbound|9080||{REVIEWS}"
    # Every name an application may use reaches the same host.
    for host in ("reviews.default", "reviews.default.svc", REVIEWS):
        assert simulate(proxy_config(), Call(host=host, port=9080)).virtual_host \
            == f"{REVIEWS}:9080"


def test_the_first_matching_rule_wins() -> None:
    config = proxy_config("""
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - match: [{headers: {end-user: {exact: jason}}}]
        route: [{destination: {host: reviews, subset: v2}}]
      - match: [{uri: {prefix: /v2}}]
        route: [{destination: {host: reviews, subset: v2}}]
      - route: [{destination: {host: reviews, subset: v1}}]
    """)
    assert simulate(config, Call(host="reviews", port=9080, path="/v2")).cluster == v("v2")
    jason = simulate(config, Call(host="reviews", port=9080, headers={"end-user": "jason"}))
    assert (jason.route_index, jason.cluster) == (0, v("v2"))
    other = simulate(config, Call(host="reviews", port=9080, headers={"end-user": "mary"}))
    assert (other.route_index, other.cluster) == (2, v("v1"))


def test_an_exact_host_beats_a_wildcard_host() -> None:
    config = proxy_config("""
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: everything}
    spec:
      hosts: ["*.default.svc.cluster.local"]
      http:
      - route: [{destination: {host: reviews, subset: v2}}]
    ---
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - route: [{destination: {host: reviews, subset: v1}}]
    """)
    assert simulate(config, Call(host="reviews", port=9080)).cluster == v("v1")
    # ratings has no VirtualService of its own: the wildcard one routes it.
    assert simulate(config, Call(host="ratings", port=9080)).cluster == v("v2")


def test_a_split_reports_every_cluster_with_its_weight() -> None:
    config = proxy_config("""
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - route:
        - {destination: {host: reviews, subset: v1}, weight: 90}
        - {destination: {host: reviews, subset: v2}, weight: 10}
    """)
    result = simulate(config, Call(host="reviews", port=9080))
    assert result.weighted_clusters == ((v("v1"), 90), (v("v2"), 10))


def test_redirects_and_direct_responses_answer_without_a_cluster() -> None:
    config = proxy_config("""
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - match: [{uri: {exact: /old}}]
        redirect: {uri: /new}
      - match: [{uri: {prefix: /teapot}}]
        directResponse: {status: 418}
      - route: [{destination: {host: reviews}}]
    """)
    old = simulate(config, Call(host="reviews", port=9080, path="/old"))
    assert (old.status, old.redirect.path_redirect if old.redirect else None) == (301, "/new")
    assert simulate(config, Call(host="reviews", port=9080, path="/teapot/1")).status == 418
    assert simulate(config, Call(host="reviews", port=9080, path="/old/x")).cluster \
        == f"outbound|9080||{REVIEWS}"


def test_a_delegate_virtual_service_supplies_the_routes_of_a_root_rule() -> None:
    config = proxy_config("""
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
    """)
    assert simulate(config, Call(host="reviews", port=9080, path="/api/v2/x")).cluster == v("v2")
    # The delegate's /elsewhere conflicts with the root's /api: it never applies.
    assert simulate(config, Call(host="reviews", port=9080, path="/elsewhere")).cluster \
        == v("v1")
    # /api/v1 matches the root's rule but none of the delegate's: the next root rule.
    assert simulate(config, Call(host="reviews", port=9080, path="/api/v1")).cluster == v("v1")


def test_source_labels_and_namespace_pick_routes_per_sending_proxy() -> None:
    virtual_service = """
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
    call = Call(host="reviews.default", port=9080)

    def cluster_for(proxy: Proxy) -> str | None:
        return simulate(proxy_config(virtual_service, proxy=proxy), call).cluster

    assert cluster_for(client({"app": "productpage", "version": "v2"})) == v("v2")
    assert cluster_for(client({"app": "productpage", "version": "v1"})) == v("v1")
    assert cluster_for(client(namespace="testing")) == v("v2")


def test_without_headers_matches_a_request_that_lacks_the_header() -> None:
    config = proxy_config("""
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: reviews}
    spec:
      hosts: [reviews]
      http:
      - match: [{withoutHeaders: {end-user: {exact: jason}}}]
        route: [{destination: {host: reviews, subset: v1}}]
      - route: [{destination: {host: reviews, subset: v2}}]
    """)
    assert simulate(config, Call(host="reviews", port=9080)).cluster == v("v1")
    assert simulate(config, Call(host="reviews", port=9080,
                                 headers={"end-user": "mary"})).cluster == v("v1")
    assert simulate(config, Call(host="reviews", port=9080,
                                 headers={"end-user": "jason"})).cluster == v("v2")


def test_tcp_rules_route_connect_tunnels_with_weights() -> None:
    config = proxy_config("""
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: db}
    spec:
      hosts: [db]
      tcp:
      - match: [{port: 5432}]
        route:
        - {destination: {host: db, subset: primary}, weight: 80}
        - {destination: {host: db, subset: replica}, weight: 20}
    """)
    result = simulate(config, Call(host="db", port=5432, protocol=Protocol.TCP))
    assert (result.virtual_host, result.route) == (f"{DB}:5432", "connect")
    assert result.weighted_clusters == ((v("primary", DB, 5432), 80),
                                        (v("replica", DB, 5432), 20))
    # A plain HTTP request to a TCP port finds no HTTP route there.
    assert simulate(config, Call(host="db", port=5432)).error == Error.NO_ROUTE
