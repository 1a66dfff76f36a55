"""Outbound HTTP routes (RDS): one RouteConfiguration per port, a virtual host per service.

VirtualService http rules become Envoy routes in order (first match wins); a service no
VirtualService routes gets Istio's default route with its default retry policy.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import (
    previous_priorities_config_pb2,
)
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from heddle.api import istio_defaults
from heddle.api.models import VirtualServiceSpec
from heddle.api.models.virtual_service_parts import (
    Destination,
    HTTPMatch,
    HTTPRetry,
    HTTPRoute,
    RouteDestination,
    SourceMatch,
    StreamRoute,
    StringMatch,
    TCPMatch,
)
from heddle.api.resource import Resource
from heddle.api.specs import is_empty, spec_of
from heddle.model.gateway_api import ROUTE_SEMANTICS, RULE_ORIGINS
from heddle.model.proxy import Proxy
from heddle.model.scope import ALLOW_ANY, REGISTRY_ONLY, delegate_of, delegates
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Service, ServicePort, resolve_host
from heddle.registry.protocols import AUTO, TLS_PROTOCOLS, speaks_http
from heddle.translate.alpn import enable_alpn
from heddle.translate.clusters import originates_tls
from heddle.translate.delegation import merged_rules
from heddle.translate.durations import parse_duration
from heddle.translate.egress import BLACKHOLE_ROUTE, PASSTHROUGH_ROUTE, catch_all_routes
from heddle.translate.names import outbound_cluster, parse_cluster
from heddle.translate.rate_limits import attach, gateway_attachment, has_policies
from heddle.translate.route_actions import (
    CORS_FILTER,
    FAULT_FILTER,
    apply_headers,
    apply_rewrite,
    cors,
    direct_response,
    fault,
    mirror_policy,
    redirect,
)
from heddle.translate.traffic_policy import hash_policies

_NO_RETRIES = HTTPRetry()
_EVERY_REQUEST = HTTPMatch()  # a rule without matches
_EVERY_CONNECTION = TCPMatch()


def default_retry_policy() -> rc.RetryPolicy:
    """Istio retries twice on connection failures and 503s unless a VirtualService says so."""
    return rc.RetryPolicy(
        retry_on=istio_defaults.RETRY_ON,
        num_retries=wrappers_pb2.UInt32Value(value=istio_defaults.RETRY_ATTEMPTS),
        retriable_status_codes=istio_defaults.RETRIABLE_STATUS_CODES,
        retry_host_predicate=[rc.RetryPolicy.RetryHostPredicate(
            name="envoy.retry_host_predicates.previous_hosts",
            typed_config=_previous_hosts())],
        host_selection_retry_max_attempts=istio_defaults.RETRY_HOST_SELECTION_ATTEMPTS,
    )


def retry_policy(retries: HTTPRetry | None, hashed: bool = False) -> rc.RetryPolicy | None:
    """A VirtualService's retries: Istio's default policy when unset; when set, none unless
    `attempts` is above 0. Retries go to other hosts unless retryIgnorePreviousHosts is
    false, or the route hashes to one host and retryIgnorePreviousHosts is unset, as in
    Istio."""
    policy = default_retry_policy()
    if retries is not None:
        if (retries.attempts or 0) <= 0:
            return None
        policy.num_retries.value = retries.attempts
    retries = retries if retries is not None else _NO_RETRIES
    if retries.retryOn is not None:
        parts = [p.strip() for p in retries.retryOn.split(",") if p.strip()]
        codes = [int(p) for p in parts if p.isdigit()]
        names = [p for p in parts if not p.isdigit()]
        if codes:
            names.append("retriable-status-codes")
        policy.retry_on = ",".join(dict.fromkeys(names))
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
    if retries.perTryTimeout is not None:
        policy.per_try_timeout.CopyFrom(parse_duration(retries.perTryTimeout))
    if retries.backoff is not None:
        policy.retry_back_off.base_interval.CopyFrom(parse_duration(retries.backoff))
    ignore_previous = retries.retryIgnorePreviousHosts
    if ignore_previous is False or (hashed and ignore_previous is None):
        del policy.retry_host_predicate[:]
        policy.ClearField("host_selection_retry_max_attempts")
    if retries.retryRemoteLocalities:
        policy.retry_priority.name = "envoy.retry_priorities.previous_priorities"
        policy.retry_priority.typed_config.Pack(
            previous_priorities_config_pb2.PreviousPrioritiesConfig(update_frequency=2))
    return policy


def _previous_hosts() -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(previous_hosts_pb2.PreviousHostsPredicate())
    return packed


def _string_matcher(match: StringMatch | None) -> string_pb2.StringMatcher | None:
    if match is None:
        return None
    if match.exact is not None:
        return string_pb2.StringMatcher(exact=match.exact)
    if match.prefix is not None:
        return string_pb2.StringMatcher(prefix=match.prefix)
    if match.regex is not None:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=match.regex))
    return None


def _route_match(match: HTTPMatch) -> rc.RouteMatch:
    out = rc.RouteMatch()
    uri = match.uri
    if uri is not None and uri.exact is not None:
        out.path = uri.exact
    elif uri is not None and uri.regex is not None:
        out.safe_regex.regex = uri.regex
    else:
        out.prefix = uri.prefix if uri is not None and uri.prefix is not None else "/"
    if match.ignoreUriCase:
        out.case_sensitive.value = False
    for name, value in sorted((match.headers or {}).items()):
        header = out.headers.add(name=name.lower())
        matcher = _string_matcher(value)
        if matcher is None:
            header.present_match = True
        else:
            header.string_match.CopyFrom(matcher)
    for name, absent in sorted((match.withoutHeaders or {}).items()):
        header = out.headers.add(name=name.lower(), invert_match=True)
        matcher = _string_matcher(absent)
        if matcher is None:
            header.present_match = True
        else:
            header.string_match.CopyFrom(matcher)
            # A request without the header has no value that matches: it passes, as in
            # Istio (Envoy would otherwise fail an inverted match on a missing header).
            header.treat_missing_header_as_empty = True
    for key, part in ((":method", match.method), (":authority", match.authority),
                      (":scheme", match.scheme)):
        matcher = _string_matcher(part)
        if matcher is not None:
            out.headers.add(name=key, string_match=matcher)
    for name, query in sorted((match.queryParams or {}).items()):
        param = out.query_parameters.add(name=name)
        matcher = _string_matcher(query)
        if matcher is None:
            param.present_match = True
        else:
            param.string_match.CopyFrom(matcher)
    return out


def destination_cluster(snapshot: MeshSnapshot, namespace: str, destination: Destination,
                         port: int) -> str:
    host = resolve_host(destination.host, namespace)
    service = snapshot.registry.service(host)
    number = destination.port.number if destination.port is not None else None
    if number is None and service is not None:
        number = port if service.port(port) or len(service.ports) != 1 else service.ports[0].number
    return outbound_cluster(number or port, host, destination.subset or "")


def set_destinations(action: rc.RouteAction, snapshot: MeshSnapshot, namespace: str,
                      destinations: Sequence[RouteDestination], port: int) -> None:
    """One destination: its cluster; several: weighted clusters (any rule kind)."""
    if len(destinations) == 1:
        action.cluster = destination_cluster(snapshot, namespace,
                                              destinations[0].destination, port)
        return
    action.ClearField("cluster")
    for dest in destinations:
        action.weighted_clusters.clusters.add(
            name=destination_cluster(snapshot, namespace, dest.destination, port),
            weight=wrappers_pb2.UInt32Value(value=dest.weight or 0))


def _client(proxy: Proxy | None) -> tuple[str | None, dict[str, str] | None]:
    return (proxy.namespace, proxy.label_map) if proxy is not None else (None, None)


def _route_action(snapshot: MeshSnapshot, vs: Resource[Any], http: HTTPRoute,
                  port: int, proxy: Proxy | None = None) -> rc.RouteAction:
    action = rc.RouteAction()
    set_destinations(action, snapshot, vs.namespace, http.route or [], port)
    action.timeout.CopyFrom(
        parse_duration(http.timeout) if http.timeout is not None
        else duration_pb2.Duration(seconds=istio_defaults.ROUTE_TIMEOUT_SECONDS))
    action.hash_policy.extend(hash_policies(snapshot, action, *_client(proxy)))
    policy = retry_policy(http.retries, hashed=bool(action.hash_policy))
    if policy is not None:
        action.retry_policy.CopyFrom(policy)
    return action


def _forwarding(snapshot: MeshSnapshot, vs: Resource[Any], http: HTTPRoute,
                match: HTTPMatch, port: int, proxy: Proxy | None = None) -> rc.Route:
    route = rc.Route(route=_route_action(snapshot, vs, http, port, proxy))
    action = route.route
    for i, dest in enumerate(http.route or []):
        if dest.headers is not None and action.HasField("weighted_clusters"):
            apply_headers(action.weighted_clusters.clusters[i], dest.headers)
        elif dest.headers is not None:
            apply_headers(route, dest.headers)
    if http.rewrite is not None:
        apply_rewrite(action, http.rewrite, match)
    if http.mirror is not None:
        percentage = http.mirrorPercentage
        action.request_mirror_policies.append(mirror_policy(
            destination_cluster(snapshot, vs.namespace, http.mirror, port),
            percentage.value if percentage is not None else None))
    for mirror in http.mirrors or []:
        action.request_mirror_policies.append(mirror_policy(
            destination_cluster(snapshot, vs.namespace, mirror.destination, port),
            mirror.percentage.value if mirror.percentage is not None else None))
    if http.fault is not None and not is_empty(http.fault):
        # As in Istio the route keeps its retry policy and timeout: the fault filter acts
        # before the router, so injected aborts are never retried and injected delays are
        # not counted against the route timeout.
        route.typed_per_filter_config[FAULT_FILTER].CopyFrom(fault(http.fault))
    return route


MESH_GATEWAY = "mesh"  # the reserved name of every sidecar in `gateways`


def gateway_ref(name: str, namespace: str) -> str:
    """A `gateways` entry as `NAMESPACE/NAME`: a bare name is of the VirtualService's
    namespace; `mesh` stays itself."""
    if name == MESH_GATEWAY or "/" in name:
        return name
    return f"{namespace}/{name}"


def _applies_to(match: SourceMatch, proxy: Proxy | None, gateway: str | None = None,
                namespace: str = "") -> bool:
    """Matches on who sends (sourceLabels, sourceNamespace, gateways) decide per proxy.
    `gateway`: the Gateway (`ns/name`) the routes are for; None: the mesh's sidecars. A
    match that names no gateways takes its VirtualService's."""
    if gateway is None:
        if MESH_GATEWAY not in (match.gateways or [MESH_GATEWAY]):
            return False
    elif match.gateways and gateway not in {gateway_ref(g, namespace) for g in match.gateways}:
        return False
    if proxy is None:
        return not match.sourceLabels and not match.sourceNamespace
    labels = proxy.label_map
    if any(labels.get(k) != v for k, v in (match.sourceLabels or {}).items()):
        return False
    source_namespace = match.sourceNamespace
    return source_namespace is None or source_namespace == proxy.namespace


