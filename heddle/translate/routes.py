"""Outbound HTTP routes (RDS): one RouteConfiguration per port, a virtual host per service.

VirtualService http rules become Envoy routes in order (first match wins); a service no
VirtualService routes gets Istio's default route with its default retry policy.
"""

from __future__ import annotations

from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from google.protobuf import any_pb2, duration_pb2, wrappers_pb2

from heddle.api.resource import Resource
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Service, resolve_host
from heddle.translate.durations import parse_duration
from heddle.translate.names import outbound_cluster
from heddle.translate.route_actions import (
    FAULT_FILTER,
    apply_headers,
    apply_rewrite,
    direct_response,
    fault,
    mirror_policy,
    redirect,
)
from heddle.translate.traffic_policy import hash_policies

HTTP_PROTOCOLS = {"HTTP", "HTTP2", "GRPC", "GRPC-WEB"}


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


def _route_action(snapshot: MeshSnapshot, vs: Resource[Any], http: dict[str, Any],
                  port: int) -> rc.RouteAction:
    action = rc.RouteAction()
    destinations = http.get("route") or []
    if len(destinations) == 1:
        action.cluster = _destination_cluster(snapshot, vs.namespace,
                                              destinations[0]["destination"], port)
    else:
        for dest in destinations:
            action.weighted_clusters.clusters.add(
                name=_destination_cluster(snapshot, vs.namespace, dest["destination"], port),
                weight=wrappers_pb2.UInt32Value(value=int(dest.get("weight", 0))),
            )
    action.timeout.CopyFrom(parse_duration(http["timeout"]) if "timeout" in http
                            else duration_pb2.Duration())
    retries = http.get("retries")
    if retries is None:
        action.retry_policy.CopyFrom(default_retry_policy())
    elif int(retries.get("attempts", 0)) > 0:
        policy = default_retry_policy()
        policy.num_retries.value = int(retries["attempts"])
        if "retryOn" in retries:
            codes = [int(p) for p in retries["retryOn"].split(",") if p.strip().isdigit()]
            names = [p.strip() for p in retries["retryOn"].split(",")
                     if p.strip() and not p.strip().isdigit()]
            if codes:
                names.append("retriable-status-codes")
            policy.retry_on = ",".join(dict.fromkeys(names))
            del policy.retriable_status_codes[:]
            policy.retriable_status_codes.extend(codes)
        if "perTryTimeout" in retries:
            policy.per_try_timeout.CopyFrom(parse_duration(retries["perTryTimeout"]))
        action.retry_policy.CopyFrom(policy)
    action.hash_policy.extend(hash_policies(snapshot, action))
    return action


def _forwarding(snapshot: MeshSnapshot, vs: Resource[Any], http: dict[str, Any],
                match: dict[str, Any], port: int) -> rc.Route:
    route = rc.Route(route=_route_action(snapshot, vs, http, port))
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
        route.typed_per_filter_config[FAULT_FILTER].CopyFrom(fault(http["fault"]))
        action.ClearField("retry_policy")  # no retries on fault-injected routes, as Istio
    return route


def _routes_for(snapshot: MeshSnapshot, vs: Resource[Any], port: int) -> list[rc.Route]:
    """One Envoy route per (http rule, match), in order: the first match wins."""
    routes: list[rc.Route] = []
    spec: dict[str, Any] = dict(vs.body.get("spec") or {})
    for i, http in enumerate(spec.get("http") or []):
        if http.get("delegate"):  # delegation: see issue 5
            continue
        matches = [m for m in http.get("match") or [{}] if m.get("port") in (None, port)]
        for j, match in enumerate(matches):
            if http.get("redirect"):
                route = rc.Route(redirect=redirect(http["redirect"]))
            elif http.get("directResponse"):
                route = rc.Route(direct_response=direct_response(http["directResponse"]))
            elif http.get("route"):
                route = _forwarding(snapshot, vs, http, match, port)
            else:
                continue
            name = http.get("name") or f"{vs.namespace}.{vs.name}.{i}"
            route.name = f"{name}.{j}" if len(matches) > 1 else name
            route.match.CopyFrom(_route_match(match))
            apply_headers(route, http.get("headers") or {})
            routes.append(route)
    return routes


