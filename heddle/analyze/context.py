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


def _pod_workload(pod: UnmanagedObject) -> WorkloadInfo:
    meta = pod.body.get("metadata") or {}
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return WorkloadInfo("Pod", pod.namespace or DEFAULT_NAMESPACE, pod.name,
                        MappingProxyType({str(k): str(v) for k, v in (labels or {}).items()}))


@dataclass(frozen=True)
class AnalysisInput:
    snapshot: MeshSnapshot
    # The resources written in the files (the snapshot also holds what Gateway API resources
    # convert to; analyzers report on what the user wrote).
    written: frozenset[ResourceKey]
    pods: tuple[UnmanagedObject, ...] = ()
    mesh: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    istio_namespace: str = ISTIO_NAMESPACE

    def of_kind(self, group: str, kind: str) -> tuple[Resource[Any], ...]:
        return tuple(r for r in self.snapshot.of_kind(group, kind) if r.key in self.written)

    def exists(self, group: str, kind: str, namespace: str, name: str) -> bool:
        return ResourceKey(group, kind, namespace, name) in self.written

    def service_hosts(self) -> ServiceHosts:
        def build() -> ServiceHosts:
            return ServiceHosts(
                ((r.namespace, spec(r)) for r in self.of_kind(ISTIO, "ServiceEntry")),
                ((r.namespace, r.name, spec(r), r.metadata.annotations)
                 for r in self.of_kind("", "Service")))
        return self.snapshot.memo(("analyze", "service_hosts"), build)

    def workloads(self) -> tuple[WorkloadInfo, ...]:
        found = [_pod_workload(p) for p in self.pods]
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
