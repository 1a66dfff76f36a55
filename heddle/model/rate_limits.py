"""Rate limits as one model, whichever API wrote them: a policy is its targets and its rules;
a rule is the conditions a request must meet (each a descriptor entry Envoy computes), the
limit and what a request costs. Envoy Gateway's BackendTrafficPolicy is read here; every
other front door (Kuadrant's RateLimitPolicy, ...) comes to the same `LimitPolicy`.

Where a policy acts: on a Gateway (every route of its gateway proxy), on an HTTPRoute or a
GRPCRoute (the Envoy routes made from its rules), or on a Service (the inbound side of the
sidecars of its workloads, for mesh traffic). A policy on a route replaces the policy on the
route's Gateway, unless it sets `mergeType` (then both apply), as in Envoy Gateway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from heddle.api.models import BackendTrafficPolicySpec
from heddle.api.resource import Resource, ResourceKey
from heddle.api.specs import spec_of
from heddle.model.gateway_api.convert import generation_of

if TYPE_CHECKING:
    from heddle.model.snapshot import MeshSnapshot

BTP_GROUP = "gateway.envoyproxy.io"
BTP_KIND = "BackendTrafficPolicy"
GATEWAY_GROUP = "gateway.networking.k8s.io"
# `lease` on a BackendTrafficPolicy: its global rules are enforced from quota the rate-limit
# service leases each proxy (RLQS), not by a call per request.
MODE_ANNOTATION = "heddle.dev/rate-limit-mode"
LEASE = "lease"
# envoyproxy/ratelimit's units (its config says them in capitals).
UNITS = {"Second": "SECOND", "Minute": "MINUTE", "Hour": "HOUR", "Day": "DAY",
         "Week": "WEEK", "Month": "MONTH", "Year": "YEAR"}
UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400, "WEEK": 604800,
                "MONTH": 2592000, "YEAR": 31536000}


class Mode(StrEnum):
    LOCAL = "Local"  # a token bucket in each proxy
    GLOBAL = "Global"  # counted by the rate-limit service, shared by every proxy


class Source(StrEnum):
    HEADER = "header"
    QUERY = "query"
    METHOD = "method"
    PATH = "path"
    SOURCE_CIDR = "sourceCIDR"
    EXPR = "expr"  # a CEL expression Envoy evaluates (`name`): its value is the entry's


class MatchKind(StrEnum):
    EXACT = "exact"
    PREFIX = "prefix"
    REGEX = "regex"
    DISTINCT = "distinct"  # every value its own bucket


@dataclass(frozen=True)
class Condition:
    """One thing a request must have for a rule to count it."""

    source: Source
    kind: MatchKind
    name: str = ""  # the header's or query parameter's; an expression's CEL text
    value: str = ""  # what an exact, prefix or regex match compares with; a CIDR
    invert: bool = False

    @property
    def prefix_length(self) -> int:
        """A source CIDR's mask length."""
        return ipaddress.ip_network(self.value or "0.0.0.0/0", strict=False).prefixlen

    @property
    def is_ipv6(self) -> bool:
        return ipaddress.ip_network(self.value or "0.0.0.0/0", strict=False).version == 6


@dataclass(frozen=True)
class LimitRule:
    index: int
    conditions: tuple[Condition, ...]
    requests: int
    unit: str  # one of UNIT_SECONDS
    cost: int = 1
    shadow: bool = False  # counted and logged, never refused
    shared: bool = False  # one bucket across every target, not one per route
    headers: bool = True  # x-ratelimit-limit / -remaining / -reset on answers
    name: str = ""  # the limit's own name, where the API names limits (and merges by name)
    # A local bucket's window when it is not one unit (a Kuadrant window such as 10s).
    window_ms: int = 0

    @property
    def window_seconds(self) -> int:
        return UNIT_SECONDS[self.unit]

    @property
    def fill_interval_ms(self) -> int:
        return self.window_ms or self.window_seconds * 1000


@dataclass(frozen=True)
class Target:
    group: str
    kind: str
    namespace: str
    name: str
    section: str = ""


