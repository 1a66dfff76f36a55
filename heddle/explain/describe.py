"""`heddle describe`: everything that applies to one workload, or to one service and the
workloads behind it, on one page (as `istioctl x describe pod` does).

Computed from the MeshSnapshot alone, so the running control plane and an offline
directory give the same page."""

from __future__ import annotations

import json
from typing import Any

from heddle.api.resource import Resource
from heddle.api.semantics.security import DRY_RUN_ANNOTATION
from heddle.explain.page import Page, Section
from heddle.explain.subjects import (
    NotFound,
    find_service,
    find_workload,
    proxy_of,
    services_of,
)
from heddle.model.destination_rules import destination_rule
from heddle.model.rate_limits import Condition, for_service
from heddle.model.scope import ROOT_NAMESPACE, sidecar_for
from heddle.model.selectors import matches
from heddle.model.snapshot import MeshSnapshot
from heddle.model.telemetry import applicable
from heddle.registry.model import Service, Workload, resolve_host
from heddle.translate.authz import applicable_policies
from heddle.translate.mtls import spiffe_id
from heddle.translate.rate_limits import policies as rate_limit_policies

NETWORKING = "networking.istio.io"
SECURITY = "security.istio.io"
GATEWAY_API = "gateway.networking.k8s.io"
# The order in which a sidecar's filters evaluate AuthorizationPolicy actions.
ACTION_ORDER = ("CUSTOM", "DENY", "ALLOW", "AUDIT")


def ref(resource: Resource[Any]) -> str:
    where = f" ({resource.source})" if resource.source else ""
    return f"{resource.kind} {resource.namespace}/{resource.name}{where}"


def compact(value: Any) -> str:
    return json.dumps(value, separators=(", ", ": "), sort_keys=False)


def spec(resource: Resource[Any]) -> dict[str, Any]:
    found = resource.body.get("spec")
    return found if isinstance(found, dict) else {}


def describe(snapshot: MeshSnapshot, name: str, namespace: str = "default") -> Page:
    """The page for a workload named `name`, else for a service of that name."""
    workload = find_workload(snapshot, name, namespace)
    if workload is not None:
        return describe_workload(snapshot, workload)
    service = find_service(snapshot, name, namespace)
    if service is not None:
        return describe_service(snapshot, service)
    known = sorted({w.name for w in snapshot.registry.workloads}
                   | {s.name for s in snapshot.registry.services})
    raise NotFound(f"no workload or service {name!r} in namespace {namespace!r} "
                   f"(there are: {', '.join(known)})")


# --- what routes to a service ------------------------------------------------------------

def _destinations(vs: Resource[Any]) -> list[dict[str, Any]]:
    body = spec(vs)
    found = []
    for kind in ("http", "tcp", "tls"):
        for rule in body.get(kind) or []:
            for route in rule.get("route") or []:
                if isinstance(route.get("destination"), dict):
                    found.append(route["destination"])
            mirror = rule.get("mirror")
            if isinstance(mirror, dict):
                found.append(mirror)
    return found


def virtual_services_for(snapshot: MeshSnapshot, service: Service) -> list[Resource[Any]]:
    """VirtualServices for the service's host or with a destination that is it."""
    found = []
    for vs in snapshot.of_kind(NETWORKING, "VirtualService"):
        hosts = {resolve_host(str(h), vs.namespace) for h in spec(vs).get("hosts") or []}
        targets = {resolve_host(str(d.get("host", "")), vs.namespace) for d in _destinations(vs)}
        if service.hostname in hosts or service.hostname in targets:
            found.append(vs)
    return found


def _route_lines(snapshot: MeshSnapshot, vs: Resource[Any], service: Service) -> list[str]:
    lines = [ref(vs) + f", hosts {compact(spec(vs).get('hosts') or [])}"]
    for kind in ("http", "tcp", "tls"):
        for index, rule in enumerate(spec(vs).get(kind) or []):
            routes = [r["destination"] for r in rule.get("route") or []
                      if isinstance(r.get("destination"), dict)]
            to = ", ".join(
                resolve_host(str(d.get("host", "")), vs.namespace).split(".")[0]
                + (f" subset {d['subset']}" if d.get("subset") else "")
                + (f" port {d['port']['number']}" if (d.get("port") or {}).get("number")
                   else "") for d in routes)
            match = compact(rule["match"]) if rule.get("match") else "every request"
            lines.append(f"  {kind}[{index}]{' ' + rule['name'] if rule.get('name') else ''}: "
                         f"{match} -> {to or 'no route (redirect/direct response)'}")
    return lines


