"""The telemetry-cost benchmark runs small (CI smoke) and reports what it promises: the
pairs side by side at one fixed rate, each with its latency percentiles, success and the
proxies' CPU, the ratios to the bare pair, and evidence that each Heddle pair had the
metrics, access logs and traces it should (all, none, or one each with --breakdown) and no
other. Timings are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPS = ("telemetry_on", "telemetry_off", "metrics_only", "access_logs_only", "tracing_only",
          "bare_pair")
# What each Heddle pair has on: (metrics, access logs, tracing).
TELEMETRY = {"telemetry_on": (True, True, True), "telemetry_off": (False, False, False),
             "metrics_only": (True, False, False), "access_logs_only": (False, True, False),
             "tracing_only": (False, False, True)}


def test_telemetry_cost_bench_runs_small_and_prints_each_setup_with_its_telemetry() -> None:
    # 100 % sampling here, so that a two-second run is sure to send spans.
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "telemetry_cost.py"), "--rate", "100",
         "--seconds", "2", "--rounds", "1", "--warmup", "1", "--sampling", "100",
         "--idle-seconds", "1", "--breakdown"],
        capture_output=True, text=True, timeout=400, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)
    assert result["rate"] == 100
    for setup in SETUPS:
        figures = result[setup]
        assert figures["requests"] == 200  # 2 s at 100/s, the warm-up not counted
        assert figures["success"] >= 0.99, figures["errors"]
        assert 0 < figures["p50_ms"] <= figures["p90_ms"] <= figures["p99_ms"]
        assert len(figures["rounds"]) == 1
        cpu = figures["cpu"]
        assert cpu["vcpu"]["envoy_client"] > 0 and cpu["vcpu"]["envoy_server"] > 0
        assert cpu["envoy_pair_vcpu_per_1000_rps"] > 0
        assert set(cpu["idle_vcpu"]) == set(cpu["vcpu"])
        assert "envoy_pair_vcpu_per_1000_rps_above_idle" in cpu
    for name in (*TELEMETRY, "on_vs_off", "metrics_only_vs_off", "access_logs_only_vs_off",
                 "tracing_only_vs_off"):
        assert set(result["ratios"][name]) == {"p50_ms", "p90_ms", "p99_ms", "envoy_cpu",
                                               "envoy_cpu_above_idle"}
    for name, (metrics, access_logs, tracing) in TELEMETRY.items():
        assert "agents_vcpu_per_1000_rps" in result[name]["cpu"]
        seen = result[name]["telemetry"]
        # The server counted every request it was sent (the readiness probes' and warm-up's
        # too); nothing at all without metrics.
        assert (seen["server_istio_requests_total"] >= 300) if metrics else (
            seen["server_istio_requests_total"] == 0), (name, seen)
        assert (seen["envoy_log_bytes_during_run"] > 0) == access_logs, (name, seen)
        assert (seen["spans_at_collector"] > 0) == tracing, (name, seen)
