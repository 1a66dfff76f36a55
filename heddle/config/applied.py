"""What `heddle apply` and `heddle delete` changed, kept in the mesh's own state and layered
over the watched directory, whose files they never edit.

The state is a folder (`$HEDDLE_HOME/mesh/applied/`): `resources/` holds one YAML file per
applied resource (or kept object), each saying where it was applied from, and
`deleted.json` the keys deleted that the directory defines. Its resources sit in the
store's APPLIED layer: an applied resource replaces the directory's definition of its key
(reported, both kept), a deletion hides it; applying exactly the directory's definition
again drops both, so the directory is in force again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import re
import tempfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchfiles import awatch

from heddle.api.diagnostics import Diagnostic, Severity
from heddle.api.loader import LoadResult, load_text
from heddle.api.resource import Resource, ResourceKey, UnmanagedObject
from heddle.config.applied_layout import (
    APPLIED_LAYER,
    DELETED,
    RESOURCES,
    SOURCE_ANNOTATION,
    header,
)
from heddle.config.directory import DirectorySource
from heddle.config.events import StoreEvent
from heddle.config.store import ConfigStore, Definition, unmanaged_key

log = logging.getLogger(__name__)

__all__ = ["APPLIED_LAYER", "SOURCE_ANNOTATION", "AppliedConfig", "AppliedSource",
           "AppliedState", "Report", "plain_body"]

def _key_dict(key: ResourceKey) -> dict[str, str]:
    return {"group": key.group, "kind": key.kind, "namespace": key.namespace,
            "name": key.name}


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".heddle-", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    os.replace(tmp, path)


def plain_body(body: Any) -> dict[str, Any]:
    """A document as plain data, without the annotation `heddle get` adds."""
    plain: dict[str, Any] = json.loads(json.dumps(dict(body)))
    meta = plain.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        meta["annotations"].pop(SOURCE_ANNOTATION, None)
        if not meta["annotations"]:
            del meta["annotations"]
    return plain


class AppliedState:
    """The folder itself: reading and writing applied resources and deletions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.resources = root / RESOURCES
        self.deleted_file = root / DELETED

    def path_for(self, key: ResourceKey) -> Path:
        raw = f"{key.kind}.{key.group or 'core'}.{key.namespace or '-'}.{key.name}".lower()
        name = re.sub(r"[^a-z0-9._-]", "_", raw)
        if name != raw or name.startswith("."):
            name = f"{name.lstrip('.')}-{zlib.crc32(raw.encode()):08x}"
        return self.resources / f"{name}.yaml"

    def write(self, key: ResourceKey, body: dict[str, Any], origin: str) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # JSON is YAML that reads back exactly as written (no YAML 1.1 surprises).
        _write_atomically(self.path_for(key), header(origin, now) + json.dumps(body, indent=2)
                          + "\n")

    def remove(self, key: ResourceKey) -> bool:
        try:
            self.path_for(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def deletions(self) -> dict[ResourceKey, str]:
        """Deleted key -> where the deletion came from; raises ValueError if unreadable."""
        try:
            raw = json.loads(self.deleted_file.read_text())
        except FileNotFoundError:
            return {}
        try:
            return {ResourceKey(d["group"], d["kind"], d["namespace"], d["name"]):
                    str(d.get("from", "")) for d in raw["deleted"]}
        except (KeyError, TypeError) as err:
            raise ValueError(f"{self.deleted_file}: not a list of deleted keys ({err})") from err

    def save_deletions(self, deletions: dict[ResourceKey, str]) -> None:
        entries = [{**_key_dict(k), "from": origin} for k, origin in sorted(deletions.items())]
        _write_atomically(self.deleted_file, json.dumps({"deleted": entries}, indent=2) + "\n")


class AppliedSource:
    """The state as a ConfigSource of the store's APPLIED layer, watched, so that every
    process of the mesh (the control plane, the supervisor) follows it."""

    def __init__(self, root: Path, store: ConfigStore) -> None:
        self.state = AppliedState(root)
        self.state.resources.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.files = DirectorySource(self.state.resources, store, layer=APPLIED_LAYER)
        self.ready = asyncio.Event()
        self._hidden: dict[ResourceKey, str] = {}

    async def load(self) -> list[StoreEvent]:
        events = await self.files.load()
        try:
            self._hidden = self.state.deletions()
            problems: list[Diagnostic] = []
        except (OSError, ValueError) as err:  # the last good deletions stay in force
            problems = [Diagnostic(Severity.ERROR, f"cannot read the deletions: {err}",
                                   fix="restore the file or remove it")]
        source = str(self.state.deleted_file)
        events.append(self.store.put(source, LoadResult(diagnostics=problems),
                                     layer=APPLIED_LAYER, hides=self._hidden))
        return events

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                async for _ in awatch(self.state.root, debounce=50, step=10, stop_event=stop,
                                      yield_on_timeout=True, rust_timeout=100):
                    if not self.ready.is_set():
                        self.ready.set()
                    await self.load()
            except Exception:
                log.exception("watching %s failed; watching again", self.state.root)
            self.ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)