def http_routes_for(snapshot: MeshSnapshot, service: Service) -> list[Resource[Any]]:
    found = []
    for kind in ("HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute"):
        for route in snapshot.of_kind(GATEWAY_API, kind):
            for rule in spec(route).get("rules") or []:
                names = {(b.get("namespace") or route.namespace, b.get("name"))
                         for b in rule.get("backendRefs") or []
                         if b.get("kind", "Service") in ("Service", "ServiceEntry")}
                if (service.namespace, service.name) in names:
                    found.append(route)
                    break
    return found


def _destination_rule_lines(snapshot: MeshSnapshot, service: Service,
                            workload: Workload | None) -> list[str]:
    rule = destination_rule(snapshot, service.hostname, service.namespace)
    if rule is None:
        return [f"none for {service.hostname} (no subsets; Istio's default traffic policy: "
                "round robin, auto mTLS)"]
    lines = [f"{', '.join(rule.names)} for host {rule.host}"]
    if rule.traffic_policy is not None:
        lines.append("  trafficPolicy: " + compact(rule.traffic_policy.model_dump(
            mode="json", exclude_none=True)))
    for subset in rule.subsets:
        labels = dict(subset.labels)
        selects = ""
        if workload is not None:
            selects = (" (selects this workload)" if matches(labels, workload.label_map)
                       else " (does not select this workload)")
        else:
            behind = [w.name for w in snapshot.registry.workloads_of(service)
                      if matches(labels, w.label_map)]
            selects = f" -> {', '.join(behind) or 'NO workload (requests to it fail)'}"
        lines.append(f"  subset {subset.name}: labels {compact(labels)}{selects}")
    return lines


def _condition(condition: Condition) -> str:
    """`header x-user distinct`, `path prefix /api` (a path or method has no name)."""
    named = condition.name if condition.name[:1] not in ("", ":") else ""
    return " ".join(part for part in (condition.source.value, named, condition.kind.value,
                                      condition.value) if part)


def _rate_limit_lines(snapshot: MeshSnapshot, service: Service) -> list[str]:
    attached = for_service(rate_limit_policies(snapshot), service.namespace, service.name,
                           service.name)
    lines = []
    for policy in attached.policies:
        lines.append(f"{policy.key.kind} {policy.key.namespace}/{policy.key.name} "
                     f"({policy.mode.value})")
        for rule in policy.rules:
            when = ", ".join(_condition(c) for c in rule.conditions) or "every request"
            lines.append(f"  rule {rule.index}: {rule.requests} per {rule.unit.lower()} "
                         f"when {when}{' (shadow mode)' if rule.shadow else ''}")
    return lines


def _service_sections(page: Page, snapshot: MeshSnapshot, service: Service,
                      workload: Workload | None) -> None:
    title = f"Service {service.hostname}"
    page.section(f"{title}: ports").lines += [
        f"{p.number}/{p.protocol} ({p.name})"
        + (f" -> target port {p.target_port}" if p.target_port else "") for p in service.ports]
    routes = page.section(f"{title}: VirtualServices and routes that route to it")
    for vs in virtual_services_for(snapshot, service):
        routes.lines += _route_lines(snapshot, vs, service)
    routes.lines += [ref(r) for r in http_routes_for(snapshot, service)]
    page.section(f"{title}: DestinationRule").lines += _destination_rule_lines(
        snapshot, service, workload)
    page.section(f"{title}: rate limits").lines += _rate_limit_lines(snapshot, service)


# --- what applies to a workload ----------------------------------------------------------

def _peer_authentication(snapshot: MeshSnapshot, workload: Workload,
                         port: int) -> tuple[str, str]:
    """The mode on `port` and which resource decided it, by Istio's precedence: the mesh's
    (root namespace, no selector), then the namespace's, then the workload's (port level
    first); the first by name at each level."""
    def unselected(namespace: str) -> list[Resource[Any]]:
        return [r for r in snapshot.of_kind(SECURITY, "PeerAuthentication", namespace)
                if not (spec(r).get("selector") or {}).get("matchLabels")]

    selected = [r for r in snapshot.of_kind(SECURITY, "PeerAuthentication", workload.namespace)
                if (labels := (spec(r).get("selector") or {}).get("matchLabels"))
                and matches(dict(labels), workload.label_map)]
    mode, decided = "PERMISSIVE", "nothing sets it: Istio's default"
    for policies, at_port in ((unselected(ROOT_NAMESPACE), False),
                              (unselected(workload.namespace), False), (selected, True)):
        if not policies:
            continue
        body = spec(policies[0])
        port_mode = ((body.get("portLevelMtls") or {}).get(str(port)) or {}).get("mode")
        level_mode = (body.get("mtls") or {}).get("mode")
        if at_port and port_mode and port_mode != "UNSET":
            mode, decided = port_mode, ref(policies[0]) + f" portLevelMtls {port}"
        elif level_mode and level_mode != "UNSET":
            mode, decided = level_mode, ref(policies[0])
    return mode, decided


