"""Gateway API resources -> Istio Gateways and VirtualServices, plus each resource's status.

As Istio's gateway controller does: routes attach to the listeners their parentRefs name
(sectionName, port, hostnames, allowedRoutes namespaces and kinds), and for each listener
and host the http rules of every route attached there merge into one VirtualService, in
Gateway API precedence; a route whose parentRef is a Service (GAMMA) becomes a
VirtualService for that service's host bound to the mesh, which sidecars follow (a consumer
route, in another namespace than the Service's, only its own namespace's sidecars). TCPRoute
and TLSRoute become `tcp` and `tls` rules. Every derived resource passes Heddle's own
validation or is left out, with an error naming the route it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from heddle.api.diagnostics import Diagnostic, ResourceRef, Severity
from heddle.api.loader import build_resource
from heddle.api.models import (
    GRPCRouteSpec,
    HTTPRouteSpec,
    ServiceEntrySpec,
    TCPRouteSpec,
    TLSRouteSpec,
)
from heddle.api.models.gateway_api_parts import ParentRef
from heddle.api.problems import format_path
from heddle.api.resource import Resource, ResourceKey
from heddle.api.specs import spec_of
from heddle.model.gateway_api.backends import DOMAIN_SUFFIX, Backends
from heddle.model.gateway_api.gateways import (
    DERIVED_SUFFIX,
    PARENTS_ANNOTATION,
    GatewayPlan,
    ListenerInfo,
    _Inputs,
    class_conditions,
    derived_name,
    gateway_conditions,
    listener_conditions,
    managed_classes,
    plan_gateway,
)
from heddle.model.gateway_api.http import Rules, grpc_rules, http_rules, sort_rules
from heddle.model.gateway_api.refs import Grants, route_hosts
from heddle.model.gateway_api.status import (
    GATEWAY_GROUP,
    Condition,
    GatewayStatus,
    ListenerStatus,
    RouteParentStatus,
    RouteStatus,
    Status,
    condition,
)
from heddle.registry.from_config import Registry

ROUTE_SEMANTICS = "internal.istio.io/route-semantics"
DERIVED_FROM = "heddle.dev/derived-from"
# Which route each http rule of a merged VirtualService came from (`Kind/namespace/name`,
# comma-separated in rule order): policies attached to a route (rate limits) find its rules.
RULE_ORIGINS = "heddle.dev/rule-origins"
ROUTE_KINDS = ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")


@dataclass(frozen=True)
class Conversion:
    """What the Gateway API resources of a snapshot come to."""

    resources: tuple[Resource[Any], ...] = ()
    statuses: Mapping[ResourceKey, tuple[Status, int]] = field(
        default_factory=lambda: MappingProxyType({}))  # status, observed generation
    diagnostics: tuple[Diagnostic, ...] = ()

    def status_json(self, key: ResourceKey) -> dict[str, Any] | None:
        found = self.statuses.get(key)
        return found[0].to_json(found[1]) if found else None


def generation_of(resource: Resource[Any]) -> int:
    meta = resource.body.get("metadata") or {}
    value = meta.get("generation") if isinstance(meta, Mapping) else None
    return value if isinstance(value, int) else 1


def _age(resource: Resource[Any]) -> tuple[str, str, str]:
    """Oldest first, then by namespace/name: the spec's order between routes."""
    meta = resource.body.get("metadata") or {}
    created = meta.get("creationTimestamp") if isinstance(meta, Mapping) else None
    return (str(created or ""), resource.namespace, resource.name)


@dataclass
class _Contribution:
    route: Resource[Any]
    http: list[dict[str, Any]]


