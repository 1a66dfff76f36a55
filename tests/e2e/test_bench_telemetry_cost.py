"""The telemetry-cost benchmark runs small (CI smoke) and reports what it promises: the three
pairs side by side at one fixed rate, each with its latency percentiles, success and the
proxies' CPU, the ratios to the bare pair, and evidence that the telemetry pair had metrics,
access logs and traces while the other Heddle pair had none. Timings are never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPS = ("telemetry_on", "telemetry_off", "bare_pair")


def test_telemetry_cost_bench_runs_small_and_prints_each_setup() -> None:
    # 100 % sampling here, so that a two-second run is sure to send spans.
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "telemetry_cost.py"), "--rate", "100",
         "--seconds", "2", "--rounds", "1", "--warmup", "1", "--sampling", "100",
         "--idle-seconds", "1"],
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
    for name in ("telemetry_on", "telemetry_off", "on_vs_off"):
        assert set(result["ratios"][name]) == {"p50_ms", "p90_ms", "p99_ms", "envoy_cpu",
                                               "envoy_cpu_above_idle"}
    for name in ("telemetry_on", "telemetry_off"):
        assert "agents_vcpu_per_1000_rps" in result[name]["cpu"]
    on, off = result["telemetry_on"]["telemetry"], result["telemetry_off"]["telemetry"]
    # The server counted every request it was sent (the readiness probes' and warm-up's too).
    assert on["server_istio_requests_total"] >= 300
    assert on["envoy_log_bytes_during_run"] > 0 and on["spans_at_collector"] > 0
    assert off["server_istio_requests_total"] == 0 and off["envoy_log_bytes_during_run"] == 0