def authorization_lines(snapshot: MeshSnapshot, workload: Workload) -> list[str]:
    found = applicable_policies(snapshot, proxy_of(workload))
    by_action: dict[str, list[Resource[Any]]] = {a: [] for a in ACTION_ORDER}
    for policy in found:
        by_action.setdefault(str(spec(policy).get("action") or "ALLOW"), []).append(policy)
    lines = []
    for action in ACTION_ORDER:
        for policy in by_action[action]:
            dry = policy.metadata.annotations.get(DRY_RUN_ANNOTATION, "").lower() in (
                "true", "1", "t")
            provider = (spec(policy).get("provider") or {}).get("name")
            lines.append(f"{action}{' (dry-run: logged, not enforced)' if dry else ''} "
                         f"{ref(policy)}{' provider ' + provider if provider else ''}")
            rules = spec(policy).get("rules")
            if rules is None:
                lines.append("  no rules: " + ("allows nothing (denies every request)"
                                               if action == "ALLOW" else "matches nothing"))
            for index, rule in enumerate(rules or []):
                lines.append(f"  rule[{index}]: {compact(rule) if rule else 'every request'}")
    if not by_action["ALLOW"] and found:
        lines.append("no ALLOW policy: what no DENY policy refuses is allowed")
    return lines


def describe_workload(snapshot: MeshSnapshot, workload: Workload) -> Page:
    proxy = proxy_of(workload)
    page = Page(f"Workload {workload.name}.{workload.namespace}")
    page.section("Workload").lines += [
        f"address {workload.address}, service account {workload.service_account} "
        f"({spiffe_id(workload.namespace, workload.service_account)})",
        f"labels {compact(workload.label_map)}",
        "ready" if workload.ready else "NOT ready: its services send it no traffic"]
    services = services_of(snapshot, workload)
    page.section("Services it serves").lines += [
        f"{s.hostname} ports {', '.join(str(p.number) for p in s.ports)}" for s in services]
    for service in services:
        _service_sections(page, snapshot, service, workload)
    ports = sorted({p.target_port or p.number for s in services for p in s.ports})
    mtls = page.section("PeerAuthentication (mTLS mode per port)")
    for port in ports or [0]:
        mode, decided = _peer_authentication(snapshot, workload, port)
        mtls.lines.append(f"{'port ' + str(port) if port else 'workload'}: {mode} ({decided})")
    page.section("AuthorizationPolicies, in evaluation order").lines += authorization_lines(
        snapshot, workload)
    page.section("RequestAuthentications").lines += [
        ref(r) + " issuers " + compact([j.get("issuer") for j in spec(r).get("jwtRules") or []])
        for r in applicable_policies(snapshot, proxy, "RequestAuthentication")]
    sidecar = sidecar_for(snapshot, proxy)
    page.section("Sidecar").lines.append(
        ref(sidecar) if sidecar is not None else "none: the proxy sees every exported service")
    page.section("Telemetry").lines += [ref(r) for r in applicable(snapshot, proxy).levels]
    page.section("EnvoyFilters").lines += [
        ref(r) for namespace in dict.fromkeys([ROOT_NAMESPACE, workload.namespace])
        for r in snapshot.selecting(NETWORKING, "EnvoyFilter", namespace, workload.label_map)]
    return page


def describe_service(snapshot: MeshSnapshot, service: Service) -> Page:
    page = Page(f"Service {service.hostname}")
    behind = page.section("Workloads behind it")
    for workload in snapshot.registry.workloads_of(service):
        behind.lines.append(f"{workload.name} {workload.address} labels "
                            f"{compact(workload.label_map)}"
                            + ("" if workload.ready else " (NOT ready)"))
    _service_sections(page, snapshot, service, None)
    return page



__all__ = ["Section", "describe", "describe_service", "describe_workload"]
