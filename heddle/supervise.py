"""Keeping a child process running: restart it when it exits, backing off, until told to stop.

Shared by the agent (its Envoy) and the local runtime (the control plane).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def keep_running(start: Callable[[], Awaitable[asyncio.subprocess.Process]],
                       stop: asyncio.Event, what: str, max_backoff: float = 10.0) -> None:
    """Call `start` for a process, wait for it, and start it again after it exits, with an
    exponential backoff from 0.2 s to `max_backoff`; return once `stop` is set."""
    backoff = 0.2
    while not stop.is_set():
        process = await start()
        waiter = asyncio.create_task(process.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if stop.is_set():
            waiter.cancel()
            return
        log.warning("%s exited with %s; restarting in %.1fs", what, process.returncode, backoff)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=backoff)
        backoff = min(backoff * 2, max_backoff)
