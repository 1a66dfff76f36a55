"""The service's decisions as Prometheus metrics, under envoyproxy/ratelimit's names.

Per domain and descriptor key (the config's path below the domain, `key_value.subkey`):
total_hits, over_limit, near_limit, within_limit, shadow_mode and
over_limit_with_local_cache (hits answered from the near-cache), as counters (Prometheus
adds `_total`). Service-wide: Redis errors (upstream's should_rate_limit error counter,
err_type redis_error), Redis round-trip latency, config loads. Each instance has a registry
of its own, so several services (and tests) share a process.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

DESCRIPTOR_COUNTERS = ("total_hits", "over_limit", "near_limit", "within_limit",
                       "shadow_mode", "over_limit_with_local_cache")
PREFIX = "ratelimit_service_rate_limit_"
# Redis answers on loopback in tens of microseconds; the top buckets are timeouts.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0)


@dataclass
class DescriptorStats:
    """One descriptor key's counters, resolved once (labels() costs a lookup and a lock)."""

    total_hits: Counter
    over_limit: Counter
    near_limit: Counter
    within_limit: Counter
    shadow_mode: Counter
    over_limit_with_local_cache: Counter


class RateLimitMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._families = {
            name: Counter(PREFIX + name, f"Hits counted as {name} ({name} in envoyproxy/"
                          "ratelimit)", ["domain", "key"], registry=self.registry)
            for name in DESCRIPTOR_COUNTERS}
        self._stats: dict[str, DescriptorStats] = {}
        self.errors = Counter("ratelimit_service_should_rate_limit_error",
                              "Decisions that could not be made as configured",
                              ["err_type"], registry=self.registry)
        self.redis_errors = self.errors.labels("redis_error")
        self.redis_latency = Histogram("ratelimit_redis_latency_seconds",
                                       "One decision's pipelined Redis round trip",
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.config_loads = Counter("ratelimit_service_config_load",
                                    "Configuration loads by result", ["result"],
                                    registry=self.registry)
        self.domain_not_found = Counter(PREFIX + "domain_not_found",
                                        "Requests for a domain no config defines",
                                        ["domain"], registry=self.registry)

    def descriptor(self, domain: str, stat_key: str) -> DescriptorStats:
        """The counters of `stat_key` ("domain.key_value.subkey"; domains may hold dots)."""
        stats = self._stats.get(stat_key)
        if stats is None:
            key = stat_key.removeprefix(domain + ".")
            children = {name: family.labels(domain, key)
                        for name, family in self._families.items()}
            stats = self._stats[stat_key] = DescriptorStats(**children)
        return stats

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 if never set): what the tests read."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
