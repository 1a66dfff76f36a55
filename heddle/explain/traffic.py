"""A traffic simulator: which listener, filter chain, route and cluster a described call takes
through a proxy's generated resources, by Envoy's matching rules (as Istio's
`pilot/pkg/simulation` does for its tests).

    result = simulate(resources, Call(host="reviews", port=9080, path="/v2"))
    assert result.cluster == "outbound|9080|v2|reviews.default.svc.cluster.local"

Outbound calls go to the sidecar's HTTP proxy (port 15001): the authority is `host:port`
(just `host` on port 80), TCP calls are CONNECT tunnels to `host:port`. Inbound calls go to
`address:port` on the proxy, over plaintext, TLS or mTLS.

Modelled: listener by address and port (0.0.0.0 as a wildcard); filter chain match stage by
stage as Envoy does (destination port, destination IP prefix, server names, transport
protocol, application protocols; the most specific candidate at each stage, else the ones
that do not set it; default_filter_chain last); a chain's TLS transport socket (a plaintext
call to it, or a call without a client certificate when one is required, is an error);
HTTP connection manager with inline or RDS route configuration; path normalization
(normalize_path, merge_slashes, %2F/%5C decoding); host port stripping
(strip_any_host_port, strip_matching_host_port, ignore_port_in_host_matching); virtual host
domains (exact > longest suffix wildcard > longest prefix wildcard > `*`, case-insensitive,
duplicate domains a config error); routes in order (prefix, path, safe_regex as an RE2 full
match, path_separated_prefix, connect_matcher, case_sensitive, header matchers with
present/exact/prefix/suffix/contains/regex/string_match, invert and
treat_missing_header_as_empty, query parameters, grpc); actions (cluster, weighted clusters,
redirect, direct response, CONNECT upgrade); tcp_proxy's cluster or weighted clusters.

Not modelled: RBAC and other filters' verdicts (their names are reported), runtime
fractions, dynamic metadata and filter state matchers, path templates (path_match_policy),
cluster_header and cluster_specifier_plugin, source IP / source port / source type chain
matching, the original destination listener and listener filters other than TLS inspector
(HTTP inspector's protocol detection is approximated).
"""

from __future__ import annotations

import dataclasses
import posixpath
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import ip_address, ip_network

import re2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.type.matcher.v3 import string_pb2

from heddle.translate import ports
from heddle.translate.sidecar import LISTENER, ROUTE, ProxyResources

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"


class Error(StrEnum):
    """Why a call went nowhere, as Istio's simulation names it."""

    NO_LISTENER = "no listener"
    NO_FILTER_CHAIN = "no filter chain"
    TLS_ERROR = "TLS error"
    MTLS_ERROR = "mTLS error"
    NO_ROUTE_CONFIG = "no route configuration"
    NO_VIRTUAL_HOST = "no virtual host"
    NO_ROUTE = "no route"
    CONFIG_ERROR = "config Envoy would reject"
    PROTOCOL_ERROR = "protocol error"


