"""Mesh-wide settings, read where Istio keeps them: the `mesh` key of ConfigMap
istio-system/istio. Today: the extension providers (CUSTOM authorization, telemetry), the
outbound traffic policy, how request paths are normalized, the mesh-wide access log and the
default telemetry providers (read in mesh_telemetry.py)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from heddle.api import istio_defaults
from heddle.api.diagnostics import Diagnostic, ResourceRef, Severity
from heddle.api.resource import UnmanagedObject
from heddle.api.yaml_documents import read_documents
from heddle.model.mesh_telemetry import (
    AccessLogSettings,
    DefaultProviders,
    find_provider,
    read_telemetry,
)
from heddle.model.mesh_tracing import MeshTracing, read_mesh_tracing

MESH_CONFIG_NAMESPACE = "istio-system"
MESH_CONFIG_NAME = "istio"

# meshConfig.pathNormalization.normalization, as Istio names the modes. DEFAULT means BASE.
PATH_NONE = "NONE"
PATH_BASE = "BASE"
PATH_MERGE_SLASHES = "MERGE_SLASHES"
PATH_DECODE_AND_MERGE_SLASHES = "DECODE_AND_MERGE_SLASHES"
PATH_NORMALIZATIONS = (PATH_NONE, PATH_BASE, PATH_MERGE_SLASHES, PATH_DECODE_AND_MERGE_SLASHES)
_PATH_FIELD = "data.mesh.pathNormalization.normalization"


@dataclass(frozen=True)
class MeshConfig:
    extension_providers: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}))
    # Where unknown hosts go: ALLOW_ANY (passthrough, Istio's default) or REGISTRY_ONLY.
    outbound_traffic_mode: str = istio_defaults.OUTBOUND_TRAFFIC_MODE
    # One of PATH_NORMALIZATIONS: what every HTTP connection manager does to a request's path
    # before policies and routes see it (and the application receives it).
    path_normalization: str = PATH_BASE
    # The global rate-limit service (`heddle ratelimit`) proxies ask, and how long they wait
    # for its answer before letting the request through. Set by the control plane's options.
    rate_limit_service: str = "127.0.0.1:15016"
    rate_limit_timeout_ms: int = 100
    # accessLogFile / accessLogEncoding / accessLogFormat, and defaultProviders (Telemetry API).
    access_log: AccessLogSettings = field(default_factory=AccessLogSettings)
    default_providers: DefaultProviders = field(default_factory=DefaultProviders)
    # enableTracing and defaultConfig.tracing (sampling, custom tags, path tag length).
    tracing: MeshTracing = field(default_factory=MeshTracing)
    # What was wrong with the mesh config; a bad value is ignored (its default is used).
    diagnostics: tuple[Diagnostic, ...] = field(default=(), compare=False)

    @classmethod
    def from_objects(cls, objects: Iterable[UnmanagedObject]) -> MeshConfig:
        for obj in objects:
            if (obj.kind, obj.namespace, obj.name) != (
                    "ConfigMap", MESH_CONFIG_NAMESPACE, MESH_CONFIG_NAME):
                continue
            ref = ResourceRef("ConfigMap", obj.namespace, obj.name)
            text = str((obj.body.get("data") or {}).get("mesh") or "")
            # The same bounded reader as every config file: this text is untrusted too.
            documents, errors = read_documents(text, "data.mesh")
            if errors:
                return cls(diagnostics=tuple(Diagnostic(
                    Severity.ERROR, f"mesh config unreadable, defaults used: {e.message} "
                    f"(at line {e.position.line if e.position else 1} of data.mesh)",
                    position=obj.source, resource=ref, field="data.mesh", fix=e.fix)
                    for e in errors))
            mesh = documents[0].body if documents else {}
            if not isinstance(mesh, dict):
                return cls(diagnostics=(Diagnostic(
                    Severity.ERROR, "mesh config must be a mapping, defaults used",
                    position=obj.source, resource=ref, field="data.mesh",
                    fix="write the mesh config as YAML keys, e.g. `outboundTrafficPolicy: "
                        "{mode: ALLOW_ANY}`"),))
            providers = {str(p["name"]): p for p in mesh.get("extensionProviders") or []
                         if isinstance(p, dict) and p.get("name")}
            policy = mesh.get("outboundTrafficPolicy") or {}
            mode = policy.get("mode") if isinstance(policy, dict) else None
            normalization, problem = _path_normalization(mesh.get("pathNormalization"))
            diagnostics = () if problem is None else (Diagnostic(
                Severity.ERROR, problem[0], position=obj.source, resource=ref, field=_PATH_FIELD,
                fix=problem[1]),)
            access_log, default_providers, telemetry_problems = read_telemetry(
                mesh, obj.source, ref)
            tracing, tracing_problems = read_mesh_tracing(mesh, obj.source, ref)
            return cls(MappingProxyType(providers),
                       str(mode or istio_defaults.OUTBOUND_TRAFFIC_MODE), normalization,
                       access_log=access_log, default_providers=default_providers,
                       tracing=tracing,
                       diagnostics=diagnostics + telemetry_problems + tracing_problems)
        return cls()

    def provider(self, name: str) -> Mapping[str, Any] | None:
        """The extension provider `name` (case-insensitive), Istio's built-in ones included."""
        return find_provider(self.extension_providers, name)


def _path_normalization(value: object) -> tuple[str, tuple[str, str] | None]:
    """The mode `pathNormalization: {normalization: MODE}` names, and what is wrong with it
    (message, fix). An unreadable value leaves Istio's default, BASE: never less
    normalization than the user would have had without the typo."""
    if value is None:
        return PATH_BASE, None
    if not isinstance(value, dict):
        return PATH_BASE, ("pathNormalization must be a mapping",
                           "write `pathNormalization: {normalization: BASE}`")
    mode = value.get("normalization")
    if mode is None or mode == "DEFAULT":
        return PATH_BASE, None
    if mode in PATH_NORMALIZATIONS:
        return str(mode), None
    close = difflib.get_close_matches(str(mode).upper(), PATH_NORMALIZATIONS, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    return PATH_BASE, (f"unknown path normalization {mode!r}; BASE is used",
                       f"{hint}use one of {', '.join(PATH_NORMALIZATIONS)}")
