"""Fixed windows: a counter's key names its window's start, so a new window is a new key
and the old one simply expires. The key format is envoyproxy/ratelimit's
(`PREFIX` `domain_` then `key_value_` per entry, then the window start in Unix seconds), so
a Redis shared with it during a move counts the same requests once."""

from __future__ import annotations

from collections.abc import Sequence

from heddle.ratelimit.matching import Entry
from heddle.ratelimit.units import Unit


def window_start(unit: Unit, now: int) -> int:
    length = unit.seconds
    return now // length * length


def seconds_until_reset(unit: Unit, now: int) -> int:
    length = unit.seconds
    return length - now % length


def counter_key(prefix: str, domain: str, entries: Sequence[Entry],
                shared_values: Sequence[str], unit: Unit, now: int) -> str:
    """The counter of these entries in the window `now` falls in; an entry with a shared
    wildcard value (share_threshold) counts under the pattern, not its own value."""
    parts = [prefix, domain, "_"]
    for index, (key, value) in enumerate(entries):
        shared = shared_values[index] if shared_values else ""
        parts += (key, "_", shared or value, "_")
    parts.append(str(window_start(unit, now)))
    return "".join(parts)
