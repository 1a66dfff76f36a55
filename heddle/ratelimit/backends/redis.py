"""Counters in Redis, shared by every replica of the service.

One decision is one pipelined round trip: INCRBY and EXPIRE for each of its keys, sent as
one write on one pooled connection and answered together (no MULTI: each key's INCRBY is
atomic on its own, which is all a fixed window needs). Every exchange is bounded by
`timeout`, waiting for a pooled connection included (a burst beyond the pool queues, it is
no failure). A failure fails that decision by the failure mode; `FAILURES_TO_OPEN` in a row
mark Redis down for `retry_interval`, during which decisions fail at once instead of each
waiting out the timeout, and the next decision after it tries again on a fresh connection,
so limiting resumes within that interval of Redis returning. One slow answer under load
does not turn the limits off for everyone.
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
FAILURES_TO_OPEN = 3  # consecutive failed exchanges before Redis is taken for down


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
        self._failures = 0  # consecutive
        # No retries inside the client: a retry would double the time a decision waits,
        # and the next decision is the retry.
        self._client = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), max_connections=max_connections, timeout=timeout,
            health_check_interval=0))

    async def increment(self, increments: Sequence[Increment]) -> list[int]:
        if not increments:
            return []
        started = time.monotonic()
        if started < self._down_until:
            raise BackendUnavailable(f"Redis at {self.url} is down (retrying in "
                                     f"{self._down_until - started:.2f}s)")
        commands: list[tuple[str | int, ...]] = []
        for increment in increments:
            commands.append(("INCRBY", increment.key, increment.hits))
            commands.append(("EXPIRE", increment.key, increment.expire_seconds))
        try:
            async with asyncio.timeout(self.timeout):
                results = await self._exchange(commands)
        except (RedisError, OSError, TimeoutError) as err:
            self._failures += 1
            if self._failures >= FAILURES_TO_OPEN:
                self._down_until = time.monotonic() + self.retry_interval
            if self._on_error is not None:
                self._on_error(err)
            raise BackendUnavailable(f"Redis at {self.url}: {type(err).__name__}: "
                                     f"{err or 'timed out'}") from err
        self._failures = 0
        if self._on_round_trip is not None:
            self._on_round_trip(time.monotonic() - started)
        return results[::2]

    async def _exchange(self, commands: list[tuple[str | int, ...]]) -> list[int]:
        """The commands as one write on one pooled connection, then their replies.

        The client's own Pipeline does the same exchange, with several times the Python
        work per call (command stacks, callbacks, retries); at tens of thousands of
        decisions a second that work is the service's cost. A connection that failed or
        was cancelled mid-exchange is dropped, never reused with replies pending."""
        pool = self._client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        healthy = False
        try:
            await connection.send_packed_command(connection.pack_commands(commands), False)
            self.round_trips += 1
            results = [await connection.read_response() for _ in commands]
            healthy = True
        finally:
            if not healthy:
                await connection.disconnect()
            await pool.release(connection)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return [int(result) for result in results]

    async def close(self) -> None:
        await self._client.aclose()
