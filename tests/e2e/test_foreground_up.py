"""`heddle up` without --detach tells what happens as it happens (workloads starting and
ready, configuration changes pushed, errors and their fixes) and Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from heddle.testing.waiting import wait_for

from .mesh_fixtures import HEDDLE, mesh_copy, port_args, processes_of

WORKLOADS = ("client.default", "frontend.default", "backend-1.default", "backend-2.default",
             "echo.default", "istio-ingressgateway.istio-system")


def test_foreground_up_narrates_the_mesh_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    config_dir, _ = mesh_copy(tmp_path)
    home = tmp_path / "home"
    output = tmp_path / "up.log"
    with output.open("w") as out:
        up = subprocess.Popen([HEDDLE, "up", str(config_dir), *port_args()],
                              env={**os.environ, "HEDDLE_HOME": str(home)},
                              stdout=out, stderr=subprocess.STDOUT)
    try:
        def said(text: str) -> bool:
            return text in output.read_text()

        wait_for(lambda: said("all 6 workloads ready; Ctrl-C stops the mesh"), 90,
                 "every workload ready, said")
        text = output.read_text()
        for workload in WORKLOADS:
            assert f"started {workload} at " in text and f"{workload} ready (" in text
        assert "control plane serving" in text

        mesh_yaml = config_dir / "mesh.yaml"
        good = mesh_yaml.read_text()
        mesh_yaml.write_text(good.replace("weight: 50}", "weigth: 50}", 1))
        wait_for(lambda: said(f"{mesh_yaml}: not applied (1 error(s)); its last good version "
                              "stays in force"), 10, "the refused edit, said")
        assert 'unknown field "weigth"' in output.read_text()
        mesh_yaml.write_text(good.replace("weight: 50}", "weight: 40}", 1).replace(
            "weight: 50}", "weight: 60}", 1))
        wait_for(lambda: said(f"{mesh_yaml}: fixed (1 problem(s) gone)"), 10, "the fix, said")
        wait_for(lambda: said("VirtualService default/backend updated"), 10, "the change, said")
        wait_for(lambda: said("pushed to "), 10, "the push, said")
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            code = up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            subprocess.run([HEDDLE, "down"], env={**os.environ, "HEDDLE_HOME": str(home)},
                           timeout=60, check=False)
            raise
    assert code == 0, output.read_text()
    assert output.read_text().rstrip().endswith("mesh stopped")
    assert processes_of(home) == [], "processes left behind by Ctrl-C"
    assert not (home / "mesh" / "state.json").exists()
