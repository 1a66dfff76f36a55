"""ConfigStore: the resources of every source file, the last good version of each kept."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from heddle.api.diagnostics import Diagnostic, Severity
from heddle.api.loader import LoadResult
from heddle.api.resource import Resource, ResourceKey, UnmanagedObject
from heddle.clock import Clock, LoopClock
from heddle.config.events import ChangeType, ResourceChange, StoreEvent
from heddle.config.generations import Generations
from heddle.config.problems import ConfigProblems, FileProblems, ProblemHistory, group_by_file


def unmanaged_key(obj: UnmanagedObject) -> ResourceKey:
    return ResourceKey(obj.api_version.rpartition("/")[0], obj.kind, obj.namespace, obj.name)


@dataclass
class _FileState:
    resources: dict[ResourceKey, Resource[Any]] = field(default_factory=dict)
    unmanaged: list[UnmanagedObject] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    layer: int = 0
    hides: frozenset[ResourceKey] = frozenset()
    rejected: bool = False  # its current content has errors: the last good version stays


@dataclass(frozen=True)
class Definition:
    """Where one source defines a resource (or a kept object), in which layer."""

    layer: int
    source: str
    item: Resource[Any] | UnmanagedObject


class ConfigStore:
    """Holds what each source (a file) last loaded without errors.

    A source whose new content has errors keeps its previous resources and records the
    errors, so a typo never takes configuration away from running proxies.

    Sources sit in layers: a resource in a higher layer replaces the one with its key below
    (reported by `overrides`), and a source may hide keys of the layers below it (what
    `heddle delete` took away from the watched directory). Within a layer, the later file
    name wins, with a warning at both definitions, for as long as both exist.

    After every change it works out the problems in force (`problems`): each file's, the
    duplicates and the overrides, and which files were fixed lately (by `clock`'s wall time).
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._files: dict[str, _FileState] = {}
        self._version = 0
        self._resources: dict[ResourceKey, Resource[Any]] = {}
        self._subscribers: list[asyncio.Queue[StoreEvent]] = []
        self._clock: Clock = clock or LoopClock()
        self._history = ProblemHistory()
        # (layer, key) -> the files of that layer defining key, kept as files change, so
        # finding duplicates costs what they are, not what the store holds.
        self._definers: dict[tuple[int, ResourceKey], set[str]] = {}
        self._shared: set[tuple[int, ResourceKey]] = set()  # those with two files or more
        self._generations = Generations()  # metadata.generation of Gateway API resources

    @property
    def version(self) -> int:
        return self._version

    def resources(self) -> list[Resource[Any]]:
        """Every resource at the current version (build a MeshSnapshot from these)."""
        return list(self._resources.values())

    def sources(self) -> list[str]:
        return sorted(self._files)

    def diagnostics(self) -> list[Diagnostic]:
        """Each file's problems from loading it, then the duplicates in force."""
        return [*(d for name in sorted(self._files) for d in self._files[name].diagnostics),
                *self.duplicates()]

    def problems(self) -> ConfigProblems:
        """The problems in force by file (load errors and warnings, duplicates, overrides)
        and the files fixed lately, as of the last change."""
        return self._history.current

    def unmanaged(self) -> list[UnmanagedObject]:
        """Kept objects in force: every layer's, less those a higher layer hides or
        redefines."""
        kept: list[UnmanagedObject] = []
        for layer, names in self._layers():
            above = self._hidden_from(layer) | self._keys_above(layer)
            kept += [o for name in names for o in self._files[name].unmanaged
                     if unmanaged_key(o) not in above]
        return kept

    def find(self, key: ResourceKey) -> Resource[Any] | UnmanagedObject | None:
        """The resource (or kept object) in force under `key`."""
        found = self._resources.get(key)
        if found is not None:
            return found
        return next((o for o in self.unmanaged() if unmanaged_key(o) == key), None)

    def definitions(self, key: ResourceKey) -> list[Definition]:
        """Every source's definition of `key`, lowest layer first, in force or not."""
        found = []
        for layer, names in self._layers():
            for name in names:
                state = self._files[name]
                item: Resource[Any] | UnmanagedObject | None = state.resources.get(key)
                if item is None:
                    item = next((o for o in state.unmanaged if unmanaged_key(o) == key), None)
                if item is not None:
                    found.append(Definition(layer, name, item))
        return found

    def overrides(self) -> list[Diagnostic]:
        """A warning for every definition a higher layer replaces: both are kept, the higher
        one is in force, and nothing is resolved silently."""
        found = []
        for layer, names in self._layers()[1:]:  # nothing overrides the lowest layer
            for name in names:
                state = self._files[name]
                items: list[tuple[ResourceKey, Resource[Any] | UnmanagedObject]] = [
                    *state.resources.items(), *((unmanaged_key(o), o) for o in state.unmanaged)]
                for key, item in items:
                    lower = [d for d in self.definitions(key) if d.layer < layer]
                    for below in lower:
                        where = below.item.source or below.source
                        found.append(Diagnostic(
                            Severity.WARNING, f"overrides its definition at {where}",
                            position=item.source, resource=key.ref,
                            fix="`heddle apply -f` that definition to go back to it, or "
                                "remove it from the directory"))
        return found

    def _layers(self) -> list[tuple[int, list[str]]]:
        layers = sorted({state.layer for state in self._files.values()})
        return [(layer, sorted(n for n, s in self._files.items() if s.layer == layer))
                for layer in layers]

    def _hidden_from(self, layer: int) -> set[ResourceKey]:
        """Keys a source of a layer above `layer` hides."""
        return {k for s in self._files.values() if s.layer > layer for k in s.hides}

    def _keys_above(self, layer: int) -> set[ResourceKey]:
        return {unmanaged_key(o) for s in self._files.values() if s.layer > layer
                for o in s.unmanaged}

    def subscribe(self) -> asyncio.Queue[StoreEvent]:
        queue: asyncio.Queue[StoreEvent] = asyncio.Queue()
        self._subscribers.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[StoreEvent]) -> None:
        self._subscribers.remove(queue)

    def _unmanaged_bodies(self) -> dict[ResourceKey, dict[str, Any]]:
        """Kept objects by key: mesh config lives in one (ConfigMap istio-system/istio)."""
        return {unmanaged_key(o): dict(o.body) for o in self.unmanaged()}

    def _merged(self) -> dict[ResourceKey, Resource[Any]]:
        merged: dict[ResourceKey, Resource[Any]] = {}
        for _, names in self._layers():
            hidden = {k for name in names for k in self._files[name].hides}
            merged = {k: r for k, r in merged.items() if k not in hidden}
            for name in names:
                merged.update(self._files[name].resources)
        return merged

    def duplicates(self) -> list[Diagnostic]:
        """A warning at both definitions of every resource two files of one layer define:
        the later file name's is in force. Worked out from what the files hold now, so it
        goes when either definition does."""
        found = []
        for layer, key in sorted(self._shared):
            defined = [self._files[name].resources[key]
                       for name in sorted(self._definers[layer, key])]
            winner = defined[-1]
            for loser in defined[:-1]:
                found.append(Diagnostic(
                    Severity.WARNING, f"also defined at {winner.source}, which is in "
                    "force (the later file name wins); this definition is ignored",
                    position=loser.source, resource=key.ref, fix="keep one definition"))
                found.append(Diagnostic(
                    Severity.WARNING, f"also defined at {loser.source}; this definition "
                    "is in force (the later file name wins)",
                    position=winner.source, resource=key.ref, fix="keep one definition"))
        return found

    def put(self, source: str, loaded: LoadResult, layer: int = 0,
            hides: Iterable[ResourceKey] = ()) -> StoreEvent:
        """Replace what `source` holds with `loaded` (and the keys it hides in the layers
        below), unless `loaded` has errors."""
        state = self._files.setdefault(source, _FileState(layer=layer))
        state.diagnostics = list(loaded.diagnostics)
        state.rejected = bool(loaded.errors)
        if loaded.errors:
            return self._publish(source, [])
        before, kept_before = self._merged(), self._unmanaged_bodies()
        self._index(source, state, drop=True)
        state.layer = layer
        state.hides = frozenset(hides)
        state.resources = {r.key: r for r in loaded.resources}
        self._index(source, state)
        state.unmanaged = list(loaded.unmanaged)
        return self._publish(source, self._commit(before, kept_before))

    def remove(self, source: str) -> StoreEvent:
        before, kept_before = self._merged(), self._unmanaged_bodies()
        state = self._files.pop(source, None)
        if state is not None:
            self._index(source, state, drop=True)
        return self._publish(source, self._commit(before, kept_before))

    def _index(self, source: str, state: _FileState, drop: bool = False) -> None:
        """Note (or, `drop`, forget) which keys `source` defines in its layer."""
        for key in state.resources:
            at = (state.layer, key)
            definers = self._definers.setdefault(at, set())
            if drop:
                definers.discard(source)
            else:
                definers.add(source)
            if len(definers) > 1:
                self._shared.add(at)
            else:
                self._shared.discard(at)
                if not definers:
                    del self._definers[at]

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
        # A definition that only moved (a line above it edited, or another file's copy now
        # in force) changes nothing a proxy sees, but where it is said to come from.
        moved = any(k in before and before[k] is not r and before[k].source != r.source
                    for k, r in after.items())
        if changes or moved:
            self._version += 1
            self._resources = self._generations.stamp(after)
        return changes

    def _publish(self, source: str, changes: list[ResourceChange]) -> StoreEvent:
        """Work out the problems in force, then tell every subscriber."""
        duplicates = self.duplicates()
        by_file: dict[str, list[Diagnostic]] = {}
        found = [(state.diagnostics, name) for name, state in self._files.items()]
        for diagnostics, default in [*found, (duplicates, source), (self.overrides(), source)]:
            for file, problems in group_by_file(diagnostics, default).items():
                by_file.setdefault(file, []).extend(problems)
        files = [FileProblems(file, tuple(problems), file in self._files
                              and self._files[file].rejected)
                 for file, problems in by_file.items()]
        change = self._history.update(files, set(self._files), self._clock.wall())
        mine = self._files[source].diagnostics if source in self._files else []
        event = StoreEvent(self._version, source, tuple(changes), (
            *mine, *(d for d in duplicates if d.position and d.position.file == source)),
            change)
        for queue in self._subscribers:
            queue.put_nowait(event)
        return event
