"""What one proxy can see: exportTo visibility and its Sidecar resource's egress hosts.

Istio sends a sidecar only the services, VirtualServices and DestinationRules exported to
its namespace and named by the egress hosts of the Sidecar resource that applies to it;
everything else is left out of its configuration. Translation of the outbound side reads
the narrowed snapshot this module builds, so it never needs to know about scoping.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from heddle.api.models import DestinationRuleSpec, SidecarSpec, VirtualServiceSpec
from heddle.api.models.virtual_service_parts import Destination, HTTPRoute, StreamRoute
from heddle.api.resource import Resource
from heddle.api.specs import is_empty, spec_of
from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Service, resolve_host

ROOT_NAMESPACE = "istio-system"
ALLOW_ANY, REGISTRY_ONLY = "ALLOW_ANY", "REGISTRY_ONLY"
NETWORKING = "networking.istio.io"
SCOPED_KINDS = ("VirtualService", "DestinationRule")


def exported_to(export_to: Iterable[str], owner_namespace: str, namespace: str) -> bool:
    """exportTo: empty or `*` everywhere, `.` the owner's namespace, `~` nowhere, or names."""
    targets = list(export_to)
    if not targets or "*" in targets:
        return True
    return any((t == "." and namespace == owner_namespace) or t == namespace for t in targets)


def sidecar_for(snapshot: MeshSnapshot, proxy: Proxy) -> Resource[Any] | None:
    """Istio's choice: a Sidecar in the proxy's namespace whose workloadSelector matches it,
    else that namespace's Sidecar without a selector, else the root namespace's."""
    candidates = snapshot.selecting(NETWORKING, "Sidecar", proxy.namespace, proxy.label_map)
    selected = [s for s in candidates if _has_selector(s)]
    if selected:
        return selected[0]
    if candidates:
        return candidates[0]
    return next((s for s in snapshot.of_kind(NETWORKING, "Sidecar", ROOT_NAMESPACE)
                 if not _has_selector(s)), None)


def _has_selector(sidecar: Resource[Any]) -> bool:
    selector = spec_of(sidecar, SidecarSpec).workloadSelector
    return selector is not None and not is_empty(selector)


@dataclass(frozen=True)
class EgressHost:
    """One `namespace/dnsName` of a Sidecar egress listener, and the listener's port."""

    namespace: str  # `*` any, `~` none, `~NS` (an exclusion), or a name (`.` resolved)
    dns_name: str  # `*`, `*.suffix` or an exact FQDN
    port: int | None = None  # the egress listener's port: only that port of the host

    @classmethod
    def parse(cls, text: str, sidecar_namespace: str, port: int | None = None) -> EgressHost:
        namespace, _, name = text.partition("/")
        return cls(sidecar_namespace if namespace == "." else namespace, name, port)

    def admits(self, namespace: str, hostname: str) -> bool:
        if self.namespace.startswith("~") or self.namespace not in ("*", namespace):
            return False
        # Either side may be a wildcard (`*.example.com` names api.example.com and back).
        return (fnmatch.fnmatchcase(hostname, self.dns_name)
                or fnmatch.fnmatchcase(self.dns_name, hostname))


    def excludes(self, namespace: str, hostname: str) -> bool:
        """`~NS/HOST` takes the services of NS (of every namespace for `~*`) that HOST covers
        out of what the other egress hosts import, as Istio's exclusions do. A bare `~/HOST`
        (no namespace) imports nothing and excludes nothing."""
        excluded = self.namespace.removeprefix("~")
        if not self.namespace.startswith("~") or not excluded:
            return False
        return excluded in ("*", namespace) and fnmatch.fnmatchcase(hostname, self.dns_name)


def _admitted(hosts: list[EgressHost], namespace: str, hostname: str) -> list[EgressHost]:
    """The egress hosts that import the service, none where an exclusion takes it out."""
    if any(h.excludes(namespace, hostname) for h in hosts):
        return []
    return [h for h in hosts if h.admits(namespace, hostname)]


def egress_hosts(sidecar: Resource[Any] | None) -> list[EgressHost] | None:
    """Every egress host of the Sidecar; None when no Sidecar limits the proxy."""
    if sidecar is None:
        return None
    listeners = spec_of(sidecar, SidecarSpec).egress
    if not listeners:
        return None
    return [EgressHost.parse(h, sidecar.namespace,
                             listener.port.number if listener.port is not None else None)
            for listener in listeners for h in listener.hosts]


def outbound_traffic_mode(snapshot: MeshSnapshot, sidecar: Resource[Any] | None) -> str:
    """ALLOW_ANY (Istio's default) or REGISTRY_ONLY: the Sidecar's, else the mesh's."""
    if sidecar is not None:
        policy = spec_of(sidecar, SidecarSpec).outboundTrafficPolicy
        if policy is not None and policy.mode:
            return str(policy.mode)
    return snapshot.mesh_config.outbound_traffic_mode


def _routing_spec(resource: Resource[Any]) -> VirtualServiceSpec | DestinationRuleSpec:
    if resource.kind == "DestinationRule":
        return spec_of(resource, DestinationRuleSpec)
    return spec_of(resource, VirtualServiceSpec)


def _hosts_of(resource: Resource[Any]) -> list[str]:
    spec = _routing_spec(resource)
    if isinstance(spec, DestinationRuleSpec):
        return [resolve_host(spec.host, resource.namespace)]
    return [resolve_host(h, resource.namespace) for h in spec.hosts or []]