@dataclass
class _Builder:
    registry: Registry
    inputs: _Inputs
    plans: dict[tuple[str, str], GatewayPlan]
    gateways: Mapping[tuple[str, str], Resource[Any]]
    services: frozenset[tuple[str, str]]
    service_entries: Mapping[tuple[str, str], Resource[Any]]
    # (gateway or "mesh", host, consumer namespace or "") -> what each route adds there
    http: dict[tuple[str, str, str], list[_Contribution]] = field(default_factory=dict)
    bodies: list[tuple[dict[str, Any], list[Resource[Any]]]] = field(default_factory=list)
    statuses: dict[ResourceKey, tuple[Status, int]] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    rejected: dict[ResourceKey, str] = field(default_factory=dict)

    # -- parents --------------------------------------------------------------------------

    def _listener_denial(self, route: Resource[Any], ref: ParentRef, listener: ListenerInfo,
                         hostnames: list[str]) -> tuple[int, str, str] | None:
        """(rank, reason, message) when the listener refuses the route; lower ranks are
        better matches, as Istio ranks them when it reports the closest."""
        if ref.port is not None and ref.port != listener.port:
            return 4, "NoMatchingParent", f"port {ref.port} not found"
        if ref.sectionName is not None and ref.sectionName != listener.name:
            return 4, "NoMatchingParent", f"sectionName {ref.sectionName!r} not found"
        if not listener.usable:
            return 4, "NoMatchingParent", f"listener {listener.name!r} is not valid"
        if not route_hosts(listener.hostname, hostnames):
            return 2, "NoMatchingListenerHostname", (
                f"no hostnames matched parent hostname {listener.hostname!r}")
        if not listener.admits_namespace(route.namespace):
            return 1, "NotAllowedByListeners", (
                f"hostnames matched parent hostname {listener.hostname or '*'!r}, but "
                f"namespace {route.namespace!r} is not allowed by the parent")
        if route.kind not in listener.kinds:
            return 1, "NotAllowedByListeners", f"kind {route.kind} is not allowed"
        return None

    def _gateway_parent(self, route: Resource[Any], ref: ParentRef, hostnames: list[str],
                        ) -> tuple[list[ListenerInfo], Condition | None, str] | None:
        """The listeners that accept the route, or the reason none does; None when the
        Gateway is another controller's."""
        namespace = ref.namespace or route.namespace
        plan = self.plans.get((namespace, ref.name))
        if plan is None:
            if (namespace, ref.name) in self.gateways:
                return None
            return [], condition("Accepted", "NoMatchingParent",
                                 f"parent gateway {namespace}/{ref.name} not found"), ""
        accepted: list[ListenerInfo] = []
        best: tuple[int, str, str] | None = None
        for listener in plan.listeners:
            denial = self._listener_denial(route, ref, listener, hostnames)
            if denial is None:
                accepted.append(listener)
            elif best is None or denial[0] < best[0]:
                best = denial
        if accepted or best is None:
            return accepted, None, plan.controller
        return [], condition("Accepted", best[1], best[2]), plan.controller

    def _mesh_hosts(self, route: Resource[Any], ref: ParentRef,
                    ) -> tuple[list[str], Condition | None]:
        namespace = ref.namespace or route.namespace
        if (ref.group or "") == "" and (ref.kind or "") == "Service":
            host = f"{ref.name}.{namespace}.{DOMAIN_SUFFIX}"
            if (namespace, ref.name) in self.services or self.registry.service(host):
                return [host], None
            return [], condition("Accepted", "NoMatchingParent",
                                 f"parent service: {ref.name!r} not found")
        entry = self.service_entries.get((namespace, ref.name))
        if entry is None:
            return [], condition("Accepted", "NoMatchingParent",
                                 f"parent service entry: {ref.name!r} not found")
        return list(spec_of(entry, ServiceEntrySpec).hosts or []), None

    # -- routes ---------------------------------------------------------------------------

    def route(self, route: Resource[Any]) -> None:
        spec = route.spec
        hostnames = [h.root for h in getattr(spec, "hostnames", None) or []]
        parents: list[RouteParentStatus] = []
        gateway_rules: Rules | None = None
        mesh_rules: Rules | None = None
        attached: list[tuple[ParentRef, ListenerInfo]] = []
        meshes: list[tuple[ParentRef, list[str]]] = []
        for ref in getattr(spec, "parentRefs", None) or []:
            group = GATEWAY_GROUP if ref.group is None else ref.group
            kind = ref.kind or "Gateway"
            written = _written_ref(ref, route.namespace)
            if (group, kind) == (GATEWAY_GROUP, "Gateway"):
                found = self._gateway_parent(route, ref, hostnames)
                if found is None:
                    continue
                listeners, denied, controller = found
                if denied is None:
                    gateway_rules = gateway_rules or self._rules(route, enforce_grants=True)
                    attached += [(ref, listener) for listener in listeners]
                parents.append(self._parent_status(written, controller, denied, gateway_rules,
                                                   len(listeners)))
            elif (group, kind) in (("", "Service"), ("networking.istio.io", "ServiceEntry")):
                hosts, denied = self._mesh_hosts(route, ref)
                if denied is None:
                    # As Istio: ReferenceGrants gate what gateways send to, not sidecars.
                    mesh_rules = mesh_rules or self._rules(route, enforce_grants=False)
                    meshes.append((ref, hosts))
                parents.append(self._parent_status(written, _HEDDLE, denied, mesh_rules, 1))
        self.statuses[route.key] = (RouteStatus(tuple(parents)), generation_of(route))
        seen: set[tuple[str, str, str]] = set()
        for _ref, listener in attached:
            marker = (listener.gateway.namespace, listener.gateway.name, listener.name)
            if marker not in seen:
                seen.add(marker)
                plan = self.plans[(listener.gateway.namespace, listener.gateway.name)]
                plan.attached[listener.name] = plan.attached.get(listener.name, 0) + 1
        if gateway_rules is not None and not gateway_rules.fatal:
            self._attach_gateway(route, gateway_rules, attached, hostnames)
        if mesh_rules is not None and not mesh_rules.fatal:
            self._attach_mesh(route, mesh_rules, meshes)

    def _rules(self, route: Resource[Any], enforce_grants: bool) -> Rules:
        grants = self.inputs.grants if enforce_grants else _ALLOW_ALL
        backends = Backends(self.registry, grants, route.kind, route.namespace)
        if route.kind == "HTTPRoute":
            return http_rules(route.namespace, route.name,
                              spec_of(route, HTTPRouteSpec).rules or [], backends)
        if route.kind == "GRPCRoute":
            return grpc_rules(route.namespace, route.name,
                              spec_of(route, GRPCRouteSpec).rules or [], backends)
        return _stream_rules(route, backends)

    def _parent_status(self, written: tuple[tuple[str, Any], ...], controller: str,
                       denied: Condition | None, rules: Rules | None,
                       bound: int) -> RouteParentStatus:
        fatal = rules.fatal if rules is not None else None
        accepted = denied or (
            condition("Accepted", "UnsupportedValue", fatal.message, ok=False) if fatal else
            condition("Accepted", "Accepted", "Route was valid" if bound <= 1
                      else f"Route was valid, bound to {bound} parents"))
        error = rules.error if rules is not None else None
        resolved = (condition("ResolvedRefs", error.reason, error.message, ok=False)
                    if error is not None else
                    condition("ResolvedRefs", "ResolvedRefs", "All references resolved"))
        return RouteParentStatus(written, controller or _HEDDLE, (accepted, resolved))

    def _attach_gateway(self, route: Resource[Any], rules: Rules,
                        attached: list[tuple[ParentRef, ListenerInfo]],
                        hostnames: list[str]) -> None:
        for _ref, listener in attached:
            plan = self.plans[(listener.gateway.namespace, listener.gateway.name)]
            banned = [other.hostname for other in plan.listeners
                      if other is not listener and other.port == listener.port
                      and other.protocol == listener.protocol and other.hostname]
            hosts = [h for h in route_hosts(listener.hostname, hostnames)
                     if not _taken_by_narrower(h, listener.hostname, banned)]
            if route.kind in ("TCPRoute", "TLSRoute"):
                self._stream_body(route, rules, listener, hosts)
                continue
            for host in hosts:
                self.http.setdefault((listener.istio_gateway, host, ""), []).append(
                    _Contribution(route, rules.http))

    def _attach_mesh(self, route: Resource[Any], rules: Rules,
                     meshes: list[tuple[ParentRef, list[str]]]) -> None:
        for ref, hosts in meshes:
            if route.kind in ("TCPRoute", "TLSRoute"):
                continue  # a sidecar's tcp/tls rules come from VirtualServices only, for now
            http = rules.http if ref.port is None else [_with_port(r, ref.port)
                                                        for r in rules.http]
            # A consumer route (in a namespace other than its Service's) is its namespace's
            # own: a VirtualService there, seen by that namespace's sidecars only.
            consumer = route.namespace if (ref.namespace or route.namespace) != \
                route.namespace else ""
            for host in hosts:
                self.http.setdefault(("mesh", host, consumer), []).append(
                    _Contribution(route, http))

    def _stream_body(self, route: Resource[Any], rules: Rules, listener: ListenerInfo,
                     hosts: list[str]) -> None:
        key = "tcp" if route.kind == "TCPRoute" else "tls"
        items = [dict(item) for item in rules.http]
        if key == "tls":
            for item in items:
                item["match"] = [{"sniHosts": hosts or ["*"]}]
        name = derived_name(route.name, key, listener.gateway.namespace,
                            listener.gateway.name, listener.name, DERIVED_SUFFIX)
        self.bodies.append((_virtual_service(
            name, route.namespace, ["*"] if key == "tcp" else hosts or ["*"],
            [listener.istio_gateway], {key: items}, [route]), [route]))

    # -- assembly -------------------------------------------------------------------------

    def assemble(self) -> None:
        for (gateway, host, consumer), contributions in sorted(self.http.items()):
            contributions = [c for c in contributions
                             if self._valid_alone(c, gateway, host)]
            if not contributions:
                continue
            contributions.sort(key=lambda c: _age(c.route))
            routes = [c.route for c in contributions]
            origin = {id(rule): f"{c.route.kind}/{c.route.namespace}/{c.route.name}"
                      for c in contributions for rule in c.http}
            rules = sort_rules([rule for c in contributions for rule in c.http])
            if gateway == "mesh":
                name = derived_name(host, "mesh")
            else:
                gw_namespace, gw_name = gateway.split("/", 1)
                name = derived_name(gw_namespace, gw_name, host)
            # As Istio: a route applies to a sidecar in its Service's namespace or its own.
            spec = {"http": rules, **({"exportTo": ["."]} if consumer else {})}
            body = _virtual_service(name, routes[0].namespace, [host], [gateway], spec, routes)
            body["metadata"]["annotations"][RULE_ORIGINS] = ",".join(
                origin[id(rule)] for rule in rules)
            self.bodies.append((body, routes))

    def _valid_alone(self, contribution: _Contribution, gateway: str, host: str) -> bool:
        """Each route's rules are checked on their own first, so that one invalid route is
        reported as itself and never takes the routes it shares a host with down."""
        route = contribution.route
        if route.key in self.rejected:
            return False
        body = _virtual_service("probe", route.namespace, [host], [gateway],
                                {"http": contribution.http}, [route])
        _, problems = build_resource(body, route.source)
        errors = [p for p in problems if p.severity is Severity.ERROR]
        if errors:
            self._reject(route, f"{format_path(errors[0].path)}: {errors[0].message}")
            return False
        return True

    def _reject(self, route: Resource[Any], message: str) -> None:
        """An invalid route: a diagnostic naming it, and Accepted=False on every parent."""
        self.rejected[route.key] = message
        self.diagnostics.append(Diagnostic(
            Severity.ERROR, f"cannot be converted to a valid VirtualService: {message}",
            position=route.source, resource=ResourceRef(route.kind, route.namespace,
                                                       route.name),
            fix="correct the route; the mesh keeps serving without it"))
        status, generation = self.statuses[route.key]
        assert isinstance(status, RouteStatus)
        self.statuses[route.key] = (RouteStatus(tuple(
            RouteParentStatus(p.parent_ref, p.controller_name, (
                condition("Accepted", "UnsupportedValue", message, ok=False),
                *[c for c in p.conditions if c.type != "Accepted"]))
            for p in status.parents)), generation)


