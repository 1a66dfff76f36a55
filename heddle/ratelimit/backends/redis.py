"""Counters in Redis, shared by every replica of the service.

One decision is one pipelined round trip: INCRBY and EXPIRE for each of its keys, sent
together and answered together (no MULTI: each key's INCRBY is atomic on its own, which is
all a fixed window needs). Every exchange is bounded by `timeout`; a failure marks Redis down
for `retry_interval`, during which decisions fail at once by the failure mode instead of
each waiting out the timeout, and the next decision after it tries again on a fresh
connection — so limiting resumes within that interval of Redis returning.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from heddle.ratelimit.backends import BackendUnavailable, Increment

DEFAULT_RETRY_INTERVAL = 0.5


class RedisCounters:
    name = "redis"

    def __init__(self, url: str, timeout: float,
                 retry_interval: float = DEFAULT_RETRY_INTERVAL,
                 on_round_trip: Callable[[float], None] | None = None,
                 on_error: Callable[[Exception], None] | None = None,
                 max_connections: int = 64) -> None:
        self.url = url
        self.timeout = timeout
        self.retry_interval = retry_interval
        self.round_trips = 0  # pipelines sent: what "one round trip per decision" counts
        self._on_round_trip = on_round_trip
        self._on_error = on_error
        self._down_until = 0.0
        # No retries inside the client: a retry would double the time a decision waits,
        # and the next decision is the retry.
        self._client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), max_connections=max_connections,
            health_check_interval=0)

    async def increment(self, increments: Sequence[Increment]) -> list[int]:
        if not increments:
            return []
        started = time.monotonic()
        if started < self._down_until:
            raise BackendUnavailable(f"Redis at {self.url} is down (retrying in "
                                     f"{self._down_until - started:.2f}s)")
        try:
            async with asyncio.timeout(self.timeout), \
                    self._client.pipeline(transaction=False) as pipe:
                for increment in increments:
                    pipe.incrby(increment.key, increment.hits)
                    pipe.expire(increment.key, increment.expire_seconds)
                self.round_trips += 1
                results = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as err:
            self._down_until = time.monotonic() + self.retry_interval
            if self._on_error is not None:
                self._on_error(err)
            raise BackendUnavailable(f"Redis at {self.url}: {type(err).__name__}: "
                                     f"{err or 'timed out'}") from err
        if self._on_round_trip is not None:
            self._on_round_trip(time.monotonic() - started)
        return [int(count) for count in results[::2]]

    async def close(self) -> None:
        await self._client.aclose()
