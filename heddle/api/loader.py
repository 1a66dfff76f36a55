"""Loading YAML files and directories into validated resources with positioned diagnostics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from heddle.api.cel_rules import check_rules
from heddle.api.diagnostics import Diagnostic, ResourceRef, Severity, SourcePosition
from heddle.api.files import (
    MAX_FILE_BYTES,
    YAML_SUFFIXES,
    UnreadableConfig,
    read_config_text,
    yaml_files,
)
from heddle.api.kinds import KindInfo, all_kinds, lookup, split_api_version
from heddle.api.metadata_check import check_metadata
from heddle.api.openapi import apply_defaults
from heddle.api.problems import FieldProblem, did_you_mean, format_path
from heddle.api.resource import (
    DEFAULT_NAMESPACE,
    ObjectMeta,
    Resource,
    ResourceKey,
    UnmanagedObject,
)
from heddle.api.schema_check import check_schema
from heddle.api.semantics import check_semantics
from heddle.api.yaml_documents import PathKey, YamlDocument, iter_documents
from heddle.heap import settle

SCHEMA_ERROR = "IST0106"
__all__ = ["MAX_FILE_BYTES", "YAML_SUFFIXES", "LoadResult", "UnreadableConfig", "build_resource",
           "load_paths", "load_text", "load_text_cooperatively", "read_config_text",
           "yaml_files"]

# Kinds of the groups Heddle serves that it accepts but does not act on.
_KNOWN_UNUSED = {
    ("networking.istio.io", "ProxyConfig"),
    ("extensions.istio.io", "WasmPlugin"),
    ("extensions.istio.io", "TrafficExtension"),
    ("gateway.networking.k8s.io", "BackendTLSPolicy"),
    ("gateway.networking.k8s.io", "ListenerSet"),
    ("gateway.networking.k8s.io", "UDPRoute"),
}


@dataclass
class LoadResult:
    resources: list[Resource[Any]] = field(default_factory=list)
    unmanaged: list[UnmanagedObject] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    def extend(self, other: LoadResult) -> None:
        self.resources += other.resources
        self.unmanaged += other.unmanaged
        self.diagnostics += other.diagnostics


def _managed_groups() -> set[str]:
    """API groups whose every kind Heddle knows; a core kind it does not use is just kept."""
    return {info.group for info in all_kinds().values() if info.group}


def _ref(body: dict[str, Any], kind: str, namespaced: bool) -> ResourceRef:
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    assert isinstance(meta, dict)
    namespace = str(meta.get("namespace") or DEFAULT_NAMESPACE) if namespaced else ""
    return ResourceRef(kind, namespace, str(meta.get("name", "")))


class _Document:
    """One object of a YAML document (a `kind: List` holds several) and how to place it."""

    def __init__(self, doc: YamlDocument, body: Any, prefix: PathKey) -> None:
        self.doc = doc
        self.body = body
        self.prefix = prefix

    def diagnostic(self, problem: FieldProblem, ref: ResourceRef | None) -> Diagnostic:
        return Diagnostic(
            problem.severity,
            problem.message,
            position=self.doc.position((*self.prefix, *problem.path)),
            resource=ref,
            field=format_path(problem.path),
            fix=problem.fix,
            code=problem.code or (SCHEMA_ERROR if problem.severity is Severity.ERROR else ""),
        )


def _objects(doc: YamlDocument) -> Iterator[_Document]:
    body = doc.body
    if isinstance(body, dict) and body.get("kind") == "List" and isinstance(
        body.get("items"), list
    ):
        for i, item in enumerate(body["items"]):
            yield _Document(doc, item, ("items", i))
    else:
        yield _Document(doc, body, ())


def _unknown_kind(obj: _Document, group: str, kind: str) -> FieldProblem:
    names = [info.kind for info in all_kinds().values() if info.group == group]
    return FieldProblem(("kind",), f"unknown kind {kind!r} in {group}",
                        did_you_mean(kind, names))


def _unserved_version(info: KindInfo, api_version: str) -> FieldProblem:
    return FieldProblem(("apiVersion",), f"{info.kind} is not served as {api_version!r}",
                        "use one of: " + ", ".join(info.api_versions()))


def load_object(obj: _Document, result: LoadResult) -> None:
    body = obj.body
    here = obj.doc.position(obj.prefix)
    if not isinstance(body, dict):
        result.diagnostics.append(Diagnostic(
            Severity.ERROR, "a document must be a mapping with apiVersion, kind and metadata",
            position=here, fix="write each resource as `apiVersion: ...`, `kind: ...`"))
        return
    api_version, kind = body.get("apiVersion"), body.get("kind")
    missing = [k for k, v in (("apiVersion", api_version), ("kind", kind)) if not v]
    if missing or not isinstance(api_version, str) or not isinstance(kind, str):
        result.diagnostics.append(Diagnostic(
            Severity.ERROR, "missing " + " and ".join(missing or ["apiVersion/kind"]),
            position=here, fix="every resource needs apiVersion and kind"))
        return
    group, version = split_api_version(api_version)
    info = lookup(group, kind)
    if info is None:
        ref = _ref(body, kind, True)
        if group in _managed_groups() and (group, kind) not in _KNOWN_UNUSED:
            result.diagnostics.append(obj.diagnostic(_unknown_kind(obj, group, kind), ref))
            return
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        assert isinstance(meta, dict)
        result.unmanaged.append(UnmanagedObject(
            api_version, kind, str(meta.get("namespace", "")), str(meta.get("name", "")),
            here, MappingProxyType(body)))
        result.diagnostics.append(Diagnostic(
            Severity.INFO, f"{api_version} {kind} is kept but not used by Heddle",
            position=here, resource=ref))
        return
    ref = _ref(body, kind, info.namespaced)
    if version not in info.versions:
        result.diagnostics.append(obj.diagnostic(_unserved_version(info, api_version), ref))
        return
    if version in info.unserved_versions:
        result.diagnostics.append(obj.diagnostic(FieldProblem(
            ("apiVersion",), f"{api_version} is deprecated and no longer served upstream",
            "use " + " or ".join(info.api_versions(served_only=True)), Severity.WARNING), ref))
    resource, problems = _validated(info, version, body, ref, here)
    result.diagnostics += [obj.diagnostic(p, ref) for p in problems]
    if resource is not None:
        result.resources.append(resource)


def _validated(info: KindInfo, version: str, body: dict[str, Any], ref: ResourceRef,
               source: SourcePosition | None,
               ) -> tuple[Resource[Any] | None, list[FieldProblem]]:
    """Every check a document of a known kind and served version goes through; the resource
    when none of them found an error."""
    # The API server fills in defaults before it validates; so does Heddle.
    schema = info.schema(version)
    defaulted = apply_defaults(schema, {k: v for k, v in body.items() if k != "metadata"})
    problems = check_metadata(body, info.namespaced)
    problems += check_schema(info, version, defaulted)
    if not problems:
        problems += check_rules(schema, defaulted)
        problems += check_semantics(info.group, info.kind, defaulted, body["metadata"])
    if any(p.severity is Severity.ERROR for p in problems):
        return None, problems
    spec_body = defaulted.get("spec", {}) if info.has_spec else defaulted
    try:
        spec = info.spec_model.model_validate(spec_body or {})
    except ValidationError as err:  # the schema passed, so this is a model generation gap
        return None, [*problems, FieldProblem(("spec",),
                                              f"cannot read spec: {err.errors()[0]['msg']}")]
    meta = body["metadata"]
    return Resource(
        api_version=body["apiVersion"],
        key=ResourceKey(info.group, info.kind, ref.namespace, ref.name),
        metadata=ObjectMeta(
            name=ref.name,
            namespace=ref.namespace,
            labels=MappingProxyType(dict(meta.get("labels") or {})),
            annotations=MappingProxyType(dict(meta.get("annotations") or {})),
        ),
        spec=spec,
        source=source,
        body=MappingProxyType(body),
    ), problems


def build_resource(body: dict[str, Any], source: SourcePosition | None = None,
                   ) -> tuple[Resource[Any] | None, list[FieldProblem]]:
    """A resource made by Heddle itself (as the Gateway API conversion makes Istio Gateways
    and VirtualServices), checked exactly as a loaded one is: None and the problems when any
    is an error. `source`: where what it was made from was written."""
    group, version = split_api_version(str(body.get("apiVersion", "")))
    info = lookup(group, str(body.get("kind", "")))
    if info is None or version not in info.versions:
        return None, [FieldProblem(("apiVersion",),
                                   f"unknown kind {body.get('apiVersion')} {body.get('kind')}")]
    return _validated(info, version, body, _ref(body, info.kind, info.namespaced), source)


def _load_steps(text: str, file: str, result: LoadResult) -> Iterator[None]:
    """Load `text` into `result` one document at a time, pausing after each."""
    for item in iter_documents(text, file):
        if isinstance(item, Diagnostic):
            result.diagnostics.append(item)
            continue
        for obj in _objects(item):
            load_object(obj, result)
        yield


def load_text(text: str, file: str) -> LoadResult:
    result = LoadResult()
    for _ in _load_steps(text, file, result):
        pass
    return result


async def load_text_cooperatively(text: str, file: str,
                                  slice_seconds: float = 0.01) -> LoadResult:
    """As load_text, letting the event loop run every `slice_seconds` of work, so that a
    file of thousands of documents never stalls the streams and APIs beside it."""
    result = LoadResult()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + slice_seconds
    for _ in _load_steps(text, file, result):
        if loop.time() >= deadline:
            settle()  # what this slice built stays: keep the collector's pauses short
            await asyncio.sleep(0)
            deadline = loop.time() + slice_seconds
    return result


def load_paths(paths: Iterable[Path]) -> LoadResult:
    result = LoadResult()
    for path in yaml_files(paths):
        try:
            text = read_config_text(path)
        except UnreadableConfig as err:
            result.diagnostics.append(err.diagnostic)
            continue
        except OSError as err:
            result.diagnostics.append(Diagnostic(
                Severity.ERROR, f"cannot read {path}: {err.strerror}",
                fix="check the path and its permissions"))
            continue
        result.extend(load_text(text, str(path)))
    return result
