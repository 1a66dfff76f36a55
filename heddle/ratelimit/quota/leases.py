"""Who leases each bucket, and the demand each lessee last reported: the state the split is
computed from, one per bucket. In this process's memory (one replica), or in Redis, where
every replica of the service reads and writes the same state: a proxy connected to one
replica and a proxy connected to another share one limit.

A lessee's entry lives `ttl` seconds from its last report: a proxy that stops reporting (or
whose replica died) drops out of the split by itself; a stream that ends removes its entries
at once. One report is one exchange with the state, whatever number of buckets it carries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

Demands = dict[str, float]  # lessee -> requests per second


class Leases(Protocol):
    name: str

    async def report(self, lessee: str, demands: Mapping[str, float],
                     ttl: float) -> dict[str, Demands]:
        """Record `lessee`'s demand on each bucket (key -> requests per second); answer each
        of those buckets' live lessees and their demands."""
        ...

    async def leave(self, lessee: str, buckets: Iterable[str]) -> None:
        ...

    async def close(self) -> None:
        ...


class MemoryLeases:
    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, dict[str, tuple[float, float]]] = {}  # demand, expires

    async def report(self, lessee: str, demands: Mapping[str, float],
                     ttl: float) -> dict[str, Demands]:
        now = self._clock()
        found = {}
        for key, demand in demands.items():
            holders = self._buckets.setdefault(key, {})
            holders[lessee] = (demand, now + ttl)
            for stale in [k for k, (_, expires) in holders.items() if expires <= now]:
                del holders[stale]
            found[key] = {k: d for k, (d, _) in holders.items()}
        return found

    async def leave(self, lessee: str, buckets: Iterable[str]) -> None:
        for key in buckets:
            holders = self._buckets.get(key, {})
            holders.pop(lessee, None)
            if not holders:
                self._buckets.pop(key, None)

    async def close(self) -> None:
        self._buckets.clear()


class RedisLeases:
    """A hash per bucket (`PREFIX heddle_quota_ BUCKET`): field lessee, value
    "demand expires" (wall-clock seconds, so replicas agree). One pipeline per report: for
    each bucket HSET, EXPIRE (the hash outlives its last lessee by `ttl`), HGETALL."""

    name = "redis"

    def __init__(self, url: str, timeout: float, key_prefix: str = "",
                 clock: Callable[[], float] = time.time) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.round_trips = 0
        self._prefix = key_prefix + "heddle_quota_"
        self._clock = clock
        self._client = aioredis.Redis.from_url(url, socket_timeout=timeout,
                                               socket_connect_timeout=timeout)

    async def report(self, lessee: str, demands: Mapping[str, float],
                     ttl: float) -> dict[str, Demands]:
        now = self._clock()
        keys = list(demands)
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            name = self._prefix + key
            pipe.hset(name, lessee, f"{demands[key]:.6g} {now + ttl:.3f}")
            pipe.expire(name, max(1, int(ttl)))
            pipe.hgetall(name)
        results = await pipe.execute()
        self.round_trips += 1
        found = {}
        for index, key in enumerate(keys):
            holders: Demands = {}
            for field, value in results[3 * index + 2].items():
                demand, expires = value.split()
                if float(expires) > now:
                    holders[field.decode() if isinstance(field, bytes) else field] = float(demand)
            found[key] = holders
        return found

    async def leave(self, lessee: str, buckets: Iterable[str]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key in buckets:
            pipe.hdel(self._prefix + key, lessee)
        await pipe.execute()

    async def close(self) -> None:
        await self._client.aclose()
