"""Outbound HTTP routes from VirtualServices: Istio's bookinfo files, golden files, real Envoy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from envoy.config.route.v3 import route_components_pb2 as rc
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import check_golden, hello_snapshot

from heddle.api.loader import load_paths
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import http_listener, static_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.clusters import outbound_clusters, outbound_endpoints
from heddle.translate.routes import outbound_http_ports, outbound_route_config

REVIEWS = "reviews.default.svc.cluster.local"


def bookinfo(corpus: Path, *networking: str) -> MeshSnapshot:
    samples = corpus / "istio" / "samples" / "bookinfo"
    paths = [samples / "platform" / "kube" / "bookinfo.yaml",
             samples / "networking" / "destination-rule-all.yaml"]
    paths += [samples / "networking" / name for name in networking]
    result = load_paths(paths)
    assert result.errors == []
    return MeshSnapshot.build(1, result.resources)


def reviews_routes(snapshot: MeshSnapshot) -> list[rc.Route]:
    config = outbound_route_config(snapshot, 9080)
    [host] = [h for h in config.virtual_hosts if h.name == f"{REVIEWS}:9080"]
    return list(host.routes)


def test_a_service_without_virtual_service_gets_the_default_route(corpus: Path) -> None:
    [route] = reviews_routes(bookinfo(corpus))
    assert route.match.prefix == "/"
    assert route.route.cluster == f"outbound|9080||{REVIEWS}"
    assert route.route.retry_policy.num_retries.value == 2
    assert list(route.route.retry_policy.retriable_status_codes) == [503]


def test_virtual_service_all_v1_routes_every_request_to_the_subset(corpus: Path) -> None:
    [route] = reviews_routes(bookinfo(corpus, "virtual-service-all-v1.yaml"))
    assert route.route.cluster == f"outbound|9080|v1|{REVIEWS}"


def test_the_90_10_split_becomes_weighted_clusters(corpus: Path) -> None:
    [route] = reviews_routes(bookinfo(corpus, "virtual-service-reviews-90-10.yaml"))
    weights = [(c.name, c.weight.value) for c in route.route.weighted_clusters.clusters]
    assert weights == [(f"outbound|9080|v1|{REVIEWS}", 90), (f"outbound|9080|v2|{REVIEWS}", 10)]


def test_the_jason_header_route_comes_first(corpus: Path) -> None:
    first, rest = reviews_routes(bookinfo(corpus, "virtual-service-reviews-test-v2.yaml"))
    [header] = first.match.headers
    assert (header.name, header.string_match.exact) == ("end-user", "jason")
    assert first.route.cluster == f"outbound|9080|v2|{REVIEWS}"
    assert rest.route.cluster == f"outbound|9080|v1|{REVIEWS}"


def test_a_timeout_and_retries_are_carried_over(
    write_yaml: Callable[..., Path], corpus: Path,
) -> None:
    vs = write_yaml("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http:
          - route: [{destination: {host: reviews, subset: v2}}]
            timeout: 1.5s
            retries: {attempts: 4, perTryTimeout: 500ms, retryOn: "gateway-error,503"}
        """)
    snapshot = MeshSnapshot.build(1, [*bookinfo(corpus).of_kind("", "Service"),
                                     *load_paths([vs]).resources])
    [route] = reviews_routes(snapshot)
    assert route.route.timeout.ToMilliseconds() == 1500
    policy = route.route.retry_policy
    assert policy.num_retries.value == 4
    assert policy.per_try_timeout.ToMilliseconds() == 500
    assert policy.retry_on == "gateway-error,retriable-status-codes"
    assert list(policy.retriable_status_codes) == [503]


def test_hello_routes_match_golden_files_and_real_envoy_accepts_them() -> None:
    snapshot = hello_snapshot()
    ports = outbound_http_ports(snapshot)
    configs = [outbound_route_config(snapshot, port) for port in ports]
    check_golden("routes.json", [MessageToDict(c) for c in configs])
    listeners = [http_listener(15000 + i, c) for i, c in enumerate(configs, start=100)]
    out = validate_bootstrap(static_bootstrap(outbound_clusters(snapshot),
                                              outbound_endpoints(snapshot), listeners))
    assert out.returncode == 0, out.stdout + out.stderr


