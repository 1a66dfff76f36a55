"""MeshSnapshot: everything in the store at one version, indexed, and never changed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, TypeVar, cast

from heddle.api.resource import Resource, ResourceKey
from heddle.config.store import ConfigStore
from heddle.model.gateway_api import Conversion, convert
from heddle.model.mesh_config import MeshConfig
from heddle.model.selectors import matches, selector_of
from heddle.registry.from_config import Registry, build_registry
from heddle.registry.model import Service, Workload

GroupKind = tuple[str, str]
T = TypeVar("T")


@dataclass(frozen=True)
class _SelectorIndex:
    """Resources of one group/kind/namespace by the labels their selectors require."""

    select_all: tuple[ResourceKey, ...]
    by_label: Mapping[tuple[str, str], tuple[ResourceKey, ...]]


@dataclass(frozen=True)
class MeshSnapshot:
    """The only thing translation reads. Built once per store version; safe to share."""

    version: int
    _resources: Mapping[ResourceKey, Resource[Any]] = field(repr=False)
    _by_kind: Mapping[GroupKind, tuple[Resource[Any], ...]] = field(repr=False)
    _selectors: Mapping[tuple[str, str, str], _SelectorIndex] = field(repr=False)
    registry: Registry = field(repr=False)
    mesh_config: MeshConfig = field(default_factory=MeshConfig, repr=False)
    # What the Gateway API resources came to: their status, and the problems of any whose
    # Istio form is invalid (the Istio resources themselves are among `_resources`).
    gateway_api: Conversion = field(default_factory=Conversion, repr=False)
    # Derived lookups, computed once per snapshot (a narrowed view starts a new memo).
    _memo: dict[Hashable, Any] = field(default_factory=dict, init=False, repr=False,
                                       compare=False)

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        """`compute()` once per snapshot and key: for indexes and lookups that translation
        asks for again and again (the snapshot never changes, so neither do they)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return cast(T, self._memo[key])

    @classmethod
    def build(cls, version: int, resources: Iterable[Resource[Any]],
              registered: Iterable[Workload] = (),
              mesh_config: MeshConfig | None = None,
              unready: Collection[tuple[str, str]] = frozenset()) -> MeshSnapshot:
        """`registered`: workloads that joined at run time, beside the configured ones;
        `unready`: WorkloadEntries (namespace, name) whose agents report them not ready.
        Gateway API resources are converted here, and the Istio Gateways and VirtualServices
        they come to are carried as any other (one written by hand of the same name wins)."""
        configured = {r.key: r for r in resources}
        registry = build_registry(configured.values(), registered, unready)
        gateway_api = convert(configured.values(), registry)
        for derived in gateway_api.resources:
            configured.setdefault(derived.key, derived)
        by_key = {key: configured[key] for key in sorted(configured)}
        by_kind: dict[GroupKind, list[Resource[Any]]] = defaultdict(list)
        select_all: dict[tuple[str, str, str], list[ResourceKey]] = defaultdict(list)
        by_label: dict[tuple[str, str, str], dict[tuple[str, str], list[ResourceKey]]] = (
            defaultdict(lambda: defaultdict(list))
        )
        for key, resource in by_key.items():
            by_kind[(key.group, key.kind)].append(resource)
            selector = selector_of(resource)
            if selector is None:
                continue
            scope = (key.group, key.kind, key.namespace)
            if not selector:
                select_all[scope].append(key)
            for label in selector.items():
                by_label[scope][label].append(key)
        scopes = set(select_all) | set(by_label)
        return cls(
            version=version,
            _resources=MappingProxyType(by_key),
            _by_kind=MappingProxyType({k: tuple(v) for k, v in by_kind.items()}),
            _selectors=MappingProxyType({
                scope: _SelectorIndex(
                    tuple(select_all.get(scope, ())),
                    MappingProxyType({lbl: tuple(keys)
                                      for lbl, keys in by_label.get(scope, {}).items()}),
                )
                for scope in scopes
            }),
            registry=registry,
            mesh_config=mesh_config or MeshConfig(),
            gateway_api=gateway_api,
        )

    @classmethod
    def of(cls, store: ConfigStore) -> MeshSnapshot:
        """The store's content at its current version."""
        return cls.build(store.version, store.resources(),
                         mesh_config=MeshConfig.from_objects(store.unmanaged()))

    def __len__(self) -> int:
        return len(self._resources)

    def get(self, group: str, kind: str, namespace: str, name: str) -> Resource[Any] | None:
        return self._resources.get(ResourceKey(group, kind, namespace, name))

    def of_kind(self, group: str, kind: str, namespace: str | None = None,
                ) -> tuple[Resource[Any], ...]:
        found = self._by_kind.get((group, kind), ())
        if namespace is None:
            return found

        def by_namespace() -> dict[str, tuple[Resource[Any], ...]]:
            index: dict[str, list[Resource[Any]]] = defaultdict(list)
            for resource in found:
                index[resource.namespace].append(resource)
            return {ns: tuple(items) for ns, items in index.items()}

        return self.memo(("of_kind", group, kind), by_namespace).get(namespace, ())

    def selecting(self, group: str, kind: str, namespace: str, labels: Mapping[str, str],
                  ) -> tuple[Resource[Any], ...]:
        """Resources of a kind in `namespace` whose workload selector matches `labels`
        (those without a selector apply to every workload there)."""
        index = self._selectors.get((group, kind, namespace))
        if index is None:
            return ()
        candidates = set(index.select_all)
        for label in labels.items():
            candidates.update(index.by_label.get(label, ()))
        wanted = dict(labels)
        found = []
        for key in sorted(candidates):
            resource = self._resources[key]
            selector = selector_of(resource)
            if selector is not None and matches(selector, wanted):
                found.append(resource)
        return tuple(found)

    def narrowed(self, services: Iterable[Service],
                 kinds: Mapping[GroupKind, Iterable[Resource[Any]]]) -> MeshSnapshot:
        """The same snapshot seen by one proxy: only `services` in the registry (workloads
        stay, so their endpoints do) and only the given resources of the given kinds."""
        by_kind = {**self._by_kind, **{k: tuple(v) for k, v in kinds.items()}}
        return replace(self, _by_kind=MappingProxyType(by_kind),
                       registry=self.registry.with_services(services))

    def keys(self) -> tuple[ResourceKey, ...]:
        return tuple(self._resources)

    def resources(self) -> tuple[Resource[Any], ...]:
        return tuple(self._resources.values())
