"""ADS over gRPC: state-of-the-world and delta streams fed from one per-proxy config cache.

The cache (what each proxy should have, with content versions) is kept apart from stream
handling (nonces, ACK/NACK, subscriptions), as in go-control-plane. A push recomputes each
connected proxy's resources; a stream sends only the types whose content changed, so a
change reaches exactly the proxies it affects.

Streams are keyed by a connection id (`NODE_ID-N`, as istiod's), never by the node id: a
second stream naming the same node is served beside the first, and closing one never
removes another. Over TLS a stream must carry a verified client certificate, and the node
must be what that certificate's identity allows (heddle.xds.authorize).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import grpc
from envoy.service.discovery.v3 import ads_pb2, discovery_pb2

from heddle.api.resource import ResourceKey
from heddle.ca.identity import Identity
from heddle.ca.peer import Unauthenticated, peer_address, peer_identity
from heddle.heap import settle
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.from_config import workload_from_group
from heddle.registry.membership import EntryKey, InstanceKey, Membership
from heddle.translate.consistency import inconsistencies
from heddle.translate.sidecar import (
    CLUSTER,
    ENDPOINT,
    LISTENER,
    PUSH_ORDER,
    ProxyResources,
)
from heddle.xds.authorize import NotAuthorized, authorize, authorize_instance
from heddle.xds.cache import PackCache
from heddle.xds.generator import CachedSidecarGenerator
from heddle.xds.metrics import ControlPlaneMetrics
from heddle.xds.proxies import UnknownProxy, node_metadata, proxy_from_node
from heddle.xds.push import PushContext, PushRequest
from heddle.xds.status import ProxyStatus
from heddle.xds.throttle import SendThrottle
from heddle.xds.versions import VersionedResource, encoded_response, type_version

log = logging.getLogger(__name__)

Generator = Callable[[MeshSnapshot, Proxy], ProxyResources]
# Which generator builds a proxy's resources, by its type (sidecar; router next).
Generators = Mapping[ProxyType, Generator]
MAX_DISCONNECTED = 1000  # statuses of proxies gone, kept for proxy-status
WILDCARD_TYPES = frozenset({LISTENER, CLUSTER})
Desired = dict[str, dict[str, VersionedResource]]
T = TypeVar("T")


@dataclass
class _TypeState:
    subscribed: set[str] | None = None  # None: wildcard
    requested: bool = False
    nonce: str = ""
    sent_version: str = ""
    # delta only: what the proxy holds (name -> version), and what each nonce would make it
    held: dict[str, str] = field(default_factory=dict)
    pending: dict[str, dict[str, str]] = field(default_factory=dict)
    last_sent: dict[str, str] = field(default_factory=dict)  # name -> version last sent


@dataclass(frozen=True)
class Built:
    """One proxy's resources, packed with their content versions and checked."""

    desired: Desired
    problems: list[str]
    sizes: dict[str, tuple[int, int]]
    # Each type's version over all of its resources (what a wildcard subscriber is sent),
    # and its resources' versions by name (what the proxy holds once it ACKs them all),
    # computed here on the worker rather than per send on the event loop. Never mutated:
    # streams keep the maps as what was sent and held.
    versions: dict[str, str]
    version_maps: dict[str, dict[str, str]]


def _built(resources: ProxyResources, packs: PackCache) -> Built:
    desired = {t: packs.versioned(items) for t, items in resources.by_type.items()}
    settle()  # a thousand proxies' configuration must not make every collection long
    return Built(desired, inconsistencies(desired, resources.of(LISTENER).values()),
                 {t: (len(items), sum(r.size for r in items.values()))
                  for t, items in desired.items()},
                 {t: type_version(items) for t, items in desired.items()},
                 {t: {n: r.version for n, r in items.items()} for t, items in desired.items()})


