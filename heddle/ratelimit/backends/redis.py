"""Counters in Redis, shared by every replica of the service.

One decision is one pipelined round trip: INCRBY and EXPIRE for each of its keys, sent as
one write on one pooled connection and answered together (no MULTI: each key's INCRBY is
atomic on its own, which is all a fixed window needs). Every exchange is bounded by
`timeout`, waiting for a pooled connection included (a burst beyond the pool queues, it is
no failure). The connections are redis-py's (URL, AUTH, database, TLS as it parses them),
kept in a free list of this module's own: the client's pool, its Pipeline and its per-read
timeouts cost several times the Python work of the exchange itself, and at thousands of
decisions a second per core that work is the service's cost. A failure fails that decision
by the failure mode; `FAILURES_TO_OPEN` in a row
mark Redis down for `retry_interval`, during which decisions fail at once instead of each
waiting out the timeout, and the next decision after it tries again on a fresh connection,
so limiting resumes within that interval of Redis returning. One slow answer under load
does not turn the limits off for everyone.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection as Connection
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
        # No socket timeout either: each exchange is bounded as a whole, below.
        self._client = aioredis.Redis(connection_pool=aioredis.ConnectionPool.from_url(
            url, socket_timeout=None, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=0))
        self._max_connections = max_connections
        self._idle: list[Connection] = []
        self._open = 0  # connections made and not dropped, idle or in use
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()

    async def increment(self, increments: Sequence[Increment]) -> list[int]:
        if not increments:
            return []
        started = time.monotonic()
        if started < self._down_until:
            raise BackendUnavailable(f"Redis at {self.url} is down (retrying in "
                                     f"{self._down_until - started:.2f}s)")
        try:
            async with asyncio.timeout(self.timeout):
                results = await self._exchange(pack(increments), 2 * len(increments))
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

    async def warm(self) -> None:
        """Open one connection now, so the first decision does not wait for the handshake;
        one that fails is left to the first decision (and its failure mode)."""
        connection = await self._acquire()
        try:
            async with asyncio.timeout(self.timeout):
                await connection.connect()  # type: ignore[no-untyped-call]
        except (RedisError, OSError, TimeoutError):
            self._drop(connection)
            return
        self._release(connection)

    async def _exchange(self, packed: bytes, replies: int) -> list[int]:
        """One write on one connection, then its replies. A connection that failed or was
        cancelled mid-exchange is dropped, never reused with replies pending."""
        connection = await self._acquire()
        healthy = False
        try:
            if not connection.is_connected:
                await connection.connect()  # type: ignore[no-untyped-call]
            await connection.send_packed_command(packed, False)
            self.round_trips += 1
            results = [await connection.read_response() for _ in range(replies)]
            healthy = True
        finally:
            if healthy:
                self._release(connection)
            else:
                self._drop(connection)
        return [int(result) for result in results]

    async def _acquire(self) -> Connection:
        if self._idle:
            return self._idle.pop()
        if self._open < self._max_connections:
            return self._new_connection()
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            connection = await waiter
        except asyncio.CancelledError:
            handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
            if handed is not None:  # handed over as the wait timed out
                self._release(handed)
            raise
        # None: a dropped connection's place, for a fresh one.
        return self._new_connection() if connection is None else connection

    def _new_connection(self) -> Connection:
        self._open += 1
        made: Connection = self._client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        return made

    def _release(self, connection: Connection) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        self._idle.append(connection)

    def _drop(self, connection: Connection) -> None:
        self._open -= 1
        asyncio.get_running_loop().create_task(connection.disconnect(nowait=True))
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()
        await self._client.aclose()


def pack(increments: Sequence[Increment]) -> bytes:
    """INCRBY and EXPIRE of each key in RESP, as one buffer."""
    parts = []
    for increment in increments:
        key = increment.key.encode()
        hits, expire = str(increment.hits).encode(), str(increment.expire_seconds).encode()
        parts.append(b"*3\r\n$6\r\nINCRBY\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
                     b"*3\r\n$6\r\nEXPIRE\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"
                     % (len(key), key, len(hits), hits, len(key), key, len(expire), expire))
    return b"".join(parts)
