"""Meshes on one machine are isolated or refused, never confused: a second `heddle up` that
would share the first one's control-plane ports or pod IPs is refused at once, naming the
running mesh and how to run a second one; one on ports and addresses of its own runs beside
it, each serving and reporting only its own workloads. A start that cannot succeed (a
workload's command fails) stops everything it started and says why."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from heddle.local.state import pid_alive
from heddle.testing.waiting import wait_for

from .mesh_fixtures import (
    HEDDLE,
    HELLO_WORKLOADS,
    LocalMesh,
    hello_text,
    mesh_copy,
    port_args,
    processes_of,
    running_mesh,
    status_workloads,
)


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("first")) as running:
        yield running


def up(home: Path, config: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    out = subprocess.run([HEDDLE, "up", str(config), "--detach", *args], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "HEDDLE_HOME": str(home)})
    return out, time.monotonic() - start


def workloads_listed(mesh: LocalMesh) -> dict[str, str]:
    """Workload -> its pod IP, as `heddle status` lists them."""
    return status_workloads(mesh.heddle("status").stdout)


def ports_of(mesh: LocalMesh) -> list[str]:
    state = mesh.state()
    return ["--xds-port", str(state.xds_port), "--ca-port", str(state.ca_port),
            "--join-port", str(state.join_port), "--debug-port", str(state.debug_port)]


def assert_refused_naming(first: LocalMesh, out: subprocess.CompletedProcess[str],
                          elapsed: float, home: Path, *words: str) -> None:
    print(f"second `heddle up` refused in {elapsed:.2f}s")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.splitlines()) == 1, out.stderr
    for word in (f"HEDDLE_HOME={first.home}", "heddle down", "to run a second mesh beside it",
                 *words):
        assert word in out.stderr, out.stderr
    assert elapsed < 2.0
    assert processes_of(home) == [] and not (home / "mesh" / "state.json").exists()
    assert set(workloads_listed(first)) == HELLO_WORKLOADS


def test_a_second_mesh_on_the_same_ports_is_refused_naming_the_first(
        first: LocalMesh, tmp_path: Path) -> None:
    config, _ = mesh_copy(tmp_path, subnet=first.subnet)
    out, elapsed = up(tmp_path / "home", config, *ports_of(first))
    assert_refused_naming(first, out, elapsed, tmp_path / "home",
                          f"port {first.state().xds_port} (--xds-port)")


def test_a_second_mesh_on_the_same_pod_ips_is_refused_naming_the_first(
        first: LocalMesh, tmp_path: Path) -> None:
    config, _ = mesh_copy(tmp_path, subnet=first.subnet)
    out, elapsed = up(tmp_path / "home", config, *port_args())
    assert_refused_naming(first, out, elapsed, tmp_path / "home",
                          f"address {first.subnet}1 is a pod IP of the mesh running "
                          f"{first.config_dir}")


def test_a_second_mesh_of_its_own_runs_beside_the_first(first: LocalMesh,
                                                        tmp_path: Path) -> None:
    with running_mesh(tmp_path) as second:
        assert second.subnet != first.subnet
        for mesh in (first, second):
            listed = workloads_listed(mesh)
            assert set(listed) == HELLO_WORKLOADS
            assert all(ip.startswith(mesh.subnet) for ip in listed.values()), listed
            status, body = mesh.get("http://frontend:8080/")
            assert status == 200
            backend = body["backend"]
            assert isinstance(backend, dict)
            request_id, instance = str(backend["request_id"]), str(backend["instance"])
            other = second if mesh is first else first
            wait_for(lambda m=mesh, r=request_id, i=instance: r in m.envoy_log(i), 10,
                     "the request in its own mesh's backend sidecar log")
            assert request_id not in other.envoy_log(instance)


def started_pids(home: Path) -> list[int]:
    mesh = home / "mesh"
    logs = [(mesh / "supervisor.log").read_text(),
            *(p.read_text() for p in mesh.glob("workloads/*/agent.log"))]
    found = [int(p.read_text()) for p in mesh.glob("workloads/*/envoy.pid")]
    found += [int(n) for text in logs for n in re.findall(r"\(agent pid (\d+)\)", text)]
    found += [int(n) for text in logs
              for n in re.findall(r"started application \(pid (\d+)\)", text)]
    return found


def test_a_workload_whose_command_fails_stops_the_start_and_says_why(tmp_path: Path) -> None:
    config, subnet = mesh_copy(tmp_path)
    (config / "mesh.yaml").write_text(hello_text(subnet).replace(
        "python3 apps/frontend.py", "python3 apps/no-such-app.py"))
    home = tmp_path / "home"
    out, elapsed = up(home, config, *port_args())
    print(f"the failed start ended in {elapsed:.2f}s")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert lines[0] == ("error: frontend.default did not start: its application exited "
                        "(python3 apps/no-such-app.py); everything it started was stopped")
    workdir = home / "mesh" / "workloads" / "frontend.default"
    assert lines[1].startswith(f"  {workdir / 'app.log'}: ")
    assert "can't open file" in lines[1] and "no-such-app.py" in lines[1]
    assert lines[2].startswith(f"  {workdir / 'agent.log'}: ")
    # Every process it started, by the PIDs recorded (agents, Envoys, applications), and
    # by HEDDLE_HOME.
    pids = started_pids(home)
    assert len(pids) >= 10
    assert [p for p in pids if pid_alive(p)] == []
    assert processes_of(home) == []
    assert not (home / "mesh" / "state.json").exists()
    # ... and the next start of the same home works once the command is fixed.
    shutil.copy(config / "apps" / "frontend.py", config / "apps" / "no-such-app.py")
    out, _ = up(home, config, *port_args())
    try:
        assert out.returncode == 0, out.stderr
    finally:
        subprocess.run([HEDDLE, "down"], env={**os.environ, "HEDDLE_HOME": str(home)},
                       capture_output=True, timeout=120)
    assert processes_of(home) == []
