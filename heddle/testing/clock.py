"""A clock that moves only when a test says so (after trio's MockClock)."""

from __future__ import annotations

import asyncio
import datetime
import heapq
import itertools


class FakeClock:
    """`now()` starts at `start` and changes only by `advance()`, which wakes every sleeper
    that is due by then, in order of their deadlines."""

    def __init__(self, start: float = 0.0,
                 wall_start: datetime.datetime = datetime.datetime(2025, 1, 1,
                                                                   tzinfo=datetime.UTC),
                 ) -> None:
        self._now = start
        self._start = start
        self._wall_start = wall_start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime.datetime:
        return self._wall_start + datetime.timedelta(seconds=self._now - self._start)

    @property
    def sleepers(self) -> int:
        """How many sleeps are waiting (cancelled ones not counted)."""
        return sum(1 for _, _, future in self._sleepers if not future.done())

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time on by `seconds`, waking each sleeper as its deadline is reached and
        letting the woken tasks run (and sleep again) before time moves further."""
        target = self._now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not future.done():
                future.set_result(None)
                await settle()
        self._now = target
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let every ready task run until they all wait again (a bounded number of turns)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
