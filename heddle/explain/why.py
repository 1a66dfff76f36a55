"""`heddle explain`: why a request failed, in plain words.

Two ways in: a line of a workload's access log (what Envoy did: its response flags, the
deciding AuthorizationPolicy in `response_code_details`, Heddle's `ratelimit=` field), or a
described request from one workload to a host (what Envoy would do, by the traffic
simulator and the RBAC evaluator over the translated configuration). Either way the
configuration or endpoint state behind the outcome is named: the route and VirtualService,
a subset no DestinationRule defines (NC), a cluster without endpoints (UH), the policy and
rule of a 403, the rate-limit policy and rule of a 429."""

from __future__ import annotations

import re
from typing import Any

from envoy.config.endpoint.v3 import endpoint_pb2

from heddle.api.resource import Resource
from heddle.explain.describe import NETWORKING, SECURITY, compact, ref, spec
from heddle.explain.flags import decode
from heddle.explain.page import Page, Section
from heddle.explain.rbac import Request, evaluate
from heddle.explain.subjects import proxy_of, services_of, spiffe_of
from heddle.explain.traffic import Call, Error, Result, simulate
from heddle.model.destination_rules import destination_rule
from heddle.model.rate_limits import for_service
from heddle.model.selectors import matches
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Workload
from heddle.translate import ports
from heddle.translate.authz import applicable_policies, http_rbac_filters
from heddle.translate.mtls import peer_authentication_mode
from heddle.translate.rate_limits import policies as rate_limit_policies
from heddle.translate.rate_limits import rule_id
from heddle.translate.sidecar import CLUSTER, ENDPOINT, ProxyResources, sidecar_resources

_POLICY = re.compile(r"ns\[([^\]]*)\]-policy\[([^\]]*)\]-rule\[(\d+)\]")
_ROUTE_NAME = re.compile(r"([^.]+)\.([^.]+)\.(\d+)(?:\.\d+)?")
# Flags that say the client side's routing or upstream state is behind the failure.
_ROUTING_FLAGS = {"NR", "NC", "UH", "UF", "UO", "URX", "UT", "FI", "DI", "UC", "UR", "DF"}


def _field(entry: dict[str, str], key: str) -> str:
    value = entry.get(key, "-")
    return "" if value.strip("-:") == "" else value


# --- AuthorizationPolicy ----------------------------------------------------------------

def _policy_rule(snapshot: MeshSnapshot, name: str, section: Section,
                 facts: dict[str, Any]) -> str:
    """A translated policy name `ns[NS]-policy[NAME]-rule[N]`: the resource and its rule."""
    found = _POLICY.fullmatch(name)
    if found is None:
        section.lines.append(f"policy {name!r}")
        return name
    namespace, policy_name, index = found.group(1), found.group(2), int(found.group(3))
    facts.update(policy=f"{namespace}/{policy_name}", rule=index)
    policy = snapshot.get(SECURITY, "AuthorizationPolicy", namespace, policy_name)
    if policy is None:
        section.lines.append(f"AuthorizationPolicy {namespace}/{policy_name} rule[{index}] "
                             "(no longer in the configuration)")
        return f"AuthorizationPolicy {namespace}/{policy_name} rule[{index}]"
    action = spec(policy).get("action") or "ALLOW"
    rules = spec(policy).get("rules") or []
    rule = rules[index] if index < len(rules) else {}
    section.lines.append(f"{action} {ref(policy)}")
    section.lines.append(f"  rule[{index}]: {compact(rule) if rule else 'every request'}")
    return f"AuthorizationPolicy {namespace}/{policy_name} ({action}) rule[{index}]"