def test_real_envoy_accepts_routes_for_every_bookinfo_virtual_service(corpus: Path) -> None:
    networking = corpus / "istio" / "samples" / "bookinfo" / "networking"
    for path in sorted(networking.glob("virtual-service-*.yaml")):
        snapshot = bookinfo(corpus, path.name)
        listeners = [http_listener(15100 + i, outbound_route_config(snapshot, port))
                     for i, port in enumerate(outbound_http_ports(snapshot))]
        out = validate_bootstrap(static_bootstrap(outbound_clusters(snapshot),
                                                  outbound_endpoints(snapshot), listeners))
        assert out.returncode == 0, f"{path.name}: {out.stdout}{out.stderr}"


def test_bookinfo_delay_and_abort_faults_become_fault_filter_config(corpus: Path) -> None:
    from envoy.extensions.filters.http.fault.v3 import fault_pb2

    def ratings_routes(name: str) -> list[rc.Route]:
        config = outbound_route_config(bookinfo(corpus, name), 9080)
        [host] = [h for h in config.virtual_hosts
                  if h.name == "ratings.default.svc.cluster.local:9080"]
        return list(host.routes)

    jason, _ = ratings_routes("virtual-service-ratings-test-delay.yaml")
    delay = fault_pb2.HTTPFault()
    jason.typed_per_filter_config["envoy.filters.http.fault"].Unpack(delay)
    assert delay.delay.fixed_delay.seconds == 7
    assert delay.delay.percentage.numerator == 1_000_000  # 100 %
    # Istio keeps the route's retries; the fault filter acts before the router, so injected
    # faults are never retried (shown end to end by the bookinfo tests).
    assert jason.route.retry_policy.num_retries.value == 2
    jason, _ = ratings_routes("virtual-service-ratings-test-abort.yaml")
    abort = fault_pb2.HTTPFault()
    jason.typed_per_filter_config["envoy.filters.http.fault"].Unpack(abort)
    assert abort.abort.http_status == 500


def test_redirect_direct_response_rewrite_headers_and_mirror(
    write_yaml: Callable[..., Path], corpus: Path,
) -> None:
    vs = write_yaml("""
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: reviews}
        spec:
          hosts: [reviews]
          http:
          - match: [{uri: {prefix: /old}}]
            redirect: {uri: /new, authority: shop.example.com, redirectCode: 308}
          - match: [{uri: {exact: /ping}}]
            directResponse: {status: 200, body: {string: pong}}
          - match: [{uri: {prefix: /v1/}}]
            rewrite: {uri: /, authority: reviews-internal}
            headers:
              request: {set: {x-a: "1"}, add: {x-b: "2"}, remove: [x-c]}
              response: {remove: [server]}
            mirror: {host: reviews, subset: v3}
            mirrorPercentage: {value: 12.5}
            route:
            - destination: {host: reviews, subset: v1}
              weight: 90
              headers: {response: {set: {x-subset: v1}}}
            - destination: {host: reviews, subset: v2}
              weight: 10
        """)
    snapshot = MeshSnapshot.build(1, [*bookinfo(corpus).resources(),
                                      *load_paths([vs]).resources])
    redirect, direct, forward = reviews_routes(snapshot)
    assert redirect.redirect.path_redirect == "/new"
    assert redirect.redirect.host_redirect == "shop.example.com"
    assert redirect.redirect.response_code == rc.RedirectAction.PERMANENT_REDIRECT
    assert direct.direct_response.status == 200
    assert direct.direct_response.body.inline_string == "pong"
    action = forward.route
    assert (action.prefix_rewrite, action.host_rewrite_literal) == ("/", "reviews-internal")
    assert [h.header.key for h in forward.request_headers_to_add] == ["x-a", "x-b"]
    assert list(forward.request_headers_to_remove) == ["x-c"]
    assert list(forward.response_headers_to_remove) == ["server"]
    [mirror] = action.request_mirror_policies
    assert mirror.cluster == f"outbound|9080|v3|{REVIEWS}"
    assert mirror.runtime_fraction.default_value.numerator == 125_000
    assert action.weighted_clusters.clusters[0].response_headers_to_add[0].header.key == (
        "x-subset")
    listeners = [http_listener(15100, outbound_route_config(snapshot, 9080))]
    out = validate_bootstrap(static_bootstrap(outbound_clusters(snapshot),
                                              outbound_endpoints(snapshot), listeners))
    assert out.returncode == 0, out.stdout + out.stderr


