"""Istio's rules for what a security or telemetry policy applies to: a workload selector, a
targetRef or targetRefs, never two of them."""

from __future__ import annotations

from typing import Any

from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import items, mapping
from heddle.api.semantics.istio_common import empty_selector_warning, selector_label_problems

# (group, kind) a policy may target; "" is the core group.
ALLOWED_TARGETS = {("", "Service"), ("networking.istio.io", "ServiceEntry"),
                   ("gateway.networking.k8s.io", "Gateway"),
                   ("gateway.networking.k8s.io", "GatewayClass")}


def target_ref_problems(path: PathKey, ref: Any) -> list[FieldProblem]:
    if ref is None:
        return []
    ref = mapping(ref)
    problems: list[FieldProblem] = []
    if not ref.get("name"):
        problems.append(FieldProblem((*path, "name"), "a targetRef needs a name",
                                     "name the resource the policy applies to"))
    if ref.get("namespace"):
        problems.append(FieldProblem((*path, "namespace"), "a targetRef cannot name a "
                                     "namespace: references across namespaces are not "
                                     "supported", "remove namespace"))
    group = str(ref.get("group") or "")
    group = "" if group == "core" else group
    if (group, ref.get("kind")) not in ALLOWED_TARGETS:
        problems.append(FieldProblem((*path, "kind"), f"a policy cannot target "
                                                      f"{group or 'core'}/{ref.get('kind')}",
                                     "target a Service, ServiceEntry, Gateway or "
                                     "GatewayClass"))
    return problems


def selection_problems(spec: dict[str, Any], what: str, selector_field: str = "selector",
                       ) -> list[FieldProblem]:
    """Istio's validateOneOfSelectorType, validateWorkloadSelector and the targetRef checks."""
    problems: list[FieldProblem] = []
    selector = spec.get(selector_field)
    chosen = [selector is not None, spec.get("targetRef") is not None,
              bool(spec.get("targetRefs"))]
    if sum(chosen) > 1:
        problems.append(FieldProblem(("spec",), f"only one of targetRefs or {selector_field} "
                                                "can be set", "keep one of them"))
    if selector is not None:
        problems += selector_label_problems(("spec", selector_field, "matchLabels"),
                                            mapping(selector).get("matchLabels"))
        problems += empty_selector_warning(("spec", selector_field), selector, what)
    problems += target_ref_problems(("spec", "targetRef"), spec.get("targetRef"))
    for i, ref in items(spec.get("targetRefs")):
        problems += target_ref_problems(("spec", "targetRefs", i), ref)
    return problems
