"""What foreground `heddle up` tells the person watching it: workloads starting and becoming
ready, configuration changes and their problems, pushes and refusals, and the stop.

The supervisor narrates its own part and follows the control plane's log for the rest,
showing the lines of the EVENTS_LOGGER (written for people) and every warning or error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from heddle.local.state import WorkloadState
from heddle.model import ports

EVENTS_LOGGER = "heddle.mesh"  # the control plane's lines for people (changes, problems)
# How the control plane's log lines begin (heddle.cli.processes.configure_logging).
_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) (?P<name>[\w.]+): "
                   r"(?P<message>.*)$")
_SHOWN_LEVELS = {"WARNING": logging.WARNING, "ERROR": logging.ERROR,
                 "CRITICAL": logging.CRITICAL}

log = logging.getLogger(EVENTS_LOGGER)


def configure_foreground_logging() -> None:
    """Short lines on stderr: the time and what happened."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    for noisy in ("httpx", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def shown(line: str) -> tuple[int, str] | None:
    """The level and message of a control-plane log line foreground `up` shows, or None."""
    found = _LINE.match(line)
    if found is None:
        return None
    level = _SHOWN_LEVELS.get(found["level"])
    if found["name"] == EVENTS_LOGGER:
        level = level or logging.INFO
    return (level, found["message"]) if level is not None else None


async def follow(path: Path, start: Callable[[], int], stop: asyncio.Event,
                 every: float = 0.2) -> None:
    """Until `stop`: show the lines `shown` picks from the log at `path`, from byte
    `start()` on (where the control plane's first start began writing), with paths under
    the current folder shown relative to it."""
    here = f"{Path.cwd()}/"
    offset: int | None = None
    pending = b""
    while not stop.is_set():
        with contextlib.suppress(OSError):
            with path.open("rb") as file:
                if offset is None:
                    offset = start()
                file.seek(offset)
                data = file.read(1024 * 1024)
            offset += len(data)
            *lines, pending = (pending + data).split(b"\n")
            for raw in lines:
                picked = shown(raw.decode(errors="replace"))
                if picked is not None:
                    log.log(picked[0], "%s", picked[1].replace(here, ""))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


async def _get_ok(host: str, port: int, path: str, timeout: float) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                     .encode())
        status = await asyncio.wait_for(reader.readline(), timeout)
        return status.split(b" ")[1:2] == [b"200"]
    except (OSError, TimeoutError):
        return False
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _accepts(opening: Coroutine[Any, Any, tuple[asyncio.StreamReader,
                                                    asyncio.StreamWriter]],
                   timeout: float) -> bool:
    try:
        _, writer = await asyncio.wait_for(opening, timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def workload_ready(workload: WorkloadState, timeout: float = 1.0) -> bool:
    """As heddle.local.control.workload_ready, without blocking the event loop."""
    if not await _get_ok(workload.address, ports.HEALTH, "/healthz/ready", timeout):
        return False
    for port in workload.app_ports:
        if not await _accepts(asyncio.open_connection(workload.app_address, port), timeout):
            return False
    for path in workload.app_sockets:
        if not await _accepts(asyncio.open_unix_connection(path), timeout):
            return False
    return True


class Readiness:
    """Says once when each started workload becomes ready, and when all of them are."""

    def __init__(self) -> None:
        self._started: dict[str, tuple[WorkloadState, float]] = {}
        self._all_said = False

    def started(self, key: str, workload: WorkloadState) -> None:
        self._started[key] = (workload, time.monotonic())
        self._all_said = False

    def forget(self, key: str) -> None:
        self._started.pop(key, None)

    async def watch(self, workloads: Callable[[], dict[str, WorkloadState]],
                    stop: asyncio.Event, every: float = 0.25) -> None:
        ready: dict[str, WorkloadState] = {}
        while not stop.is_set():
            now = workloads()
            waiting = {k: w for k, w in now.items() if ready.get(k) is not w}
            for key, workload in sorted(waiting.items()):
                if await workload_ready(workload, timeout=0.5):
                    ready[key] = workload
                    began = self._started.get(key, (workload, time.monotonic()))[1]
                    log.info("%s ready (%.1fs after its start)", key, time.monotonic() - began)
            if now and all(ready.get(k) is w for k, w in now.items()) and not self._all_said:
                log.info("all %d workloads ready; Ctrl-C stops the mesh", len(now))
                self._all_said = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every)
