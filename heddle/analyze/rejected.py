"""Resources Heddle's validation refuses, as written: istioctl analyzes a resource its
schema rejects as well as reporting it (IST0106), so Heddle's analyzers see these too.
Only their bodies are read; their specs are never built."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

from heddle.api.diagnostics import SourcePosition
from heddle.api.files import UnreadableConfig, read_config_text, yaml_files
from heddle.api.kinds import lookup, split_api_version
from heddle.api.loader import LoadResult
from heddle.api.resource import DEFAULT_NAMESPACE, ObjectMeta, Resource, ResourceKey
from heddle.api.yaml_documents import PathKey, YamlDocument, iter_documents


def _objects(doc: YamlDocument) -> Iterator[tuple[Any, PathKey]]:
    body = doc.body
    if isinstance(body, dict) and body.get("kind") == "List" and isinstance(
            body.get("items"), list):
        for i, item in enumerate(body["items"]):
            yield item, ("items", i)
    else:
        yield body, ()


def _as_written(body: Any, source: SourcePosition) -> Resource[Any] | None:
    if not isinstance(body, dict):
        return None
    meta = body.get("metadata")
    api_version, kind = body.get("apiVersion"), body.get("kind")
    if not (isinstance(meta, dict) and isinstance(api_version, str) and isinstance(kind, str)):
        return None
    info = lookup(split_api_version(api_version)[0], kind)
    name = meta.get("name")
    if info is None or not isinstance(name, str) or not name:
        return None
    namespace = str(meta.get("namespace") or DEFAULT_NAMESPACE) if info.namespaced else ""
    labels, annotations = meta.get("labels"), meta.get("annotations")
    return Resource(
        api_version=api_version,
        key=ResourceKey(info.group, info.kind, namespace, name),
        metadata=ObjectMeta(
            name, namespace,
            MappingProxyType({str(k): str(v) for k, v in labels.items()}
                             if isinstance(labels, dict) else {}),
            MappingProxyType({str(k): str(v) for k, v in annotations.items()}
                             if isinstance(annotations, dict) else {})),
        spec=info.spec_model.model_construct(),  # never read: the analyzers read the body
        source=source,
        body=MappingProxyType(body))


def rejected_resources(paths: Iterable[Path], loaded: LoadResult) -> list[Resource[Any]]:
    """The objects of known kinds in `paths` that `loaded` (their load) did not accept."""
    accepted = {r.source for r in loaded.resources} | {u.source for u in loaded.unmanaged}
    found = []
    for path in yaml_files(paths):
        try:
            text = read_config_text(path)
        except (OSError, UnreadableConfig):
            continue
        for doc in iter_documents(text, str(path)):
            if not isinstance(doc, YamlDocument):
                continue
            for body, prefix in _objects(doc):
                source = doc.position(prefix)
                if source in accepted:
                    continue
                resource = _as_written(body, source)
                if resource is not None:
                    found.append(resource)
    return found
