"""Which workload labels a resource selects, in each of the shapes Istio kinds use."""

from __future__ import annotations

from typing import Any

from heddle.api.resource import Resource


def _labels_at(body: Any, *path: str) -> dict[str, str] | None:
    node = body
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return dict(node) if isinstance(node, dict) else {}


def selector_of(resource: Resource[Any]) -> dict[str, str] | None:
    """The labels a resource's workload selector requires; None when it selects no workloads.

    An empty dict selects every workload in the namespace (a policy without a selector).
    """
    spec = resource.body.get("spec") or {}
    kind = resource.kind
    if resource.key.group == "security.istio.io" or kind == "Telemetry":
        return _labels_at(spec, "selector", "matchLabels") or {}
    if kind in ("Sidecar", "EnvoyFilter"):
        return _labels_at(spec, "workloadSelector", "labels") or {}
    if kind == "ServiceEntry":
        return _labels_at(spec, "workloadSelector", "labels")
    if kind == "Gateway" and resource.key.group == "networking.istio.io":
        return _labels_at(spec, "selector") or {}
    if kind == "Service" and resource.key.group == "":
        return _labels_at(spec, "selector")
    return None


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())