@dataclass(frozen=True)
class LimitPolicy:
    key: ResourceKey
    mode: Mode
    targets: tuple[Target, ...]
    rules: tuple[LimitRule, ...]
    merges: bool = False  # a route's policy that adds its Gateway's rules to its own
    overrides: bool = False  # Kuadrant: beats the policies of more specific targets
    leased: bool = False  # global rules from leased quota (MODE_ANNOTATION), not per request

    @property
    def ref(self) -> str:
        """How logs, status and the rate-limit service's descriptors name the policy: a
        BackendTrafficPolicy by namespace/name, another kind with its kind first, so that
        two kinds' policies of one name never share a rule's name."""
        own = f"{self.key.namespace}/{self.key.name}"
        return own if self.key.kind == BTP_KIND else f"{self.key.kind}/{own}"


def _conditions(selector: Any) -> list[Condition]:
    found: list[Condition] = []
    kinds = {"Exact": MatchKind.EXACT, "RegularExpression": MatchKind.REGEX,
             "Distinct": MatchKind.DISTINCT, "PathPrefix": MatchKind.PREFIX}
    for header in selector.headers or []:
        found.append(Condition(Source.HEADER, kinds[str(header.type or "Exact")],
                               header.name.lower(), header.value or "", bool(header.invert)))
    for query in selector.queryParams or []:
        found.append(Condition(Source.QUERY, kinds[str(query.type or "Exact")], query.name,
                               query.value or "", bool(query.invert)))
    for method in selector.methods or []:
        found.append(Condition(Source.METHOD, MatchKind.EXACT, ":method", str(method.value),
                               bool(method.invert)))
    if selector.path is not None:
        path = selector.path
        found.append(Condition(Source.PATH, kinds[str(path.type or "PathPrefix")], ":path",
                               path.value or "/", bool(path.invert)))
    if selector.sourceCIDR is not None:
        cidr = selector.sourceCIDR
        # As Envoy writes a masked address: host bits cleared, IPv6 compressed, a length.
        network = str(ipaddress.ip_network(cidr.value or "0.0.0.0/0", strict=False))
        found.append(Condition(Source.SOURCE_CIDR, kinds[str(cidr.type or "Exact")],
                               value=network, invert=bool(cidr.invert)))
    return found


def _rules(rules: Iterable[Any]) -> tuple[LimitRule, ...]:
    found = []
    for i, rule in enumerate(rules):
        conditions = [c for selector in rule.clientSelectors or [] for c in _conditions(selector)]
        request = rule.cost.request if rule.cost is not None else None
        found.append(LimitRule(
            i, tuple(conditions), int(rule.limit.requests or 0),
            UNITS[str(rule.limit.unit)],
            cost=int(request.number) if request is not None and request.number is not None else 1,
            shadow=bool(rule.shadowMode), shared=bool(rule.shared),
            headers=str(rule.xRateLimitHeaders or "DraftVersion03") != "Off"))
    return tuple(found)


def _targets(resource: Resource[Any], spec: BackendTrafficPolicySpec) -> tuple[Target, ...]:
    refs = [*(spec.targetRefs or []), *([spec.targetRef] if spec.targetRef else [])]
    return tuple(Target(ref.group, ref.kind, resource.namespace, ref.name,
                        str(getattr(ref, "sectionName", None) or "")) for ref in refs)


def from_backend_traffic_policy(resource: Resource[Any]) -> list[LimitPolicy]:
    """One policy per mode the resource sets (Local and Global may both be present)."""
    spec = spec_of(resource, BackendTrafficPolicySpec)
    if spec.rateLimit is None:
        return []
    targets = _targets(resource, spec)
    merges = spec.mergeType is not None
    leases = resource.metadata.annotations.get(MODE_ANNOTATION) == LEASE
    found = []
    if spec.rateLimit.local is not None and spec.rateLimit.local.rules:
        found.append(LimitPolicy(resource.key, Mode.LOCAL, targets,
                                 _rules(spec.rateLimit.local.rules), merges))
    if spec.rateLimit.global_ is not None and spec.rateLimit.global_.rules:
        found.append(LimitPolicy(resource.key, Mode.GLOBAL, targets,
                                 _rules(spec.rateLimit.global_.rules), merges,
                                 leased=leases))
    return found


