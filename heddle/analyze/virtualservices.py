"""VirtualService analyzers: the hosts, subsets and gateways its routes name (IST0101,
IST0112, IST0132, IST0165), mesh-gateway host conflicts (IST0109), and JWT claim routes with
no RequestAuthentication behind them (IST0149)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import (
    GATEWAY_API,
    ISTIO,
    SECURITY,
    AnalysisInput,
    selects,
    spec,
)
from heddle.analyze.hosts import (
    EXPORT_ALL,
    EXPORT_LOCAL,
    host_matches,
    hosts_for_namespace,
    service_name,
    to_fqdn,
)
from heddle.analyze.messages import (
    CONFLICTING_MESH_GATEWAY_VS_HOSTS,
    INGRESS_ROUTE_RULES_NOT_AFFECTED,
    JWT_CLAIM_ROUTING_WITHOUT_REQUEST_AUTHN,
    REFERENCED_INTERNAL_GATEWAY,
    REFERENCED_RESOURCE_NOT_FOUND,
    VS_DESTINATION_PORT_SELECTOR_REQUIRED,
    VS_HOST_NOT_FOUND_IN_GATEWAY,
    Message,
)
from heddle.api.resource import Resource
from heddle.api.yaml_documents import PathKey

MESH = "mesh"
VS = (ISTIO, "VirtualService")


@dataclass(frozen=True)
class Destination:
    section: str  # tcp, tls, http, http.mirror, http.mirrors
    rule: int
    index: int
    body: Mapping[str, Any]

    @property
    def path(self) -> PathKey:
        if self.section == "http.mirror":
            return ("spec", "http", self.rule, "mirror")
        if self.section == "http.mirrors":
            return ("spec", "http", self.rule, "mirrors", self.index, "destination")
        return ("spec", self.section, self.rule, "route", self.index, "destination")

    @property
    def host(self) -> str:
        return str(self.body.get("host") or "")

    @property
    def subset(self) -> str:
        return str(self.body.get("subset") or "")

    @property
    def is_mirror(self) -> bool:
        return self.section.startswith("http.mirror")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def destinations(vs: Mapping[str, Any]) -> Iterator[Destination]:
    """Every destination of the routes (tcp, tls, then http), then the HTTP mirrors."""
    for section in ("tcp", "tls", "http"):
        for i, rule in enumerate(vs.get(section) or []):
            for j, route in enumerate(_dict(rule).get("route") or []):
                yield Destination(section, i, j, _dict(_dict(route).get("destination")))
    for i, rule in enumerate(vs.get("http") or []):
        rule = _dict(rule)
        if rule.get("mirror"):
            yield Destination("http.mirror", i, 0, _dict(rule["mirror"]))
        for j, mirror in enumerate(rule.get("mirrors") or []):
            yield Destination("http.mirrors", i, j, _dict(_dict(mirror).get("destination")))


def _subsets(world: AnalysisInput) -> set[tuple[str, str, str]]:
    found = set()
    for dr in world.of_kind(ISTIO, "DestinationRule"):
        namespace, name = service_name(dr.namespace, str(spec(dr).get("host") or ""))
        for subset in spec(dr).get("subsets") or []:
            found.add((namespace, name, str(_dict(subset).get("name") or "")))
    return found


def _check_subsets(world: AnalysisInput) -> Iterator[Message]:
    defined = _subsets(world)
    for vs in world.of_kind(*VS):
        for d in destinations(spec(vs)):
            if not d.subset:
                continue
            namespace, name = service_name(vs.namespace, d.host)
            if (namespace, name, d.subset) in defined:
                continue
            what = "mirror+subset" if d.is_mirror else "host+subset"
            yield report(
                REFERENCED_RESOURCE_NOT_FOUND, vs,
                f"referenced {what} in destinationrule not found: "
                f"\"{d.host}+{d.subset}\"",
                f"define subset {d.subset!r} in a DestinationRule for host {d.host!r}, or "
                f"name one of the subsets defined there", d.path)


def _check_hosts(world: AnalysisInput) -> Iterator[Message]:
    yield from _check_destination_hosts(world)
    yield from _check_gateway_routes_to_subsets(world)


def _check_destination_hosts(world: AnalysisInput) -> Iterator[Message]:
    hosts = world.service_hosts()
    for vs in world.of_kind(*VS):
        body = spec(vs)
        export_to = [str(e) for e in body.get("exportTo") or []]
        for d in destinations(body):
            entry = hosts.find(vs.namespace, export_to, d.host)
            if entry is None:
                what = "mirror host" if d.is_mirror else "host"
                yield report(
                    REFERENCED_RESOURCE_NOT_FOUND, vs,
                    f"referenced {what} not found: \"{d.host}\"",
                    "declare the host with a Service or ServiceEntry visible to namespace "
                    f"{vs.namespace!r}, or correct the host", d.path)
                continue
            port = _dict(d.body.get("port")).get("number")
            numbers = [number for number, _, _ in entry.ports]
            if port is None:
                if len(numbers) > 1:
                    yield report(
                        VS_DESTINATION_PORT_SELECTOR_REQUIRED, vs,
                        f"this VirtualService routes to a service with more than "
                        f"one port, but does not specify which to use: \"{d.host}\" has "
                        f"ports {numbers}",
                        "set destination.port.number to one of them", d.path)
            elif int(port) not in numbers:
                yield report(
                    REFERENCED_RESOURCE_NOT_FOUND, vs,
                    f"referenced host:port not found: \"{d.host}:{port}\"",
                    f"use one of the ports {d.host!r} declares: {numbers}", d.path)


def _subset_routes(world: AnalysisInput) -> list[tuple[Resource[Any], str]]:
    """(VirtualService, host) for each HTTP route to a subset of one of its own hosts."""
    found = []
    for vs in world.of_kind(*VS):
        body = spec(vs)
        hosts = [str(h) for h in body.get("hosts") or []]
        for rule in body.get("http") or []:
            for route in _dict(rule).get("route") or []:
                d = _dict(_dict(route).get("destination"))
                if d.get("subset") and str(d.get("host") or "") in hosts:
                    found.append((vs, str(d["host"])))
    return found


def _check_gateway_routes_to_subsets(world: AnalysisInput) -> Iterator[Message]:
    """A gateway's route to a whole service ignores the subset routing another
    VirtualService gives that service: it applies to sidecars, not to gateways."""
    subset_routes = _subset_routes(world)
    for vs in world.of_kind(*VS):
        body = spec(vs)
        if not body.get("gateways"):
            continue
        for d in destinations(body):
            if d.section != "http" or d.subset:
                continue
            for other, host in subset_routes:
                if host == d.host:
                    yield report(
                        INGRESS_ROUTE_RULES_NOT_AFFECTED, vs,
                        f"the subset routing of VirtualService {other.namespace}/{other.name} "
                        f"does not apply to traffic from the gateways of {vs.namespace}/"
                        f"{vs.name}, which routes to the whole of {host!r}",
                        "name the subset in this route too, or bind the other "
                        "VirtualService to the gateway", d.path)


def _internal_gateway(name: str) -> bool:
    """The Gateways Istio makes of Gateway API ones
    (`GATEWAY~istio-autogenerated-k8s-gateway~LISTENER`)."""
    return "~istio-autogenerated-k8s-gateway~" in name.split("/", 1)[-1]


def _gateway_name(vs_namespace: str, name: str) -> tuple[str, str]:
    namespace, _, local = name.rpartition("/")
    return (namespace or vs_namespace, local)


def _server_hosts(gateway: Resource[Any]) -> list[str]:
    hosts: list[str] = []
    for server in spec(gateway).get("servers") or []:
        written = [str(h) for h in _dict(server).get("hosts") or []]
        sanitized = []
        for entry in written:
            scope, slash, host = entry.partition("/")
            if not slash:
                sanitized.append(entry)
            elif scope == EXPORT_LOCAL:
                sanitized.append(f"{gateway.namespace}/{host}")
            elif scope == EXPORT_ALL:
                if host == "*":
                    sanitized = ["*"]
                    break
                sanitized.append(host)
            else:
                sanitized.append(entry)
        hosts += sanitized
    return hosts


def _check_gateways(world: AnalysisInput) -> Iterator[Message]:
    for vs in world.of_kind(*VS):
        body = spec(vs)
        vs_hosts = [str(h) for h in body.get("hosts") or []]
        for i, name in enumerate(str(g) for g in body.get("gateways") or []):
            if name == MESH:
                continue
            if _internal_gateway(name):
                yield report(
                    REFERENCED_INTERNAL_GATEWAY, vs,
                    f"gateway {name!r} is made by Istio from a Gateway "
                    "API Gateway; referencing it directly is unsupported",
                    "attach routes to the Gateway API Gateway with an HTTPRoute instead",
                    ("spec", "gateways", i))
                continue
            namespace, local = _gateway_name(vs.namespace, name)
            istio = world.get(ISTIO, "Gateway", namespace, local)
            kube = world.get(GATEWAY_API, "Gateway", namespace, local)
            if istio is None and kube is None:
                yield report(
                    REFERENCED_RESOURCE_NOT_FOUND, vs,
                    f"referenced gateway not found: \"{name}\"",
                    f"create Gateway {namespace}/{local} or correct the name",
                    ("spec", "gateways", i))
            if kube is not None:
                listeners = spec(kube).get("listeners") or []
                names = [str(_dict(x).get("hostname") or "") for x in listeners]
                found = "" in names or any(host_matches(g, h) for g in names for h in vs_hosts)
            else:
                gateway_hosts = hosts_for_namespace(
                    _server_hosts(istio) if istio else [], vs.namespace)
                found = any(host_matches(g, h) for g in gateway_hosts for h in vs_hosts)
            if not found:
                yield report(
                    VS_HOST_NOT_FOUND_IN_GATEWAY, vs,
                    f"one or more hosts {vs_hosts} of VirtualService "
                    f"{vs.namespace}/{vs.name} not defined in referenced gateway "
                    f"{namespace}/{local}",
                    "add the hosts to one of the gateway's servers (or its namespace to a "
                    "`ns/host` entry), or bind the VirtualService to a gateway that serves "
                    "them", ("spec", "gateways", i))


def _mesh_bound(body: Mapping[str, Any]) -> bool:
    gateways = body.get("gateways") or []
    return not gateways or MESH in gateways


def _check_mesh_host_conflicts(world: AnalysisInput) -> Iterator[Message]:
    by_host: dict[tuple[str, str], list[Resource[Any]]] = defaultdict(list)
    for vs in world.of_kind(*VS):
        body = spec(vs)
        if not _mesh_bound(body):
            continue
        export_to = [str(e) for e in body.get("exportTo") or []]
        if not export_to or EXPORT_ALL in export_to:
            scopes = [EXPORT_ALL]
        else:
            scopes = sorted({vs.namespace if e == EXPORT_LOCAL else e for e in export_to})
        for scope in scopes:
            for host in body.get("hosts") or []:
                by_host[(scope, to_fqdn(vs.namespace, str(host)))].append(vs)
    reported: set[tuple[str, str]] = set()
    for (scope, host), services in sorted(by_host.items()):
        conflicting = list(services)
        if scope != EXPORT_ALL:
            conflicting += [vs for (other_scope, other), found in sorted(by_host.items())
                            if other_scope == EXPORT_ALL and host_matches(host, other)
                            for vs in found]
        if len(conflicting) < 2:
            continue
        names = ",".join(sorted(f"{v.namespace}/{v.name}" for v in conflicting))
        for vs in conflicting:
            if (vs.namespace, vs.name) in reported:
                continue
            reported.add((vs.namespace, vs.name))
            yield report(
                CONFLICTING_MESH_GATEWAY_VS_HOSTS, vs,
                f"the VirtualServices {names} associated with mesh gateway define the same "
                f"host \"{scope}/{host}\", which can lead to undefined behavior",
                "merge them into one VirtualService per host, or narrow each one's exportTo")


def _claim_routes(body: Mapping[str, Any]) -> bool:
    for rule in body.get("http") or []:
        for match in _dict(rule).get("match") or []:
            match = _dict(match)
            keys = [*_dict(match.get("headers")), *_dict(match.get("withoutHeaders"))]
            if any(str(h).startswith("@request.auth.claims") for h in keys):
                return True
    return False


def _check_jwt_claim_routes(world: AnalysisInput) -> Iterator[Message]:
    """A route on `@request.auth.claims.*` needs a RequestAuthentication on the gateway
    workloads the VirtualService binds, or the claims are never there to match."""
    authns = world.of_kind(SECURITY, "RequestAuthentication")
    for vs in world.of_kind(*VS):
        body = spec(vs)
        if not _claim_routes(body):
            continue
        for name in (str(g) for g in body.get("gateways") or []):
            if name == MESH:
                continue
            namespace, local = _gateway_name(vs.namespace, name)
            gateway = world.get(ISTIO, "Gateway", namespace, local)
            if gateway is None:
                continue
            selector = {str(k): str(v) for k, v in _dict(spec(gateway).get("selector")).items()}
            pods = [w for w in world.workloads() if w.kind == "Pod" and selects(selector, w.labels)]
            for pod in pods:
                if not any(_authn_applies(a, pod.namespace, pod.labels, world.istio_namespace)
                           for a in authns):
                    yield report(
                        JWT_CLAIM_ROUTING_WITHOUT_REQUEST_AUTHN, vs,
                        f"routes on JWT claims, but pod {pod.namespace}/{pod.name} of gateway "
                        f"{namespace}/{local} has no RequestAuthentication, so no claim is "
                        "ever there to match",
                        "add a RequestAuthentication selecting the gateway's pods")


def _authn_applies(authn: Resource[Any], namespace: str, labels: Mapping[str, str],
                   root_namespace: str) -> bool:
    if authn.namespace not in (namespace, root_namespace):
        return False
    selector = _dict(_dict(spec(authn).get("selector")).get("matchLabels"))
    return selects({str(k): str(v) for k, v in selector.items()}, labels)


ANALYZERS = (
    Analyzer("virtualservice.DestinationRuleAnalyzer",
             "Checks the destination rules associated with each virtual service",
             frozenset({VS, (ISTIO, "DestinationRule")}), _check_subsets),
    Analyzer("virtualservice.DestinationHostAnalyzer",
             "Checks the destination hosts associated with each virtual service",
             frozenset({VS, (ISTIO, "ServiceEntry"), ("", "Service")}), _check_hosts),
    Analyzer("virtualservice.GatewayAnalyzer",
             "Checks the gateways associated with each virtual service",
             frozenset({VS, (ISTIO, "Gateway"), (GATEWAY_API, "Gateway")}), _check_gateways),
    Analyzer("virtualservice.ConflictingMeshGatewayHostsAnalyzer",
             "Checks if multiple virtual services bound to the mesh gateway share a host",
             frozenset({VS}), _check_mesh_host_conflicts),
    Analyzer("virtualservice.JWTClaimRouteAnalyzer",
             "Checks that routes on JWT claims have a RequestAuthentication behind them",
             frozenset({VS, (ISTIO, "Gateway"), ("", "Pod"),
                        (SECURITY, "RequestAuthentication")}), _check_jwt_claim_routes),
)