_HEDDLE = "heddle.dev/gateway-controller"
_ALLOW_ALL = Grants(MappingProxyType({}), enforced=False)


def _taken_by_narrower(host: str, ours: str | None, others: Sequence[str | None]) -> bool:
    """Listener isolation: a host a more specific listener on the same port matches is
    that listener's, not a wildcard one's."""
    for other in others:
        if other is None or (ours is not None and len(ours) > len(other)):
            continue
        if host == other or (other.startswith("*.") and host.endswith(other[1:])
                             and not host.startswith("*")):
            return True
    return False


def _with_port(rule: dict[str, Any], port: int) -> dict[str, Any]:
    matches = [dict(m, port=port) for m in rule.get("match") or [{}]]
    return {**rule, "match": matches}


def _written_ref(ref: ParentRef, namespace: str) -> tuple[tuple[str, Any], ...]:
    out: dict[str, Any] = {"group": GATEWAY_GROUP if ref.group is None else ref.group,
                           "kind": ref.kind or "Gateway", "name": ref.name,
                           "namespace": ref.namespace or namespace}
    if ref.sectionName is not None:
        out["sectionName"] = ref.sectionName
    if ref.port is not None:
        out["port"] = ref.port
    return tuple(out.items())


def _stream_rules(route: Resource[Any], backends: Backends) -> Rules:
    """A TCPRoute's or TLSRoute's one rule: weighted destinations (all weights 0: nowhere)."""
    spec = (spec_of(route, TCPRouteSpec) if route.kind == "TCPRoute"
            else spec_of(route, TLSRouteSpec))
    rules = Rules()
    for rule in spec.rules:
        weighted = [(ref, 1 if ref.weight is None else ref.weight) for ref in rule.backendRefs]
        weighted = [(ref, w) for ref, w in weighted if w > 0]
        destinations: list[dict[str, Any]] = []
        for ref, weight in weighted:
            destination, error = backends.resolve(ref)
            if destination is None and error is not None and error.reason == "UnsupportedValue":
                return Rules(fatal=error)
            rules.note(error)
            if destination is None:
                continue
            entry: dict[str, Any] = {"destination": destination}
            if len(weighted) > 1:
                entry["weight"] = weight
            destinations.append(entry)
        if not destinations:
            # Connections are refused: a host no service has (Istio does the same).
            destinations = [{"destination": {"host": "unusable-backend.heddle.invalid",
                                             "port": {"number": 65535}}}]
        rules.http.append({"route": destinations})
    return rules


