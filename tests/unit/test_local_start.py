"""What `heddle up` decides before and while a mesh starts: which paths it accepts, which
ports and pod IPs another running mesh (or program) holds, and which log line says why a
workload did not start."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from heddle.cli.common import CliError
from heddle.cli.mesh import config_files
from heddle.local import claims
from heddle.local.control import first_error, workload_problem
from heddle.local.state import WorkloadState
from heddle.local.workloads import declared_addresses


@pytest.fixture(autouse=True)
def claims_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Claims in a folder of this test's, not the user's."""
    folder = tmp_path / "claims"
    monkeypatch.setattr(claims, "claims_dir", lambda: folder)
    yield folder


def test_a_directory_that_cannot_be_listed_is_named_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "mesh").mkdir()

    def refuse(path: object) -> list[str]:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "listdir", refuse)
    with pytest.raises(CliError, match=r"mesh: cannot read the directory: Permission denied"):
        config_files(tmp_path / "mesh")


def test_one_yaml_file_or_a_directory_of_them_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("{}\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("{}\n")
    assert config_files(tmp_path / "a.yaml") == [tmp_path / "a.yaml"]
    assert config_files(tmp_path) == [tmp_path / "a.yaml", tmp_path / "sub" / "b.yml"]


WORKLOADS = """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web, namespace: shop}
spec: {address: 127.0.33.2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: remote}
spec: {address: 10.1.2.3}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata:
  name: pool
  annotations: {heddle.dev/addresses: "127.0.33.7, 127.0.33.8"}
spec: {template: {serviceAccount: pool}}
---
not: [valid
"""


def test_the_local_addresses_are_read_without_validating(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text(WORKLOADS)
    assert declared_addresses([tmp_path / "mesh.yaml"]) == {
        "127.0.33.2": "web.shop", "127.0.33.7": "pool.default instance 1",
        "127.0.33.8": "pool.default instance 2"}


def claim_of_another_mesh(tmp_path: Path) -> claims.Claim:
    # The parent of this test runs, so the claim is live (this process's own are skipped).
    claim = claims.Claim(str(tmp_path / "first-home"), "/srv/first", os.getppid(),
                         (25010, 25012, 25013, 25014), ("127.0.33.1", "127.0.33.2"))
    claims.save(claim)
    return claim


def test_a_port_another_mesh_claims_is_refused_naming_that_mesh(tmp_path: Path) -> None:
    claim = claim_of_another_mesh(tmp_path)
    problem = claims.port_clash({"--xds-port": free_port(), "--debug-port": 25014})
    assert problem is not None
    assert problem.startswith("port 25014 (--debug-port) is used by the mesh running "
                              f"/srv/first (HEDDLE_HOME={claim.home}, supervisor pid "
                              f"{claim.pid}); stop that one (`HEDDLE_HOME={claim.home} "
                              "heddle down`) or, to run a second mesh beside it")


def test_a_pod_ip_another_mesh_claims_is_refused_naming_the_workload(tmp_path: Path) -> None:
    claim_of_another_mesh(tmp_path)
    problem = claims.address_clash({"127.0.33.2": "web.shop"})
    assert problem is not None
    assert problem.startswith("web.shop's address 127.0.33.2 is a pod IP of the mesh running "
                              "/srv/first")


def a_pid_that_is_gone() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_claim_whose_supervisor_is_gone_counts_for_nothing() -> None:
    port = free_port()
    claims.save(claims.Claim("/elsewhere", "/srv/old", a_pid_that_is_gone(), (port,),
                             ("127.0.33.1",)))
    assert claims.port_clash({"--debug-port": port}) is None
    assert claims.read_all() == []


def test_a_port_a_program_listens_on_is_refused_without_a_claim() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        problem = claims.port_clash({"--xds-port": port})
    assert problem == (f"port {port} (--xds-port) on 127.0.0.1 is in use by another program "
                       "(not a running mesh of yours); choose another with --xds-port")


@pytest.mark.parametrize("log, expected", [
    ("2024 INFO heddle.agent.agent: started\nTraceback (most recent call last):\n"
     '  File "x.py", line 1\nRuntimeError: no workload certificate: refused\nmore\n',
     "RuntimeError: no workload certificate: refused"),
    ("listening\npython3: can't open file 'x.py': [Errno 2] No such file or directory\n",
     "python3: can't open file 'x.py': [Errno 2] No such file or directory"),
    ("2024 WARNING a: slow\n2024 ERROR b: address already in use\n",
     "2024 ERROR b: address already in use"),
    ("all good\n", None),
])
def test_the_first_error_of_a_log(tmp_path: Path, log: str, expected: str | None) -> None:
    (tmp_path / "app.log").write_text(log)
    assert first_error(tmp_path / "app.log") == expected


def test_only_this_start_of_a_log_counts(tmp_path: Path) -> None:
    earlier = "ERROR: an earlier run's problem\n"
    (tmp_path / "agent.log").write_text(
        f"{earlier}started application (pid {a_pid_that_is_gone()})\n")
    assert first_error(tmp_path / "agent.log", len(earlier)) is None
    workload = WorkloadState("web", "shop", "127.0.33.2", "127.128.33.2", os.getpid(),
                             str(tmp_path), command="python3 app.py",
                             agent_log_from=len(earlier) + 100)
    assert workload_problem(workload) is None  # no application started in this run yet
    workload.agent_log_from = len(earlier)
    assert workload_problem(workload) == "its application exited (python3 app.py)"
