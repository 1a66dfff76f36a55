"""Built resources shared across proxies and across snapshots, each keyed by every input that
shapes it.

A cache entry is only as correct as its key: a key that leaves out an input gives a proxy
another proxy's (or an older) configuration. So every key is a frozen dataclass whose fields
name the inputs one by one (as Istio's route cache does), and `heddle.xds.generator` fills
them from what the translator reads. After each push, entries that no connected proxy's
configuration holds any more are dropped (`PackCache.holds`): a full push must not keep the
configuration it replaced alive beside the new one.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from heddle.api.resource import Resource, ResourceKey
from heddle.registry.model import Endpoint, Service, ServicePort, Workload
from heddle.xds.versions import VersionedResource, versioned_one

V = TypeVar("V")
Labels = tuple[tuple[str, str], ...]


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return repr(value)


def digest(value: Any) -> str:
    """A content hash of plain data (YAML bodies, mappings, dataclass reprs)."""
    text = json.dumps(value, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class Fingerprints:
    """Each resource's content hash, computed once per resource object (the store keeps the
    same object while its document is unchanged)."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Resource[Any], str]] = {}

    def of(self, resource: Resource[Any]) -> str:
        held = self._by_id.get(id(resource))
        if held is not None and held[0] is resource:
            return held[1]
        value = digest(resource.body)
        self._by_id[id(resource)] = (resource, value)
        return value

    def keyed(self, resources: tuple[Resource[Any], ...] | list[Resource[Any]],
              ) -> tuple[tuple[ResourceKey, str], ...]:
        return tuple((r.key, self.of(r)) for r in resources)

    def keep_only(self, resources: tuple[Resource[Any], ...]) -> None:
        alive = {id(r) for r in resources}
        self._by_id = {i: held for i, held in self._by_id.items() if i in alive}


@dataclass(frozen=True)
class OutboundKey:
    """Every input of a scope's whole outbound side (its clusters and load assignments, each
    built through ClusterKey and EndpointKey): when none changed, not even those keys are
    computed again. A VirtualService edit changes none of these."""

    services: tuple[Service, ...]  # the services in the proxy's scope, in order
    workloads: tuple[Workload, ...]  # every workload: endpoints, SANs, the client's locality
    destination_rules: tuple[tuple[ResourceKey, str], ...]  # in scope, with content digests
    peer_authentications: tuple[tuple[ResourceKey, str], ...]  # all: auto-mTLS, per endpoint
    secrets: str  # digest of every Secret (credentialName origination)
    mesh_config: str
    client_namespace: str  # exportTo of rules, the rule a client namespace sees
    client_labels: Labels  # workloadSelector of rules, failoverPriority
    client_locality: str


@dataclass(frozen=True)
class ClusterKey:
    """Every input of one outbound cluster (translate.clusters.outbound_cluster_resource)."""

    service: Service  # hostname, namespace, ports, location, resolution, selector, addresses
    port: ServicePort
    subset: str
    subset_labels: Labels
    destination_rule: str  # digest of the merged rule the client sees (its policy, subsets)
    client_locality: str  # locality-weighted LB is switched on from the client's locality
    workloads: tuple[Workload, ...]  # DNS endpoints, SANs (service accounts), passthrough
    namespace_mtls_mode: str  # auto-mTLS: the destination namespace's (or the mesh's) mode
    secrets: str  # digest of Secrets a SIMPLE/MUTUAL origination reads ("" when none)
    mesh_config: str


@dataclass(frozen=True)
class EndpointKey:
    """Every input of one outbound ClusterLoadAssignment (translate.clusters.load_assignment)."""

    service: Service
    port: ServicePort
    subset: str
    subset_labels: Labels
    # Each endpoint with its workload spelled out: Endpoint compares address and port only,
    # yet the workload's weight, locality and labels shape the assignment.
    endpoints: tuple[tuple[Endpoint, Workload], ...]
    endpoint_mtls_modes: tuple[str, ...]  # each endpoint's workload PeerAuthentication mode
    destination_rule: str  # outlier detection, localityLbSetting, failoverPriority, TLS mode
    client_locality: str
    client_labels: Labels  # the client's labels that failoverPriority may compare
    mesh_config: str


@dataclass(frozen=True)
class RouteKey:
    """Every input of the outbound RouteConfiguration (translate.routes.proxy_route_config)."""

    name: str
    client_namespace: str  # sourceNamespace matches, exportTo, short-name domains
    client_labels: Labels  # only the label keys a sourceLabels or workloadSelector names
    outbound_traffic_mode: str  # the catch-all virtual host
    services: tuple[Service, ...]  # the services in the proxy's scope, in order
    virtual_services: tuple[tuple[ResourceKey, str], ...]  # in scope, with content digests
    destination_rules: tuple[tuple[ResourceKey, str], ...]  # hash policies, subsets, TLS mode
    mesh_config: str


class BuildCache(Generic[V]):
    """Values by key, counted; `sweep` drops those no longer wanted."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, V] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        held = self._entries.get(key)
        if held is not None:
            self.hits += 1
            return held
        self.misses += 1
        value = build()
        self._entries[key] = value
        return value

    def sweep(self, keep: Callable[[V], bool]) -> None:
        """Forget every value `keep` says is not wanted."""
        self._entries = {k: v for k, v in self._entries.items() if keep(v)}

    def __len__(self) -> int:
        return len(self._entries)


class PackCache:
    """The packed bytes and content version of each built message, so a cluster shared by a
    thousand proxies is serialized and hashed once. Keyed by the message object, which the
    build caches share and nobody mutates once built.

    A packed resource is held only weakly: it lives while some proxy's configuration holds
    it, and once none does, `sweep` forgets its message too."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[Message, weakref.ref[VersionedResource]]] = {}

    def versioned(self, resources: Mapping[str, Message]) -> dict[str, VersionedResource]:
        found = {}
        for name, message in sorted(resources.items()):
            held = self._by_id.get(id(message))
            packed = held[1]() if held is not None and held[0] is message else None
            if packed is None or packed.name != name:
                packed = versioned_one(name, message)
                self._by_id[id(message)] = (message, weakref.ref(packed))
            # Keyed by the shared resource's own name: protobuf hands out a new string per
            # field read, and a thousand proxies' maps would each keep a thousand of them.
            found[packed.name] = packed
        return found

    def holds(self, message: Message) -> bool:
        """Whether a packed copy of `message` is still held by some configuration."""
        held = self._by_id.get(id(message))
        return held is not None and held[0] is message and held[1]() is not None

    def sweep(self) -> None:
        """Forget the messages whose packed copies nobody holds any more."""
        self._by_id = {k: v for k, v in self._by_id.items() if v[1]() is not None}

    def __len__(self) -> int:
        return len(self._by_id)