def _http_rules(snapshot: MeshSnapshot, vs: Resource[Any],
                ) -> list[tuple[Resource[Any], int, HTTPRoute]]:
    """(owner, index, rule) for every http rule, delegations expanded: a delegate's rules
    keep their own namespace for the hosts they name."""
    rules: list[tuple[Resource[Any], int, HTTPRoute]] = []
    for i, http in enumerate(spec_of(vs, VirtualServiceSpec).http or []):
        if not delegates(http):
            rules.append((vs, i, http))
        elif (delegate := delegate_of(snapshot, vs, http)) is not None:
            rules += [(delegate, j, rule) for j, rule in
                      enumerate(merged_rules(http, spec_of(delegate, VirtualServiceSpec)))]
    return rules


def routes_for(snapshot: MeshSnapshot, vs: Resource[Any], port: int,
               proxy: Proxy | None = None, gateway: str | None = None) -> list[rc.Route]:
    """One Envoy route per (http rule, match), in order: the first match wins. `gateway`:
    the routes are for that Gateway's server on `port` (None: for sidecars)."""
    routes: list[rc.Route] = []
    gateway_semantics = vs.metadata.annotations.get(ROUTE_SEMANTICS) == "gateway"
    origins = _rule_origins(vs)
    limited = gateway is not None and proxy is not None and has_policies(snapshot)
    for owner, i, http in _http_rules(snapshot, vs):
        matches = [m for m in http.match or [_EVERY_REQUEST]
                   if m.port in (None, port) and _applies_to(m, proxy, gateway, vs.namespace)]
        for j, match in enumerate(matches):
            if http.redirect is not None and not is_empty(http.redirect):
                route = rc.Route(redirect=redirect(http.redirect, port))
            elif http.directResponse is not None:
                route = rc.Route(direct_response=direct_response(http.directResponse))
            elif http.route:
                route = _forwarding(snapshot, owner, http, match, port, proxy)
            else:
                continue
            name = http.name or f"{owner.namespace}.{owner.name}.{i}"
            route.name = f"{name}.{j}" if len(matches) > 1 else name
            route.match.CopyFrom(_route_match(match))
            if gateway_semantics:
                _use_gateway_semantics(route)
            if http.headers is not None:
                apply_headers(route, http.headers)
            if http.corsPolicy is not None and not is_empty(http.corsPolicy):
                route.typed_per_filter_config[CORS_FILTER].CopyFrom(cors(http.corsPolicy))
            if limited and proxy is not None:
                origin = origins[i] if owner is vs and i < len(origins) else None
                attach(route, gateway_attachment(snapshot, proxy, route, origin,
                                                 server=gateway or "", rule=http.name or ""))
            routes.append(route)
    return routes


