"""The rate-limit benchmark runs small (CI smoke) and reports what it promises: both
backends side by side, latencies, and about one Redis round trip per decision."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from ratelimit import run


def test_rate_limit_bench_runs_small_with_both_backends() -> None:
    result = run(seconds=0.5, concurrency=4, latency_requests=50)
    for backend in ("memory", "redis"):
        figures = result[backend]
        assert figures["decisions"] > 0
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        assert figures["in_process"]["decisions_per_cpu_second"] > 0
    # Redis's own count; a pooled connection opened mid-run adds its handshake's reads.
    assert 0.95 <= result["redis"]["redis_round_trips_per_decision"] <= 1.1
