"""ConfigStore: the resources of every source file, the last good version of each kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from heddle.api.diagnostics import Diagnostic, Severity
from heddle.api.loader import LoadResult
from heddle.api.resource import Resource, ResourceKey, UnmanagedObject
from heddle.config.events import ChangeType, ResourceChange, StoreEvent


@dataclass
class _FileState:
    resources: dict[ResourceKey, Resource[Any]] = field(default_factory=dict)
    unmanaged: list[UnmanagedObject] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


class ConfigStore:
    """Holds what each source (a file) last loaded without errors.

    A source whose new content has errors keeps its previous resources and records the
    errors, so a typo never takes configuration away from running proxies.
    """

    def __init__(self) -> None:
        self._files: dict[str, _FileState] = {}
        self._version = 0
        self._resources: dict[ResourceKey, Resource[Any]] = {}
        self._subscribers: list[asyncio.Queue[StoreEvent]] = []

    @property
    def version(self) -> int:
        return self._version

    def resources(self) -> list[Resource[Any]]:
        """Every resource at the current version (build a MeshSnapshot from these)."""
        return list(self._resources.values())

    def sources(self) -> list[str]:
        return sorted(self._files)

    def diagnostics(self) -> list[Diagnostic]:
        return [d for name in sorted(self._files) for d in self._files[name].diagnostics]

    def unmanaged(self) -> list[UnmanagedObject]:
        return [o for name in sorted(self._files) for o in self._files[name].unmanaged]

    def subscribe(self) -> asyncio.Queue[StoreEvent]:
        queue: asyncio.Queue[StoreEvent] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[StoreEvent]) -> None:
        self._subscribers.remove(queue)

    def _unmanaged_bodies(self) -> dict[ResourceKey, dict[str, Any]]:
        """Kept objects by key: mesh config lives in one (ConfigMap istio-system/istio)."""
        return {ResourceKey(o.api_version.rpartition("/")[0], o.kind, o.namespace, o.name):
                dict(o.body) for o in self.unmanaged()}

    def _merged(self) -> dict[ResourceKey, Resource[Any]]:
        merged: dict[ResourceKey, Resource[Any]] = {}
        for name in sorted(self._files):
            merged.update(self._files[name].resources)
        return merged

    def _duplicates(self, source: str, keys: Iterable[ResourceKey]) -> list[Diagnostic]:
        found = []
        for key in keys:
            for other, state in self._files.items():
                if other != source and key in state.resources:
                    found.append(Diagnostic(
                        Severity.WARNING, f"{key} is also defined in {other}",
                        position=self._files[source].resources[key].source,
                        resource=key.ref, fix="keep one definition; the later file name wins"))
        return found

    def put(self, source: str, loaded: LoadResult) -> StoreEvent:
        """Replace what `source` holds with `loaded`, unless `loaded` has errors."""
        state = self._files.setdefault(source, _FileState())
        if loaded.errors:
            state.diagnostics = list(loaded.diagnostics)
            return self._publish(source, [], state.diagnostics)
        before, kept_before = self._merged(), self._unmanaged_bodies()
        state.resources = {r.key: r for r in loaded.resources}
        state.unmanaged = list(loaded.unmanaged)
        state.diagnostics = list(loaded.diagnostics) + self._duplicates(source, state.resources)
        return self._publish(source, self._commit(before, kept_before), state.diagnostics)

    def remove(self, source: str) -> StoreEvent:
        before, kept_before = self._merged(), self._unmanaged_bodies()
        self._files.pop(source, None)
        return self._publish(source, self._commit(before, kept_before), [])

    def _commit(self, before: dict[ResourceKey, Resource[Any]],
                kept_before: dict[ResourceKey, dict[str, Any]]) -> list[ResourceChange]:
        """Diff against `before` (kept objects too); on any change, bump the version."""
        after = self._merged()
        changes: list[ResourceChange] = []
        kept_after = self._unmanaged_bodies()
        for key in sorted(set(kept_before) | set(kept_after)):
            if kept_before.get(key) != kept_after.get(key):
                changes.append(ResourceChange(
                    ChangeType.DELETED if key not in kept_after else
                    ChangeType.ADDED if key not in kept_before else ChangeType.UPDATED, key))
        for key in sorted(set(before) | set(after)):
            if key not in after:
                changes.append(ResourceChange(ChangeType.DELETED, key))
            elif key not in before:
                changes.append(ResourceChange(ChangeType.ADDED, key))
            elif before[key].body != after[key].body:
                changes.append(ResourceChange(ChangeType.UPDATED, key))
        if changes:
            self._version += 1
            self._resources = after
        return changes

    def _publish(self, source: str, changes: list[ResourceChange],
                 diagnostics: list[Diagnostic]) -> StoreEvent:
        event = StoreEvent(self._version, source, tuple(changes), tuple(diagnostics))
        for queue in self._subscribers:
            queue.put_nowait(event)
        return event