def _virtual_service(name: str, namespace: str, hosts: list[str], gateways: list[str],
                     rules: dict[str, Any], routes: list[Resource[Any]]) -> dict[str, Any]:
    parents = ",".join(f"{r.kind}/{r.name}.{r.namespace}" for r in routes)
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace,
                     "annotations": {PARENTS_ANNOTATION: parents,
                                     ROUTE_SEMANTICS: "gateway",
                                     DERIVED_FROM: parents}},
        "spec": {"hosts": hosts, "gateways": gateways, **rules},
    }


def convert(resources: Iterable[Resource[Any]], registry: Registry) -> Conversion:
    """The derived Istio resources and the status of every Gateway API resource that this
    controller owns (a Gateway of another controller's class, and its routes' parentRefs
    to it, are left alone)."""
    by_kind: dict[tuple[str, str], list[Resource[Any]]] = {}
    for resource in resources:
        by_kind.setdefault((resource.key.group, resource.kind), []).append(resource)
    if not any(group == GATEWAY_GROUP for group, _ in by_kind):
        return Conversion()

    def of(group: str, kind: str) -> list[Resource[Any]]:
        return by_kind.get((group, kind), [])

    inputs = _Inputs(
        grants=Grants.of(of(GATEWAY_GROUP, "ReferenceGrant")),
        secrets={(s.namespace, s.name): s for s in of("", "Secret")},
        namespaces={n.name: dict(n.metadata.labels) for n in of("", "Namespace")})
    statuses: dict[ResourceKey, tuple[Status, int]] = {}
    classes = managed_classes(of(GATEWAY_GROUP, "GatewayClass"))
    for resource in of(GATEWAY_GROUP, "GatewayClass"):
        if resource.name in classes:
            statuses[resource.key] = (GatewayStatus(class_conditions()), generation_of(resource))
    route_namespaces = frozenset(r.namespace for kind in ROUTE_KINDS
                                 for r in of(GATEWAY_GROUP, kind))
    gateways = {(g.namespace, g.name): g for g in of(GATEWAY_GROUP, "Gateway")}
    plans: dict[tuple[str, str], GatewayPlan] = {}
    for key, gateway in sorted(gateways.items()):
        class_name = getattr(gateway.spec, "gatewayClassName", "")
        if class_name in classes:
            plans[key] = plan_gateway(gateway, classes[class_name], inputs, route_namespaces)
    builder = _Builder(
        registry, inputs, plans, gateways,
        frozenset((s.namespace, s.name) for s in of("", "Service")),
        {(e.namespace, e.name): e for e in of("networking.istio.io", "ServiceEntry")},
        statuses=statuses)
    routes = sorted((r for kind in ROUTE_KINDS for r in of(GATEWAY_GROUP, kind)), key=_age)
    for route in routes:
        builder.route(route)
    builder.assemble()
    derived: list[Resource[Any]] = []
    for plan in plans.values():
        derived += _gateway_resources(plan, builder)
    for body, owners in builder.bodies:
        made, problems = build_resource(body, owners[0].source)
        if made is not None:
            derived.append(made)
            continue
        errors = [p for p in problems if p.severity is Severity.ERROR]
        for owner in owners:
            builder._reject(owner, f"{format_path(errors[0].path)}: {errors[0].message}")
    return Conversion(tuple(derived), MappingProxyType(builder.statuses),
                      tuple(builder.diagnostics))