class _Stream:
    """One proxy's ADS stream: its subscriptions and the responses waiting to be sent."""

    def __init__(self, server: XdsServer, proxy: Proxy, delta: bool, connection_id: str,
                 identity: Identity | None = None, peer: str = "") -> None:
        self.server = server
        self.proxy = proxy
        self.delta = delta
        self.connection_id = connection_id
        self.outbox: asyncio.Queue[Response | None] = asyncio.Queue()
        self.types: dict[str, _TypeState] = {}
        self.desired: Desired = {}
        self.versions: dict[str, str] = {}
        self.version_maps: dict[str, dict[str, str]] = {}
        self.snapshot: MeshSnapshot | None = None  # what `desired` was computed from
        self.status = ProxyStatus(proxy.id, "delta" if delta else "sotw", connection_id,
                                  identity.spiffe_id if identity else "", peer)

    def adopt(self, built: Built, snapshot: MeshSnapshot | None = None) -> bool:
        """Take the proxy's new resources, unless they are inconsistent (then keep what it
        has, and log why): False when refused."""
        if built.problems:
            log.error("%s: not publishing an inconsistent configuration: %s",
                      self.connection_id, "; ".join(built.problems))
            return False
        self.desired, self.versions, self.snapshot = built.desired, built.versions, snapshot
        self.version_maps = built.version_maps
        # How much configuration this proxy gets: what Sidecar scoping saves is visible here.
        self.status.sizes = built.sizes
        return True

    def _wanted(self, type_url: str, state: _TypeState) -> dict[str, VersionedResource]:
        everything = self.desired.get(type_url, {})
        subscribed = state.subscribed
        if subscribed is None or (len(everything) <= len(subscribed)
                                  and all(n in subscribed for n in everything)):
            return everything  # its version and version map are computed already
        return {n: r for n, r in everything.items() if n in subscribed}

    def _nonce(self) -> str:
        return str(next(self.server.nonces))

    def send(self, type_url: str, force: bool = False, resend: frozenset[str] = frozenset(),
             ) -> None:
        """Send `type_url` if its content changed (or `force`); delta sends the changed
        resources and those named in `resend`."""
        state = self.types.setdefault(type_url, _TypeState())
        wanted = self._wanted(type_url, state)
        version = (self.versions[type_url] if wanted is self.desired.get(type_url)
                   else type_version(wanted))
        if self.delta:
            sent = self._send_delta(type_url, state, wanted, version, force, resend)
            if sent is None:
                return
        elif version != state.sent_version or force:
            state.nonce, state.sent_version = self._nonce(), version
            self.outbox.put_nowait(partial(
                _sized, self.server.metrics, type_url,
                partial(_sotw_response, version, type_url, state.nonce, wanted)))
            self._sent(type_url, state)
            sent = self._version_map(type_url, wanted)
        else:
            return
        previous, state.last_sent = state.last_sent, sent
        if type_url == CLUSTER and state.nonce:
            self._endpoints_for_changed_clusters(previous, state.last_sent)

    def _endpoints_for_changed_clusters(self, previous: dict[str, str],
                                        current: dict[str, str]) -> None:
        """Envoy warms a changed cluster as a new one, which waits for its endpoints (15 s,
        then Envoy gives up waiting): send them again right after the clusters, as Istio
        follows every cluster push with endpoints."""
        changed = frozenset(n for n, v in current.items() if n in previous and previous[n] != v)
        endpoints = self.types.get(ENDPOINT)
        if changed and endpoints is not None and endpoints.requested:
            self.send(ENDPOINT, force=not self.delta, resend=changed)

    def _send_delta(self, type_url: str, state: _TypeState, wanted: dict[str, VersionedResource],
                    version: str, force: bool, resend: frozenset[str] = frozenset(),
                    ) -> dict[str, str] | None:
        """The versions sent (None: nothing was)."""
        held = state.held
        if held:
            changed = [r for n, r in wanted.items() if held.get(n) != r.version or n in resend]
            removed = [n for n in held if n not in wanted]
        else:  # a first request: everything (and `resend` is within it)
            changed, removed = list(wanted.values()), []
        if not changed and not removed and not force:
            if version != state.sent_version:  # e.g. a NACKed change was reverted
                state.sent_version = version
                status = self.status.of(type_url)
                status.sent_version = status.acked_version = version
                status.nack_message = ""
            return None
        state.nonce, state.sent_version = self._nonce(), version
        versions = state.pending[state.nonce] = self._version_map(type_url, wanted)
        self.outbox.put_nowait(partial(
            _sized, self.server.metrics, type_url,
            partial(_delta_response, version, type_url, state.nonce, changed, removed)))
        self._sent(type_url, state)
        return versions

    def _version_map(self, type_url: str, wanted: dict[str, VersionedResource],
                     ) -> dict[str, str]:
        if wanted is self.desired.get(type_url):
            return self.version_maps[type_url]
        return {n: r.version for n, r in wanted.items()}

    def _sent(self, type_url: str, state: _TypeState) -> None:
        self.server.metrics.pushed(type_url)
        status = self.status.of(type_url)
        status.sent_version, status.sent_nonce = state.sent_version, state.nonce

    def push(self) -> None:
        """Send every type the proxy asked for whose content changed, in dependency order."""
        for type_url in sorted(self.types, key=_push_rank):
            if self.types[type_url].requested:
                self.send(type_url)

    def _ack_or_nack(self, type_url: str, state: _TypeState, nonce: str, version: str,
                     error: str) -> bool:
        """Record the proxy's answer; False when the nonce is stale (ignore the request)."""
        if not nonce:
            return True
        if nonce != state.nonce:
            return False
        status = self.status.of(type_url)
        if error:
            status.nack_message, status.nacked_version = error, state.sent_version
            self.server.metrics.rejected(type_url)
            log.warning("%s rejected %s version %s: %s", self.connection_id, type_url,
                        state.sent_version, error)
            if self.delta:
                state.pending.pop(nonce, None)
        else:
            status.acked_version = version or state.sent_version
            status.nack_message = ""
            if self.delta:
                state.held = state.pending.pop(nonce, state.held)
                state.pending.clear()
        return True

    def on_request(self, request: discovery_pb2.DiscoveryRequest) -> None:
        type_url = request.type_url
        state = self.types.setdefault(type_url, _TypeState())
        first = not state.requested
        if not self._ack_or_nack(type_url, state, request.response_nonce, request.version_info,
                                 request.error_detail.message):
            return
        names = set(request.resource_names)
        subscribed = None if type_url in WILDCARD_TYPES and (not names or "*" in names) else names
        changed = subscribed != state.subscribed
        state.subscribed, state.requested = subscribed, True
        if first or changed:
            self.send(type_url, force=first)

    def on_delta_request(self, request: discovery_pb2.DeltaDiscoveryRequest) -> None:
        type_url = request.type_url
        state = self.types.setdefault(type_url, _TypeState())
        first = not state.requested
        if not self._ack_or_nack(type_url, state, request.response_nonce, "",
                                 request.error_detail.message):
            return
        if first:
            state.held = dict(request.initial_resource_versions)
            names = set(request.resource_names_subscribe)
            wildcard = type_url in WILDCARD_TYPES and (not names or "*" in names)
            state.subscribed = None if wildcard else names
        elif state.subscribed is not None:
            state.subscribed |= set(request.resource_names_subscribe)
            state.subscribed -= set(request.resource_names_unsubscribe)
        if request.resource_names_unsubscribe:  # a new map: `held` may be `last_sent` too
            gone = set(request.resource_names_unsubscribe)
            state.held = {n: v for n, v in state.held.items() if n not in gone}
        state.requested = True
        # An ACK or NACK alone asks for nothing new; resending after a NACK would loop.
        if first or request.resource_names_subscribe or request.resource_names_unsubscribe:
            self.send(type_url, force=first)


