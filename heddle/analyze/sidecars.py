"""Sidecar analyzers: a selector that picks no pod (IST0101), several Sidecars selecting one
pod (IST0110), several without a selector in one namespace (IST0111), and Sidecars with no
effect on ambient workloads (IST0167)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import ISTIO, AnalysisInput, selector_text, selects, spec
from heddle.analyze.messages import (
    CONFLICTING_SIDECAR_SELECTORS,
    INEFFECTIVE_POLICY,
    MULTIPLE_SIDECARS_WITHOUT_SELECTORS,
    REFERENCED_RESOURCE_NOT_FOUND,
    Message,
)
from heddle.api.resource import DEFAULT_NAMESPACE, Resource

SIDECAR = (ISTIO, "Sidecar")
_AMBIENT_REDIRECTION = "ambient.istio.io/redirection"


def _labels_of(body: Mapping[str, Any], field: str) -> Mapping[str, str]:
    meta = body.get("metadata")
    value = meta.get(field) if isinstance(meta, dict) else None
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _namespace_ambient(labels: Mapping[str, str]) -> bool:
    if labels.get("istio-injection") == "enabled" or labels.get("istio.io/rev"):
        return False
    return labels.get("istio.io/dataplane-mode") == "ambient"


def _names(sidecars: list[Resource[Any]]) -> str:
    return ",".join(sorted(f"{s.namespace}/{s.name}" for s in sidecars))


def _check(world: AnalysisInput) -> Iterator[Message]:
    pods = [(p.namespace or DEFAULT_NAMESPACE, p.name, p.body) for p in world.pods]
    by_pod: dict[tuple[str, str], list[Resource[Any]]] = defaultdict(list)
    unselective: dict[str, list[Resource[Any]]] = defaultdict(list)
    for sidecar in world.of_kind(*SIDECAR):
        selector = (spec(sidecar).get("workloadSelector") or {}).get("labels") or {}
        if not selector:
            unselective[sidecar.namespace].append(sidecar)
            continue
        selector = {str(k): str(v) for k, v in selector.items()}
        chosen = [(ns, name) for ns, name, body in pods
                  if ns == sidecar.namespace and selects(selector, _labels_of(body, "labels"))]
        if not chosen:
            yield report(REFERENCED_RESOURCE_NOT_FOUND, sidecar,
                         f"referenced selector not found: \"{selector_text(selector)}\"",
                         f"label a pod in namespace {sidecar.namespace!r} with it, or correct "
                         "spec.workloadSelector.labels", ("spec", "workloadSelector", "labels"))
        for pod in chosen:
            by_pod[pod].append(sidecar)
    bodies = {(ns, name): body for ns, name, body in pods}
    reported: set[tuple[str, str]] = set()
    for (namespace, name), sidecars in sorted(by_pod.items()):
        ambient = _annotations(bodies[(namespace, name)]).get(_AMBIENT_REDIRECTION) == "enabled"
        if len(sidecars) == 1 and not ambient:
            continue
        for sidecar in sidecars:
            if ambient:
                if (sidecar.namespace, sidecar.name) not in reported:
                    reported.add((sidecar.namespace, sidecar.name))
                    yield report(INEFFECTIVE_POLICY, sidecar,
                                 "the selected workload is in ambient mode: the Sidecar has "
                                 "no effect on it", "remove the Sidecar or its workloads' "
                                 "ambient mode")
                continue
            yield report(CONFLICTING_SIDECAR_SELECTORS, sidecar,
                         f"the Sidecars {_names(sidecars)} in namespace {namespace!r} select "
                         f"the same workload pod {name!r}, which can lead to undefined "
                         "behavior", "make their workloadSelectors pick disjoint pods, or "
                         "merge them")
    namespaces = {r.name: r for r in world.of_kind("", "Namespace")}
    for namespace, sidecars in sorted(unselective.items()):
        ns = namespaces.get(namespace)
        if ns is not None and _namespace_ambient(ns.metadata.labels):
            for sidecar in sidecars:
                if (sidecar.namespace, sidecar.name) not in reported:
                    reported.add((sidecar.namespace, sidecar.name))
                    yield report(INEFFECTIVE_POLICY, sidecar,
                                 "the namespace is in ambient mode: the Sidecar has no effect",
                                 "remove the Sidecar or the namespace's ambient mode")
            continue
        if len(sidecars) > 1:
            for sidecar in sidecars:
                yield report(MULTIPLE_SIDECARS_WITHOUT_SELECTORS, sidecar,
                             f"the Sidecars {_names(sidecars)} in namespace {namespace!r} "
                             "have no workload selector, which can lead to undefined behavior",
                             "keep one Sidecar without a workloadSelector per namespace")


def _annotations(body: Mapping[str, Any]) -> Mapping[str, str]:
    return _labels_of(body, "annotations")


ANALYZERS = (
    Analyzer("sidecar.SelectorAnalyzer",
             "Checks that Sidecars with a workload selector match a pod, and that no two "
             "select the same pod", frozenset({SIDECAR, ("", "Pod"), ("", "Namespace")}),
             _check),
)
