"""Workloads behave like Pods (`restartPolicy: Always`, a readiness probe, a Service's
EndpointSlice): a killed application is restarted after its back-off, its endpoint leaves
the clients' EDS while it is not ready, logs rotate by size, and `heddle down` leaves
nothing behind even when the supervisor was killed first. Real processes, real Envoys,
real traffic through examples/hello."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from heddle.local import control
from heddle.local.state import MeshState, pid_alive
from heddle.model.sockets import sds_socket_for
from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, mesh_copy, port_args, processes_of, running_mesh

RESTART_DELAY = 4.0  # `up --restart-delay`: kubelet's is 10 s
LOG_MAX_BYTES = 64 * 1024
BACKEND = "backend.default.svc.cluster.local"
DOWN_TIMEOUT = 5.0  # `down --timeout`: its drain window


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("pods"), "--restart-delay", str(RESTART_DELAY),
                      "--log-max-bytes", str(LOG_MAX_BYTES)) as running:
        yield running


@contextlib.contextmanager
def timed_traffic(mesh: LocalMesh, seconds: float = 60,
                  limit: int = 5000) -> Iterator[list[tuple[float, int]]]:
    """Requests from the client to frontend (which calls backend), one after another, while
    the block runs: (monotonic time it was answered, status; -1 when it could not be sent)."""
    results: list[tuple[float, int]] = []
    stop = threading.Event()

    def send() -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline and len(results) < limit:
            try:
                status = mesh.get("http://frontend:8080/")[0]
            except OSError:
                status = -1
            results.append((time.monotonic(), status))
            time.sleep(0.01)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        yield results
    finally:
        stop.set()
        sender.join()


def test_a_killed_application_is_restarted_and_out_of_eds_until_ready(
        mesh: LocalMesh) -> None:
    workload = mesh.state().workload("backend-1")
    assert workload is not None
    old_pid = control.app_pid(workload)
    assert old_pid is not None and pid_alive(old_pid)
    frontend = EnvoyAdmin(f"{mesh.subnet}2")  # the client of backend
    endpoint = f"{workload.address}:9090"
    clusters = (f"outbound|9090||{BACKEND}", f"outbound|9090|v1|{BACKEND}")

    def in_eds() -> bool:
        return all(endpoint in frontend.cluster_hosts(c) for c in clusters)

    def out_of_eds() -> bool:
        return not any(endpoint in frontend.cluster_hosts(c) for c in clusters)

    assert in_eds()
    with timed_traffic(mesh) as results:
        wait_for(lambda: len(results) >= 20, 10, "traffic flowing")
        killed = time.monotonic()
        os.killpg(old_pid, signal.SIGKILL)  # the application and all it started
        left = wait_for(out_of_eds, RESTART_DELAY,
                        "backend-1 out of frontend's EDS while its application is down")
        wait_for(lambda: control.app_pid(workload) not in (None, old_pid),
                 RESTART_DELAY + 10, "backend-1's application started again")
        restarted = time.monotonic() - killed
        wait_for(in_eds, 15, "backend-1 back in frontend's EDS once ready")
        back = time.monotonic()
        sent = len(results)
        wait_for(lambda: len(results) >= sent + 50, 20, "traffic after the restart")
    failed = [(at, status) for at, status in results if status != 200]
    window = (f"{failed[0][0] - killed:.2f}s to {failed[-1][0] - killed:.2f}s after the kill"
              if failed else "none")
    print(f"{len(results)} requests; {len(failed)} failed ({window}): those the route sent "
          "to subset v1 (half), whose only endpoint is backend-1 "
          f"(restarted {restarted:.1f}s after the kill with a {RESTART_DELAY:g}s back-off, "
          f"out of EDS {left:.1f}s after it, back in EDS {back - killed:.1f}s after it)")
    assert RESTART_DELAY - 0.5 <= restarted <= RESTART_DELAY + 10
    assert all(killed <= at <= back + 1.0 for at, _ in failed), [
        (round(at - killed, 2), status) for at, status in failed]
    assert all(status == 200 for _, status in results[sent:][-20:])
    agent_log = (Path(workload.workdir) / "agent.log").read_text()
    assert (f"application (pid {old_pid}) exited: killed by signal 9 (SIGKILL)" in agent_log
            and f"restarting in {RESTART_DELAY:.1f}s (restart 1)" in agent_log), agent_log[-2000:]


def test_logs_rotate_by_size(mesh: LocalMesh) -> None:
    """The frontend sidecar logs two access-log lines per request (inbound and outbound)."""
    workdir = mesh.home / "mesh" / "workloads" / "frontend.default"
    log = workdir / "envoy.log"
    with timed_traffic(mesh, seconds=90, limit=3000):
        wait_for(lambda: (workdir / "envoy.log.1").exists(), 90,
                 "frontend's Envoy log rotated past --log-max-bytes")
    rotated = (workdir / "envoy.log.1").stat().st_size
    print(f"envoy.log rotated at {rotated} bytes (limit {LOG_MAX_BYTES}); now "
          f"{log.stat().st_size}")
    assert rotated > LOG_MAX_BYTES
    assert log.stat().st_size < 2 * LOG_MAX_BYTES
    assert "inbound|8080||" in (workdir / "envoy.log.1").read_text()
    wait_for(lambda: "inbound|8080||" in log.read_text(), 10,
             "Envoy still writing its access log to the emptied envoy.log")


def test_status_says_the_control_plane_is_not_answering_when_it_times_out(
        mesh: LocalMesh) -> None:
    pid = mesh.state().control_plane_pid
    os.kill(pid, signal.SIGSTOP)  # its sockets accept, nothing answers
    try:
        out = mesh.heddle("status").stdout
    finally:
        os.kill(pid, signal.SIGCONT)
    assert "control plane not answering" in out, out
    assert "NOT CONNECTED" not in out, out


# --- down, with the supervisor killed first ----------------------------------------------

def _ipv4(hex_address: str) -> str:
    """/proc/net/tcp's address (little-endian hex), or tcp6's IPv4-mapped one; "" else."""
    if len(hex_address) == 32:
        if not hex_address.startswith("0000000000000000FFFF0000"):
            return ""
        hex_address = hex_address[24:]
    return ".".join(str(int(hex_address[i:i + 2], 16)) for i in (6, 4, 2, 0))


def listening_sockets() -> set[tuple[str, int]]:
    """Every TCP socket listening on an IPv4 address (gRPC's are IPv4-mapped IPv6 ones):
    (address, port)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            address, port = fields[1].split(":")
            found.add((_ipv4(address), int(port, 16)))
    return found


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_down_after_the_supervisor_is_killed_or_hung_leaves_no_process_listener_or_socket(
        tmp_path: Path, how: signal.Signals) -> None:
    """Within its window (--timeout) plus a few seconds, whatever the supervisor's state."""
    config_dir, subnet = mesh_copy(tmp_path)
    mesh = LocalMesh(config_dir, tmp_path / "home", subnet)
    try:
        mesh.heddle("up", str(config_dir), "--detach", *port_args())
        state = mesh.state()
        pids = control.mesh_pids(state)
        sockets = [sds_socket_for(Path(w.workdir)) for w in state.workloads.values()]
        app_addresses = {w.app_address for w in state.workloads.values()}
        ours = {(a, p) for a, p in listening_sockets()
                if a.startswith(subnet) or a in app_addresses or (a == "127.0.0.1" and p in (
                    state.xds_port, state.ca_port, state.join_port, state.debug_port))}
        # supervisor, control plane, 5 agents and their Envoys, the default ingress
        # gateway's agent and Envoy, 4 applications (the client and the gateway run none)
        assert len(pids) == 2 + 6 + 6 + 4
        assert all(s.exists() for s in sockets)
        assert {(f"{subnet}2", 15001), (f"{subnet}2", 8080), ("127.0.0.1", state.ca_port)
                } <= ours
        os.kill(state.supervisor_pid, how)
        if how is signal.SIGKILL:
            wait_for(lambda: not pid_alive(state.supervisor_pid), 5, "the supervisor gone")
        start = time.monotonic()
        out = mesh.heddle("down", "--timeout", str(DOWN_TIMEOUT))
        took = time.monotonic() - start
    finally:
        mesh.heddle("down", check=False)
        with contextlib.suppress(ProcessLookupError):
            os.kill(state.supervisor_pid, signal.SIGCONT)
    print(f"heddle down with the supervisor {how.name}: {took:.2f}s (timeout "
          f"{DOWN_TIMEOUT:g}s), {len(pids)} processes")
    assert "mesh down" in out.stdout
    assert took < DOWN_TIMEOUT + 6
    assert [p for p in pids if pid_alive(p)] == []
    assert processes_of(mesh.home) == []
    assert ours & listening_sockets() == set()
    assert [s for s in sockets if s.exists()] == []
    assert MeshState.load(mesh.home / "mesh") is None
