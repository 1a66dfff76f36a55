"""The rate-limit benchmark runs small (CI smoke) and reports what it promises: each setup
side by side (memory, Redis, Redis with two worker processes), latencies, the service's CPU
apart from the load's, and one Redis round trip (INCRBY + EXPIRE) per decision."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from ratelimit import run


def test_rate_limit_bench_runs_small_with_every_setup() -> None:
    result = run(seconds=0.5, concurrency=4, latency_requests=50, workers=2,
                 in_process_decisions=500)
    for setup in ("memory", "memory_plain", "redis", "redis_plain", "redis_2_workers"):
        figures = result[setup]
        assert figures["decisions"] > 0
        assert figures["service_cpu_seconds"] > 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    for setup in ("memory", "redis"):
        assert result[setup]["in_process"]["decisions_per_cpu_second"] > 0
    for setup in ("redis", "redis_plain", "redis_2_workers"):
        # Redis's own count; a pooled connection opened mid-run adds its handshake's reads.
        assert 0.95 <= result[setup]["redis_round_trips_per_decision"] <= 1.1
        assert 1.95 <= result[setup]["redis_commands_per_decision"] <= 2.1
