"""The control-plane scale benchmark runs small (CI smoke), reports what it promises, and
its real Envoys accept the configuration the simulated proxies get."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from control_plane_scale import run


async def test_control_plane_scale_runs_small_and_pushes_only_dependents() -> None:
    result = await run(services=40, proxies=40)
    assert result["initial_sync_seconds"] > 0
    # VirtualServices are exported to their namespace: 20 services, so 20 simulated proxies
    # there, and one real Envoy (recomputed, not counted among the simulated).
    assert result["virtual_service_changed"]["proxies_sent_config"] == 20
    assert result["virtual_service_changed"]["proxies_recomputed"] == 21
    assert result["service_added"]["proxies_sent_config"] == 40
    for change in ("virtual_service_changed", "destination_rule_changed", "service_added",
                   "endpoint_added"):
        assert result[change]["bytes_sent"] > 0
    assert len(result["real_envoys"]) == 2
    for types in result["real_envoys"].values():
        assert types == {"Cluster": "SYNCED", "ClusterLoadAssignment": "SYNCED",
                         "Listener": "SYNCED", "RouteConfiguration": "SYNCED"}
