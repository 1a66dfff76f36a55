"""Who leases each bucket, the demand each lessee last reported and the tokens it holds: the
state the split is computed from, one per bucket. In this process's memory (one replica), or
in Redis, where every replica of the service reads and writes the same state: a proxy
connected to one replica and a proxy connected to another share one limit.

A lessee's entry lives `ttl` seconds from its last report: a proxy that stops reporting (or
whose replica died) drops out of the split by itself; a stream that ends removes its entries
at once. One report is two exchanges with the state, whatever number of buckets it carries:
the report (and the others' state back), then the tokens it was given.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

Holding = tuple[float, int]  # a lessee's demand (requests per second), tokens it holds
Holders = dict[str, Holding]  # lessee -> its holding


class Leases(Protocol):
    name: str

    async def report(self, lessee: str, holdings: Mapping[str, Holding],
                     ttl: float) -> dict[str, Holders]:
        """Record `lessee`'s holding of each bucket (key -> (demand, tokens held)); answer
        each of those buckets' live lessees and their holdings."""
        ...

    async def hold(self, lessee: str, holdings: Mapping[str, Holding], ttl: float) -> None:
        """Record what `lessee` was just given."""
        ...

    async def leave(self, lessee: str, buckets: Iterable[str]) -> None:
        ...

    async def close(self) -> None:
        ...


class MemoryLeases:
    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # key -> lessee -> (demand, tokens, expires)
        self._buckets: dict[str, dict[str, tuple[float, int, float]]] = {}

    async def report(self, lessee: str, holdings: Mapping[str, Holding],
                     ttl: float) -> dict[str, Holders]:
        now = self._clock()
        found = {}
        for key, (demand, held) in holdings.items():
            holders = self._buckets.setdefault(key, {})
            holders[lessee] = (demand, held, now + ttl)
            for stale in [k for k, (_, _, expires) in holders.items() if expires <= now]:
                del holders[stale]
            found[key] = {k: (d, t) for k, (d, t, _) in holders.items()}
        return found

    async def hold(self, lessee: str, holdings: Mapping[str, Holding], ttl: float) -> None:
        now = self._clock()
        for key, (demand, held) in holdings.items():
            self._buckets.setdefault(key, {})[lessee] = (demand, held, now + ttl)

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
    "demand expires tokens" (wall-clock seconds, so replicas agree). One pipeline per report:
    for each bucket HSET, EXPIRE (the hash outlives its last lessee by `ttl`), HGETALL; and one
    per assignment: HSET, EXPIRE."""

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

    async def report(self, lessee: str, holdings: Mapping[str, Holding],
                     ttl: float) -> dict[str, Holders]:
        now = self._clock()
        keys = list(holdings)
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            self._write(pipe, key, lessee, holdings[key], now + ttl, ttl)
            pipe.hgetall(self._prefix + key)
        results = await pipe.execute()
        self.round_trips += 1
        found = {}
        for index, key in enumerate(keys):
            holders: Holders = {}
            for field, value in results[3 * index + 2].items():
                demand, expires, *held = value.split()
                if float(expires) > now:
                    name = field.decode() if isinstance(field, bytes) else field
                    holders[name] = (float(demand), int(held[0]) if held else 0)
            found[key] = holders
        return found

    async def hold(self, lessee: str, holdings: Mapping[str, Holding], ttl: float) -> None:
        now = self._clock()
        pipe = self._client.pipeline(transaction=False)
        for key, holding in holdings.items():
            self._write(pipe, key, lessee, holding, now + ttl, ttl)
        await pipe.execute()
        self.round_trips += 1

    def _write(self, pipe: Any, key: str, lessee: str, holding: Holding, expires: float,
               ttl: float) -> None:
        name = self._prefix + key
        pipe.hset(name, lessee, f"{holding[0]:.6g} {expires:.3f} {holding[1]}")
        pipe.expire(name, max(1, int(ttl)))

    async def leave(self, lessee: str, buckets: Iterable[str]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for key in buckets:
            pipe.hdel(self._prefix + key, lessee)
        await pipe.execute()

    async def close(self) -> None:
        await self._client.aclose()