def _rbac_denial(snapshot: MeshSnapshot, workload: Workload, details: str, page: Page,
                 ) -> str:
    section = page.section("Authorization")
    inner = details.removeprefix("rbac_access_denied_matched_policy[").removesuffix("]")
    if inner != "none":
        what = _policy_rule(snapshot, inner, section, page.facts)
        section.lines.append("the request matched this DENY rule, so the sidecar refused it "
                             "(403 RBAC: access denied)")
        return f"denied by {what}"
    allow = [p for p in applicable_policies(snapshot, proxy_of(workload))
             if (spec(p).get("action") or "ALLOW") == "ALLOW"]
    section.lines.append("no ALLOW rule matched: where any ALLOW policy applies, a request "
                         "must match one of its rules")
    section.lines += [ref(p) for p in allow]
    page.facts["policy"] = "none"
    return "denied: no ALLOW policy's rule matched it (" + ", ".join(
        f"{p.namespace}/{p.name}" for p in allow) + ")"


# --- rate limits ------------------------------------------------------------------------

def _rate_limited(snapshot: MeshSnapshot, workload: Workload, named: str, page: Page) -> str:
    section = page.section("Rate limit")
    found = [(p, r) for p in rate_limit_policies(snapshot) for r in p.rules
             if rule_id(p, r) in named]
    if not found:  # an older line, or the rate-limit service's own: the candidates
        found = [(p, r) for s in services_of(snapshot, workload)
                 for p in for_service(rate_limit_policies(snapshot), s.namespace, s.name,
                                      s.name).policies for r in p.rules]
        section.lines.append("the log names no rule; the rules that act on this workload:")
    for policy, rule in found:
        section.lines.append(f"{policy.key.kind} {policy.key.namespace}/{policy.key.name} "
                             f"({policy.mode.value}) rule {rule.index}: {rule.requests} "
                             f"requests per {rule.unit.lower()}")
    if not found:
        return "rate limited, by no rule Heddle knows of"
    policy, rule = found[0]
    page.facts.update(rate_limit_policy=f"{policy.key.namespace}/{policy.key.name}",
                      rate_limit_rule=rule.index)
    return (f"rate limited by {policy.key.kind} {policy.key.namespace}/{policy.key.name} "
            f"rule {rule.index} ({rule.requests} per {rule.unit.lower()}, "
            f"{policy.mode.value.lower()})")


# --- routing ----------------------------------------------------------------------------

def _virtual_service_of(snapshot: MeshSnapshot, route: str) -> tuple[Resource[Any], int] | None:
    found = _ROUTE_NAME.fullmatch(route)
    if found is None:
        return None
    vs = snapshot.get(NETWORKING, "VirtualService", found.group(1), found.group(2))
    return (vs, int(found.group(3))) if vs is not None else None


def _missing_cluster(snapshot: MeshSnapshot, source: Workload, cluster: str, page: Page,
                     section: Section) -> str:
    parts = cluster.split("|")
    if len(parts) != 4:
        section.lines.append(f"cluster {cluster} is not among the proxy's clusters")
        return f"the route names cluster {cluster}, which the proxy does not have (NC)"
    _, port, subset, host = parts
    service = snapshot.registry.service(host)
    if service is None:
        section.lines.append(f"no ServiceEntry or Service defines host {host}")
        return f"no service {host} (NC): define it, or route elsewhere"
    rule = destination_rule(snapshot, host, service.namespace, source.namespace,
                            source.label_map)
    if subset and (rule is None or rule.subset(subset) is None):
        page.facts["missing_subset"] = subset
        page.facts["destination_rule"] = list(rule.names) if rule else []
        if rule is None:
            section.lines.append(f"subset {subset!r} of {host}: no DestinationRule for the "
                                 "host defines any subset")
            fix = f"add a DestinationRule for {host} with subset {subset}"
        else:
            known = ", ".join(s.name for s in rule.subsets) or "none"
            section.lines.append(f"subset {subset!r} of {host} is not defined: DestinationRule "
                                 f"{', '.join(rule.names)} has subsets {known}")
            fix = (f"add subset {subset} to DestinationRule {rule.names[0]}, or route to "
                   f"one of {known}")
        return f"the route sends to subset {subset} of {host}, which no DestinationRule " \
               f"defines, so the proxy has no cluster for it (NC); {fix}"
    if service.port(int(port)) is None:
        section.lines.append(f"{host} has no port {port}")
        return f"the route sends to port {port} of {host}, which the service lacks (NC)"
    section.lines.append(f"cluster {cluster} is outside the proxy's scope (its Sidecar, or the "
                         "service's exportTo)")
    return f"{host} is not visible to {source.name} (NC)"


