"""Workloads that joined at run time with a WorkloadGroup, and whether they are healthy.

An agent started with `--workload-group` makes its proxy announce the group; the control
plane registers an instance of the group at the proxy's address while the proxy is connected
(Istio's auto-registration). As Istio treats a health-checked WorkloadEntry, an instance is
unhealthy until its readiness probe first passes, and leaves the endpoints while it fails.

An instance is keyed as Istio keys it (namespace, group, address), and holds the ids of the
streams that registered it: a second stream for the same instance adds itself, and the
instance is removed only when its last stream closes, so one stream can never remove
another's registration.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from heddle.clock import Clock, LoopClock, wait_event
from heddle.registry.model import Workload

Probe = Callable[[Workload], Awaitable[bool]]


@dataclass(frozen=True, order=True)
class InstanceKey:
    namespace: str
    group: str
    address: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.group}@{self.address}"


@dataclass
class _Member:
    workload: Workload
    period: float
    failure_threshold: int
    success_threshold: int
    connections: set[str]
    healthy: bool = False  # until a probe passes: an instance is never healthy unproven
    failures: int = 0
    successes: int = 0
    next_check: float = 0.0


class Membership:
    def __init__(self, on_change: Callable[[], None] = lambda: None,
                 clock: Clock | None = None) -> None:
        self._clock: Clock = clock or LoopClock()
        self._members: dict[InstanceKey, _Member] = {}
        self._by_connection: dict[str, InstanceKey] = {}
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

    def leave(self, connection_id: str) -> bool:
        """The stream `connection_id` closed; True when it was its instance's last stream
        (the instance is gone)."""
        key = self._by_connection.pop(connection_id, None)
        member = self._members.get(key) if key is not None else None
        if key is None or member is None:
            return False
        member.connections.discard(connection_id)
        if member.connections:
            return False
        del self._members[key]
        if member.healthy:
            self._changed()
        return True

    def healthy(self) -> list[Workload]:
        return [m.workload for m in self._members.values() if m.healthy]

    def members(self) -> dict[InstanceKey, tuple[Workload, bool]]:
        return {key: (m.workload, m.healthy) for key, m in self._members.items()}

    async def check_due(self, probe: Probe, now: float) -> None:
        """Probe every member whose period has passed; flip health at the thresholds."""
        due = [(key, m) for key, m in self._members.items() if m.next_check <= now]
        results = await asyncio.gather(*(probe(m.workload) for _, m in due))
        changed = False
        for (key, member), ok in zip(due, results, strict=True):
            if self._members.get(key) is not member:
                continue  # left while being probed
            member.next_check = now + member.period
            if ok:
                member.failures, member.successes = 0, member.successes + 1
                if not member.healthy and member.successes >= member.success_threshold:
                    member.healthy, changed = True, True
            else:
                member.successes, member.failures = 0, member.failures + 1
                if member.healthy and member.failures >= member.failure_threshold:
                    member.healthy, changed = False, True
        if changed:
            self._changed()

    async def run_health_checks(self, probe: Probe, stop: asyncio.Event,
                                tick: float = 0.25) -> None:
        while not stop.is_set():
            await self.check_due(probe, self._clock.now())
            await wait_event(self._clock, stop, tick)
