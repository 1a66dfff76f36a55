"""The traffic simulator's own rules, on tiny hand-built protos where Envoy's are subtle."""

from __future__ import annotations

from envoy.config.core.v3 import address_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.type.matcher.v3 import string_pb2

from heddle.testing.simulation import HCM, Call, Error, Protocol, header_matches, simulate
from heddle.translate.sidecar import LISTENER, ProxyResources


def proxy(*hosts: tuple[str, list[str]], routes: list[rc.Route] | None = None,
          **manager_options: object) -> ProxyResources:
    """A listener on 15001 with an inline route configuration: a virtual host per
    (name, domains), each routing everything to a cluster named like the host."""
    config = route_pb2.RouteConfiguration(name="test")
    for name, domains in hosts:
        config.virtual_hosts.add(name=name, domains=domains, routes=routes or [rc.Route(
            name=name, match=rc.RouteMatch(prefix="/"), route=rc.RouteAction(cluster=name))])
    manager = hcm.HttpConnectionManager(stat_prefix="t", route_config=config,
                                        **manager_options)
    listener = listener_pb2.Listener(name="out", address=address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.1", port_value=15001)))
    listener.filter_chains.add().filters.add(name=HCM).typed_config.Pack(manager)
    return ProxyResources({LISTENER: {"out": listener}})


def host_of(resources: ProxyResources, authority: str) -> str | None:
    return simulate(resources, Call(authority=authority)).virtual_host


def test_an_exact_domain_beats_a_suffix_wildcard_which_beats_a_prefix_one_then_star() -> None:
    resources = proxy(("star", ["*"]), ("prefix", ["api.*"]), ("suffix", ["*.example.com"]),
                      ("exact", ["api.example.com"]))
    assert host_of(resources, "api.example.com") == "exact"
    assert host_of(resources, "API.Example.com") == "exact"  # hosts match case-insensitively
    assert host_of(resources, "www.example.com") == "suffix"
    assert host_of(resources, "api.example.org") == "prefix"
    assert host_of(resources, "other") == "star"


def test_the_longest_suffix_wins_and_a_wildcard_stands_for_at_least_one_character() -> None:
    resources = proxy(("short", ["*.com"]), ("long", ["*.example.com"]))
    assert host_of(resources, "a.example.com") == "long"
    # "*.example.com" needs a character before ".example.com"
    assert host_of(resources, "example.com") == "short"
    assert host_of(resources, ".com") is None


def test_the_port_is_part_of_the_host_unless_the_manager_strips_it() -> None:
    resources = proxy(("bare", ["reviews"]), ("with-port", ["reviews:9080"]))
    assert host_of(resources, "reviews:9080") == "with-port"
    result = simulate(resources, Call(authority="reviews:9090"))
    assert (result.error, result.status) == (Error.NO_VIRTUAL_HOST, 404)
    stripping = proxy(("bare", ["reviews"]), strip_any_host_port=True)
    assert host_of(stripping, "reviews:9090") == "bare"
    matching = proxy(("bare", ["reviews"]), strip_matching_host_port=True)
    assert host_of(matching, "reviews:15001") == "bare"
    assert host_of(matching, "reviews:9090") is None


def test_a_domain_in_two_virtual_hosts_is_a_config_error() -> None:
    assert simulate(proxy(("a", ["x"]), ("b", ["X"])), Call(authority="x")).error \
        == Error.CONFIG_ERROR


def headers(**values: str) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in values.items()}


def test_an_inverted_match_on_a_missing_header_fails_unless_missing_counts_as_empty() -> None:
    exact = string_pb2.StringMatcher(exact="jason")
    inverted = rc.HeaderMatcher(name="end-user", string_match=exact, invert_match=True)
    assert not header_matches(inverted, {})
    assert not header_matches(inverted, headers(end_user="jason"))
    assert header_matches(inverted, headers(end_user="mary"))
    inverted.treat_missing_header_as_empty = True
    assert header_matches(inverted, {})


def test_present_match_on_a_missing_header_and_its_inversion() -> None:
    present = rc.HeaderMatcher(name="x", present_match=True)
    assert not header_matches(present, {})
    assert header_matches(present, {"x": ""})
    absent = rc.HeaderMatcher(name="x", present_match=True, invert_match=True)
    assert header_matches(absent, {})
    assert not header_matches(absent, {"x": "1"})


def test_regexes_match_the_whole_value_as_re2_does() -> None:
    matcher = rc.HeaderMatcher(name="v", string_match=string_pb2.StringMatcher(
        safe_regex={"regex": "v[0-9]+"}))
    assert header_matches(matcher, {"v": "v12"})
    assert not header_matches(matcher, {"v": "xv12"})


def route(name: str, **match: object) -> rc.Route:
    return rc.Route(name=name, match=rc.RouteMatch(**match),
                    route=rc.RouteAction(cluster=name))


def routed(resources: ProxyResources, path: str, **call: object) -> str | None:
    return simulate(resources, Call(host="h", path=path, **call)).route  # type: ignore[arg-type]


def test_routes_match_in_order_on_the_path_without_its_query() -> None:
    resources = proxy(("h", ["h"]), routes=[
        route("exact", path="/a"), route("regex", safe_regex={"regex": "/a/[0-9]+"}),
        route("separated", path_separated_prefix="/api"),
        route("insensitive", prefix="/CASE", case_sensitive={"value": False}),
        route("query", prefix="/", query_parameters=[rc.QueryParameterMatcher(
            name="debug", present_match=True)]),
    ])
    assert routed(resources, "/a?x=1") == "exact"
    assert routed(resources, "/a/12") == "regex"
    assert routed(resources, "/a/12x") is None
    assert routed(resources, "/api") == "separated"
    assert routed(resources, "/api/v1") == "separated"
    assert routed(resources, "/apiv1") is None
    assert routed(resources, "/case/x") == "insensitive"
    assert routed(resources, "/other?debug") == "query"
    result = simulate(resources, Call(host="h", path="/other"))
    assert (result.error, result.status) == (Error.NO_ROUTE, 404)


def test_connect_requests_match_only_connect_routes() -> None:
    resources = proxy(("h", ["h:5432"]), routes=[
        route("http", prefix="/"), route("tunnel", connect_matcher={})])
    assert simulate(resources, Call(host="h", port=5432, protocol=Protocol.TCP)).route \
        == "tunnel"
    assert simulate(resources, Call(host="h", port=5432)).route == "http"


def test_paths_are_normalized_before_routes_match_when_the_manager_says_so() -> None:
    routes = [route("public", prefix="/public"), route("private", prefix="/private")]
    normalizing = proxy(("h", ["h"]), routes=routes, normalize_path={"value": True},
                        merge_slashes=True)
    assert routed(normalizing, "/public/../private") == "private"
    assert routed(normalizing, "//private") == "private"
    assert routed(proxy(("h", ["h"]), routes=routes), "/public/../private") == "public"
