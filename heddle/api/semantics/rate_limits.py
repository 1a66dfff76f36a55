"""What Heddle does with the rate-limit APIs users already have, checked before anything runs:
a field Heddle does not act on is an error naming it, never a silent no-op."""

from __future__ import annotations

from typing import Any

from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import check_cidr, check_regex, mapping

GATEWAY_GROUP = "gateway.networking.k8s.io"
# What a BackendTrafficPolicy may attach to: Envoy Gateway's kinds, and a Service for the
# sidecars of its workloads (mesh traffic; beyond Envoy Gateway).
TARGET_KINDS = {(GATEWAY_GROUP, "Gateway"), (GATEWAY_GROUP, "HTTPRoute"),
                (GATEWAY_GROUP, "GRPCRoute"), ("", "Service"),
                ("networking.istio.io", "ServiceEntry")}
# mergeType: a route's policy adds the Gateway's rules to its own instead of replacing them.
_SUPPORTED_SPEC = {"targetRef", "targetRefs", "rateLimit", "mergeType"}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def check_backend_traffic_policy(spec: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for name in sorted(set(spec) - _SUPPORTED_SPEC):
        problems.append(FieldProblem(
            ("spec", name), f"Heddle acts only on a BackendTrafficPolicy's rateLimit; "
            f"{name} would be ignored",
            "remove it (retries, timeouts, circuit breaking and load balancing are a "
            "DestinationRule's or an HTTPRoute's in Heddle)"))
    refs: list[tuple[PathKey, Any]] = [(("targetRef",), spec.get("targetRef"))]
    refs += [(("targetRefs", i), ref) for i, ref in enumerate(_list(spec.get("targetRefs")))]
    for path, raw in refs:
        ref = mapping(raw)
        if not ref:
            continue
        if ref.get("sectionName"):
            problems.append(FieldProblem(
                ("spec", *path, "sectionName"), "sectionName is not supported: the policy "
                "would act on the whole target", "target the whole Gateway or route, or a "
                "route of its own"))
        group, target_kind = str(ref.get("group") or ""), str(ref.get("kind") or "")
        if (group, target_kind) not in TARGET_KINDS:
            problems.append(FieldProblem(
                ("spec", *path, "kind"), f"a BackendTrafficPolicy cannot target {target_kind} "
                f"(group {group!r})",
                "target a Gateway, HTTPRoute or GRPCRoute (group gateway.networking.k8s.io) "
                "or a Service (group \"\") or ServiceEntry (group networking.istio.io)"))
    if not spec.get("targetRef") and not _list(spec.get("targetRefs")):
        problems.append(FieldProblem(("spec", "targetRefs"), "the policy targets nothing",
                                     "add targetRefs naming a Gateway, route or Service"))
    rate_limit = mapping(spec.get("rateLimit"))
    if not rate_limit:
        return problems
    kind = rate_limit.get("type")
    for mode, key in (("Local", "local"), ("Global", "global")):
        block = mapping(rate_limit.get(key))
        # `type` is optional (Envoy Gateway reads the blocks present); when given it agrees.
        if kind == mode and not block:
            problems.append(FieldProblem(("spec", "rateLimit", key),
                                         f"type {mode} needs rateLimit.{key}",
                                         f"add rateLimit.{key}.rules"))
        for i, rule in enumerate(_list(block.get("rules"))):
            problems += _check_rule(("spec", "rateLimit", key, "rules", i), mapping(rule))
    return problems


def _check_rule(path: PathKey, rule: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    limit = mapping(rule.get("limit"))
    if "fromMetadata" in limit:
        problems.append(FieldProblem((*path, "limit", "fromMetadata"),
                                     "limits read from dynamic metadata are not supported",
                                     "write the limit as requests and unit"))
    elif not isinstance(limit.get("requests"), int) or not limit.get("unit"):
        problems.append(FieldProblem((*path, "limit"), "a limit needs requests and unit",
                                     "write e.g. `limit: {requests: 10, unit: Minute}`"))
    elif limit["requests"] < 1:
        # Envoy's token buckets need a token; a global 0 would refuse everything anyway.
        problems.append(FieldProblem((*path, "limit", "requests"),
                                     f"a limit of {limit['requests']} requests refuses every "
                                     "request", "give at least 1, or remove the rule"))
    cost = mapping(rule.get("cost"))
    if "response" in cost:
        problems.append(FieldProblem((*path, "cost", "response"),
                                     "a cost charged on the response is not supported",
                                     "charge the request: cost.request.number"))
    request = mapping(cost.get("request"))
    if request and request.get("from") != "Number":
        problems.append(FieldProblem((*path, "cost", "request", "from"),
                                     "only a fixed cost (from: Number) is supported",
                                     "set from: Number and number: N"))
    elif isinstance(request.get("number"), int) and request["number"] < 0:
        problems.append(FieldProblem((*path, "cost", "request", "number"),
                                     "a cost cannot be negative", "give 0 or more"))
    for j, selector in enumerate(_list(rule.get("clientSelectors"))):
        problems += _check_selector((*path, "clientSelectors", j), mapping(selector))
    return problems


def _check_selector(path: PathKey, selector: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for field in ("headers", "queryParams"):
        for k, match in enumerate(_list(selector.get(field))):
            match = mapping(match)
            where = (*path, field, k)
            kind = match.get("type") or "Exact"
            if kind == "Distinct":
                if match.get("invert"):
                    problems.append(FieldProblem((*where, "invert"),
                                                 "a Distinct match cannot be inverted",
                                                 "remove invert, or match a value"))
                continue
            if match.get("value") is None:
                problems.append(FieldProblem((*where, "value"),
                                             f"a {kind} match needs a value",
                                             "add value, or use type: Distinct"))
            elif kind == "RegularExpression":
                problems += check_regex((*where, "value"), match.get("value"))
    cidr = mapping(selector.get("sourceCIDR"))
    if cidr:
        problems += check_cidr((*path, "sourceCIDR", "value"), cidr.get("value"))
        if cidr.get("invert"):
            # Envoy's masked_remote_address makes an entry for every address: it cannot say
            # "outside this range".
            problems.append(FieldProblem((*path, "sourceCIDR", "invert"),
                                         "an inverted sourceCIDR match is not supported",
                                         "list the ranges to limit instead"))
    route_path = mapping(selector.get("path"))
    if route_path.get("type") == "RegularExpression":
        problems += check_regex((*path, "path", "value"), route_path.get("value"))
    return problems
