"""Logs that rotate by size, as kubelet rotates container logs (containerLogMaxSize 10 MiB,
containerLogMaxFiles 5): a log over the limit is copied to LOG.1 (LOG.1 to LOG.2, ..., the
oldest dropped) and emptied in place.

Copy-and-truncate, not rename: the application, Envoy (its access logs) and the agent itself
write to these files through descriptors opened for appending, which keep writing at the
start of the emptied file, so no process needs a signal or a restart. Lines written between
the copy and the truncation are lost, as with logrotate's `copytruncate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from heddle.clock import Clock, wait_event

log = logging.getLogger(__name__)

MAX_BYTES = 10 * 1024 * 1024
FILES = 5  # the live log and four rotated ones


def rotate_if_large(path: Path, max_bytes: int = MAX_BYTES, files: int = FILES) -> bool:
    """Rotate `path` when it holds more than `max_bytes`; True when it did."""
    try:
        if path.stat().st_size <= max_bytes:
            return False
    except OSError:
        return False
    for n in range(files - 1, 1, -1):
        older = path.with_name(f"{path.name}.{n - 1}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{n}"))
    if files > 1:
        shutil.copyfile(path, path.with_name(f"{path.name}.1"))
    with contextlib.suppress(OSError):
        os.truncate(path, 0)
    return True


async def keep_rotated(paths: Sequence[Path], stop: asyncio.Event, clock: Clock,
                       max_bytes: int = MAX_BYTES, files: int = FILES,
                       period: float = 1.0) -> None:
    """Every `period` seconds until `stop`, rotate each of `paths` that outgrew `max_bytes`."""
    while not await wait_event(clock, stop, period):
        for path in paths:
            try:
                rotate_if_large(path, max_bytes, files)
            except OSError as err:
                log.warning("rotating %s failed: %s", path, err)
