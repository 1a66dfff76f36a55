"""Istio's rules for a DestinationRule: its host, subsets, traffic policies, exportTo and
workload selector."""

from __future__ import annotations

from typing import Any

from heddle.api.problems import FieldProblem
from heddle.api.semantics.common import items, mapping
from heddle.api.semantics.istio_common import (
    empty_selector_warning,
    export_to_problems,
    label_problems,
    selector_label_problems,
)
from heddle.api.semantics.istio_hosts import is_dns1123_label, wildcard_domain_problem
from heddle.api.semantics.traffic_policy import traffic_policy_problems


def check_destination_rule(spec: dict[str, Any], metadata: dict[str, Any],
                           ) -> list[FieldProblem]:
    namespace = str(metadata.get("namespace") or "default")
    problems: list[FieldProblem] = []
    host = str(spec.get("host") or "")
    problem = wildcard_domain_problem(host)
    if problem:
        problems.append(FieldProblem(("spec", "host"), problem,
                                     "name the service this rule applies to, e.g. "
                                     "reviews.default.svc.cluster.local"))
    problems += traffic_policy_problems(("spec", "trafficPolicy"), spec.get("trafficPolicy"),
                                        namespace)
    seen: set[str] = set()
    for i, subset in items(spec.get("subsets")):
        path = ("spec", "subsets", i)
        if subset is None:
            problems.append(FieldProblem(path, "a subset may not be null", "remove it"))
            continue
        subset = mapping(subset)
        name = str(subset.get("name") or "")
        if name in seen:
            problems.append(FieldProblem((*path, "name"), f"duplicate subset name {name!r}",
                                         "give each subset a unique name"))
        seen.add(name)
        if not name:
            problems.append(FieldProblem((*path, "name"), "a subset needs a name",
                                         "name the subset, e.g. v1"))
        elif not is_dns1123_label(name):
            problems.append(FieldProblem((*path, "name"), f"invalid subset name {name!r}",
                                         "a subset name is one DNS label"))
        problems += label_problems((*path, "labels"), subset.get("labels"))
        problems += traffic_policy_problems((*path, "trafficPolicy"),
                                            subset.get("trafficPolicy"), namespace)
    selector = spec.get("workloadSelector")
    problems += export_to_problems(("spec", "exportTo"), namespace, spec.get("exportTo"),
                                   selector=selector is not None)
    problems += selector_label_problems(("spec", "workloadSelector", "matchLabels"),
                                        mapping(selector).get("matchLabels"))
    problems += empty_selector_warning(("spec", "workloadSelector"), selector,
                                       "DestinationRule")
    return problems
