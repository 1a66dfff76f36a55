"""Waiting on a condition in real time, bounded: for tests of real processes (Envoy, a
running mesh), where there is no clock to advance. A failure names what never happened.

    await eventually(lambda: status.synced, 10, "every type SYNCED")     # async tests
    wait_for(lambda: admin.nothing_draining(), 30, "old listeners gone")  # blocking tests
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

POLL = 0.05  # how often a condition is looked at; not a correctness wait


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float,
                     what: str) -> None:
    """Until `check()` (a bool, or an awaitable of one) holds; AssertionError naming `what`
    after `timeout` seconds. `check` is always tried at least once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(POLL)


def wait_for(check: Callable[[], object], timeout: float, what: str) -> float:
    """Until `check()` is true, blocking; returns the seconds it took. AssertionError naming
    `what` after `timeout` seconds; `check` is always tried at least once."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start >= timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(POLL)
