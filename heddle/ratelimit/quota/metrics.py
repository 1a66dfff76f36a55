"""The quota service's work as Prometheus counters, beside the RLS's on its endpoint."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from heddle.ratelimit.quota.service import QuotaStats

PREFIX = "heddle_rate_limit_quota_"
HELP = {"streams": "RLQS streams opened (one per proxy filter)",
        "reports": "usage-report messages received",
        "responses": "assignment messages sent",
        "bucket_reports": "bucket usages the reports carried",
        "allowed": "requests the proxies reported passing",
        "denied": "requests the proxies reported refusing"}


class _QuotaCollector(Collector):
    def __init__(self, stats: QuotaStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[CounterMetricFamily]:
        for item in fields(self.stats):
            yield CounterMetricFamily(PREFIX + item.name, HELP[item.name],
                                      value=getattr(self.stats, item.name))


def register_quota_metrics(registry: CollectorRegistry, stats: QuotaStats) -> None:
    registry.register(_QuotaCollector(stats))
