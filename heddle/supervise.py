"""Keeping a child process running: restart it when it exits, backing off, until told to stop.

Shared by the agent (its Envoy, the application) and the local runtime (the control plane).
The back-off is kubelet's for a container with `restartPolicy: Always` (CrashLoopBackOff):
each restart waits twice as long as the one before, up to a cap, and a process that ran for
a while without exiting starts the count again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from heddle.clock import Clock, LoopClock, wait_event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Wait `initial` seconds before the first restart, doubling each time up to `cap`; a
    process that ran `reset_after` seconds is restarted after `initial` again."""

    initial: float = 0.2
    cap: float = 10.0
    reset_after: float = 600.0

    def next(self, delay: float | None, ran: float) -> float:
        """The wait before this restart: `delay` is the one before the last (None: none
        yet), `ran` how long the process that exited ran."""
        if delay is None or ran >= self.reset_after:
            return self.initial
        return min(delay * 2, self.cap)


# kubelet: 10 s, 20 s, 40 s, ... at most 5 min, reset once a container ran 10 min.
KUBELET_BACKOFF = Backoff(initial=10.0, cap=300.0, reset_after=600.0)


def describe_exit(returncode: int | None) -> str:
    """`exit code 3`, `killed by signal 9 (SIGKILL)`: what asyncio's returncode means."""
    if returncode is None:
        return "still running"
    if returncode >= 0:
        return f"exit code {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        return f"killed by signal {number}"
    return f"killed by signal {number} ({name})"


async def keep_running(start: Callable[[], Awaitable[asyncio.subprocess.Process]],
                       stop: asyncio.Event, what: str, max_backoff: float = 10.0,
                       backoff: Backoff | None = None, clock: Clock | None = None) -> None:
    """Call `start` for a process, wait for it, and start it again after it exits, backing
    off (`backoff`, else from 0.2 s to `max_backoff`); return once `stop` is set. Each exit
    is logged with its exit code or signal, how long the process ran and the wait."""
    policy = backoff or Backoff(cap=max_backoff)
    clock = clock or LoopClock()
    delay: float | None = None
    restarts = 0
    while not stop.is_set():
        process = await start()
        started = clock.now()
        waiter = asyncio.create_task(process.wait())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if stop.is_set():
            waiter.cancel()
            return
        ran = clock.now() - started
        delay = policy.next(delay, ran)
        restarts += 1
        log.warning("%s (pid %d) exited: %s after %.1fs; restarting in %.1fs (restart %d)",
                    what, process.pid, describe_exit(process.returncode), ran, delay,
                    restarts)
        await wait_event(clock, stop, delay)
