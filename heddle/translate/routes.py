"""Outbound HTTP routes (RDS): one RouteConfiguration per port, a virtual host per service.

VirtualService http rules become Envoy routes in order (first match wins); a service no
VirtualService routes gets Istio's default route with its default retry policy.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import (
    previous_priorities_config_pb2,
)
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from heddle.api.resource import Resource
from heddle.model.proxy import Proxy
from heddle.model.scope import ALLOW_ANY, REGISTRY_ONLY, delegate_of
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Service, ServicePort, resolve_host
from heddle.translate.delegation import merged_rules
from heddle.translate.durations import parse_duration
from heddle.translate.egress import BLACKHOLE_ROUTE, PASSTHROUGH_ROUTE, catch_all_routes
from heddle.translate.names import outbound_cluster
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

HTTP_PROTOCOLS = {"HTTP", "HTTP2", "GRPC", "GRPC-WEB"}
TLS_PROTOCOLS = {"TLS", "HTTPS"}


def default_retry_policy() -> rc.RetryPolicy:
    """Istio retries twice on connection failures and 503s unless a VirtualService says so."""
    return rc.RetryPolicy(
        retry_on="connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
        num_retries=wrappers_pb2.UInt32Value(value=2),
        retriable_status_codes=[503],
        retry_host_predicate=[rc.RetryPolicy.RetryHostPredicate(
            name="envoy.retry_host_predicates.previous_hosts",
            typed_config=_previous_hosts())],
        host_selection_retry_max_attempts=5,
    )


def retry_policy(retries: dict[str, Any] | None, hashed: bool = False,
                 ) -> rc.RetryPolicy | None:
    """A VirtualService's retries: Istio's default policy when unset; when set, none unless
    `attempts` is above 0. Retries go to other hosts unless retryIgnorePreviousHosts is
    false, or the route hashes to one host and retryIgnorePreviousHosts is unset, as in
    Istio."""
    policy = default_retry_policy()
    if retries is not None:
        if int(retries.get("attempts") or 0) <= 0:
            return None
        policy.num_retries.value = int(retries["attempts"])
    retries = retries if retries is not None else {}
    if "retryOn" in retries:
        parts = [p.strip() for p in str(retries["retryOn"]).split(",") if p.strip()]
        codes = [int(p) for p in parts if p.isdigit()]
        names = [p for p in parts if not p.isdigit()]
        if codes:
            names.append("retriable-status-codes")
        policy.retry_on = ",".join(dict.fromkeys(names))
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
    if "perTryTimeout" in retries:
        policy.per_try_timeout.CopyFrom(parse_duration(str(retries["perTryTimeout"])))
    if "backoff" in retries:
        policy.retry_back_off.base_interval.CopyFrom(parse_duration(str(retries["backoff"])))
    ignore_previous = retries.get("retryIgnorePreviousHosts")
    if ignore_previous is False or (hashed and ignore_previous is None):
        del policy.retry_host_predicate[:]
        policy.ClearField("host_selection_retry_max_attempts")
    if retries.get("retryRemoteLocalities"):
        policy.retry_priority.name = "envoy.retry_priorities.previous_priorities"
        policy.retry_priority.typed_config.Pack(
            previous_priorities_config_pb2.PreviousPrioritiesConfig(update_frequency=2))
    return policy


def _previous_hosts() -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(previous_hosts_pb2.PreviousHostsPredicate())
    return packed


def _string_matcher(match: dict[str, Any], ignore_case: bool = False,
                    ) -> string_pb2.StringMatcher | None:
    if "exact" in match:
        return string_pb2.StringMatcher(exact=match["exact"], ignore_case=ignore_case)
    if "prefix" in match:
        return string_pb2.StringMatcher(prefix=match["prefix"], ignore_case=ignore_case)
    if "regex" in match:
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=match["regex"]))
    return None


def _route_match(match: dict[str, Any]) -> rc.RouteMatch:
    out = rc.RouteMatch()
    uri = match.get("uri") or {}
    ignore_case = bool(match.get("ignoreUriCase"))
    if "exact" in uri:
        out.path = uri["exact"]
    elif "regex" in uri:
        out.safe_regex.regex = uri["regex"]
    else:
        out.prefix = uri.get("prefix", "/")
    if ignore_case:
        out.case_sensitive.value = False
    for name, value in sorted((match.get("headers") or {}).items()):
        header = out.headers.add(name=name.lower())
        matcher = _string_matcher(value)
        if matcher is None:
            header.present_match = True
        else:
            header.string_match.CopyFrom(matcher)
    for name, value in sorted((match.get("withoutHeaders") or {}).items()):
        header = out.headers.add(name=name.lower(), invert_match=True)
        matcher = _string_matcher(value)
        if matcher is None:
            header.present_match = True
        else:
            header.string_match.CopyFrom(matcher)
            # A request without the header has no value that matches: it passes, as in
            # Istio (Envoy would otherwise fail an inverted match on a missing header).
            header.treat_missing_header_as_empty = True
    for name, key in (("method", ":method"), ("authority", ":authority"),
                      ("scheme", ":scheme")):
        matcher = _string_matcher(match.get(name) or {})
        if matcher is not None:
            out.headers.add(name=key, string_match=matcher)
    for name, value in sorted((match.get("queryParams") or {}).items()):
        param = out.query_parameters.add(name=name)
        matcher = _string_matcher(value)
        if matcher is None:
            param.present_match = True
        else:
            param.string_match.CopyFrom(matcher)
    return out


def _destination_cluster(snapshot: MeshSnapshot, namespace: str, destination: dict[str, Any],
                         port: int) -> str:
    host = resolve_host(str(destination.get("host", "")), namespace)
    service = snapshot.registry.service(host)
    number = (destination.get("port") or {}).get("number")
    if number is None and service is not None:
        number = port if service.port(port) or len(service.ports) != 1 else service.ports[0].number
    return outbound_cluster(int(number or port), host, str(destination.get("subset", "")))


def _set_destinations(action: rc.RouteAction, snapshot: MeshSnapshot, namespace: str,
                      destinations: list[dict[str, Any]], port: int) -> None:
    """One destination: its cluster; several: weighted clusters (any rule kind)."""
    if len(destinations) == 1:
        action.cluster = _destination_cluster(snapshot, namespace,
                                              destinations[0]["destination"], port)
        return
    action.ClearField("cluster")
    for dest in destinations:
        action.weighted_clusters.clusters.add(
            name=_destination_cluster(snapshot, namespace, dest["destination"], port),
            weight=wrappers_pb2.UInt32Value(value=int(dest.get("weight", 0))))


def _client(proxy: Proxy | None) -> tuple[str | None, dict[str, str] | None]:
    return (proxy.namespace, proxy.label_map) if proxy is not None else (None, None)


def _route_action(snapshot: MeshSnapshot, vs: Resource[Any], http: dict[str, Any],
                  port: int, proxy: Proxy | None = None) -> rc.RouteAction:
    action = rc.RouteAction()
    _set_destinations(action, snapshot, vs.namespace, http.get("route") or [], port)
    action.timeout.CopyFrom(parse_duration(http["timeout"]) if "timeout" in http
                            else duration_pb2.Duration())
    action.hash_policy.extend(hash_policies(snapshot, action, *_client(proxy)))
    policy = retry_policy(http.get("retries"), hashed=bool(action.hash_policy))
    if policy is not None:
        action.retry_policy.CopyFrom(policy)
    return action


def _forwarding(snapshot: MeshSnapshot, vs: Resource[Any], http: dict[str, Any],
                match: dict[str, Any], port: int, proxy: Proxy | None = None) -> rc.Route:
    route = rc.Route(route=_route_action(snapshot, vs, http, port, proxy))
    action = route.route
    for i, dest in enumerate(http.get("route") or []):
        if dest.get("headers") and action.HasField("weighted_clusters"):
            apply_headers(action.weighted_clusters.clusters[i], dest["headers"])
        elif dest.get("headers"):
            apply_headers(route, dest["headers"])
    apply_rewrite(action, http.get("rewrite") or {}, match)
    if http.get("mirror"):
        action.request_mirror_policies.append(mirror_policy(
            _destination_cluster(snapshot, vs.namespace, http["mirror"], port),
            (http.get("mirrorPercentage") or {}).get("value")))
    for mirror in http.get("mirrors") or []:
        action.request_mirror_policies.append(mirror_policy(
            _destination_cluster(snapshot, vs.namespace, mirror["destination"], port),
            (mirror.get("percentage") or {}).get("value")))
    if http.get("fault"):
        # As in Istio the route keeps its retry policy and timeout: the fault filter acts
        # before the router, so injected aborts are never retried and injected delays are
        # not counted against the route timeout.
        route.typed_per_filter_config[FAULT_FILTER].CopyFrom(fault(http["fault"]))
    return route


def _applies_to(match: dict[str, Any], proxy: Proxy | None) -> bool:
    """Matches on who sends (sourceLabels, sourceNamespace, gateways) decide per proxy."""
    if "mesh" not in (match.get("gateways") or ["mesh"]):
        return False
    if proxy is None:
        return not match.get("sourceLabels") and not match.get("sourceNamespace")
    labels = proxy.label_map
    if any(labels.get(k) != v for k, v in (match.get("sourceLabels") or {}).items()):
        return False
    return bool(match.get("sourceNamespace", proxy.namespace) == proxy.namespace)


def _http_rules(snapshot: MeshSnapshot, vs: Resource[Any],
                ) -> list[tuple[Resource[Any], int, dict[str, Any]]]:
    """(owner, index, rule) for every http rule, delegations expanded: a delegate's rules
    keep their own namespace for the hosts they name."""
    rules: list[tuple[Resource[Any], int, dict[str, Any]]] = []
    spec: dict[str, Any] = dict(vs.body.get("spec") or {})
    for i, http in enumerate(spec.get("http") or []):
        if not http.get("delegate"):
            rules.append((vs, i, http))
        elif (delegate := delegate_of(snapshot, vs, http)) is not None:
            rules += [(delegate, j, rule) for j, rule in
                      enumerate(merged_rules(http, dict(delegate.body.get("spec") or {})))]
    return rules


def _routes_for(snapshot: MeshSnapshot, vs: Resource[Any], port: int,
                proxy: Proxy | None = None) -> list[rc.Route]:
    """One Envoy route per (http rule, match), in order: the first match wins."""
    routes: list[rc.Route] = []
    for owner, i, http in _http_rules(snapshot, vs):
        matches = [m for m in http.get("match") or [{}]
                   if m.get("port") in (None, port) and _applies_to(m, proxy)]
        for j, match in enumerate(matches):
            if http.get("redirect"):
                route = rc.Route(redirect=redirect(http["redirect"]))
            elif http.get("directResponse"):
                route = rc.Route(direct_response=direct_response(http["directResponse"]))
            elif http.get("route"):
                route = _forwarding(snapshot, owner, http, match, port, proxy)
            else:
                continue
            name = http.get("name") or f"{owner.namespace}.{owner.name}.{i}"
            route.name = f"{name}.{j}" if len(matches) > 1 else name
            route.match.CopyFrom(_route_match(match))
            apply_headers(route, http.get("headers") or {})
            if http.get("corsPolicy"):
                route.typed_per_filter_config[CORS_FILTER].CopyFrom(cors(http["corsPolicy"]))
            routes.append(route)
    return routes


def _mesh_virtual_services(snapshot: MeshSnapshot,
                           ) -> tuple[dict[str, Resource[Any]], list[tuple[str, Resource[Any]]]]:
    """VirtualServices bound to the mesh: the first for each exact host, and the wildcard
    hosts in order."""
    exact: dict[str, Resource[Any]] = {}
    wildcards: list[tuple[str, Resource[Any]]] = []
    for vs in snapshot.of_kind("networking.istio.io", "VirtualService"):
        spec: dict[str, Any] = dict(vs.body.get("spec") or {})
        if "mesh" not in (spec.get("gateways") or ["mesh"]):
            continue
        for host in (resolve_host(str(h), vs.namespace) for h in spec.get("hosts") or []):
            if "*" in host:
                wildcards.append((host, vs))
            else:
                exact.setdefault(host, vs)
    return exact, wildcards


def _virtual_service_for(snapshot: MeshSnapshot, service: Service) -> Resource[Any] | None:
    """The VirtualService bound to the mesh that names the host: an exact host before a
    wildcard one, then the first by namespace and name."""
    exact, wildcards = snapshot.memo("mesh_virtual_services",
                                     lambda: _mesh_virtual_services(snapshot))
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
    vs = _virtual_service_for(snapshot, service)
    routes = _routes_for(snapshot, vs, port, proxy) if vs else []
    return routes or [rc.Route(
        name="default",
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(cluster=outbound_cluster(port, service.hostname),
                             timeout=duration_pb2.Duration(),
                             hash_policy=(hashed := hash_policies(snapshot, outbound_cluster(
                                 port, service.hostname), *_client(proxy))),
                             retry_policy=retry_policy(None, hashed=bool(hashed))),
    )]


def _stream_rules(vs: Resource[Any], service: Service, port: ServicePort,
                  proxy: Proxy | None) -> list[dict[str, Any]]:
    """The VirtualService's tls rules (TLS ports; SNI is the host the tunnel names) or tcp
    rules that apply to this port and proxy: the first that matches is used."""
    spec: dict[str, Any] = dict(vs.body.get("spec") or {})
    found = []
    if port.protocol in TLS_PROTOCOLS:
        for rule in spec.get("tls") or []:
            if any(m.get("port") in (None, port.number) and _applies_to(m, proxy)
                   and any(fnmatch.fnmatchcase(service.hostname, resolve_host(h, vs.namespace))
                           for h in m.get("sniHosts") or [])
                   for m in rule.get("match") or []):
                found.append(rule)
    for rule in spec.get("tcp") or []:
        if any(m.get("port") in (None, port.number) and _applies_to(m, proxy)
               for m in rule.get("match") or [{}]):
            found.append(rule)
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
    vs = _virtual_service_for(snapshot, service)
    rules = _stream_rules(vs, service, port, proxy) if vs else []
    if vs and rules and rules[0].get("route"):
        _set_destinations(action, snapshot, vs.namespace, rules[0]["route"], port.number)
    return [rc.Route(name="connect", match=rc.RouteMatch(connect_matcher={}), route=action)]


def outbound_route_config(snapshot: MeshSnapshot, port: int, proxy: Proxy | None = None,
                          ) -> route_pb2.RouteConfiguration:
    """Routes for one outbound HTTP port, named by the port as Istio names them."""
    config = route_pb2.RouteConfiguration(
        name=str(port), validate_clusters=wrappers_pb2.BoolValue(value=False))
    for service in snapshot.registry.services:
        service_port = service.port(port)
        if service_port is None or service_port.protocol not in HTTP_PROTOCOLS:
            continue
        config.virtual_hosts.add(name=f"{service.hostname}:{port}",
                                 domains=_domains(service, port, True, proxy),
                                 routes=_http_routes(snapshot, service, port, proxy))
    return config


def proxy_route_config(snapshot: MeshSnapshot, name: str, proxy: Proxy | None = None,
                       mode: str = ALLOW_ANY) -> route_pb2.RouteConfiguration:
    """Routes for the sidecar's HTTP proxy listener: every service port, told apart by the
    `host:port` the application asked for (the bare name too on port 80); CONNECT tunnels
    for TCP (and for HTTP ports, whose clients may tunnel too).
    Any other host goes where the outbound traffic policy `mode` says."""
    config = route_pb2.RouteConfiguration(
        name=name, validate_clusters=wrappers_pb2.BoolValue(value=False))
    for service in snapshot.registry.services:
        for port in service.ports:
            http = port.protocol in HTTP_PROTOCOLS
            config.virtual_hosts.add(
                name=f"{service.hostname}:{port.number}",
                domains=_domains(service, port.number, port.number == 80, proxy),
                # A CONNECT tunnel to an HTTP port carries what the client speaks inside it
                # (gRPC clients use CONNECT when told of a proxy): the mesh sees a stream.
                routes=([*_http_routes(snapshot, service, port.number, proxy),
                         *_connect_routes(snapshot, service, port, proxy)] if http
                        else _connect_routes(snapshot, service, port, proxy)),
            )
    config.virtual_hosts.add(name=BLACKHOLE_ROUTE if mode == REGISTRY_ONLY
                             else PASSTHROUGH_ROUTE, domains=["*"], routes=catch_all_routes(mode))
    return config


def outbound_http_ports(snapshot: MeshSnapshot) -> list[int]:
    return sorted({p.number for s in snapshot.registry.services for p in s.ports
                   if p.protocol in HTTP_PROTOCOLS})
