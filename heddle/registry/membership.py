"""Workloads that joined at run time with a WorkloadGroup, and whether they are healthy.

An agent started with `--workload-group` makes its proxy announce the group; the control
plane registers an instance of the group at the proxy's address while the proxy is connected
(Istio's auto-registration). As Istio treats a health-checked WorkloadEntry, an instance is
unhealthy until its readiness probe first passes, and leaves the endpoints while it fails.

An instance is keyed as Istio keys it (namespace, group, address), and holds the ids of the
streams that registered it: a second stream for the same instance adds itself, and the
instance is removed only when its last stream closes, so one stream can never remove
another's registration.

A WorkloadEntry is health-checked the same way while a proxy that proved to be it and says
its agent answers readiness is connected (`watch`): as a Pod that fails its readiness probe
leaves its Service's EndpointSlice, the entry stays in the registry but leaves the endpoints
while its probe fails, and comes back once it passes. Unlike an instance it is configured,
so it counts as ready until a probe says otherwise, once one has passed (and again once its
last stream closes): a control plane that restarts never takes every endpoint away while it
learns their health, and a workload starting behind its already connected proxy keeps its
endpoint until it has been ready once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from heddle.clock import Clock, LoopClock, wait_event
from heddle.registry.model import Workload

log = logging.getLogger(__name__)

Probe = Callable[[Workload], Awaitable[bool]]


@dataclass(frozen=True, order=True)
class InstanceKey:
    namespace: str
    group: str
    address: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.group}@{self.address}"


@dataclass(frozen=True, order=True)
class EntryKey:
    """A WorkloadEntry whose agent reports its readiness."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class _Member:
    workload: Workload
    period: float
    failure_threshold: int
    success_threshold: int
    connections: set[str]
    # None: not probed yet. An instance counts as healthy only once a probe passed; an
    # entry until one failed.
    healthy: bool | None = None
    failures: int = 0
    successes: int = 0
    next_check: float = 0.0


class Membership:
    def __init__(self, on_change: Callable[[], None] = lambda: None,
                 clock: Clock | None = None) -> None:
        self._clock: Clock = clock or LoopClock()
        self._members: dict[InstanceKey, _Member] = {}
        self._entries: dict[EntryKey, _Member] = {}
        self._by_connection: dict[str, InstanceKey | EntryKey] = {}
        self._on_change = on_change
        self.version = 0

    def _changed(self) -> None:
        self.version += 1
        self._on_change()

    def join(self, connection_id: str, key: InstanceKey, workload: Workload,
             period: float = 5.0, failure_threshold: int = 3,
             success_threshold: int = 1) -> bool:
        """Register `connection_id` as a stream of the instance `key`; True when that made
        a new instance (which stays out of the endpoints until its probe passes)."""
        self._by_connection[connection_id] = key
        member = self._members.get(key)
        if member is not None:
            member.connections.add(connection_id)
            return False
        self._members[key] = _Member(workload, period, failure_threshold, success_threshold,
                                     {connection_id})
        return True

    def watch(self, connection_id: str, key: EntryKey, workload: Workload,
              period: float = 0.5, failure_threshold: int = 2,
              success_threshold: int = 1) -> bool:
        """Health-check the WorkloadEntry `key` while the stream `connection_id` (one of
        its proxy's) is open; True when it was not watched yet."""
        self._by_connection[connection_id] = key
        member = self._entries.get(key)
        if member is not None:
            member.connections.add(connection_id)
            return False
        self._entries[key] = _Member(workload, period, failure_threshold, success_threshold,
                                     {connection_id})
        return True

    def leave(self, connection_id: str) -> bool:
        """The stream `connection_id` closed; True when it was its instance's (or watched
        entry's) last stream: the instance is gone, the entry counts as ready again."""
        key = self._by_connection.pop(connection_id, None)
        members: dict[Any, _Member] = (
            self._entries if isinstance(key, EntryKey) else self._members)
        member = members.get(key) if key is not None else None
        if key is None or member is None:
            return False
        member.connections.discard(connection_id)
        if member.connections:
            return False
        del members[key]
        if member.healthy is (not isinstance(key, EntryKey)):  # it was in the endpoints, or out
            self._changed()
        return True

    def healthy(self) -> list[Workload]:
        return [m.workload for m in self._members.values() if m.healthy]

    def unready(self) -> frozenset[tuple[str, str]]:
        """The (namespace, name) of watched WorkloadEntries whose probe fails."""
        return frozenset((k.namespace, k.name) for k, m in self._entries.items()
                         if m.healthy is False)

    def entries(self) -> dict[EntryKey, bool | None]:
        """Each watched WorkloadEntry: ready, not ready, or None (not probed yet)."""
        return {key: m.healthy for key, m in self._entries.items()}

    def members(self) -> dict[InstanceKey, tuple[Workload, bool]]:
        return {key: (m.workload, m.healthy is True) for key, m in self._members.items()}

    async def check_due(self, probe: Probe, now: float) -> None:
        """Probe every member whose period has passed; flip health at the thresholds."""
        due: list[tuple[dict[Any, _Member], Any, _Member]] = [
            (members, key, m) for members in (self._members, self._entries)
            for key, m in members.items() if m.next_check <= now]
        results = await asyncio.gather(*(probe(m.workload) for _, _, m in due))
        changed = False
        for (members, key, member), ok in zip(due, results, strict=True):
            if members.get(key) is not member:
                continue  # left while being probed
            member.next_check = now + member.period
            # What an endpoint list shows of this member before and after the probe.
            before = member.healthy if members is self._members else member.healthy is not False
            if ok:
                member.failures, member.successes = 0, member.successes + 1
                if member.healthy is not True and member.successes >= member.success_threshold:
                    member.healthy = True
            else:
                member.successes, member.failures = 0, member.failures + 1
                # An entry leaves only once it has been ready: its proxy connects (and its
                # probe starts) before its application listens, and `heddle up` has said
                # "ready" by the time the probe first passes.
                if member.healthy is not False and member.failures >= member.failure_threshold \
                        and (members is self._members or member.healthy is True):
                    member.healthy = False
                    if members is self._entries:
                        log.warning("WorkloadEntry %s is not ready: out of the endpoints "
                                    "until its readiness probe passes", key)
            after = member.healthy if members is self._members else member.healthy is not False
            if members is self._entries and after and not before:
                log.info("WorkloadEntry %s is ready again: back in the endpoints", key)
            changed = changed or bool(before) != bool(after)
        if changed:
            self._changed()

    async def run_health_checks(self, probe: Probe, stop: asyncio.Event,
                                tick: float = 0.25) -> None:
        while not stop.is_set():
            await self.check_due(probe, self._clock.now())
            await wait_event(self._clock, stop, tick)
