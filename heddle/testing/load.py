"""Steady HTTP load for tests of a running mesh: a fixed number of client threads send GET
requests one after another (each on its own keep-alive connection, no pacing) until stopped,
bounded in count and time, and every request is recorded with when it started and who
answered. `http.client` in threads, not an async client: the client must not be what limits
the rate on a small machine (about a tenth of httpx's CPU per request).

    with SteadyLoad("http://127.0.30.250/orders", served_by) as load:
        ...                                   # change the configuration meanwhile
        step = load.wait_for_samples(2000, since=time.monotonic(), timeout=30)
    assert load.failures() == []

`classify(response)` names the backend that answered (from a header or the body); a response
it cannot name, a status other than 2xx, a timeout or a connection error is a failure.
"""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from heddle.testing.waiting import wait_for


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class Sample:
    started: float  # time.monotonic() when the request was sent
    finished: float
    served_by: str  # who answered, or "" for a failure
    error: str = ""  # why it failed: a status, an unnamed answer, an exception

    @property
    def failed(self) -> bool:
        return bool(self.error)


def split(samples: list[Sample]) -> dict[str, float]:
    """Percent of `samples` each backend answered."""
    counts = Counter(s.served_by for s in samples)
    return {name: 100.0 * n / len(samples) for name, n in sorted(counts.items())}


class SteadyLoad:
    """GET `url` from `concurrency` threads, from `__enter__` until `__exit__`, at most
    `limit` requests and `seconds` seconds, at `rate` requests per second in all (as fast
    as they are answered when None). `samples` grows as responses come (appending
    to a list is atomic); read it from the test's thread."""

    def __init__(self, url: str, classify: Callable[[Response], str], *,
                 concurrency: int = 8, seconds: float = 120, limit: int = 100_000,
                 rate: float | None = None, timeout: float = 5.0,
                 headers: dict[str, str] | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"SteadyLoad sends plain HTTP: {url!r}")
        self.url = url
        self.host, self.port = parts.hostname, parts.port or 80
        self.target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.classify = classify
        self.concurrency = concurrency
        self.seconds = seconds
        self.limit = limit
        self.rate = rate  # requests per second for all threads together; None: unpaced
        self._sent = 0
        self._schedule = threading.Lock()
        self.timeout = timeout
        self.headers = headers or {}
        self.samples: list[Sample] = []
        self.started = 0.0
        self.stopped = 0.0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, name=f"steady-load-{i}",
                                          daemon=True) for i in range(concurrency)]

    def __enter__(self) -> SteadyLoad:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        self.stopped = time.monotonic()

    def _client(self) -> None:
        deadline = self.started + self.seconds
        kept: http.client.HTTPConnection | None = None  # the keep-alive connection
        while (not self._stop.is_set() and len(self.samples) < self.limit
               and time.monotonic() < deadline):
            self._pace()
            if self._stop.is_set():
                break
            connection = kept or http.client.HTTPConnection(self.host, self.port,
                                                            timeout=self.timeout)
            kept, started = connection, time.monotonic()
            served_by, error = "", ""
            try:
                connection.request("GET", self.target, headers=self.headers)
                answer = connection.getresponse()
                response = Response(answer.status,
                                    {k.lower(): v for k, v in answer.getheaders()},
                                    answer.read())
                if answer.will_close:
                    connection.close()
                    kept = None
                if not 200 <= response.status < 300:
                    error = f"status {response.status}: {response.body[:200]!r}"
                else:
                    served_by = self.classify(response)
                    if not served_by:
                        error = f"no backend named in {response.body[:200]!r}"
            except (http.client.HTTPException, OSError) as err:
                error = f"{type(err).__name__}: {err}"
                connection.close()
                kept = None
            self.samples.append(Sample(started, time.monotonic(), served_by, error))
        if kept is not None:
            kept.close()

    def _pace(self) -> None:
        """With a rate, wait for this request's slot: the Nth request of the run is due
        N/rate seconds after the start (late ones go at once, catching up)."""
        if self.rate is None:
            return
        with self._schedule:
            due = self.started + self._sent / self.rate
            self._sent += 1
        self._stop.wait(max(0.0, due - time.monotonic()))

    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.failed]

    def since(self, moment: float) -> list[Sample]:
        """The requests sent after `moment` (time.monotonic()) that have been answered."""
        return [s for s in list(self.samples) if s.started > moment]

    def wait_for_samples(self, count: int, since: float, timeout: float) -> list[Sample]:
        """The first `count` requests sent after `since`, waiting up to `timeout` seconds
        for them to be answered."""
        wait_for(lambda: len(self.since(since)) >= count, timeout,
                 f"{count} requests answered (the load has {len(self.samples)} so far)")
        return sorted(self.since(since), key=lambda s: s.started)[:count]

    def achieved_rate(self) -> float:
        """Requests answered per second over the whole run so far."""
        end = self.stopped or time.monotonic()
        return len(self.samples) / max(end - self.started, 1e-9)