def _endpoints(resources: ProxyResources, cluster: str) -> list[str]:
    assignment = resources.of(ENDPOINT).get(cluster)
    if not isinstance(assignment, endpoint_pb2.ClusterLoadAssignment):
        return []
    return [f"{lb.endpoint.address.socket_address.address}:"
            f"{lb.endpoint.address.socket_address.port_value}"
            for group in assignment.endpoints for lb in group.lb_endpoints]


def _no_endpoints(snapshot: MeshSnapshot, cluster: str, section: Section) -> str:
    _, _, subset, host = [*cluster.split("|"), "", "", "", ""][:4]
    service = snapshot.registry.service(host)
    if service is None:
        return f"cluster {cluster} has no endpoints (UH)"
    behind = snapshot.registry.workloads_of(service)
    labels: dict[str, str] = {}
    if subset:
        rule = destination_rule(snapshot, host, service.namespace)
        found = rule.subset(subset) if rule else None
        labels = dict(found.labels) if found else {}
        section.lines.append(f"subset {subset} selects {compact(labels)}; workloads of "
                             f"{host}: " + (", ".join(f"{w.name} {compact(w.label_map)}"
                                                      for w in behind) or "none"))
    chosen = [w for w in behind if matches(labels, w.label_map)]
    unready = [w.name for w in chosen if not w.ready]
    if not chosen:
        return (f"no workload of {host} has the labels of subset {subset} "
                f"{compact(labels)}: the cluster has no endpoints (UH)" if subset else
                f"no workload serves {host}: the cluster has no endpoints (UH)")
    return (f"the workloads of {cluster} are not ready ({', '.join(unready)}), so it has no "
            "endpoint (UH)")


def _route(snapshot: MeshSnapshot, source: Workload, call: Call, page: Page,
           observed_flags: set[str]) -> tuple[str, Result, ProxyResources]:
    resources = sidecar_resources(snapshot, proxy_of(source))
    result = simulate(resources, call)
    section = page.section(f"Routing in {source.name}'s sidecar ({call.method} "
                           f"{call.host_header}{call.path})")
    if result.error is not None:
        section.lines.append(f"{result.error}: {result.reason}")
        page.facts["route"] = None
        if result.error in (Error.NO_ROUTE, Error.NO_VIRTUAL_HOST):
            return (f"no route matches it ({result.reason}) (NR, 404)", result, resources)
        return f"{result.error}: {result.reason}", result, resources
    route = result.route or ""
    page.facts["route"] = route
    origin = _virtual_service_of(snapshot, route)
    if origin is not None:
        vs, index = origin
        http = (spec(vs).get("http") or [])
        rule = http[index] if index < len(http) else {}
        page.facts["virtual_service"] = f"{vs.namespace}/{vs.name}"
        section.lines.append(f"route {route}: {ref(vs)} http[{index}]")
        section.lines.append(f"  {compact(rule)}")
    else:
        section.lines.append(f"route {route or '(unnamed)'}: the service's default route "
                             "(no VirtualService)")
    if result.status is not None:
        return f"the route answers {result.status} itself", result, resources
    summaries = []
    for cluster in result.clusters:
        page.facts.setdefault("clusters", []).append(cluster)
        if cluster not in resources.of(CLUSTER):
            section.lines.append(f"cluster {cluster}: NOT in the proxy's configuration")
            summaries.append(_missing_cluster(snapshot, source, cluster, page, section))
            continue
        endpoints = _endpoints(resources, cluster)
        section.lines.append(f"cluster {cluster}: endpoints {', '.join(endpoints) or 'NONE'}")
        if not endpoints:
            summaries.append(_no_endpoints(snapshot, cluster, section))
        elif observed_flags & {"UH", "UF", "URX", "UO"}:
            _, _, _, host = [*cluster.split("|"), "", "", "", ""][:4]
            service = snapshot.registry.service(host)
            rule = destination_rule(snapshot, host, service.namespace) if service else None
            policy = rule.traffic_policy.model_dump(mode="json", exclude_none=True) \
                if rule and rule.traffic_policy else {}
            outlier = policy.get("outlierDetection")
            if outlier:
                section.lines.append(f"DestinationRule {', '.join(rule.names) if rule else ''} "
                                     f"ejects failing hosts: outlierDetection {compact(outlier)}")
            if policy.get("connectionPool"):
                section.lines.append(f"connectionPool {compact(policy['connectionPool'])} "
                                     "(circuit breaking: UO)")
    return "; ".join(summaries), result, resources


