"""What a push is for, and which proxies need it.

A PushRequest names the resources that changed (kind/namespace/name), or is full (None:
membership changed, a start-up, an explicit push-all). Requests merge. `PushContext`
decides per proxy whether any changed resource, before or after the change, is something
that proxy's configuration depends on, as Istio's `ProxyNeedsPush` does. Where it cannot
tell, it pushes: a needless push costs a little CPU (the caches and content versions then
send nothing), a skipped one leaves a proxy wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from heddle.api.resource import Resource, ResourceKey
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.scope import NETWORKING, ROOT_NAMESPACE, ProxyScope, proxy_scope
from heddle.model.selectors import matches, selector_of
from heddle.model.snapshot import MeshSnapshot

SECURITY = "security.istio.io"
_SCOPED = {(NETWORKING, "VirtualService"), (NETWORKING, "DestinationRule")}
_REGISTRY = {(NETWORKING, "ServiceEntry"), (NETWORKING, "WorkloadEntry"),
             (NETWORKING, "WorkloadGroup"), ("", "Service")}
_INBOUND_POLICY = {(SECURITY, "AuthorizationPolicy"), (SECURITY, "RequestAuthentication")}
_PEER_AUTHENTICATION = (SECURITY, "PeerAuthentication")
_SIDECAR = (NETWORKING, "Sidecar")


@dataclass(frozen=True)
class PushRequest:
    """`changes`: the resources that changed; None for a full push (everything may have)."""

    changes: frozenset[ResourceKey] | None = None

    @classmethod
    def of(cls, keys: Iterable[ResourceKey]) -> PushRequest:
        return cls(frozenset(keys))

    def merge(self, other: PushRequest | None) -> PushRequest:
        if other is None:
            return self
        if self.changes is None or other.changes is None:
            return PushRequest(None)
        return PushRequest(self.changes | other.changes)


def _get(snapshot: MeshSnapshot, key: ResourceKey) -> Resource[Any] | None:
    return snapshot.get(key.group, key.kind, key.namespace, key.name)


def _selects(resource: Resource[Any] | None, proxy: Proxy) -> bool:
    if resource is None:
        return False
    spec = resource.body.get("spec") or {}
    if spec.get("targetRef") or spec.get("targetRefs"):
        return True  # targets a service or gateway: do not try to be clever
    selector = selector_of(resource)
    return selector is None or matches(selector, proxy.label_map)


class PushContext:
    """One push from `old` to `new` for the resources in `changes`."""

    def __init__(self, old: MeshSnapshot, new: MeshSnapshot,
                 changes: frozenset[ResourceKey]) -> None:
        self.old, self.new, self.changes = old, new, changes
        kinds = {(k.group, k.kind) for k in changes}
        known = _SCOPED | _REGISTRY | _INBOUND_POLICY | {_PEER_AUTHENTICATION, _SIDECAR}
        self.everyone = bool(kinds - known) or any(
            k.namespace == ROOT_NAMESPACE and (k.group, k.kind) not in _SCOPED | _REGISTRY
            for k in changes) or any(
            (k.group, k.kind) == (NETWORKING, "VirtualService") and self._delegate(k)
            for k in changes)
        self.changed_hosts: set[str] = set()
        self.changed_workloads: set[tuple[str, str]] = set()  # (namespace, name)
        self.changed_addresses: set[str] = set()
        self.selectors: list[tuple[tuple[str, str], ...]] = []
        self._joined: dict[tuple[int, int], tuple[frozenset[str], frozenset[str],
                                                  frozenset[ResourceKey]]] = {}
        self._scopes: list[tuple[ProxyScope, ProxyScope]] = []
        if kinds & _REGISTRY:
            self._diff_registries()

    def _delegate(self, key: ResourceKey) -> bool:
        """A VirtualService without hosts is a delegate: no scope lists it."""
        return any(r is not None and not (r.body.get("spec") or {}).get("hosts")
                   for r in (_get(self.old, key), _get(self.new, key)))

    def _diff_registries(self) -> None:
        before = {(s.namespace, s.hostname): s for s in self.old.registry.services}
        after = {(s.namespace, s.hostname): s for s in self.new.registry.services}
        for key in set(before) | set(after):
            old, new = before.get(key), after.get(key)
            if (old != new or old is None or new is None
                    or self.old.registry.workloads_of(old) != self.new.registry.workloads_of(new)):
                self.changed_hosts.add(key[1])
                self.selectors += [s.selector for s in (old, new)
                                   if s is not None and s.selector is not None]
        old_w = {(w.namespace, w.name): w for w in self.old.registry.workloads}
        new_w = {(w.namespace, w.name): w for w in self.new.registry.workloads}
        for key in set(old_w) | set(new_w):
            if old_w.get(key) != new_w.get(key):
                self.changed_workloads.add(key)
                self.changed_addresses.update(w.address for w in (old_w.get(key),
                                                                   new_w.get(key)) if w)

    @staticmethod
    def _scope_facts(scope: ProxyScope) -> tuple[frozenset[str], frozenset[str],
                                                 frozenset[ResourceKey]]:
        """Hosts, their service and workload namespaces, and the scoped VS/DR keys."""
        def compute() -> tuple[frozenset[str], frozenset[str], frozenset[ResourceKey]]:
            registry = scope.snapshot.registry
            hosts = frozenset(s.hostname for s in registry.services)
            namespaces = {s.namespace for s in registry.services}
            namespaces.update(w.namespace for s in registry.services
                              for w in registry.workloads_of(s))
            keys = frozenset(r.key for kind in ("VirtualService", "DestinationRule")
                             for r in scope.snapshot.of_kind(NETWORKING, kind))
            return hosts, frozenset(namespaces), keys
        return scope.snapshot.memo("push_scope_facts", compute)

    def _facts_before_and_after(self, proxy: Proxy) -> tuple[frozenset[str], frozenset[str],
                                                               frozenset[ResourceKey]]:
        """The proxy's scope facts in both snapshots, joined once per pair of scopes (the
        proxies of a namespace share them: a thousand unions of a thousand hosts add up)."""
        scopes = (proxy_scope(self.old, proxy), proxy_scope(self.new, proxy))
        key = (id(scopes[0].snapshot), id(scopes[1].snapshot))
        joined = self._joined.get(key)
        if joined is None:
            before, after = (self._scope_facts(scope) for scope in scopes)
            joined = (before[0] | after[0], before[1] | after[1], before[2] | after[2])
            # Keep the scopes alive with their facts, so that their ids stay theirs.
            self._joined[key] = joined
            self._scopes.append(scopes)
        return joined

    def needs_push(self, proxy: Proxy) -> bool:
        if self.everyone or proxy.type is ProxyType.ROUTER:
            return True  # a gateway depends on Gateways and Secrets too: few, always pushed
        hosts, namespaces, scoped = self._facts_before_and_after(proxy)
        for key in self.changes:
            group_kind = (key.group, key.kind)
            versions = (_get(self.old, key), _get(self.new, key))
            if group_kind in _SCOPED and key in scoped:
                return True
            if group_kind == _SIDECAR and key.namespace == proxy.namespace:
                return True
            if group_kind in _INBOUND_POLICY and key.namespace == proxy.namespace and any(
                    _selects(r, proxy) for r in versions):
                return True
            if group_kind == _PEER_AUTHENTICATION and (
                    key.namespace in namespaces  # auto-mTLS towards that namespace
                    or (key.namespace == proxy.namespace
                        and any(_selects(r, proxy) for r in versions))):
                return True
        return bool(self.changed_hosts or self.changed_workloads) and self._registry_touches(
            proxy, hosts)

    def _registry_touches(self, proxy: Proxy, hosts: frozenset[str]) -> bool:
        if self.changed_hosts & hosts:
            return True  # outbound clusters, endpoints or routes of a service it sees
        if (proxy.namespace, proxy.name) in self.changed_workloads \
                or proxy.address in self.changed_addresses:
            return True  # its own workload: inbound ports, locality
        labels = proxy.label_map
        return any(matches(dict(selector), labels) for selector in self.selectors)
