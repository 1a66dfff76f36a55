"""Counters in this process's memory: the default, right for one replica."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from heddle.ratelimit.backends import Increment

SWEEP_EVERY_SECONDS = 1.0


class MemoryCounters:
    """A dict of key -> (count, expiry); expired keys are swept at most once a second."""

    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[str, tuple[int, float]] = {}
        self._next_sweep = 0.0

    def __len__(self) -> int:
        return len(self._counts)

    async def increment(self, increments: Sequence[Increment]) -> list[int]:
        now = self._clock()
        if now >= self._next_sweep:
            self._sweep(now)
        counts = []
        for increment in increments:
            count, expires = self._counts.get(increment.key, (0, 0.0))
            if expires <= now:
                count = 0
            count += increment.hits
            self._counts[increment.key] = (count, now + increment.expire_seconds)
            counts.append(count)
        return counts

    def _sweep(self, now: float) -> None:
        self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
        self._next_sweep = now + SWEEP_EVERY_SECONDS

    async def warm(self) -> None:
        return None

    async def close(self) -> None:
        self._counts.clear()