def _rule_origins(vs: Resource[Any]) -> list[tuple[str, str, str] | None]:
    """The Gateway API route (kind, namespace, name) each http rule came from."""
    found: list[tuple[str, str, str] | None] = []
    for origin in filter(None, vs.metadata.annotations.get(RULE_ORIGINS, "").split(",")):
        kind, _, rest = origin.partition("/")
        namespace, _, name = rest.partition("/")
        found.append((kind, namespace, name) if name else None)
    return found


def _use_gateway_semantics(route: rc.Route) -> None:
    """What a VirtualService made from a Gateway API route means, as Istio reads it: a
    PathPrefix matches whole path segments (`/api` is not `/apifoo`), and a backend with no
    cluster answers 500, as the Gateway API spec asks."""
    prefix = route.match.prefix
    if route.match.WhichOneof("path_specifier") == "prefix" and prefix != "/":
        route.match.path_separated_prefix = prefix.rstrip("/")
    if not route.HasField("route"):
        return
    action = route.route
    action.cluster_not_found_response_code = (
        rc.RouteAction.ClusterNotFoundResponseCode.INTERNAL_SERVER_ERROR)
    separated = route.match.path_separated_prefix
    if separated and action.prefix_rewrite == "/":
        # ReplacePrefixMatch "": drop the prefix, keeping a `/` when nothing is left.
        action.ClearField("prefix_rewrite")
        action.regex_rewrite.pattern.regex = f"^{re.escape(separated)}(/?)(.*)"
        action.regex_rewrite.substitution = "/\\2"


