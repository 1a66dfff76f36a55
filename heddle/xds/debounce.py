"""Merging bursts of changes into one push: wait for quiet, but never longer than a maximum."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from heddle.api.resource import ResourceKey
from heddle.clock import Clock, LoopClock, wait_event
from heddle.xds.push import PushRequest

log = logging.getLogger(__name__)


class Debouncer:
    """Calls `action` once changes stop for `quiet` seconds, or `maximum` after the first,
    with one request that merges what every trigger since the last call named."""

    def __init__(self, action: Callable[[PushRequest], Awaitable[None]], quiet: float = 0.1,
                 maximum: float = 10.0, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or LoopClock()
        self._action = action
        self._quiet = quiet
        self._maximum = maximum
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._request: PushRequest | None = None

    def trigger(self, changes: Iterable[ResourceKey] | None = None) -> None:
        """Something changed: the named resources, or (None) anything."""
        request = PushRequest(None) if changes is None else PushRequest.of(changes)
        self._request = request.merge(self._request)
        self._changed.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            first = self._clock.now()
            while True:
                self._changed.clear()
                remaining = first + self._maximum - self._clock.now()
                if remaining <= 0:
                    break
                if not await wait_event(self._clock, self._changed,
                                        min(self._quiet, remaining)):
                    break
            request, self._request = self._request or PushRequest(None), None
            try:
                await self._action(request)
            except Exception:
                # One failed push must not end all later ones, nor lose what it was for: the
                # next request carries these changes too.
                log.exception("push failed")
                self._request = request.merge(self._request)
