"""Several service processes on one port, so decisions scale with cores.

One Python process decides on one core at a time (grpc.aio's own work is most of a
decision: see the README's figures), so `heddle ratelimit --workers N` starts N processes
that listen on the same port with SO_REUSEPORT; the kernel spreads connections (proxies)
among them. Their counters must then be shared: each worker counting in its own memory
would be a limit of its own (N workers, up to N times the limit), and so would a quota split
among one worker's streams. So workers need Redis, which every worker counts and leases in.
Each worker serves its own metrics, on the metrics port plus its index.

The parent only supervises: SIGTERM or SIGINT stops every worker; a worker that exits stops
the others and the parent exits with its status (a supervisor restarts the whole set).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

POLL_SECONDS = 0.2
STOP_TIMEOUT = 10.0


def refusal(workers: int, redis_url: str | None, port: int) -> str | None:
    """Why `workers` cannot run as asked, or None."""
    if workers < 1:
        return f"--workers {workers}: give 1 or more"
    if workers > 1 and redis_url is None:
        return (f"--workers {workers} needs --redis URL: each worker counting in its own "
                f"memory would be a limit of its own ({workers} workers, up to {workers} "
                "times the limit)")
    if workers > 1 and port == 0:
        return f"--workers {workers} needs a fixed --port (workers share one port)"
    return None


def worker_argv(argv: Sequence[str], index: int, metrics_port: int | None) -> list[str]:
    """Worker `index`'s command line: the service's own (without --workers or
    --metrics-port), with its own metrics port."""
    if metrics_port is None:
        return list(argv)
    return [*argv, "--metrics-port", str(metrics_port + index)]


def supervise(argv: Sequence[str], workers: int, metrics_port: int | None) -> int:
    """Run `workers` copies of `heddle ratelimit argv` until a signal or one exits."""
    stopping = False

    def stop(_signal: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    children = [subprocess.Popen([sys.executable, "-m", "heddle", "ratelimit",
                                  *worker_argv(argv, i, metrics_port)])
                for i in range(workers)]
    status = 0
    try:
        while not stopping:
            exited = [child for child in children if child.poll() is not None]
            if exited:
                status = exited[0].returncode or 1
                break
            time.sleep(POLL_SECONDS)
    finally:
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(STOP_TIMEOUT)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
