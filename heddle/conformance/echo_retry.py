"""The echo's retry simulation, as echo-basic answers under `/retry/`: a flaky backend whose
failures are counted per request id, so that a gateway's retries can be told apart.

A request names its id (`uuid`) and how many attempts fail before one succeeds
(`succeedAfter`). While fewer attempts than that have been seen for the id, the attempt is
counted and fails, after `delayRetry` when given (a Go duration; 500 when it is not one):
with the status `responseCode` when it is a number, otherwise by resetting the connection
(a TCP RST, what a gateway sees as a connection error). Once enough have failed, the
request is echoed.
A request without `uuid` or a numeric `succeedAfter` answers 400.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from threading import Lock

PREFIX = "/retry/"
MAX_IDS = 10_000  # ids remembered; the oldest are forgotten (a conformance run uses a few)


@dataclass(frozen=True)
class Fail:
    """The attempt fails: with `status`, or by a reset connection when it is None."""

    status: int | None
    delay: float = 0.0


@dataclass(frozen=True)
class BadRequest:
    message: str


Outcome = Fail | BadRequest | None  # None: echo the request


def _integer(values: Sequence[str] | None) -> int | None:
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None


class RetrySimulation:
    """Attempts seen per request id, shared by every connection of one echo process."""

    def __init__(self, parse_duration: Callable[[str], float | None],
                 max_ids: int = MAX_IDS) -> None:
        self._parse_duration = parse_duration
        self._max_ids = max_ids
        self._attempts: OrderedDict[str, int] = OrderedDict()
        self._lock = Lock()

    def attempt(self, query: Mapping[str, Sequence[str]]) -> Outcome:
        """What this attempt gets, counting it when it fails."""
        uuid = (query.get("uuid") or [""])[0]
        if not uuid:
            return BadRequest("uuid is required")
        succeed_after = _integer(query.get("succeedAfter"))
        if succeed_after is None:
            return BadRequest("succeedAfter is required")
        with self._lock:
            seen = self._attempts.get(uuid, 0)
            if seen >= succeed_after:
                return None
            self._attempts[uuid] = seen + 1
            self._attempts.move_to_end(uuid)
            while len(self._attempts) > self._max_ids:
                self._attempts.popitem(last=False)
        delay = (query.get("delayRetry") or [""])[0]
        seconds = self._parse_duration(delay) if delay else 0.0
        if seconds is None:  # echo-basic answers an unreadable duration with a 500
            return Fail(500)
        return Fail(_integer(query.get("responseCode")), min(seconds, 60.0))
