"""What analyzers read: the snapshot of the resources as written, plus the workloads (Pods
from the files, WorkloadEntries, WorkloadGroup templates) and the raw mesh config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from heddle.analyze.hosts import ServiceHosts
from heddle.api.resource import DEFAULT_NAMESPACE, Resource, ResourceKey, UnmanagedObject
from heddle.model.snapshot import MeshSnapshot

ISTIO = "networking.istio.io"
SECURITY = "security.istio.io"
GATEWAY_API = "gateway.networking.k8s.io"
ISTIO_NAMESPACE = "istio-system"


@dataclass(frozen=True)
class WorkloadInfo:
    """A workload as the analyzers see it: where it runs and its labels."""

    kind: str  # Pod, WorkloadEntry or WorkloadGroup
    namespace: str
    name: str
    labels: Mapping[str, str]


def spec(resource: Resource[Any]) -> Mapping[str, Any]:
    """The resource's spec as written (analyzers read the user's words, not defaults)."""
    value = resource.body.get("spec")
    return value if isinstance(value, dict) else {}


def labels_of(obj: UnmanagedObject) -> dict[str, str]:
    meta = obj.body.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


# The labels every pod has from its node, as Istio adds them to a workload's own.
_NODE_TOPOLOGY = ("topology.kubernetes.io/region", "topology.kubernetes.io/zone",
                  "topology.istio.io/subzone")
_HOSTNAME = "kubernetes.io/hostname"


def _pod_workload(pod: UnmanagedObject, nodes: Mapping[str, dict[str, str]]) -> WorkloadInfo:
    labels = labels_of(pod)
    pod_spec = pod.body.get("spec")
    node = str(pod_spec.get("nodeName") or "") if isinstance(pod_spec, dict) else ""
    for key in _NODE_TOPOLOGY:
        if nodes.get(node, {}).get(key):
            labels[key] = nodes[node][key]
    if node:
        labels[_HOSTNAME] = node
    return WorkloadInfo("Pod", pod.namespace or DEFAULT_NAMESPACE, pod.name,
                        MappingProxyType(labels))


@dataclass(frozen=True)
class AnalysisInput:
    snapshot: MeshSnapshot
    # The resources written in the files (the snapshot also holds what Gateway API resources
    # convert to; analyzers report on what the user wrote).
    written: frozenset[ResourceKey]
    pods: tuple[UnmanagedObject, ...] = ()
    mesh: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    istio_namespace: str = ISTIO_NAMESPACE
    # Resources validation refused, as written (analyzed as istioctl does, beside IST0106).
    rejected: tuple[Resource[Any], ...] = ()
    nodes: tuple[UnmanagedObject, ...] = ()
    now: float = 0.0  # seconds since the epoch: when certificates must be valid
    # Every object of a kind Heddle does not use (CustomResourceDefinitions, Deployments ...).
    unmanaged: tuple[UnmanagedObject, ...] = ()

    def of_kind(self, group: str, kind: str) -> tuple[Resource[Any], ...]:
        def build() -> tuple[Resource[Any], ...]:
            written = [r for r in self.snapshot.of_kind(group, kind) if r.key in self.written]
            keys = {r.key for r in written}
            return (*written, *(r for r in self.rejected
                                if (r.key.group, r.kind) == (group, kind) and r.key not in keys))
        return self.snapshot.memo(("analyze", "of_kind", group, kind), build)

    def get(self, group: str, kind: str, namespace: str, name: str) -> Resource[Any] | None:
        return next((r for r in self.of_kind(group, kind)
                     if (r.namespace, r.name) == (namespace, name)), None)

    def service_hosts(self) -> ServiceHosts:
        def build() -> ServiceHosts:
            return ServiceHosts(
                ((r.namespace, spec(r)) for r in self.of_kind(ISTIO, "ServiceEntry")),
                ((r.namespace, r.name, spec(r), r.metadata.annotations)
                 for r in self.of_kind("", "Service")))
        return self.snapshot.memo(("analyze", "service_hosts"), build)

    def workloads(self) -> tuple[WorkloadInfo, ...]:
        nodes = {n.name: labels_of(n) for n in self.nodes}
        found = [_pod_workload(p, nodes) for p in self.pods]
        for entry in self.of_kind(ISTIO, "WorkloadEntry"):
            found.append(WorkloadInfo("WorkloadEntry", entry.namespace, entry.name,
                                      MappingProxyType(dict(spec(entry).get("labels") or {}))))
        for group in self.of_kind(ISTIO, "WorkloadGroup"):
            body = spec(group)
            labels = {**((body.get("template") or {}).get("labels") or {}),
                      **((body.get("metadata") or {}).get("labels") or {})}
            found.append(WorkloadInfo("WorkloadGroup", group.namespace, group.name,
                                      MappingProxyType(labels)))
        return tuple(found)


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def selector_text(selector: Mapping[str, str]) -> str:
    """As Kubernetes prints a label selector: `app=reviews,version=v1`."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