# --- the two ways in --------------------------------------------------------------------

def _header(page: Page, entry: dict[str, str], workload: Workload, outbound: bool) -> None:
    section = page.section("The access log line")
    if outbound:
        section.lines.append(f"outbound: {workload.name} sent it through its sidecar")
    else:
        peer = _field(entry, "downstream_peer") or _field(entry, "downstream_remote_address")
        section.lines.append(f"inbound: {workload.name}'s sidecar received it from "
                             f"{peer or 'an unknown peer'}")
    for key in ("response_code_details", "connection_termination_details",
                "upstream_transport_failure_reason", "route_name", "upstream_cluster",
                "upstream_host", "ratelimit"):
        value = _field(entry, key).strip(":")
        if value:
            section.lines.append(f"{key}: {value}")
    flags = page.section("Response flags")
    flags.lines += [f"{flag}: {meaning}" for flag, meaning in
                    decode(entry.get("response_flags", "-"))]


def explain_entry(snapshot: MeshSnapshot, workload: Workload, entry: dict[str, str]) -> Page:
    """Why the request of access log line `entry` (parsed by heddle.explain.log_lines),
    logged by `workload`'s sidecar, ended as it did."""
    code = entry.get("response_code", "0")
    flags = {f for f in entry.get("response_flags", "-").split(",") if f and f != "-"}
    details = _field(entry, "response_code_details")
    authority = _field(entry, "authority")
    path = _field(entry, "path") or "/"
    method = _field(entry, "method") or "GET"
    outbound = (entry.get("downstream_local_address", "").endswith(f":{ports.OUTBOUND}")
                or entry.get("upstream_cluster", "").startswith("outbound|"))
    page = Page(f'{workload.name}.{workload.namespace}: "{method} {authority}{path}" -> '
                f'{code} {entry.get("response_flags", "-")}')
    page.facts.update(code=int(code) if code.isdigit() else 0, flags=sorted(flags))
    _header(page, entry, workload, outbound)
    reasons = []
    if details.startswith("rbac_access_denied_matched_policy["):
        reasons.append(_rbac_denial(snapshot, workload, details, page))
    if "RL" in flags or code == "429":
        reasons.append(_rate_limited(snapshot, workload, entry.get("ratelimit", ""), page))
    if "UAEX" in flags:
        custom = [p for p in applicable_policies(snapshot, proxy_of(workload))
                  if spec(p).get("action") == "CUSTOM"]
        reasons.append("denied by the external authorizer of " + (
            ", ".join(f"AuthorizationPolicy {p.namespace}/{p.name}" for p in custom)
            or "a CUSTOM policy"))
    if outbound and authority and (flags & _ROUTING_FLAGS or code.startswith("5")):
        host, _, port = authority.rpartition(":") if ":" in authority else (authority, "", "80")
        call = Call(host=host, port=int(port) if port.isdigit() else 80, path=path,
                    method=method)
        summary, _, _ = _route(snapshot, workload, call, page, flags)
        if summary:
            reasons.append(summary)
    if outbound and not reasons and not flags and code not in ("0", "200"):
        upstream = _field(entry, "upstream_host").rpartition(":")[0]
        answered = snapshot.registry.workload_at(workload.namespace, upstream)
        who = answered.name if answered else upstream or "the upstream"
        reasons.append(f"{who} answered {code} itself; its own log says why: `heddle explain "
                       f"{who} --last-failure`")
    if not reasons:  # nothing in the configuration explains it: the flags say what happened
        page.facts["from_flags_only"] = True
        reasons.append("; ".join(m for _, m in decode(entry.get("response_flags", "-")))
                       or f"the application answered {code}")
    page.summary = "; ".join(reasons)
    return page