class Direction(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class Protocol(StrEnum):
    HTTP = "http"
    HTTP2 = "http2"
    TCP = "tcp"


class Tls(StrEnum):
    PLAINTEXT = "plaintext"
    TLS = "tls"  # TLS without a client certificate
    MTLS = "mtls"  # TLS with the mesh client certificate


@dataclass(frozen=True)
class Call:
    """A described request. Outbound: to `host:port` through the proxy's HTTP proxy
    listener (`proxy_port`); inbound: to `address:port` on the proxy."""

    host: str = ""
    port: int = 80
    path: str = "/"
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    direction: Direction = Direction.OUTBOUND
    address: str = ""  # the destination address; "" takes any listener on the port
    protocol: Protocol = Protocol.HTTP
    tls: Tls = Tls.PLAINTEXT
    alpn: tuple[str, ...] = ()
    sni: str = ""
    scheme: str = "http"
    authority: str | None = None  # the Host header as sent; by default host[:port]
    proxy_port: int = ports.OUTBOUND

    @property
    def listener_port(self) -> int:
        return self.proxy_port if self.direction == Direction.OUTBOUND else self.port

    @property
    def connect(self) -> bool:
        """Outbound TCP goes through the HTTP proxy as a CONNECT tunnel."""
        return self.direction == Direction.OUTBOUND and self.protocol == Protocol.TCP

    @property
    def host_header(self) -> str:
        if self.authority is not None:
            return self.authority
        if self.connect or self.port != 80:
            return f"{self.host}:{self.port}"
        return self.host


@dataclass(frozen=True)
class Result:
    """Where the call went, stage by stage; `error` names the stage where it stopped."""

    error: Error | None = None
    reason: str = ""
    listener: str | None = None
    filter_chain: str | None = None
    filter_chain_why: str = ""
    network_filters: tuple[str, ...] = ()
    http_filters: tuple[str, ...] = ()
    route_config: str | None = None
    virtual_host: str | None = None
    route: str | None = None
    route_index: int | None = None
    route_match: rc.RouteMatch | None = None
    path: str | None = None  # the path routes matched, after normalization
    cluster: str | None = None
    weighted_clusters: tuple[tuple[str, int], ...] = ()
    redirect: rc.RedirectAction | None = None
    direct_response: int | None = None

    @property
    def status(self) -> int | None:
        """The HTTP status Envoy answers itself with, if it does (404 for no route)."""
        if self.error in (Error.NO_VIRTUAL_HOST, Error.NO_ROUTE):
            return 404
        if self.direct_response is not None:
            return self.direct_response
        if self.redirect is not None:
            return _REDIRECT_STATUS.get(self.redirect.response_code, 301)
        return None

    @property
    def clusters(self) -> tuple[str, ...]:
        """Every cluster the call may go to."""
        if self.cluster is not None:
            return (self.cluster,)
        return tuple(name for name, _ in self.weighted_clusters)


_REDIRECT_STATUS = {rc.RedirectAction.MOVED_PERMANENTLY: 301, rc.RedirectAction.FOUND: 302,
                    rc.RedirectAction.SEE_OTHER: 303,
                    rc.RedirectAction.TEMPORARY_REDIRECT: 307,
                    rc.RedirectAction.PERMANENT_REDIRECT: 308}


def simulate(resources: ProxyResources, call: Call) -> Result:
    """Send `call` through `resources` as Envoy would."""
    listener = _find_listener(resources, call)
    if listener is None:
        address = call.address or "*"
        return Result(Error.NO_LISTENER, f"no listener on {address}:{call.listener_port}")
    found = Result(listener=listener.name)
    chain, why = _find_filter_chain(listener, call)
    if chain is None:
        return _with(found, error=Error.NO_FILTER_CHAIN, reason=why)
    found = _with(found, filter_chain=chain.name, filter_chain_why=why,
                  network_filters=tuple(f.name for f in chain.filters))
    problem = _tls_problem(chain, call)
    if problem is not None:
        return _with(found, error=problem[0], reason=problem[1])
    for network_filter in chain.filters:
        if network_filter.name == HCM:
            manager = hcm.HttpConnectionManager()
            network_filter.typed_config.Unpack(manager)
            return _http(resources, manager, listener, call, found)
        if network_filter.name == TCP_PROXY:
            proxy = tcp_proxy_pb2.TcpProxy()
            network_filter.typed_config.Unpack(proxy)
            if proxy.HasField("weighted_clusters"):
                return _with(found, weighted_clusters=tuple(
                    (c.name, c.weight) for c in proxy.weighted_clusters.clusters))
            return _with(found, cluster=proxy.cluster)
    return _with(found, error=Error.PROTOCOL_ERROR,
                 reason="the filter chain ends in neither an HTTP connection manager nor a "
                        "TCP proxy")


def _with(result: Result, **changes: object) -> Result:
    return dataclasses.replace(result, **changes)  # type: ignore[arg-type]


# --- listeners and filter chains ---------------------------------------------------------

def _find_listener(resources: ProxyResources, call: Call) -> listener_pb2.Listener | None:
    exact, wildcard = None, None
    for listener in resources.of(LISTENER).values():
        assert isinstance(listener, listener_pb2.Listener)
        socket = listener.address.socket_address
        if socket.port_value != call.listener_port:
            continue
        if not call.address or socket.address == call.address:
            exact = exact or listener
        elif socket.address in ("0.0.0.0", "::"):
            wildcard = wildcard or listener
    return exact or wildcard


def _transport_protocol(listener: listener_pb2.Listener, call: Call) -> str:
    """What the listener filters detect: "tls" from the TLS inspector, else raw_buffer."""
    inspects = any(f.name == "envoy.filters.listener.tls_inspector"
                   for f in listener.listener_filters)
    return "tls" if call.tls != Tls.PLAINTEXT and inspects else "raw_buffer"


def _application_protocols(listener: listener_pb2.Listener, call: Call) -> tuple[str, ...]:
    if call.tls != Tls.PLAINTEXT:
        return call.alpn
    if call.protocol != Protocol.TCP and any(
            f.name == "envoy.filters.listener.http_inspector" for f in listener.listener_filters):
        return ("h2c",) if call.protocol == Protocol.HTTP2 else ("http/1.1",)
    return ()


def _server_name_rank(names: list[str], sni: str) -> int | None:
    """How specifically `names` match `sni`: exact beats the longest wildcard suffix."""
    best = None
    for name in names:
        if name == sni:
            return 1 << 16
        if name.startswith("*.") and sni.endswith(name[1:]) and len(sni) > len(name) - 1:
            best = max(best or 0, len(name))
    return best


def _find_filter_chain(listener: listener_pb2.Listener, call: Call,
                       ) -> tuple[listener_components_pb2.FilterChain | None, str]:
    """Envoy's stages in order; at each, the candidates that match most specifically, or
    those that leave the criterion unset."""
    candidates = list(listener.filter_chains)
    transport = _transport_protocol(listener, call)
    alpn = _application_protocols(listener, call)
    destination = call.address or listener.address.socket_address.address
    reasons: list[str] = []

    def stage(what: str, rank: Callable[[listener_components_pb2.FilterChainMatch], int | None],
              ) -> None:
        nonlocal candidates
        scored = [(rank(c.filter_chain_match), c) for c in candidates]
        specific = [(s, c) for s, c in scored if s]
        if specific:
            top = max(s for s, _ in specific if s)
            candidates = [c for s, c in specific if s == top]
            reasons.append(what)
        else:
            candidates = [c for s, c in scored if s == 0]

    def port_rank(m: listener_components_pb2.FilterChainMatch) -> int | None:
        if not m.HasField("destination_port"):
            return 0
        return 1 if m.destination_port.value == call.listener_port else None

    def ip_rank(m: listener_components_pb2.FilterChainMatch) -> int | None:
        if not m.prefix_ranges:
            return 0
        lengths = [r.prefix_len.value for r in m.prefix_ranges
                   if ip_address(destination) in ip_network(
                       f"{r.address_prefix}/{r.prefix_len.value}", strict=False)]
        return max(lengths) + 1 if lengths else None

    def name_rank(m: listener_components_pb2.FilterChainMatch) -> int | None:
        if not m.server_names:
            return 0
        return _server_name_rank(list(m.server_names), call.sni) if call.sni else None

    def transport_rank(m: listener_components_pb2.FilterChainMatch) -> int | None:
        if not m.transport_protocol:
            return 0
        return 1 if m.transport_protocol == transport else None

    def alpn_rank(m: listener_components_pb2.FilterChainMatch) -> int | None:
        if not m.application_protocols:
            return 0
        return 1 if set(m.application_protocols) & set(alpn) else None

    stage(f"destination port {call.listener_port}", port_rank)
    stage(f"destination address {destination}", ip_rank)
    stage(f"server name {call.sni!r}", name_rank)
    stage(f"transport protocol {transport}", transport_rank)
    stage(f"application protocols {list(alpn)}", alpn_rank)
    if len(candidates) > 1:
        return None, f"{len(candidates)} filter chains match the same call (Envoy rejects it)"
    if candidates:
        return candidates[0], ", ".join(reasons) or "the only chain, matching anything"
    if listener.HasField("default_filter_chain"):
        return listener.default_filter_chain, "no chain matched: the default filter chain"
    return None, (f"no filter chain of {listener.name} accepts transport {transport}, "
                  f"ALPN {list(alpn)}, SNI {call.sni!r} on port {call.listener_port}")


def _tls_problem(chain: listener_components_pb2.FilterChain, call: Call,
                 ) -> tuple[Error, str] | None:
    socket = chain.transport_socket
    terminates = socket.name == "envoy.transport_sockets.tls"
    if not terminates:
        return None
    if call.tls == Tls.PLAINTEXT:
        return Error.TLS_ERROR, f"chain {chain.name!r} expects TLS; the call is plaintext"
    context = tls_pb2.DownstreamTlsContext()
    socket.typed_config.Unpack(context)
    if context.require_client_certificate.value and call.tls != Tls.MTLS:
        return Error.MTLS_ERROR, f"chain {chain.name!r} requires a client certificate"
    return None


# --- HTTP ------------------------------------------------------------------------------

def _http(resources: ProxyResources, manager: hcm.HttpConnectionManager,
          listener: listener_pb2.Listener, call: Call, found: Result) -> Result:
    found = _with(found, http_filters=tuple(f.name for f in manager.http_filters))
    config = manager.route_config if manager.HasField("route_config") \
        else resources.of(ROUTE).get(manager.rds.route_config_name)
    if not isinstance(config, route_pb2.RouteConfiguration):
        return _with(found, error=Error.NO_ROUTE_CONFIG,
                     reason=f"RDS names {manager.rds.route_config_name!r}, which the proxy "
                            "does not hold")
    found = _with(found, route_config=config.name)
    duplicate = _duplicate_domain(config)
    if duplicate:
        return _with(found, error=Error.CONFIG_ERROR,
                     reason=f"domain {duplicate!r} is in two virtual hosts")
    host = _host_for_matching(manager, config, listener, call.host_header)
    vhost = _find_virtual_host(config, host)
    if vhost is None:
        return _with(found, error=Error.NO_VIRTUAL_HOST,
                     reason=f"no virtual host of {config.name} matches {host!r}")
    found = _with(found, virtual_host=vhost.name)
    path = None if call.connect else _normalize(manager, call.path)
    found = _with(found, path=path)
    headers = _request_headers(call, path)
    for index, route in enumerate(vhost.routes):
        if _route_matches(route.match, call, path, headers):
            return _action(_with(found, route=route.name, route_index=index,
                                 route_match=route.match), route)
    what = f"CONNECT {call.host_header}" if call.connect else f"{call.method} {path}"
    return _with(found, error=Error.NO_ROUTE,
                 reason=f"no route of virtual host {vhost.name} matches {what}")


def _action(found: Result, route: rc.Route) -> Result:
    if route.HasField("redirect"):
        return _with(found, redirect=route.redirect)
    if route.HasField("direct_response"):
        return _with(found, direct_response=route.direct_response.status)
    action = route.route
    if action.HasField("weighted_clusters"):
        return _with(found, weighted_clusters=tuple(
            (c.name, c.weight.value) for c in action.weighted_clusters.clusters))
    return _with(found, cluster=action.cluster)


def _duplicate_domain(config: route_pb2.RouteConfiguration) -> str | None:
    seen: set[str] = set()
    for vhost in config.virtual_hosts:
        for domain in vhost.domains:
            if domain.lower() in seen:
                return str(domain)
            seen.add(domain.lower())
    return None


def _split_port(host: str) -> tuple[str, str | None]:
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        rest = host[end + 1:]
        return host[:end + 1], rest[1:] if rest.startswith(":") else None
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, port
    return host, None


def _host_for_matching(manager: hcm.HttpConnectionManager, config: route_pb2.RouteConfiguration,
                       listener: listener_pb2.Listener, host: str) -> str:
    host = host.lower()
    name, port = _split_port(host)
    if port is not None:
        listening = str(listener.address.socket_address.port_value)
        if manager.strip_any_host_port or config.ignore_port_in_host_matching or (
                manager.strip_matching_host_port and port == listening):
            return name
    return host


def _find_virtual_host(config: route_pb2.RouteConfiguration, host: str,
                       ) -> rc.VirtualHost | None:
    """Envoy: an exact domain, else the longest `*suffix`, else the longest `prefix*`, else
    `*`; a wildcard stands for at least one character."""
    suffixes: list[tuple[int, rc.VirtualHost]] = []
    prefixes: list[tuple[int, rc.VirtualHost]] = []
    default = None
    for vhost in config.virtual_hosts:
        for domain in (d.lower() for d in vhost.domains):
            if domain == "*":
                default = default or vhost
            elif domain.startswith("*"):
                if host.endswith(domain[1:]) and len(host) > len(domain) - 1:
                    suffixes.append((len(domain), vhost))
            elif domain.endswith("*"):
                if host.startswith(domain[:-1]) and len(host) > len(domain) - 1:
                    prefixes.append((len(domain), vhost))
            elif domain == host:
                return vhost
    for matched in (suffixes, prefixes):
        if matched:
            longest = max(n for n, _ in matched)
            return next(v for n, v in matched if n == longest)
    return default


def _normalize(manager: hcm.HttpConnectionManager, raw: str) -> str:
    """The path routes see (query kept): Envoy's normalize_path, merge_slashes and escaped
    slash handling, in that order of concern."""
    path, sep, query = raw.partition("?")
    path = path.split("#", 1)[0]
    if manager.path_with_escaped_slashes_action in (
            hcm.HttpConnectionManager.UNESCAPE_AND_FORWARD,
            hcm.HttpConnectionManager.UNESCAPE_AND_REDIRECT):
        for escaped, plain in (("%2F", "/"), ("%2f", "/"), ("%5C", "\\"), ("%5c", "\\")):
            path = path.replace(escaped, plain)
    if manager.normalize_path.value:
        path = _decode_unreserved(path).replace("\\", "/")
        trailing = path.endswith("/") and path != "/"
        path = posixpath.normpath(path) if path else "/"
        if path.startswith("//"):  # normpath keeps a leading double slash
            path = "/" + path.lstrip("/")
        if trailing and not path.endswith("/"):
            path += "/"
    if manager.merge_slashes:
        while "//" in path:
            path = path.replace("//", "/")
    return path + sep + query


_HEX = set("0123456789abcdefABCDEF")
_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _decode_unreserved(path: str) -> str:
    out, i = [], 0
    while i < len(path):
        digits = path[i + 1:i + 3]
        if path[i] == "%" and len(digits) == 2 and all(c in _HEX for c in digits):
            char = chr(int(digits, 16))
            if char in _UNRESERVED:
                out.append(char)
                i += 3
                continue
        out.append(path[i])
        i += 1
    return "".join(out)


def _request_headers(call: Call, path: str | None) -> dict[str, str]:
    headers = {k.lower(): v for k, v in call.headers.items()}
    headers[":method"] = "CONNECT" if call.connect else call.method
    headers[":authority"] = call.host_header
    if not call.connect:
        headers[":scheme"] = call.scheme
        headers[":path"] = path or "/"
    return headers


# --- route matching ----------------------------------------------------------------------

def _route_matches(match: rc.RouteMatch, call: Call, path: str | None,
                   headers: Mapping[str, str]) -> bool:
    kind = match.WhichOneof("path_specifier")
    if kind == "connect_matcher":
        if not call.connect:
            return False
    elif call.connect or path is None:
        return False  # a CONNECT request has no path for other matchers
    else:
        bare = path.partition("?")[0]
        sensitive = match.case_sensitive.value if match.HasField("case_sensitive") else True
        if not _path_matches(match, kind, bare, sensitive):
            return False
    if match.HasField("grpc") and not headers.get("content-type", "").startswith(
            "application/grpc"):
        return False
    if not all(header_matches(h, headers) for h in match.headers):
        return False
    query = urllib.parse.parse_qs((path or "").partition("?")[2], keep_blank_values=True)
    return all(_query_matches(q, query) for q in match.query_parameters)


def _path_matches(match: rc.RouteMatch, kind: str | None, path: str, sensitive: bool) -> bool:
    def fold(s: str) -> str:
        return s if sensitive else s.lower()

    if kind == "prefix":
        return fold(path).startswith(fold(match.prefix))
    if kind == "path":
        return fold(path) == fold(match.path)
    if kind == "safe_regex":
        return re2.fullmatch(match.safe_regex.regex, path) is not None
    if kind == "path_separated_prefix":
        prefix = fold(match.path_separated_prefix)
        return fold(path) == prefix or fold(path).startswith(prefix + "/")
    raise NotImplementedError(f"the simulator does not model a {kind} route match")


def string_matches(matcher: string_pb2.StringMatcher, value: str) -> bool:
    """Envoy's StringMatcher (ignore_case does not apply to safe_regex)."""
    kind = matcher.WhichOneof("match_pattern")
    if kind == "safe_regex":
        return re2.fullmatch(matcher.safe_regex.regex, value) is not None
    folded = value.lower() if matcher.ignore_case else value

    def pattern(s: str) -> str:
        return s.lower() if matcher.ignore_case else s

    if kind == "exact":
        return folded == pattern(matcher.exact)
    if kind == "prefix":
        return folded.startswith(pattern(matcher.prefix))
    if kind == "suffix":
        return folded.endswith(pattern(matcher.suffix))
    if kind == "contains":
        return pattern(matcher.contains) in folded
    raise NotImplementedError(f"the simulator does not model a {kind} string match")


def header_matches(matcher: rc.HeaderMatcher, headers: Mapping[str, str]) -> bool:
    """Envoy's HeaderMatcher: a missing header matches only `present_match: false`
    (or, inverted, `present_match: true`) unless treat_missing_header_as_empty."""
    kind = matcher.WhichOneof("header_match_specifier")
    value = headers.get(matcher.name.lower())
    if value is None and not matcher.treat_missing_header_as_empty:
        if matcher.invert_match:
            return kind == "present_match" and bool(matcher.present_match)
        return kind == "present_match" and not matcher.present_match
    value = value or ""
    if kind == "present_match":
        matched = bool(matcher.present_match)
    elif kind == "exact_match":
        matched = value == matcher.exact_match
    elif kind == "prefix_match":
        matched = value.startswith(matcher.prefix_match)
    elif kind == "suffix_match":
        matched = value.endswith(matcher.suffix_match)
    elif kind == "contains_match":
        matched = matcher.contains_match in value
    elif kind == "safe_regex_match":
        matched = re2.fullmatch(matcher.safe_regex_match.regex, value) is not None
    elif kind == "string_match":
        matched = string_matches(matcher.string_match, value)
    elif kind is None:
        matched = True  # no specifier: the header's presence
    else:
        raise NotImplementedError(f"the simulator does not model a {kind} header match")
    return bool(matched != matcher.invert_match)


def _query_matches(matcher: rc.QueryParameterMatcher, query: Mapping[str, list[str]]) -> bool:
    values = query.get(matcher.name)
    if values is None:
        return False
    if matcher.HasField("string_match"):
        return string_matches(matcher.string_match, values[0])
    return True  # present_match
