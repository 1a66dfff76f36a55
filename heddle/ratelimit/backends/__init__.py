"""Where the counters live: this process's memory, or Redis shared by every replica.

A backend adds each increment to its key and answers every key's count after it, all in
one exchange: the counters of one decision travel together (one Redis round trip)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Increment:
    key: str
    hits: int
    expire_seconds: int  # the key's window length: it expires once its window is over


class BackendUnavailable(Exception):
    """The counters cannot be reached within the timeout (the failure mode decides)."""


class Counters(Protocol):
    name: str

    async def increment(self, increments: Sequence[Increment]) -> list[int]:
        """Each key's count after its increment, in order; BackendUnavailable if the
        counters cannot be reached in time."""
        ...

    async def warm(self) -> None:
        """Get ready to answer the first decision at once (connect); failures are the
        first decision's to meet."""
        ...

    async def close(self) -> None:
        ...
