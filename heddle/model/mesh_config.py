"""Mesh-wide settings, read where Istio keeps them: the `mesh` key of ConfigMap
istio-system/istio. Today: the extension providers that CUSTOM authorization names, and the
outbound traffic policy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from heddle.api.resource import UnmanagedObject

MESH_CONFIG_NAMESPACE = "istio-system"
MESH_CONFIG_NAME = "istio"


@dataclass(frozen=True)
class MeshConfig:
    extension_providers: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}))
    # Where unknown hosts go: ALLOW_ANY (passthrough, Istio's default) or REGISTRY_ONLY.
    outbound_traffic_mode: str = "ALLOW_ANY"

    @classmethod
    def from_objects(cls, objects: Iterable[UnmanagedObject]) -> MeshConfig:
        for obj in objects:
            if (obj.kind, obj.namespace, obj.name) != (
                    "ConfigMap", MESH_CONFIG_NAMESPACE, MESH_CONFIG_NAME):
                continue
            text = (obj.body.get("data") or {}).get("mesh") or ""
            try:
                mesh = YAML(typ="safe").load(text) or {}
            except YAMLError:
                return cls()
            providers = {str(p["name"]): p for p in mesh.get("extensionProviders") or []
                         if isinstance(p, dict) and p.get("name")}
            policy = mesh.get("outboundTrafficPolicy") or {}
            mode = policy.get("mode") if isinstance(policy, dict) else None
            return cls(MappingProxyType(providers), str(mode or "ALLOW_ANY"))
        return cls()
