"""AuthorizationPolicy analyzers: a policy that selects no workload in the mesh (IST0127),
and source namespaces that do not exist (IST0101)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import (
    SECURITY,
    AnalysisInput,
    WorkloadInfo,
    labels_of,
    selector_text,
    selects,
    spec,
)
from heddle.analyze.messages import (
    NO_MATCHING_WORKLOADS_FOUND,
    REFERENCED_RESOURCE_NOT_FOUND,
    Message,
)
from heddle.api.resource import DEFAULT_NAMESPACE, UnmanagedObject

POLICY = (SECURITY, "AuthorizationPolicy")
_INJECT = "sidecar.istio.io/inject"


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _in_mesh(pod: UnmanagedObject, injected_namespaces: Mapping[str, bool]) -> bool:
    """A pod with an istio-proxy container, or one injection would give one."""
    pod_spec = _dict(pod.body.get("spec"))
    containers = [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]
    proxy = next((c for c in containers if _dict(c).get("name") == "istio-proxy"), None)
    if proxy is not None:
        return bool(_dict(proxy).get("image"))
    meta = _dict(pod.body.get("metadata"))
    for marks in (meta.get("labels"), meta.get("annotations")):
        if _INJECT in _dict(marks):
            return str(_dict(marks)[_INJECT]) == "true"
    return injected_namespaces.get(pod.namespace or DEFAULT_NAMESPACE, False)


def _meshed(world: AnalysisInput) -> dict[str, list[Mapping[str, str]]]:
    """The labels of every workload in the mesh, by namespace: pods with a sidecar (or in
    ambient mode) and Heddle's own workloads (WorkloadEntries and WorkloadGroups)."""
    injected = {ns.name: ns.metadata.labels.get("istio-injection") == "enabled"
                for ns in world.of_kind("", "Namespace")}
    by_namespace: dict[str, list[Mapping[str, str]]] = defaultdict(list)
    for pod in world.pods:
        meta = _dict(pod.body.get("metadata"))
        ambient = _dict(meta.get("annotations")).get("ambient.istio.io/redirection")
        namespace = pod.namespace or DEFAULT_NAMESPACE
        if _in_mesh(pod, injected):
            by_namespace[namespace].append(labels_of(pod))
        if ambient == "enabled":
            by_namespace[namespace].append(labels_of(pod))
    workloads: list[WorkloadInfo] = [w for w in world.workloads() if w.kind != "Pod"]
    for workload in workloads:
        by_namespace[workload.namespace].append(workload.labels)
    return by_namespace


def _namespace_matches(namespace: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*"):
        return namespace.endswith(pattern[1:])
    if pattern.endswith("*"):
        return namespace.startswith(pattern[:-1])
    return namespace.lower() == pattern.lower()


def _check(world: AnalysisInput) -> Iterator[Message]:
    meshed = _meshed(world)
    root = str(world.mesh.get("rootNamespace") or world.istio_namespace)
    namespaces = [ns.name for ns in world.of_kind("", "Namespace")]
    for policy in world.of_kind(*POLICY):
        body = spec(policy)
        selector = body.get("selector")
        labels = {str(k): str(v) for k, v in _dict(_dict(selector).get("matchLabels")).items()}
        if policy.namespace == root:
            candidates = [w for found in meshed.values() for w in found]
        else:
            candidates = meshed.get(policy.namespace, [])
        if (selector is not None or policy.namespace != root) and not any(
                selects(labels, w) for w in candidates):
            yield report(NO_MATCHING_WORKLOADS_FOUND, policy,
                         f"this resource does not match any workload in the mesh (selector "
                         f"{selector_text(labels)!r})" if selector is not None else
                         f"no workload in the mesh runs in namespace {policy.namespace!r}",
                         "correct spec.selector.matchLabels, or run (or inject) the workloads "
                         "it is for", ("spec", "selector"))
        for i, rule in enumerate(body.get("rules") or []):
            for j, source in enumerate(_dict(rule).get("from") or []):
                source = _dict(_dict(source).get("source"))
                for field in ("namespaces", "notNamespaces"):
                    for k, pattern in enumerate(source.get(field) or []):
                        if any(_namespace_matches(ns, str(pattern)) for ns in namespaces):
                            continue
                        yield report(REFERENCED_RESOURCE_NOT_FOUND, policy,
                                     f"referenced namespace not found: \"{pattern}\"",
                                     "correct the namespace, or create it",
                                     ("spec", "rules", i, "from", j, "source", field, k))


ANALYZERS = (
    Analyzer("auth.AuthorizationPoliciesAnalyzer", "Checks the validity of authorization "
             "policies", frozenset({POLICY, ("", "Namespace"), ("", "Pod"), ("", "MeshConfig"),
                                    ("networking.istio.io", "WorkloadEntry"),
                                    ("networking.istio.io", "WorkloadGroup")}), _check),
)
