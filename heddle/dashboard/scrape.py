"""Reading Istio's standard metrics from every connected proxy, as Prometheus would scrape
them: `GET http://POD_IP:15020/stats/prometheus` (the agent's merged metrics port), parsed by
prometheus-client's text parser.

Scrapes happen only when a dashboard asks (at most one round per `min_interval`), so a mesh
nobody is looking at pays nothing; the last few rounds are kept to compute rates over.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from heddle.dashboard.graph import DURATION_BUCKETS, REQUESTS, Sample, Scrape
from heddle.model.proxy import Proxy

METRICS_PORT = 15020
METRICS_PATH = "/stats/prometheus"
_WANTED = (REQUESTS, DURATION_BUCKETS)


def parse(text: str) -> list[Sample]:
    """The request counters and latency buckets of one proxy's exposition."""
    samples = []
    for family in text_string_to_metric_families(text):
        for name, labels, value, *_ in family.samples:
            if name in _WANTED:
                samples.append(Sample(name, dict(labels), float(value)))
    return samples


class MetricsHistory:
    """The recent scrapes of every proxy `proxies` lists."""

    def __init__(self, proxies: Callable[[], Iterable[Proxy]], min_interval: float = 1.0,
                 keep: int = 30, timeout: float = 2.0) -> None:
        self._proxies = proxies
        self._min_interval = min_interval
        self._timeout = timeout
        self.scrapes: deque[Scrape] = deque(maxlen=keep)
        self.failures: dict[str, str] = {}  # proxy id -> why its last scrape failed
        self._lock = asyncio.Lock()

    async def _one(self, session: aiohttp.ClientSession, proxy: Proxy) -> list[Sample]:
        url = f"http://{proxy.address}:{METRICS_PORT}{METRICS_PATH}"
        try:
            async with session.get(url) as response:
                if response.status != 200:
                    raise aiohttp.ClientError(f"HTTP {response.status}")
                text = await response.text()
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            self.failures[proxy.id] = f"{url}: {err or type(err).__name__}"
            return []
        self.failures.pop(proxy.id, None)
        try:
            return parse(text)
        except ValueError as err:
            self.failures[proxy.id] = f"{url}: unreadable exposition ({err})"
            return []

    async def latest(self) -> Scrape:
        """A fresh scrape, unless one newer than `min_interval` exists."""
        async with self._lock:
            now = time.monotonic()
            if self.scrapes and now - self.scrapes[-1].at < self._min_interval:
                return self.scrapes[-1]
            proxies = {p.address: p for p in self._proxies()}.values()
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                rounds = await asyncio.gather(*(self._one(session, p) for p in proxies))
            scrape = Scrape(time.monotonic(), tuple(s for samples in rounds for s in samples))
            self.scrapes.append(scrape)
            return scrape

    def earlier_than(self, scrape: Scrape, window: float) -> Scrape | None:
        """The newest scrape at least `window` seconds before `scrape` (the oldest kept if
        none is that old), for rates over about that window."""
        candidates = [s for s in self.scrapes if s.at < scrape.at]
        old_enough = [s for s in candidates if scrape.at - s.at >= window]
        if old_enough:
            return old_enough[-1]
        return candidates[0] if candidates else None