def _gateway_resources(plan: GatewayPlan, builder: _Builder) -> list[Resource[Any]]:
    gateway = plan.gateway
    made: list[Resource[Any]] = []
    broken: set[str] = set()
    for listener_name, body in plan.bodies:
        made_one, problems = build_resource(body, gateway.source)
        if made_one is not None:
            made.append(made_one)
            continue
        error = next(p for p in problems if p.severity is Severity.ERROR)
        broken.add(listener_name)
        builder.diagnostics.append(Diagnostic(
            Severity.ERROR, f"listener {listener_name!r} cannot be converted to a valid Istio "
            f"Gateway: {format_path(error.path)}: {error.message}", position=gateway.source,
            resource=ResourceRef("Gateway", gateway.namespace, gateway.name),
            fix="correct the listener"))
    listeners = []
    for listener in plan.listeners:
        conditions = listener_conditions(plan, listener)
        if listener.name in broken:
            conditions = tuple(condition("Programmed", "Invalid", "the listener cannot be "
                                         "programmed", ok=False) if c.type == "Programmed"
                               else c for c in conditions)
        listeners.append(ListenerStatus(listener.name, listener.kinds,
                                        plan.attached.get(listener.name, 0), conditions))
    builder.statuses[gateway.key] = (GatewayStatus(gateway_conditions(plan), tuple(listeners),
                                                   tuple(plan.addresses)),
                                     generation_of(gateway))
    return made
