"""Bursts of changes become one push; a steady stream still pushes by the maximum delay."""

from __future__ import annotations

import asyncio

from heddle.xds.debounce import Debouncer
from heddle.xds.push import PushRequest


async def test_a_burst_of_changes_is_pushed_once() -> None:
    pushes: list[int] = []

    async def push(request: PushRequest) -> None:
        pushes.append(1)

    debouncer = Debouncer(push, quiet=0.05, maximum=10)
    debouncer.start()
    for _ in range(20):
        debouncer.trigger()
        await asyncio.sleep(0)
    while not pushes:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    await debouncer.stop()
    assert pushes == [1]


async def test_changes_that_never_pause_are_pushed_by_the_maximum_delay() -> None:
    pushes: list[int] = []

    async def push(request: PushRequest) -> None:
        pushes.append(1)

    debouncer = Debouncer(push, quiet=0.2, maximum=0.1)
    debouncer.start()
    for _ in range(100):  # a change every 10 ms: never quiet for 200 ms
        debouncer.trigger()
        await asyncio.sleep(0.01)
        if len(pushes) >= 2:
            break
    await debouncer.stop()
    assert len(pushes) >= 2