def delegates(rule: HTTPRoute) -> bool:
    return rule.delegate is not None and not is_empty(rule.delegate)


def delegate_of(snapshot: MeshSnapshot, root: Resource[Any], rule: HTTPRoute,
                ) -> Resource[Any] | None:
    """The VirtualService an http rule of `root` delegates to: one without hosts, exported
    to the root's namespace; None when the rule does not delegate or there is none."""
    target = rule.delegate
    if target is None or is_empty(target):
        return None
    delegate = snapshot.get(NETWORKING, "VirtualService", target.namespace or root.namespace,
                            target.name or "")
    if delegate is None or spec_of(delegate, VirtualServiceSpec).hosts:
        return None
    return delegate if _visible(delegate, root.namespace) else None


def _destinations(snapshot: MeshSnapshot, virtual_service: Resource[Any],
                  root: bool = True) -> set[str]:
    """Hosts a VirtualService sends traffic to (routes and mirrors of every protocol, its
    delegates' included: one level, as Istio)."""
    spec = spec_of(virtual_service, VirtualServiceSpec)
    found: set[str] = set()
    targets: list[Destination] = []
    for rule in spec.http or []:
        if root and (delegate := delegate_of(snapshot, virtual_service, rule)) is not None:
            found |= _destinations(snapshot, delegate, root=False)
        targets += [r.destination for r in rule.route or []]
        if rule.mirror is not None:
            targets.append(rule.mirror)
        targets += [m.destination for m in rule.mirrors or []]
    stream_rules: list[StreamRoute] = [*(spec.tls or []), *(spec.tcp or [])]
    for stream_rule in stream_rules:
        targets += [r.destination for r in stream_rule.route or []]
    found.update(resolve_host(t.host, virtual_service.namespace) for t in targets if t.host)
    return found


def _visible(resource: Resource[Any], namespace: str) -> bool:
    return exported_to(_routing_spec(resource).exportTo or (), resource.namespace, namespace)


def _one_per_host(services: list[Service], namespace: str) -> list[Service]:
    """Several ServiceEntries may name one host: the proxy's namespace's wins, else the
    first (Istio: the oldest), so each host is one set of clusters and routes."""
    chosen: dict[str, Service] = {}
    for service in services:
        held = chosen.get(service.hostname)
        if held is None or (service.namespace == namespace != held.namespace):
            chosen[service.hostname] = service
    return [s for s in services if chosen[s.hostname] is s]


def _reachable_ports(service: Service, hosts: list[EgressHost] | None, routed: bool,
                     ) -> Service | None:
    """The service with the ports the egress hosts admit (an egress listener with a port
    admits only that one); None when none are."""
    if hosts is None or routed:
        return service
    admitting = _admitted(hosts, service.namespace, service.hostname)
    if not admitting:
        return None
    if any(h.port is None for h in admitting):
        return service
    numbers = {h.port for h in admitting}
    ports = tuple(p for p in service.ports if p.number in numbers)
    return replace(service, ports=ports) if ports else None


@dataclass(frozen=True)
class ProxyScope:
    """The outbound view of one proxy, and where it came from."""

    snapshot: MeshSnapshot  # narrowed: only what this proxy may reach
    sidecar: Resource[Any] | None
    outbound_traffic_mode: str


def proxy_scope(snapshot: MeshSnapshot, proxy: Proxy) -> ProxyScope:
    """What the proxy sees. Proxies of one namespace under the same Sidecar see the same,
    so they share one narrowed snapshot (and the lookups memoized on it)."""
    sidecar = sidecar_for(snapshot, proxy)
    key = ("proxy_scope", proxy.namespace, sidecar.key if sidecar is not None else None)
    return snapshot.memo(key, lambda: _scope(snapshot, proxy.namespace, sidecar))


def _scope(snapshot: MeshSnapshot, namespace: str, sidecar: Resource[Any] | None,
           ) -> ProxyScope:
    hosts = egress_hosts(sidecar)

    def admitted(namespace: str, hostname: str) -> bool:
        return hosts is None or bool(_admitted(hosts, namespace, hostname))

    services = _one_per_host([s for s in snapshot.registry.services
                              if exported_to(s.export_to, s.namespace, namespace)], namespace)
    virtual_services = [
        vs for vs in snapshot.of_kind(NETWORKING, "VirtualService")
        if _visible(vs, namespace) and any(admitted(vs.namespace, h) for h in _hosts_of(vs))]
    # Services a selected VirtualService routes to stay reachable through it, as in Istio.
    routed = {h for vs in virtual_services for h in _destinations(snapshot, vs)}
    kept: list[Service] = [
        narrowed_ports for s in services
        if (narrowed_ports := _reachable_ports(s, hosts, s.hostname in routed)) is not None]
    kept_hosts = {s.hostname for s in kept}
    rules = [dr for dr in snapshot.of_kind(NETWORKING, "DestinationRule")
             if _visible(dr, namespace) and any(
                 h in kept_hosts if "*" not in h
                 else any(fnmatch.fnmatchcase(k, h) for k in kept_hosts)
                 for h in _hosts_of(dr))]
    narrowed = snapshot.narrowed(kept, {(NETWORKING, "VirtualService"): virtual_services,
                                        (NETWORKING, "DestinationRule"): rules})
    return ProxyScope(narrowed, sidecar, outbound_traffic_mode(snapshot, sidecar))
