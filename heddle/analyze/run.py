"""Running the analyzers: from loaded files (or live resources) to sorted messages, with
every validation error of the load as a schema message (IST0106)."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from heddle.analyze import (
    authorization,
    conditions,
    deprecation,
    destinationrules,
    envoyfilters,
    gateway_api,
    gateways,
    routes,
    serviceentries,
    services,
    sidecars,
    telemetry,
    virtualservices,
)
from heddle.analyze.analyzer import Analyzer, GroupKind
from heddle.analyze.context import ISTIO_NAMESPACE, AnalysisInput
from heddle.analyze.messages import SCHEMA_VALIDATION_ERROR, Message
from heddle.api.diagnostics import Diagnostic, ResourceRef
from heddle.api.loader import build_resource
from heddle.api.resource import Resource, UnmanagedObject
from heddle.api.yaml_documents import read_documents
from heddle.model.mesh_config import MeshConfig
from heddle.model.snapshot import MeshSnapshot

ALL_ANALYZERS: tuple[Analyzer, ...] = (
    *virtualservices.ANALYZERS,
    *routes.ANALYZERS,
    *sidecars.ANALYZERS,
    *destinationrules.ANALYZERS,
    *gateways.ANALYZERS,
    *serviceentries.ANALYZERS,
    *authorization.ANALYZERS,
    *envoyfilters.ANALYZERS,
    *services.ANALYZERS,
    *telemetry.ANALYZERS,
    *conditions.ANALYZERS,
    *deprecation.ANALYZERS,
    *gateway_api.ANALYZERS,
)

INGRESS_SERVICE = "istio-ingressgateway"
_INGRESS_PORTS = ((80, "http2"), (443, "https"), (31400, "tcp"), (15443, "tls"))


def default_ingress(namespace: str = ISTIO_NAMESPACE,
                    ) -> tuple[Resource[Any], UnmanagedObject]:
    """The ingress gateway istioctl assumes is installed: a Service and a Pod labelled
    `istio: ingressgateway` (left out when the mesh config has ingressControllerMode OFF)."""
    labels = {"istio": "ingressgateway"}
    service, problems = build_resource({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": INGRESS_SERVICE, "namespace": namespace},
        "spec": {"selector": labels, "ports": [
            {"name": name, "port": port, "targetPort": port, "protocol": "TCP"}
            for port, name in _INGRESS_PORTS]}})
    assert service is not None, problems
    pod = UnmanagedObject("v1", "Pod", namespace, f"{INGRESS_SERVICE}-dummypod", None,
                          MappingProxyType({"metadata": {
                              "name": f"{INGRESS_SERVICE}-dummypod", "namespace": namespace,
                              "labels": labels}}))
    return service, pod


# Kubernetes' own namespaces, which istioctl leaves out of the analysis.
IGNORED_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease",
                                "local-path-storage"})


def _ignored(kind: str, namespace: str, name: str) -> bool:
    return (name if kind == "Namespace" else namespace) in IGNORED_NAMESPACES


def mesh_settings(unmanaged: Iterable[UnmanagedObject]) -> Mapping[str, Any]:
    """The mesh config's settings as written (ConfigMap istio-system/istio, `data.mesh`)."""
    for obj in unmanaged:
        if (obj.kind, obj.namespace, obj.name) != ("ConfigMap", ISTIO_NAMESPACE, "istio"):
            continue
        data = obj.body.get("data")
        text = data.get("mesh") if isinstance(data, dict) else None
        # The bounded reader of every config file; an unreadable one is `heddle validate`'s
        # to report, and the defaults stand.
        documents, errors = read_documents(text if isinstance(text, str) else "", "data.mesh")
        found = documents[0].body if documents and not errors else None
        return found if isinstance(found, dict) else {}
    return {}


def analysis_input(resources: Iterable[Resource[Any]], unmanaged: Iterable[UnmanagedObject],
                   mesh: Mapping[str, Any] | None = None,
                   kinds: Collection[GroupKind] | None = None,
                   with_default_ingress: bool = True,
                   rejected: Iterable[Resource[Any]] = (),
                   now: float | None = None) -> AnalysisInput:
    """`kinds`: only resources of these kinds are seen (upstream's tests load only the
    inputs an analyzer declares); `mesh`: the mesh config's settings; `rejected`: resources
    validation refused, as written."""
    unmanaged = list(unmanaged)
    mesh = mesh_settings(unmanaged) if mesh is None else mesh
    written = [r for r in resources if not _ignored(r.kind, r.namespace, r.name)]
    pods = [u for u in unmanaged if u.kind == "Pod" and u.api_version == "v1"
            and not _ignored(u.kind, u.namespace, u.name)]
    if with_default_ingress and mesh.get("ingressControllerMode") != "OFF":
        service, pod = default_ingress()
        if service.key not in {r.key for r in written}:
            written.append(service)
            pods.append(pod)
    refused = [r for r in rejected if not _ignored(r.kind, r.namespace, r.name)]
    nodes = [u for u in unmanaged if u.kind == "Node" and u.api_version == "v1"]
    others = [u for u in unmanaged if not _ignored(u.kind, u.namespace, u.name)]
    if kinds is not None:
        nodes = nodes if ("", "Node") in kinds else []
        others = [u for u in others if (u.api_version.rpartition("/")[0], u.kind) in kinds]
        written = [r for r in written if (r.key.group, r.kind) in kinds]
        refused = [r for r in refused if (r.key.group, r.kind) in kinds]
        pods = pods if ("", "Pod") in kinds else []
    snapshot = MeshSnapshot.build(0, written, mesh_config=MeshConfig.from_objects(unmanaged))
    return AnalysisInput(snapshot, frozenset(r.key for r in written), tuple(pods),
                         MappingProxyType(dict(mesh)), rejected=tuple(refused),
                         nodes=tuple(nodes), now=time.time() if now is None else now,
                         unmanaged=tuple(others))


def without_derived(resources: Iterable[Resource[Any]]) -> list[Resource[Any]]:
    """The resources without those Heddle made of Gateway API ones (a running mesh lists
    both; the analyzers report on what was written, and make the derived ones again)."""
    given = list(resources)
    derived = {r.key: dict(r.body) for r in MeshSnapshot.build(0, given).gateway_api.resources}
    return [r for r in given if derived.get(r.key) != dict(r.body)]


def analyze(world: AnalysisInput, analyzers: Iterable[Analyzer] = ALL_ANALYZERS,
            ) -> list[Message]:
    found: dict[Message, None] = {}  # the same finding twice is one message
    for analyzer in analyzers:
        found.update(dict.fromkeys(analyzer.run(world)))
    return sorted(found, key=lambda m: (m.position.file if m.position else "",
                                        m.position.line if m.position else 0, m.type.code,
                                        str(m.resource), m.text))


def schema_messages(diagnostics: Iterable[Diagnostic]) -> list[Message]:
    """The load's errors, as `istioctl analyze` reports a resource its schema rejects."""
    return [Message(SCHEMA_VALIDATION_ERROR, d.resource or ResourceRef("", "", ""),
                    (f"{d.field}: " if d.field else "") + d.message, d.fix, d.position)
            for d in diagnostics if d.is_error]