# Responses are queued as the makings of one and encoded only as gRPC sends them (it calls
# `_encode`, the serializer `add_ads_servicer` gives it), from each resource's encoding made
# on the worker (see heddle.xds.versions). gRPC keeps the last response of each stream
# until the next one: the makings hold only shared resources, where an encoded response
# would keep up to a megabyte per idle stream.
Response = Callable[[], bytes]


def _encode(response: Response) -> bytes:
    return response()


def _sized(metrics: ControlPlaneMetrics, type_url: str, make: Callable[[], bytes]) -> bytes:
    """A response as it is encoded, its size counted (pilot_xds_config_size_bytes)."""
    encoded = make()
    metrics.sized(type_url, len(encoded))
    return encoded


def _sotw_response(version: str, type_url: str, nonce: str,
                   wanted: dict[str, VersionedResource]) -> bytes:
    return encoded_response(
        discovery_pb2.DiscoveryResponse(version_info=version, type_url=type_url, nonce=nonce),
        [r.sotw_part for r in wanted.values()])


def _delta_response(version: str, type_url: str, nonce: str, changed: list[VersionedResource],
                    removed: list[str]) -> bytes:
    return encoded_response(
        discovery_pb2.DeltaDiscoveryResponse(system_version_info=version, type_url=type_url,
                                             nonce=nonce, removed_resources=removed),
        [r.delta_part for r in changed])