@dataclass
class Report:
    """What an apply or delete did: one line per resource, and the problems found."""

    lines: list[str] = field(default_factory=list)
    problems: list[Diagnostic] = field(default_factory=list)
    failed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"lines": self.lines, "problems": [str(d) for d in self.problems],
                "failed": self.failed}


Item = Resource[Any] | UnmanagedObject


def _key(item: Item) -> ResourceKey:
    return item.key if isinstance(item, Resource) else unmanaged_key(item)


def _where(definition: Definition) -> str:
    return str(definition.item.source or definition.source)


class AppliedConfig:
    """`heddle apply` and `heddle delete` against a store and the applied state."""

    def __init__(self, source: AppliedSource) -> None:
        self.source = source
        self.store = source.store
        self.state = source.state
        self._lock = asyncio.Lock()

    def _below(self, key: ResourceKey) -> Definition | None:
        """The directory's definition of `key` (the last file name wins, as in force)."""
        below = [d for d in self.store.definitions(key) if d.layer < APPLIED_LAYER]
        return below[-1] if below else None

    def _loaded(self, files: Iterable[tuple[str, str]]) -> tuple[list[Item], Report]:
        report = Report()
        items: list[Item] = []
        for name, text in files:
            result = load_text(text, name)
            report.problems += [d for d in result.diagnostics if d.severity is not Severity.INFO]
            items += [*result.resources, *result.unmanaged]
        if any(d.is_error for d in report.problems):
            report.failed = True
            report.lines.append("nothing was changed; fix the errors above")
        for item in items:
            if isinstance(item, UnmanagedObject) and not item.name:
                report.problems.append(Diagnostic(
                    Severity.ERROR, f"{item.api_version} {item.kind} has no metadata.name",
                    position=item.source, fix="name it"))
                report.failed = True
        return items, report

    async def apply(self, files: Iterable[tuple[str, str]]) -> Report:
        """Validate every document of `files` (name, text); if none has errors, make each
        the one in force."""
        async with self._lock:
            items, report = self._loaded(files)
            if report.failed:
                return report
            deletions = self.state.deletions()
            for item in items:
                report.lines.append(self._apply_one(item, deletions, report))
            self.state.save_deletions(deletions)
            await self.source.load()
            return report

    def _apply_one(self, item: Item, deletions: dict[ResourceKey, str], report: Report) -> str:
        key = _key(item)
        body = plain_body(item.body)
        before = self.store.find(key)
        below = self._below(key)
        unused = ", kept but not used by Heddle" if isinstance(item, UnmanagedObject) else ""
        if below is not None and plain_body(below.item.body) == body:
            changed = self.state.remove(key) | (deletions.pop(key, None) is not None)
            if not changed:
                return f"{key} unchanged{unused}"
            return f"{key} configured{unused} (back to its definition at {_where(below)})"
        deletions.pop(key, None)
        origin = str(item.source) if item.source else "?"
        applied = [d for d in self.store.definitions(key) if d.layer == APPLIED_LAYER]
        if applied and plain_body(applied[-1].item.body) == body:
            action = "unchanged"
        else:
            self.state.write(key, body, origin)
            action = "created" if before is None else "configured"
        if below is None:
            return f"{key} {action}{unused}"
        report.problems.append(Diagnostic(
            Severity.WARNING, f"the applied version overrides its definition at "
            f"{_where(below)}; both are kept, the applied one is in force",
            position=item.source, resource=key.ref,
            fix="apply the directory's definition again (or delete the resource) to end it"))
        return f"{key} {action}{unused} (overrides {_where(below)})"

    async def delete(self, files: Iterable[tuple[str, str]]) -> Report:
        """Take every resource the documents of `files` name out of the mesh: an error for
        each one not in it, as kubectl's."""
        async with self._lock:
            items, report = self._loaded(files)
            if report.failed:
                return report
            deletions = self.state.deletions()
            for key in dict.fromkeys(_key(item) for item in items):
                if self.store.find(key) is None:
                    report.problems.append(Diagnostic(
                        Severity.ERROR, "not found in the mesh", resource=key.ref,
                        fix="`heddle get` lists what the mesh has"))
                    report.failed = True
                    continue
                self.state.remove(key)
                below = self._below(key)
                if below is not None:
                    deletions[key] = _where(below)
                report.lines.append(f"{key} deleted")
            self.state.save_deletions(deletions)
            await self.source.load()
            return report