def _mesh_virtual_services(snapshot: MeshSnapshot, namespace: str | None,
                           ) -> tuple[dict[str, Resource[Any]], list[tuple[str, Resource[Any]]]]:
    """VirtualServices bound to the mesh: the first for each exact host, and the wildcard
    hosts in order. Those made from routes in the client's `namespace` come first (Istio's
    consumer override: a consumer route beats its Service's own routes there)."""
    exact: dict[str, Resource[Any]] = {}
    wildcards: list[tuple[str, Resource[Any]]] = []
    found = snapshot.of_kind("networking.istio.io", "VirtualService")
    for vs in sorted(found, key=lambda vs: not (vs.namespace == namespace and _from_routes(vs))):
        spec = spec_of(vs, VirtualServiceSpec)
        if "mesh" not in (spec.gateways or ["mesh"]):
            continue
        for host in (resolve_host(h, vs.namespace) for h in spec.hosts or []):
            if "*" in host:
                wildcards.append((host, vs))
            else:
                exact.setdefault(host, vs)
    return exact, wildcards


def _from_routes(vs: Resource[Any]) -> bool:
    return vs.metadata.annotations.get(ROUTE_SEMANTICS) == "gateway"


def _virtual_service_for(snapshot: MeshSnapshot, service: Service,
                         proxy: Proxy | None = None) -> Resource[Any] | None:
    """The VirtualService bound to the mesh that names the host: an exact host before a
    wildcard one, then the first by namespace and name."""
    namespace = proxy.namespace if proxy is not None else None
    exact, wildcards = snapshot.memo(("mesh_virtual_services", namespace),
                                     lambda: _mesh_virtual_services(snapshot, namespace))
    found = exact.get(service.hostname)
    if found is not None:
        return found
    return next((vs for host, vs in wildcards if fnmatch.fnmatchcase(service.hostname, host)),
                None)


