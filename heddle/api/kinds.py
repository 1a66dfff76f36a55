"""The kinds Heddle understands: their groups, served versions, schemas and spec models."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel


@dataclass(frozen=True)
class KindInfo:
    group: str
    kind: str
    plural: str
    namespaced: bool
    storage_version: str
    # served version -> key into `schemas`
    versions: dict[str, str] = field(repr=False)
    unserved_versions: frozenset[str] = field(repr=False)
    short_names: tuple[str, ...] = field(repr=False)
    schemas: dict[str, Any] = field(repr=False)

    @property
    def spec_model(self) -> type[BaseModel]:
        return _spec_models()[(self.group, self.kind)]

    @property
    def has_spec(self) -> bool:
        """Secret keeps its data at the top level; every other kind has a `spec`."""
        return self.kind != "Secret"

    def api_versions(self, served_only: bool = False) -> list[str]:
        return [
            f"{self.group}/{v}" if self.group else v
            for v in self.versions
            if not (served_only and v in self.unserved_versions)
        ]

    def schema(self, version: str) -> dict[str, Any]:
        return dict(self.schemas[self.versions[version]])


@cache
def _spec_models() -> dict[tuple[str, str], type[BaseModel]]:
    """The spec model of each kind, keyed by (group, kind): imported on first use, so that
    naming kinds (`heddle get vs`) loads no models."""
    from heddle.api import models

    return {
        ("networking.istio.io", "VirtualService"): models.VirtualServiceSpec,
        ("networking.istio.io", "DestinationRule"): models.DestinationRuleSpec,
        ("networking.istio.io", "Gateway"): models.GatewaySpec,
        ("networking.istio.io", "ServiceEntry"): models.ServiceEntrySpec,
        ("networking.istio.io", "Sidecar"): models.SidecarSpec,
        ("networking.istio.io", "WorkloadEntry"): models.WorkloadEntrySpec,
        ("networking.istio.io", "WorkloadGroup"): models.WorkloadGroupSpec,
        ("networking.istio.io", "EnvoyFilter"): models.EnvoyFilterSpec,
        ("security.istio.io", "PeerAuthentication"): models.PeerAuthenticationSpec,
        ("security.istio.io", "AuthorizationPolicy"): models.AuthorizationPolicySpec,
        ("security.istio.io", "RequestAuthentication"): models.RequestAuthenticationSpec,
        ("telemetry.istio.io", "Telemetry"): models.TelemetrySpec,
        ("gateway.networking.k8s.io", "GatewayClass"): models.GatewayClassSpec,
        ("gateway.networking.k8s.io", "Gateway"): models.K8sGatewaySpec,
        ("gateway.networking.k8s.io", "HTTPRoute"): models.HTTPRouteSpec,
        ("gateway.networking.k8s.io", "GRPCRoute"): models.GRPCRouteSpec,
        ("gateway.networking.k8s.io", "TCPRoute"): models.TCPRouteSpec,
        ("gateway.networking.k8s.io", "TLSRoute"): models.TLSRouteSpec,
        ("gateway.networking.k8s.io", "ReferenceGrant"): models.ReferenceGrantSpec,
        ("gateway.envoyproxy.io", "BackendTrafficPolicy"): models.BackendTrafficPolicySpec,
        ("kuadrant.io", "RateLimitPolicy"): models.RateLimitPolicySpec,
        ("", "Service"): models.ServiceSpec,
        ("", "Namespace"): models.NamespaceSpec,
        ("", "Secret"): models.SecretSpec,
    }


def split_api_version(api_version: str) -> tuple[str, str]:
    """`networking.istio.io/v1` -> ("networking.istio.io", "v1"); `v1` -> ("", "v1")."""
    group, _, version = api_version.rpartition("/")
    return group, version


@cache
def all_kinds() -> dict[tuple[str, str], KindInfo]:
    found: dict[tuple[str, str], KindInfo] = {}
    for entry in resources.files("heddle.api").joinpath("schemas").iterdir():
        if not entry.name.endswith(".json"):
            continue
        doc = json.loads(entry.read_text())
        key = (doc["group"], doc["kind"])
        found[key] = KindInfo(
            group=doc["group"],
            kind=doc["kind"],
            plural=doc["plural"],
            namespaced=doc["namespaced"],
            storage_version=doc["storageVersion"],
            versions=doc["versions"],
            unserved_versions=frozenset(doc.get("unservedVersions", [])),
            short_names=tuple(doc.get("shortNames", [])),
            schemas=doc["schemas"],
        )
    return found


def lookup(group: str, kind: str) -> KindInfo | None:
    return all_kinds().get((group, kind))


def kinds_named(kind: str) -> list[KindInfo]:
    """Every group's kind of this name, plural or short name (`vs`, `dr`), as kubectl reads
    them (so `gateway` is both Istio's and Gateway API's)."""
    wanted = kind.lower()
    return [
        info
        for info in all_kinds().values()
        if wanted in (info.kind.lower(), info.plural.lower(), *info.short_names)
    ]