def _virtual_service_for(snapshot: MeshSnapshot, service: Service) -> Resource[Any] | None:
    """The first VirtualService (oldest name order) bound to the mesh that names the host."""
    for vs in snapshot.of_kind("networking.istio.io", "VirtualService"):
        spec: dict[str, Any] = dict(vs.body.get("spec") or {})
        gateways = spec.get("gateways") or ["mesh"]
        if "mesh" not in gateways:
            continue
        hosts = {resolve_host(str(h), vs.namespace) for h in spec.get("hosts") or []}
        if service.hostname in hosts:
            return vs
    return None


def _domains(service: Service, port: int, with_bare_names: bool) -> list[str]:
    names = [service.hostname]
    suffix = f".{service.namespace}.svc.cluster.local"
    if service.hostname.endswith(suffix):
        short = service.hostname[: -len(suffix)]
        names += [short, f"{short}.{service.namespace}", f"{short}.{service.namespace}.svc"]
    bare = names if with_bare_names else []
    return [*bare, *(f"{name}:{port}" for name in names)]


def _http_routes(snapshot: MeshSnapshot, service: Service, port: int) -> list[rc.Route]:
    vs = _virtual_service_for(snapshot, service)
    routes = _routes_for(snapshot, vs, port) if vs else []
    return routes or [rc.Route(
        name="default",
        match=rc.RouteMatch(prefix="/"),
        route=rc.RouteAction(cluster=outbound_cluster(port, service.hostname),
                             timeout=duration_pb2.Duration(),
                             retry_policy=default_retry_policy(),
                             hash_policy=hash_policies(snapshot, outbound_cluster(
                                 port, service.hostname))),
    )]


def _connect_routes(service: Service, port: int) -> list[rc.Route]:
    """A CONNECT tunnel to a TCP service port: Envoy unwraps it into a plain TCP stream."""
    action = rc.RouteAction(
        cluster=outbound_cluster(port, service.hostname),
        upgrade_configs=[rc.RouteAction.UpgradeConfig(
            upgrade_type="CONNECT",
            connect_config=rc.RouteAction.UpgradeConfig.ConnectConfig())],
    )
    return [rc.Route(name="connect", match=rc.RouteMatch(connect_matcher={}), route=action)]


def outbound_route_config(snapshot: MeshSnapshot, port: int) -> route_pb2.RouteConfiguration:
    """Routes for one outbound HTTP port, named by the port as Istio names them."""
    config = route_pb2.RouteConfiguration(
        name=str(port), validate_clusters=wrappers_pb2.BoolValue(value=False))
    for service in snapshot.registry.services:
        service_port = service.port(port)
        if service_port is None or service_port.protocol not in HTTP_PROTOCOLS:
            continue
        config.virtual_hosts.add(name=f"{service.hostname}:{port}",
                                 domains=_domains(service, port, with_bare_names=True),
                                 routes=_http_routes(snapshot, service, port))
    return config


def proxy_route_config(snapshot: MeshSnapshot, name: str) -> route_pb2.RouteConfiguration:
    """Routes for the sidecar's HTTP proxy listener: every service port, told apart by the
    `host:port` the application asked for (the bare name too on port 80); CONNECT for TCP."""
    config = route_pb2.RouteConfiguration(
        name=name, validate_clusters=wrappers_pb2.BoolValue(value=False))
    for service in snapshot.registry.services:
        for port in service.ports:
            http = port.protocol in HTTP_PROTOCOLS
            config.virtual_hosts.add(
                name=f"{service.hostname}:{port.number}",
                domains=_domains(service, port.number, with_bare_names=port.number == 80),
                routes=(_http_routes(snapshot, service, port.number) if http
                        else _connect_routes(service, port.number)),
            )
    return config


def outbound_http_ports(snapshot: MeshSnapshot) -> list[int]:
    return sorted({p.number for s in snapshot.registry.services for p in s.ports
                   if p.protocol in HTTP_PROTOCOLS})