def _domains(service: Service, port: int, with_bare_names: bool,
             proxy: Proxy | None = None) -> list[str]:
    """The names an application may use for the service: its FQDN, and for Kubernetes-style
    hosts `name.ns` and `name.ns.svc`; the bare `name` only from the service's own namespace
    (as DNS search paths resolve it there), so two namespaces' `web` never collide."""
    names = [service.hostname]
    suffix = f".{service.namespace}.svc.cluster.local"
    if service.hostname.endswith(suffix):
        short = service.hostname[: -len(suffix)]
        if proxy is None or proxy.namespace == service.namespace:
            names.append(short)
        names += [f"{short}.{service.namespace}", f"{short}.{service.namespace}.svc"]
    bare = names if with_bare_names else []
    return [*bare, *(f"{name}:{port}" for name in names)]


def _http_routes(snapshot: MeshSnapshot, service: Service, port: int,
                 proxy: Proxy | None = None) -> list[rc.Route]:
    vs = _virtual_service_for(snapshot, service, proxy)
    routes = routes_for(snapshot, vs, port, proxy) if vs else []
    return routes or [rc.Route(
        name="default",
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(cluster=outbound_cluster(port, service.hostname),
                             timeout=duration_pb2.Duration(
                                 seconds=istio_defaults.ROUTE_TIMEOUT_SECONDS),
                             hash_policy=(hashed := hash_policies(snapshot, outbound_cluster(
                                 port, service.hostname), *_client(proxy))),
                             retry_policy=retry_policy(None, hashed=bool(hashed))),
    )]


def _stream_rules(vs: Resource[Any], service: Service, port: ServicePort,
                  proxy: Proxy | None) -> list[StreamRoute]:
    """The VirtualService's tls rules (TLS ports; SNI is the host the tunnel names) or tcp
    rules that apply to this port and proxy: the first that matches is used."""
    spec = spec_of(vs, VirtualServiceSpec)
    found: list[StreamRoute] = []
    if port.protocol in TLS_PROTOCOLS:
        for tls in spec.tls or []:
            if any(m.port in (None, port.number) and _applies_to(m, proxy)
                   and any(fnmatch.fnmatchcase(service.hostname, resolve_host(h, vs.namespace))
                           for h in m.sniHosts)
                   for m in tls.match):
                found.append(tls)
    for tcp in spec.tcp or []:
        if any(m.port in (None, port.number) and _applies_to(m, proxy)
               for m in tcp.match or [_EVERY_CONNECTION]):
            found.append(tcp)
    return found


def _connect_routes(snapshot: MeshSnapshot, service: Service, port: ServicePort,
                    proxy: Proxy | None) -> list[rc.Route]:
    """A CONNECT tunnel to a TCP or TLS service port: Envoy unwraps it into a plain stream,
    sent where the VirtualService's tls or tcp rule says (weights included)."""
    action = rc.RouteAction(
        cluster=outbound_cluster(port.number, service.hostname),
        upgrade_configs=[rc.RouteAction.UpgradeConfig(
            upgrade_type="CONNECT",
            connect_config=rc.RouteAction.UpgradeConfig.ConnectConfig())],
    )
    vs = _virtual_service_for(snapshot, service, proxy)
    rules = _stream_rules(vs, service, port, proxy) if vs else []
    if vs and rules and rules[0].route:
        set_destinations(action, snapshot, vs.namespace, rules[0].route, port.number)
    return [rc.Route(name="connect", match=rc.RouteMatch(connect_matcher={}), route=action)]