def limit_policies(resources: Iterable[Resource[Any]]) -> tuple[LimitPolicy, ...]:
    """Every rate-limit policy among `resources` (those of the rate-limit kinds), oldest
    first so that precedence between policies is stable."""
    found: list[LimitPolicy] = []
    for resource in resources:
        if (resource.key.group, resource.kind) == (BTP_GROUP, BTP_KIND):
            found += from_backend_traffic_policy(resource)
    return tuple(found)


@dataclass(frozen=True)
class Attachment:
    """The policies that act on one place (a route of a gateway, or a sidecar's inbound
    port), in order: the route's own, then (merged, or for lack of one) its Gateway's."""

    policies: tuple[LimitPolicy, ...]
    # What a rule's bucket is named after when it is not shared: the place's own name.
    place: str

    def of_mode(self, mode: Mode) -> list[tuple[LimitPolicy, LimitRule]]:
        return [(p, r) for p in self.policies if p.mode is mode for r in p.rules]


def _targets_any(policy: LimitPolicy, group: str, kind: str, namespace: str,
                 name: str) -> bool:
    return any((t.group, t.kind, t.namespace, t.name) == (group, kind, namespace, name)
               for t in policy.targets)


def for_route(policies: Iterable[LimitPolicy], origin: tuple[str, str, str] | None,
              gateway: tuple[str, str] | None, place: str) -> Attachment:
    """The policies on an Envoy route of a gateway: `origin` (kind, namespace, name) is the
    Gateway API route it was made from, if any; `gateway` the Gateway API Gateway (namespace,
    name) the gateway proxy runs for, if any. Per mode, a route's own policy replaces the
    Gateway's unless it merges."""
    chosen: list[LimitPolicy] = []
    policies = tuple(policies)
    for mode in Mode:
        own = [p for p in policies if p.mode is mode and origin is not None
               and _targets_any(p, GATEWAY_GROUP, *origin)]
        on_gateway = [p for p in policies if p.mode is mode and gateway is not None
                      and _targets_any(p, GATEWAY_GROUP, "Gateway", *gateway)]
        chosen += own
        if not own or all(p.merges for p in own):
            chosen += [p for p in on_gateway if p not in chosen]
    return Attachment(tuple(chosen), place)


def for_service(policies: Iterable[LimitPolicy], namespace: str, name: str,
                place: str) -> Attachment:
    """The policies on the inbound side of a workload of Service namespace/name."""
    return Attachment(tuple(p for p in policies if _targets_any(p, "", "Service", namespace, name)
                            or _targets_any(p, "networking.istio.io", "ServiceEntry",
                                            namespace, name)), place)


CONTROLLER = "heddle.dev/gateway-controller"


def _target_exists(snapshot: MeshSnapshot, target: Target) -> bool:
    if target.kind == "Service" and target.group == "":
        return any(s.namespace == target.namespace and s.name == target.name
                   for s in snapshot.registry.services)
    return snapshot.get(target.group, target.kind, target.namespace, target.name) is not None


def policy_status(snapshot: MeshSnapshot, resource: Resource[Any]) -> dict[str, Any] | None:
    """A rate-limit policy's status as Envoy Gateway writes it (GEP-713 ancestors): per
    target, Accepted, or not with TargetNotFound."""
    if (resource.key.group, resource.kind) != (BTP_GROUP, BTP_KIND):
        return None
    ancestors = []
    for target in _targets(resource, spec_of(resource, BackendTrafficPolicySpec)):
        found = _target_exists(snapshot, target)
        ref: dict[str, Any] = {"group": target.group, "kind": target.kind,
                               "namespace": target.namespace, "name": target.name}
        if target.section:
            ref["sectionName"] = target.section
        ancestors.append({"ancestorRef": ref, "controllerName": CONTROLLER, "conditions": [{
            "type": "Accepted", "status": "True" if found else "False",
            "reason": "Accepted" if found else "TargetNotFound",
            "message": "Policy has been accepted." if found else
            f"{target.kind} {target.namespace}/{target.name} does not exist",
            "observedGeneration": generation_of(resource)}]})
    return {"ancestors": ancestors}