def explain_request(snapshot: MeshSnapshot, source: Workload, call: Call,
                    destination: Workload | None = None) -> Page:
    """What would happen to `call` sent by `source` through its sidecar: its route and
    cluster, then, at the workload that would receive it (`destination` if given), the
    mTLS mode and the authorization filters' verdicts."""
    page = Page(f"{source.name}.{source.namespace}: {call.method} {call.host_header}{call.path}")
    summary, result, resources = _route(snapshot, source, call, page, set())
    if summary:
        page.summary = summary
        return page
    endpoints = [e for c in result.clusters for e in _endpoints(resources, c)]
    receivers = [w for e in endpoints
                 if (w := snapshot.registry.workload_at(source.namespace, e.rpartition(":")[0]))]
    if destination is not None:
        if destination not in receivers:
            page.summary = (f"the route does not reach {destination.name}: it goes to "
                            f"{', '.join(w.name for w in receivers) or 'no workload'}")
            return page
        receivers = [destination]
    verdicts = []
    for receiver in dict.fromkeys(receivers):
        port = int(endpoints[0].rpartition(":")[2]) if endpoints else call.port
        mode = peer_authentication_mode(snapshot, proxy_of(receiver), port)
        section = page.section(f"At {receiver.name}'s sidecar (port {port})")
        section.lines.append(f"mTLS mode {mode}; the peer is {spiffe_of(source)}")
        request = Request(call.method, call.path, call.host_header, port, dict(call.headers),
                          spiffe_of(source) if mode != "DISABLE" else "", source.address,
                          receiver.address)
        filters = [(name, config) for name, config in
                   http_rbac_filters(snapshot, proxy_of(receiver))]
        denied = ""
        for verdict in evaluate(filters, request):
            matched = ", ".join(verdict.matched) or "no rule"
            section.lines.append(f"{verdict.action}{' (dry-run)' if verdict.dry_run else ''}: "
                                 f"{matched} matched -> "
                                 f"{'DENIED' if verdict.denied else 'passes'}")
            if verdict.denied and not verdict.dry_run:
                inner = Section("")
                if verdict.matched:
                    denied = _policy_rule(snapshot, verdict.matched[0], inner, page.facts)
                    denied = f"{receiver.name} denies it (403): {denied}"
                else:
                    denied = f"{receiver.name} denies it (403): no ALLOW rule matched"
                    page.facts["policy"] = "none"
                section.lines += inner.lines
        for service in services_of(snapshot, receiver):
            for policy in for_service(rate_limit_policies(snapshot), service.namespace,
                                      service.name, service.name).policies:
                section.lines.append(f"rate limited by {policy.key.kind} "
                                     f"{policy.key.namespace}/{policy.key.name} when its "
                                     "buckets run dry (429, RL)")
        if denied:
            verdicts.append(denied)
    page.summary = "; ".join(verdicts) or (
        f"it would be routed to {', '.join(w.name for w in dict.fromkeys(receivers))} and "
        "allowed")
    return page
