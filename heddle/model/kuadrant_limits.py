"""Kuadrant's RateLimitPolicy (kuadrant.io/v1) as Heddle's one limit model.

Each limit's rate is a rule; its `when` predicates (and the policy's own) are expression
conditions whose value must be "true"; its counters are expression conditions of which every
value is its own bucket. Kuadrant counts in Limitador, shared by every gateway replica, so a
policy is Global (Heddle's rate-limit service); the annotation `heddle.dev/rate-limit-mode:
Local` makes it token buckets in each proxy instead, which take any window. A Global window
must be one of envoyproxy/ratelimit's units (1s, 1m, 1h, 24h, 168h, 720h, 8760h): the
semantic checks reject any other with the limit rescaled as the fix.

Which policies act on a gateway route is Kuadrant's defaults-and-overrides: from the most
specific target (a route's rule, the route, the Gateway's listener, the Gateway) to the
least, each policy is merged into what the more specific ones made: defaults keep it
(`atomic`) or add the limits it lacks by name (`merge`); overrides replace it (`atomic`) or
replace the limits of the same names (`merge`). Policies of one target: the oldest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from heddle.api.kuadrant_cel import envoy_text
from heddle.api.kuadrant_windows import exact_unit, is_local, window_ms
from heddle.api.models import RateLimitPolicySpec
from heddle.api.resource import Resource
from heddle.api.specs import spec_of
from heddle.model.rate_limits import (
    Condition,
    LimitPolicy,
    LimitRule,
    MatchKind,
    Mode,
    Source,
    Target,
)

KUADRANT_GROUP = "kuadrant.io"
KIND = "RateLimitPolicy"


def mode_of(annotations: Mapping[str, str]) -> Mode:
    return Mode.LOCAL if is_local(annotations) else Mode.GLOBAL


def _predicates(items: Iterable[Any] | None) -> list[Condition]:
    return [Condition(Source.EXPR, MatchKind.EXACT, envoy_text(item.predicate), "true")
            for item in items or []]


def _rules(limits: dict[str, Any], overall: list[Condition], mode: Mode,
           ) -> tuple[LimitRule, ...]:
    found: list[LimitRule] = []
    for name, limit in limits.items():
        conditions = [*overall, *_predicates(limit.when)]
        conditions += [Condition(Source.EXPR, MatchKind.DISTINCT, envoy_text(c.expression))
                       for c in limit.counters or []]
        for rate in limit.rates or []:
            unit = exact_unit(rate.window)
            if unit is None and mode is Mode.GLOBAL:
                continue  # the semantic checks refused it already
            # One bucket per rule, whichever route it counts on: as Limitador counts a limit.
            found.append(LimitRule(
                len(found), tuple(conditions), rate.limit, unit or "SECOND", shared=True,
                name=name, window_ms=0 if unit else window_ms(rate.window)))
    return tuple(found)


def from_rate_limit_policy(resource: Resource[Any]) -> LimitPolicy | None:
    spec = spec_of(resource, RateLimitPolicySpec)
    block: Any = spec.overrides or spec.defaults
    ref = spec.targetRef
    target = Target(ref.group, ref.kind, resource.namespace, ref.name, ref.sectionName or "")
    mode = mode_of(resource.metadata.annotations)
    overall = _predicates([*(spec.when or []), *((block.when or []) if block else [])])
    rules = _rules(dict((block.limits if block else spec.limits) or {}), overall, mode)
    if not rules:
        return None
    return LimitPolicy(resource.key, mode, (target,), rules,
                       merges=block is not None and str(block.strategy or "") == "merge",
                       overrides=spec.overrides is not None)


def kuadrant_policies(resources: Iterable[Resource[Any]]) -> tuple[LimitPolicy, ...]:
    """Oldest first, as the snapshot orders them: the order of precedence among policies
    of one target."""
    return tuple(p for r in resources if (p := from_rate_limit_policy(r)) is not None)


@dataclass(frozen=True)
class RoutePlace:
    """Where a gateway's Envoy route sits in the Gateway API: its Gateway and listener,
    and the route (kind, namespace, name) and rule it was made from."""

    gateway: tuple[str, str] | None
    listener: str
    route: tuple[str, str, str] | None
    rule: str


def _specificity(policy: LimitPolicy, place: RoutePlace) -> int | None:
    """3 for a route's rule, 2 the route, 1 a Gateway's listener, 0 the Gateway; None if
    the policy is not on this place."""
    levels = []
    for t in policy.targets:
        if t.kind == "Gateway":
            on_it = place.gateway == (t.namespace, t.name) and t.section in ("", place.listener)
            base = 0
        else:
            on_it = place.route == (t.kind, t.namespace, t.name) and t.section in ("", place.rule)
            base = 2
        if on_it:
            levels.append(base + bool(t.section))
    return max(levels) if levels else None


def acting_on(policies: Iterable[LimitPolicy], place: RoutePlace) -> tuple[LimitPolicy, ...]:
    """The Kuadrant policies on `place`, each cut to the limits that survive the merge."""
    ranked = sorted(((level, i, p) for i, p in enumerate(policies)
                     if (level := _specificity(p, place)) is not None),
                    key=lambda item: (-item[0], item[1]))
    chosen: list[tuple[LimitPolicy, LimitRule]] | None = None
    for _, _, policy in ranked:
        own = [(policy, rule) for rule in policy.rules]
        if chosen is None:
            chosen = own
            continue
        names = {rule.name for _, rule in own}
        have = {rule.name for _, rule in chosen}
        if policy.overrides:
            chosen = own + [c for c in chosen if c[1].name not in names] if policy.merges \
                else own
        elif policy.merges:
            chosen += [c for c in own if c[1].name not in have]
    by_policy: dict[int, list[LimitRule]] = {}
    policies_seen: dict[int, LimitPolicy] = {}
    for policy, rule in chosen or []:
        by_policy.setdefault(id(policy), []).append(rule)
        policies_seen[id(policy)] = policy
    return tuple(replace(policies_seen[k], rules=tuple(rules)) for k, rules in by_policy.items())
