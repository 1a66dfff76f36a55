"""Writing resources into a config directory and removing them from it, file by file.

`heddle apply` and `heddle delete` go through here: the directory is the store, so each
change is a file written atomically (the watcher never sees half a file), and a resource
defined inside a multi-document file is cut out of that file with its neighbours kept.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from heddle.api.loader import load_paths
from heddle.api.resource import Resource, ResourceKey


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 100
    return yaml


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".heddle-", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def file_for(key: ResourceKey) -> str:
    kind = key.kind.lower()
    return f"{kind}-{key.namespace}-{key.name}.yaml" if key.namespace else f"{kind}-{key.name}.yaml"


def _same_key(doc: Any, key: ResourceKey) -> bool:
    if not isinstance(doc, dict):
        return False
    group = str(doc.get("apiVersion", "")).rpartition("/")[0]
    meta = doc.get("metadata") or {}
    namespace = meta.get("namespace") or ("default" if key.namespace else "")
    return (group, doc.get("kind"), namespace, meta.get("name")) == (
        key.group, key.kind, key.namespace, key.name)


def remove_from_file(path: Path, key: ResourceKey) -> bool:
    """Cut the document defining `key` out of `path`; delete the file if nothing is left."""
    yaml = _yaml()
    docs = [d for d in yaml.load_all(path.read_text()) if d is not None]
    kept = [d for d in docs if not _same_key(d, key)]
    if len(kept) == len(docs):
        return False
    if not kept:
        path.unlink()
        return True
    out = io.StringIO()
    yaml.dump_all(kept, out)
    write_atomically(path, out.getvalue())
    return True


def definitions(config_dir: Path) -> dict[ResourceKey, Path]:
    """Where each resource in the directory is written (errors are left to the loader)."""
    return {r.key: Path(r.source.file) for r in load_paths([config_dir]).resources
            if r.source is not None}


def apply_resources(config_dir: Path, resources: list[Resource[Any]]) -> list[str]:
    """Write each resource to its own file, taking it out of wherever it was before."""
    where = definitions(config_dir)
    done = []
    for resource in resources:
        target = config_dir / file_for(resource.key)
        old = where.get(resource.key)
        if old is not None and old.resolve() != target.resolve():
            remove_from_file(old, resource.key)
        out = io.StringIO()
        _yaml().dump(dict(resource.body), out)
        action = "configured" if old is not None else "created"
        write_atomically(target, out.getvalue())
        done.append(f"{resource.key} {action}")
    return done


def delete_resources(config_dir: Path, keys: list[ResourceKey]) -> list[str]:
    where = definitions(config_dir)
    done = []
    for key in keys:
        path = where.get(key)
        if path is None or not remove_from_file(path, key):
            done.append(f"{key} not found")
        else:
            done.append(f"{key} deleted")
    return done