def test_redirect_derive_port_from_protocol_default_names_no_port(
        corpus: Path, tmp_path: Path) -> None:
    """As Istio: Envoy then writes no port, which is the scheme's own (a port_redirect of
    443 would put ":443" in the Location)."""
    vs = tmp_path / "vs.yaml"
    vs.write_text("""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /secure}}]
    redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT}
  - redirect: {authority: other, derivePort: FROM_REQUEST_PORT}
""")
    snapshot = MeshSnapshot.build(1, [*bookinfo(corpus).resources(),
                                      *load_paths([vs]).resources])
    secure, other = reviews_routes(snapshot)
    assert (secure.redirect.scheme_redirect, secure.redirect.port_redirect) == ("https", 0)
    assert other.redirect.port_redirect == 9080  # the port the request came to, as Istio


def test_a_redirect_uri_marked_prefix_replaces_only_the_matched_prefix(
        corpus: Path, tmp_path: Path) -> None:
    """Istio's `%PREFIX()%` marker, which a Gateway API ReplacePrefixMatch redirect becomes:
    /original-prefix/lemon redirects to /replacement-prefix/lemon."""
    vs = tmp_path / "vs.yaml"
    vs.write_text("""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {prefix: /original-prefix}}]
    redirect: {uri: "%PREFIX()%/replacement-prefix"}
  - redirect: {uri: /whole}
""")
    snapshot = MeshSnapshot.build(1, [*bookinfo(corpus).resources(),
                                      *load_paths([vs]).resources])
    prefix, whole = reviews_routes(snapshot)
    assert (prefix.redirect.prefix_rewrite, prefix.redirect.path_redirect) == (
        "/replacement-prefix", "")
    assert (whole.redirect.prefix_rewrite, whole.redirect.path_redirect) == ("", "/whole")


def test_retry_policy_fields_as_istio_converts_them() -> None:
    from heddle.api.models.virtual_service_parts import HTTPRetry
    from heddle.translate.routes import retry_policy

    policy = retry_policy(HTTPRetry(attempts=4, retryOn="gateway-error,connect-failure,409",
                                    perTryTimeout="2s", backoff="50ms",
                                    retryRemoteLocalities=True))
    assert policy is not None
    assert (policy.num_retries.value, policy.retry_on) == (
        4, "gateway-error,connect-failure,retriable-status-codes")
    assert list(policy.retriable_status_codes) == [409]
    assert policy.per_try_timeout.seconds == 2
    assert policy.retry_back_off.base_interval.nanos == 50_000_000
    assert policy.retry_priority.name == "envoy.retry_priorities.previous_priorities"
    assert policy.retry_host_predicate[0].name == "envoy.retry_host_predicates.previous_hosts"
    # Retrying on the same host: asked for, or implied by consistent hashing.
    sticky = retry_policy(HTTPRetry(attempts=2, retryIgnorePreviousHosts=False))
    assert sticky is not None and not sticky.retry_host_predicate
    hashed = retry_policy(None, hashed=True)
    assert hashed is not None and not hashed.retry_host_predicate
    assert retry_policy(HTTPRetry(attempts=0)) is None
    assert retry_policy(HTTPRetry(retryOn="5xx")) is None  # attempts defaults to 0, as in Istio
    kept = retry_policy(HTTPRetry(attempts=1, retryIgnorePreviousHosts=True), hashed=True)
    assert kept is not None and kept.retry_host_predicate


def test_real_envoy_accepts_every_retry_field(corpus: Path, tmp_path: Path) -> None:
    vs = tmp_path / "vs.yaml"
    vs.write_text("""
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v1}}]
    retries: {attempts: 3, retryOn: "5xx,409", perTryTimeout: 1s, backoff: 25ms,
              retryRemoteLocalities: true, retryIgnorePreviousHosts: false}
""")
    snapshot = MeshSnapshot.build(1, [*bookinfo(corpus).resources(),
                                      *load_paths([vs]).resources])
    listeners = [http_listener(15100, outbound_route_config(snapshot, 9080))]
    out = validate_bootstrap(static_bootstrap(outbound_clusters(snapshot),
                                              outbound_endpoints(snapshot), listeners))
    assert out.returncode == 0, out.stdout + out.stderr
