"""Workloads that joined at run time with a WorkloadGroup, and whether they are healthy.

An agent started with `--workload-group` makes its proxy announce the group; the control
plane registers an instance of the group at the proxy's address while the proxy is connected
and its readiness probe passes (Istio's auto-registration), and removes it when the proxy
leaves or stops answering.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from heddle.registry.model import Workload

Probe = Callable[[Workload], Awaitable[bool]]


@dataclass
class _Member:
    workload: Workload
    period: float
    failure_threshold: int
    success_threshold: int
    healthy: bool = True
    failures: int = 0
    successes: int = 0
    next_check: float = 0.0


class Membership:
    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        self._members: dict[str, _Member] = {}
        self._on_change = on_change
        self.version = 0

    def _changed(self) -> None:
        self.version += 1
        self._on_change()

    def join(self, proxy_id: str, workload: Workload, period: float = 5.0,
             failure_threshold: int = 3, success_threshold: int = 1) -> None:
        self._members[proxy_id] = _Member(workload, period, failure_threshold, success_threshold)
        self._changed()

    def leave(self, proxy_id: str) -> None:
        if self._members.pop(proxy_id, None) is not None:
            self._changed()

    def healthy(self) -> list[Workload]:
        return [m.workload for m in self._members.values() if m.healthy]

    def members(self) -> dict[str, tuple[Workload, bool]]:
        return {pid: (m.workload, m.healthy) for pid, m in self._members.items()}

    async def check_due(self, probe: Probe, now: float) -> None:
        """Probe every member whose period has passed; flip health at the thresholds."""
        due = [(pid, m) for pid, m in self._members.items() if m.next_check <= now]
        results = await asyncio.gather(*(probe(m.workload) for _, m in due))
        changed = False
        for (pid, member), ok in zip(due, results, strict=True):
            if self._members.get(pid) is not member:
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
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            await self.check_due(probe, loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick)
