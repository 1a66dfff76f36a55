"""The keys already over their limit, remembered until their window ends.

A counter over its limit stays over it for the rest of its window (counts only grow), so a
decision for such a key needs no round trip to Redis: it is OVER_LIMIT. This is what keeps
an abusive client's flood off Redis. Bounded: past `max_keys` the expired entries go, and
if that is not enough the oldest half does (forgetting only costs a round trip)."""

from __future__ import annotations


class NearCache:
    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._expires: dict[str, float] = {}  # key -> end of its window (wall seconds)

    def __len__(self) -> int:
        return len(self._expires)

    def is_over_limit(self, key: str, now: float) -> bool:
        expires = self._expires.get(key)
        if expires is None:
            return False
        if expires <= now:
            del self._expires[key]
            return False
        return True

    def remember(self, key: str, window_end: float, now: float) -> None:
        if len(self._expires) >= self.max_keys and key not in self._expires:
            self._evict(now)
        self._expires[key] = window_end

    def _evict(self, now: float) -> None:
        live = {k: v for k, v in self._expires.items() if v > now}
        if len(live) >= self.max_keys:  # dicts keep insertion order: drop the older half
            live = dict(list(live.items())[len(live) // 2:])
        self._expires = live
