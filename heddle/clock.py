"""Time, as the parts that decide by it see it: a `Clock` Protocol, and the event loop's.

Whatever waits or measures time to decide behaviour (debounce, health-check periods) takes a
Clock, so tests drive it with `heddle.testing.clock.FakeClock` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds: only differences mean anything."""
        ...

    def wall(self) -> datetime.datetime:
        """The current UTC time (for what is written down, such as certificate validity)."""
        ...

    async def sleep(self, seconds: float) -> None:
        ...


class LoopClock:
    """The running event loop's monotonic time, and asyncio's sleep."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wall(self) -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def wait_event(clock: Clock, event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set or `timeout` seconds of `clock` pass: True when set."""
    if event.is_set():
        return True
    waiter = asyncio.create_task(event.wait())
    sleeper = asyncio.create_task(clock.sleep(timeout))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, sleeper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return event.is_set()