def _push_rank(type_url: str) -> int:
    return PUSH_ORDER.index(type_url) if type_url in PUSH_ORDER else len(PUSH_ORDER)


class XdsServer:
    """Serves every proxy from the latest MeshSnapshot that `snapshots` returns; an
    AggregatedDiscoveryService servicer by its two method names."""

    def __init__(self, snapshots: Callable[[], MeshSnapshot],
                 generators: Generators | Generator | None = None,
                 membership: Membership | None = None,
                 metrics: ControlPlaneMetrics | None = None) -> None:
        """`generators` by proxy type; one generator serves every type; None: the cached
        sidecar generator for every type (routers get a sidecar's until theirs exists)."""
        self._snapshots = snapshots
        self.metrics = metrics or ControlPlaneMetrics()
        self.metrics.connected = lambda: len(self._streams)
        if generators is None:
            generators = CachedSidecarGenerator()
        if not isinstance(generators, Mapping):
            generators = dict.fromkeys(ProxyType, generators)
        self._generators: dict[ProxyType, Generator] = dict(generators)
        self.packs = PackCache()
        # Translation and packing run on one worker thread, never on the event loop, so
        # ACKs, health checks, the debug API and new streams are served during a push of a
        # thousand proxies (the interpreter hands the loop the GIL every few milliseconds).
        # One thread: the generators' caches are only ever touched by it.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xds-translate")
        weakref.finalize(self, self._worker.shutdown, wait=False)
        self._tasks: set[asyncio.Task[None]] = set()
        self._throttle = SendThrottle()
        # The push queue: at most one pending request per stream, merged into.
        self._pending: dict[str, PushRequest] = {}
        self._draining = False
        self.pushed_proxies = 0  # streams recomputed by pushes (skipped ones not counted)
        self.membership = membership or Membership()
        self._streams: dict[str, _Stream] = {}  # by connection id
        # By node id, then connection id (oldest first): a thousand proxies connecting must
        # not each scan every stream.
        self._by_node: dict[str, dict[str, _Stream]] = {}
        # By connection id: every open stream's, and the last closed one's of a node id
        # with no stream left (so proxy-status shows it DISCONNECTED).
        self.statuses: dict[str, ProxyStatus] = {}
        self._gone: dict[str, str] = {}  # node id -> its kept DISCONNECTED status's conn. id
        self.nonces = itertools.count(1)
        self._connections = itertools.count(1)
        self.pushes = 0

    def _streams_of(self, proxy_id: str) -> list[_Stream]:
        """The open streams naming node `proxy_id`, oldest first."""
        return list(self._by_node.get(proxy_id, {}).values())

    def _stream(self, proxy_or_connection_id: str) -> _Stream | None:
        """A stream by its connection id, or a node id's newest stream."""
        if proxy_or_connection_id in self._streams:
            return self._streams[proxy_or_connection_id]
        streams = self._streams_of(proxy_or_connection_id)
        return streams[-1] if streams else None

    def status_of(self, proxy_or_connection_id: str) -> ProxyStatus | None:
        """A stream's status by connection id, or a node id's newest (a connected one
        before a closed one)."""
        if proxy_or_connection_id in self.statuses:
            return self.statuses[proxy_or_connection_id]
        mine = [s for s in self.statuses.values() if s.proxy_id == proxy_or_connection_id]
        mine.sort(key=lambda s: s.connected)  # stable: newest last within each group
        return mine[-1] if mine else None

    def _generate(self, snapshot: MeshSnapshot, proxy: Proxy) -> ProxyResources:
        generator = self._generators.get(proxy.type)
        if generator is None:
            raise UnknownProxy(f"no configuration is generated for {proxy.type} proxies "
                               f"(node {proxy.id}); this control plane serves "
                               f"{', '.join(sorted(self._generators))}")
        return generator(snapshot, proxy)

    async def _in_worker(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, work)

    async def _build(self, snapshot: MeshSnapshot, proxy: Proxy) -> Built:
        """A connecting proxy's first configuration (timed as a push, as istiod does)."""
        started = time.monotonic()
        built = await self._in_worker(
            lambda: _built(self._generate(snapshot, proxy), self.packs))
        self.metrics.push_time.observe(time.monotonic() - started)
        return built

    async def config_of(self, proxy_or_connection_id: str) -> ProxyResources | None:
        stream = self._stream(proxy_or_connection_id)
        if stream is None:
            return None
        snapshot, proxy = self._snapshots(), stream.proxy
        return await self._in_worker(lambda: self._generate(snapshot, proxy))

    def close(self) -> None:
        """Stop the translation worker (after the gRPC server has stopped)."""
        self._worker.shutdown(wait=False, cancel_futures=True)

    def proxies(self) -> list[Proxy]:
        return [s.proxy for s in self._streams.values()]

    async def push_all(self, request: PushRequest | None = None) -> None:
        """Queue `request` (None: a full push) for every connected stream and work the queue:
        each stream that needs it is recomputed from the latest snapshot and sent what
        changed. A request arriving meanwhile merges into the pending ones."""
        request = request or PushRequest(None)
        self.pushes += 1
        for connection_id in self._streams:
            self._pending[connection_id] = request.merge(self._pending.get(connection_id))
        await self._work_queue()

    async def _work_queue(self) -> None:
        if self._draining:
            return  # the push under way takes these too
        self._draining = True
        try:
            await self._drain()
        finally:
            self._draining = False
        await self._in_worker(self._sweep)

    def _sweep(self) -> None:
        """Forget what no connected proxy's configuration holds any more."""
        self.packs.sweep()
        for generator in {id(g): g for g in self._generators.values()}.values():
            sweep = getattr(generator, "sweep", None)
            if sweep is not None:
                sweep(self.packs.holds)

    def _push_later(self, connection_id: str) -> None:
        """Queue a full push for one stream, working the queue unless a push is under way."""
        self._pending[connection_id] = PushRequest(None)
        if not self._draining:
            task = asyncio.create_task(self._work_queue())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        # By the snapshots a proxy moves between and the changes it is told of (streams
        # whose requests merged differently get contexts of their own).
        contexts: dict[tuple[int, int, frozenset[ResourceKey]], PushContext] = {}
        while self._pending:
            connection_id = next(iter(self._pending))
            request = self._pending.pop(connection_id)
            stream = self._streams.get(connection_id)
            if stream is None:
                continue
            snapshot, proxy = self._snapshots(), stream.proxy
            started = time.monotonic()
            old = stream.snapshot if request.changes is not None else None
            built = await self._in_worker(partial(self._build_if_needed, contexts, old,
                                                  request.changes, snapshot, proxy))
            if built is None:
                # Nothing it depends on changed. Its config stays computed from `old`:
                # marking it at `snapshot` would hide a change that landed during this
                # push and that its own, later request then diffs against itself.
                continue
            self.pushed_proxies += 1
            if connection_id in self._streams and stream.adopt(built, snapshot):
                stream.push()
            self.metrics.push_time.observe(time.monotonic() - started)

    def _build_if_needed(self, contexts: dict[tuple[int, int, frozenset[ResourceKey]],
                                              PushContext],
                         old: MeshSnapshot | None, changes: frozenset[ResourceKey] | None,
                         snapshot: MeshSnapshot, proxy: Proxy) -> Built | None:
        """On the worker: deciding reads the proxy's scopes and diffs registries, which can
        cost as much as a build, so it is off the event loop too. None: not needed."""
        if old is not None and changes is not None:
            key = (id(old), id(snapshot), changes)
            if key not in contexts:
                contexts[key] = PushContext(old, snapshot, changes)
            if not contexts[key].needs_push(proxy):
                return None
        return _built(self._generate(snapshot, proxy), self.packs)

    def _register(self, connection_id: str, proxy: Proxy, identity: Identity | None,
                  snapshot: MeshSnapshot) -> None:
        """A proxy that announces a WorkloadGroup joins as an instance of it."""
        group = snapshot.get("networking.istio.io", "WorkloadGroup", proxy.namespace,
                             proxy.workload_group)
        if group is None:
            raise UnknownProxy(f"WorkloadGroup {proxy.namespace}/{proxy.workload_group} "
                               "does not exist; create it before starting its instances")
        instance = workload_from_group(group, proxy.name, proxy.address)
        authorize_instance(instance, proxy.workload_group, identity)
        probe = dict((group.body.get("spec") or {}).get("probe") or {})
        key = InstanceKey(proxy.namespace, proxy.workload_group, proxy.address)
        new = self.membership.join(
            connection_id, key, instance,
            period=float(probe.get("periodSeconds") or 5),
            failure_threshold=int(probe.get("failureThreshold") or 3),
            success_threshold=int(probe.get("successThreshold") or 1))
        log.info("%s %s WorkloadGroup instance %s (healthy once its probe passes)",
                 connection_id, "registered" if new else "joined the existing", key)

    def _watch_entry(self, connection_id: str, proxy: Proxy, node: Any,
                     identity: Identity | None, snapshot: MeshSnapshot) -> None:
        """A proxy that proved to be a WorkloadEntry's, and whose agent answers readiness
        (HEALTH_CHECKS in its node metadata), has the entry health-checked while it is
        connected: Istio's health-checked WorkloadEntry, whose agent reports its health
        over its xDS connection. Never for an unauthenticated stream: the plaintext port
        cannot take an endpoint away."""
        if identity is None or str(node_metadata(node).get("HEALTH_CHECKS", "")) != "true":
            return
        entry = snapshot.registry.workload(proxy.namespace, proxy.name)
        if entry is None or entry.address != proxy.address:
            return
        if self.membership.watch(connection_id, EntryKey(entry.namespace, entry.name), entry):
            log.info("%s reports the readiness of WorkloadEntry %s/%s: out of the endpoints "
                     "while it is not ready", connection_id, entry.namespace, entry.name)

    async def _open(self, node: Any, delta: bool, identity: Identity | None, peer: str,
                    ) -> _Stream:
        snapshot = self._snapshots()
        proxy = authorize(proxy_from_node(node, snapshot), node, identity, snapshot)
        connection_id = f"{proxy.id}-{next(self._connections)}"
        stream = _Stream(self, proxy, delta, connection_id, identity, peer)
        stream.adopt(await self._build(snapshot, proxy), snapshot)
        if self._snapshots() is not snapshot:
            # A push went by while this proxy's first configuration was built, and this
            # stream was not yet among those it queued: push it the latest.
            self._push_later(connection_id)
        if proxy.workload_group:
            self._register(connection_id, proxy, identity, snapshot)
        else:
            self._watch_entry(connection_id, proxy, node, identity, snapshot)
        others = self._streams_of(proxy.id)
        self._streams[connection_id] = stream
        self._by_node.setdefault(proxy.id, {})[connection_id] = stream
        gone = self._gone.pop(proxy.id, None)
        if gone is not None:
            self.statuses.pop(gone, None)
        self.statuses[connection_id] = stream.status
        who = identity.spiffe_id if identity else "unauthenticated"
        log.info("%s connected (%s) from %s, %s", connection_id, stream.status.protocol,
                 peer, who)
        if others:
            log.warning("another stream for %s: %s from %s (%s) beside %s; each is served, "
                        "none replaces another", proxy.id, connection_id, peer, who,
                        ", ".join(f"{s.connection_id} from {s.status.peer}" for s in others))
        return stream

    def _close(self, stream: _Stream) -> None:
        stream.status.connected = False
        if self._streams.pop(stream.connection_id, None) is None:
            return
        node_id = stream.proxy.id
        same_node = self._by_node.get(node_id, {})
        same_node.pop(stream.connection_id, None)
        self.membership.leave(stream.connection_id)
        if same_node:  # the node is still served: forget this one
            self.statuses.pop(stream.connection_id, None)
        else:
            del self._by_node[node_id]
            self._gone[node_id] = stream.connection_id
        self._forget_oldest_disconnected()
        log.info("%s disconnected", stream.connection_id)

    def _forget_oldest_disconnected(self) -> None:
        """Keep at most MAX_DISCONNECTED statuses of gone proxies: a client inventing node
        ids must not grow them without bound."""
        while len(self._gone) > MAX_DISCONNECTED:  # dicts keep insertion order: oldest first
            node_id = next(iter(self._gone))
            self.statuses.pop(self._gone.pop(node_id), None)

    async def _refuse(self, context: grpc.aio.ServicerContext[Any, Any],
                      code: grpc.StatusCode, message: str) -> None:
        log.warning("refused an ADS stream: %s", message)
        await context.abort(code, message)

    async def _serve(self, requests: AsyncIterator[Any],
                     context: grpc.aio.ServicerContext[Any, Any],
                     delta: bool) -> AsyncIterator[Any]:
        peer = peer_address(context)
        try:
            identity = peer_identity(context)  # before reading anything, as istiod does
        except Unauthenticated as err:
            await self._refuse(context, grpc.StatusCode.UNAUTHENTICATED, f"{peer}: {err}")
            return
        first = await anext(aiter(requests), None)
        if first is None:
            return
        try:
            stream = await self._open(first.node, delta, identity, peer)
        except UnknownProxy as err:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
            return
        except NotAuthorized as err:
            await self._refuse(context, grpc.StatusCode.PERMISSION_DENIED,
                               f"node {first.node.id} from {peer} with identity "
                               f"{identity}: {err}")
            return
        handle = stream.on_delta_request if delta else stream.on_request

        async def read() -> None:
            handle(first)
            async for request in requests:
                handle(request)
            stream.outbox.put_nowait(None)

        reader = asyncio.create_task(read())
        try:
            while (response := await stream.outbox.get()) is not None:
                give_back = await self._throttle.slot()
                try:
                    yield response  # resumes once gRPC has sent it
                finally:
                    give_back()
        finally:
            reader.cancel()
            self._close(stream)

    async def StreamAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        async for response in self._serve(request_iterator, context, delta=False):
            yield response

    async def DeltaAggregatedResources(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        async for response in self._serve(request_iterator, context, delta=True):
            yield response


def add_ads_servicer(xds: XdsServer, server: grpc.aio.Server) -> None:
    """Serve ADS from `xds` on `server`. Requests are decoded by the generated types;
    responses are encoded from their makings (`_encode`)."""
    service = ads_pb2.DESCRIPTOR.services_by_name["AggregatedDiscoveryService"].full_name
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
            xds.StreamAggregatedResources,
            request_deserializer=discovery_pb2.DiscoveryRequest.FromString,
            response_serializer=_encode),
        "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
            xds.DeltaAggregatedResources,
            request_deserializer=discovery_pb2.DeltaDiscoveryRequest.FromString,
            response_serializer=_encode),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


# gRPC binds with SO_REUSEPORT by default: a second control plane on the same port would
# then share its connections silently instead of failing to start.
EXCLUSIVE_PORTS = (("grpc.so_reuseport", 0),)


async def start_grpc(server: XdsServer, address: str) -> tuple[grpc.aio.Server, int]:
    """Listen for ADS on `address` (plaintext: loopback only); returns the bound port."""
    host = address.rsplit(":", 1)[0].strip("[]")
    if not (host.startswith("127.") or host in ("localhost", "::1")):
        raise ValueError(f"plaintext xDS must listen on loopback, not {address}")
    grpc_server = grpc.aio.server(options=EXCLUSIVE_PORTS)
    add_ads_servicer(server, grpc_server)
    port = grpc_server.add_insecure_port(address)
    await grpc_server.start()
    return grpc_server, port
