"""The fake clock moves only when told, and wakes each sleeper when its time comes."""

from __future__ import annotations

import asyncio
import datetime

from heddle.testing.clock import FakeClock


async def test_sleepers_wake_in_deadline_order_only_when_time_is_advanced() -> None:
    clock = FakeClock()
    woke: list[str] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 2)), asyncio.create_task(sleeper("early", 1))]
    await clock.advance(0.5)
    assert woke == [] and clock.sleepers == 2
    await clock.advance(1)
    assert woke == ["early"] and clock.now() == 1.5
    await clock.advance(1)
    assert woke == ["early", "late"]
    await asyncio.gather(*tasks)


async def test_wall_time_follows_the_monotonic_time() -> None:
    clock = FakeClock(start=100)
    before = clock.wall()
    await clock.advance(30)
    assert clock.wall() - before == datetime.timedelta(seconds=30)