def outbound_route_config(snapshot: MeshSnapshot, port: int, proxy: Proxy | None = None,
                          ) -> route_pb2.RouteConfiguration:
    """Routes for one outbound HTTP port, named by the port as Istio names them."""
    config = route_pb2.RouteConfiguration(
        name=str(port), validate_clusters=wrappers_pb2.BoolValue(value=False))
    for service in snapshot.registry.services:
        service_port = service.port(port)
        if service_port is None or not speaks_http(service_port.protocol):
            continue
        config.virtual_hosts.add(name=f"{service.hostname}:{port}",
                                 domains=_domains(service, port, True, proxy),
                                 routes=_http_routes(snapshot, service, port, proxy))
    return config


def proxy_route_config(snapshot: MeshSnapshot, name: str, proxy: Proxy | None = None,
                       mode: str = ALLOW_ANY) -> route_pb2.RouteConfiguration:
    """Routes for the sidecar's HTTP proxy listener: every service port, told apart by the
    `host:port` the application asked for (the bare name too on port 80); CONNECT tunnels
    for TCP (and for HTTP ports, whose clients may tunnel too). A port of protocol AUTO gets
    both, as Istio detects HTTP there: what the application sends through its proxy says
    which it is (a request is HTTP, a CONNECT tunnel a stream).
    Any other host goes where the outbound traffic policy `mode` says."""
    config = route_pb2.RouteConfiguration(
        name=name, validate_clusters=wrappers_pb2.BoolValue(value=False))
    for service in snapshot.registry.services:
        for port in service.ports:
            http = _http_routes(snapshot, service, port.number, proxy) \
                if speaks_http(port.protocol) else []
            tell_auto_ports_it_is_http(snapshot, http, proxy)
            config.virtual_hosts.add(
                name=f"{service.hostname}:{port.number}",
                domains=_domains(service, port.number, port.number == 80, proxy),
                # A CONNECT tunnel to an HTTP port carries what the client speaks inside it
                # (gRPC clients use CONNECT when told of a proxy): the mesh sees a stream.
                routes=[*http, *_connect_routes(snapshot, service, port, proxy)],
            )
    config.virtual_hosts.add(name=BLACKHOLE_ROUTE if mode == REGISTRY_ONLY
                             else PASSTHROUGH_ROUTE, domains=["*"], routes=catch_all_routes(mode))
    return config


def _is_auto_port(snapshot: MeshSnapshot, cluster: str) -> bool:
    if not cluster.startswith("outbound|"):
        return False
    _, number, _, host = parse_cluster(cluster)
    service = snapshot.registry.service(host)
    port = service.port(number) if service is not None else None
    return port is not None and port.protocol == AUTO


def tell_auto_ports_it_is_http(snapshot: MeshSnapshot, routes: list[rc.Route],
                                proxy: Proxy | None) -> None:
    """HTTP requests to an AUTO port (whichever host's route sends them there) offer
    Istio's HTTP ALPN, so that the server's sidecar serves them as HTTP inside mTLS (see
    alpn.py); not where a destination originates TLS of its own, whose server expects the
    ALPN it configures. A declared HTTP port's server takes any ALPN as HTTP."""
    for route in routes:
        if not route.HasField("route"):
            continue  # redirects and direct responses open no upstream connection
        action = route.route
        clusters = [action.cluster] if action.cluster else \
            [c.name for c in action.weighted_clusters.clusters]
        if any(_is_auto_port(snapshot, c) for c in clusters) and \
                not any(originates_tls(snapshot, c, proxy) for c in clusters):
            enable_alpn(route)


def outbound_http_ports(snapshot: MeshSnapshot) -> list[int]:
    return sorted({p.number for s in snapshot.registry.services for p in s.ports
                   if speaks_http(p.protocol)})
