"""What applies to one workload, for the dashboard's side panel: the policies that select it
(in its namespace, and mesh-wide from the root namespace), the services it serves, and the
Envoy resources its proxy was sent."""

from __future__ import annotations

from typing import Any

from heddle.model.proxy import Proxy
from heddle.model.scope import ROOT_NAMESPACE
from heddle.model.selectors import matches
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.sidecar import ProxyResources

# Kinds that pick workloads by a selector, by API group.
SELECTING_KINDS = (
    ("security.istio.io", "PeerAuthentication"),
    ("security.istio.io", "AuthorizationPolicy"),
    ("security.istio.io", "RequestAuthentication"),
    ("networking.istio.io", "Sidecar"),
    ("networking.istio.io", "EnvoyFilter"),
    ("telemetry.istio.io", "Telemetry"),
)


def workload_config(snapshot: MeshSnapshot, proxy: Proxy,
                    resources: ProxyResources | None) -> dict[str, Any]:
    labels = proxy.label_map
    namespaces = [proxy.namespace] if proxy.namespace == ROOT_NAMESPACE else [
        proxy.namespace, ROOT_NAMESPACE]
    policies = [
        {"kind": kind, "namespace": r.namespace, "name": r.name,
         "source": str(r.source) if r.source else "",
         "scope": "mesh" if r.namespace == ROOT_NAMESPACE else "namespace-or-workload"}
        for group, kind in SELECTING_KINDS
        for namespace in namespaces
        for r in snapshot.selecting(group, kind, namespace, labels)
    ]
    served = [
        {"hostname": s.hostname, "ports": [p.number for p in s.ports]}
        for s in snapshot.registry.services
        if s.selector is not None and s.namespace == proxy.namespace
        and matches(dict(s.selector), labels)
    ]
    envoy = {} if resources is None else {
        type_url.rsplit(".", 1)[-1]: sorted(items) for type_url, items in
        sorted(resources.by_type.items())}
    return {"proxy": proxy.id, "workload": proxy.name, "namespace": proxy.namespace,
            "labels": labels, "serviceAccount": proxy.service_account,
            "policies": policies, "services": served, "envoy": envoy}
