"""`heddle up` runs examples/hello as real processes: requests cross four sidecars, config
changes reach running proxies, the control plane can die under traffic, `down` cleans up."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from untrusted_yaml import alias_bomb

from heddle.local.state import pid_alive
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh, steady_traffic


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("hello")) as running:
        yield running


def test_status_lists_every_workload_synced(mesh: LocalMesh) -> None:
    out = mesh.heddle("status").stdout
    for name in ("client", "frontend", "backend-1", "backend-2"):
        line = next(line for line in out.splitlines() if line.split()[:1] == [name])
        assert "yes" in line and "SYNCED" in line, line


EXTRA_ROUTES = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: extra
spec:
  hosts: [extra.example.com]
  http:
  - route:
    - destination: {host: extra.example.com}
      weight: 100
"""


def test_an_invalid_live_edit_shows_in_status_within_2s_and_goes_when_fixed(
        mesh: LocalMesh) -> None:
    routes = mesh.config_dir / "extra-routes.yaml"
    routes.write_text(EXTRA_ROUTES)
    wait_for(lambda: "extra" in mesh.heddle("get", "vs").stdout, 10, "the new file in force")
    error = f'{routes}:10:7: error: [IST0106] VirtualService default/extra: ' \
            'spec.http[0].route[0].weigth: unknown field "weigth"'
    try:
        routes.write_text(EXTRA_ROUTES.replace("weight", "weigth"))
        shown = wait_for(lambda: error in mesh.heddle("status").stdout, 2,
                         "the invalid edit in heddle status")
        print(f"the invalid edit showed in heddle status {shown:.2f}s after it was written")
        out = mesh.heddle("status").stdout
        assert f"  {routes}: last edit rejected; its last good version stays in force" in out
        listed = mesh.heddle("get", "vs", "extra")
        assert f"{routes}:1 (last edit rejected)" in listed.stdout
        assert f"warning: the last edit of {routes} was rejected" in listed.stderr

        routes.write_text(EXTRA_ROUTES)
        fixed = wait_for(lambda: error not in mesh.heddle("status").stdout, 2,
                         "the error gone from heddle status once fixed")
        print(f"the error left heddle status {fixed:.2f}s after the fix was written")
        assert re.search(rf"\n  fixed \d+s ago: {re.escape(str(routes))} \(1 problem gone\)\n",
                         mesh.heddle("status").stdout)
        assert "(last edit rejected)" not in mesh.heddle("get", "vs", "extra").stdout
        log = (mesh.home / "mesh" / "logs" / "control-plane.log").read_text()
        assert f"{routes}: fixed (1 problem(s) gone); its current version is in force" in log
    finally:
        routes.unlink()


def test_a_resource_two_files_define_warns_with_both_places_until_one_goes(
        mesh: LocalMesh) -> None:
    first, second = mesh.config_dir / "routes-a.yaml", mesh.config_dir / "routes-b.yaml"
    first.write_text(EXTRA_ROUTES)
    second.write_text(EXTRA_ROUTES)
    warning = f"{first}:1:1: warning: VirtualService default/extra: also defined at " \
              f"{second}:1:1, which is in force"
    try:
        wait_for(lambda: warning in mesh.heddle("status").stdout, 10, "the duplicate warned")
        assert mesh.heddle("get", "vs", "extra").stdout.endswith(f"   {second}:1\n")
        second.unlink()
        wait_for(lambda: "VirtualService default/extra" not in mesh.heddle("status").stdout,
                 10, "the warning gone with the second definition")
    finally:
        first.unlink()
        second.unlink(missing_ok=True)


def test_a_request_crosses_four_sidecars(mesh: LocalMesh) -> None:
    out = mesh.heddle("exec", "client", "--", "curl", "-s", "http://frontend:8080/").stdout
    answer = json.loads(out)
    backend = answer["backend"]
    request_id = backend["request_id"]
    assert answer["service"] == "frontend" and backend["service"] == "backend"
    instance = backend["instance"]
    hops = {
        "client": "outbound|8080||frontend.default.svc.cluster.local",
        "frontend": "inbound|8080||",
        instance: "inbound|9090||",
    }

    def logged() -> bool:
        frontend = mesh.envoy_log("frontend")
        return all(
            any(request_id in line and cluster in line for line in mesh.envoy_log(w).splitlines())
            for w, cluster in hops.items()
        ) and any(request_id in line and "outbound|9090|" in line
                  for line in frontend.splitlines())

    wait_for(logged, 10, "the request's id in the access log of all four sidecar hops")


def test_a_new_workload_entry_gets_traffic_without_restarts(mesh: LocalMesh) -> None:
    before = {w: mesh.envoy_pid(w) for w in ("client", "frontend", "backend-1")}
    entry = mesh.config_dir / "backend-3.yaml"
    entry.write_text(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        "metadata:\n  name: backend-3\n  annotations:\n"
        "    heddle.dev/command: VERSION=v1 python3 apps/backend.py\n"
        f"spec:\n  address: {mesh.subnet}5\n  labels: {{app: backend, version: v1}}\n"
        "  serviceAccount: backend\n")
    start = time.monotonic()
    served: list[str] = []

    def backend_3_answers() -> bool:
        status, body = mesh.get("http://frontend:8080/")
        backend = body.get("backend", {})
        assert status == 200, body
        served.append(str(backend.get("instance")) if isinstance(backend, dict) else "")
        return served[-1] == "backend-3"

    wait_for(backend_3_answers, 20, "backend-3 serving requests")
    elapsed = time.monotonic() - start
    print(f"backend-3 served its first request {elapsed:.2f}s after its WorkloadEntry was "
          f"written ({len(served)} requests, all 200)")
    assert {w: mesh.envoy_pid(w) for w in before} == before
    entry.unlink()
    wait_for(lambda: "backend-3" not in mesh.heddle("status").stdout, 20, "backend-3 stopped")


def test_deleting_a_service_removes_its_routes_from_every_proxy(mesh: LocalMesh) -> None:
    frontend_se = mesh.home / "frontend-service.yaml"  # outside the watched directory
    text = (mesh.config_dir / "mesh.yaml").read_text()
    document = next(d for d in text.split("---") if "name: frontend\nspec:\n  hosts" in d)
    frontend_se.write_text(document.strip() + "\n")
    mesh.heddle("delete", "-f", str(frontend_se))

    def gone_everywhere() -> bool:
        for workload in ("client", "frontend", "backend-1", "backend-2"):
            routes = mesh.heddle("proxy-config", "routes", workload, "-o", "json").stdout
            if "frontend.default.svc.cluster.local" in routes:
                return False
        return True

    wait_for(gone_everywhere, 10, "frontend's routes removed from every proxy")
    # No longer a known host: passed through (ALLOW_ANY), where its name does not resolve.
    assert mesh.get("http://frontend:8080/")[0] == 503
    mesh.heddle("apply", "-f", str(frontend_se))
    wait_for(lambda: mesh.get("http://frontend:8080/")[0] == 200, 10, "frontend routable again")


def test_killing_the_control_plane_under_traffic_fails_no_request(mesh: LocalMesh) -> None:
    envoys = {w: mesh.envoy_pid(w) for w in ("client", "frontend", "backend-1", "echo")}
    old = mesh.state().control_plane_pid
    with steady_traffic(mesh) as results:
        wait_for(lambda: len(results) >= 20, 10, "traffic flowing")
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: mesh.state().control_plane_pid not in (0, old), 20,
                 "the control plane restarted")
        sent_while_down = len(results)

        def resynced() -> bool:
            out = mesh.heddle("proxy-status", check=False).stdout
            lines = [line for line in out.splitlines() if ".default" in line]
            return len(lines) == 5 and all(line.count("SYNCED") == 4 for line in lines)

        # Bounded but generous: the new control plane starts, loads and translates for
        # every proxy on a machine that may be busy.
        wait_for(resynced, 90, "every proxy SYNCED with the new control plane")
        wait_for(lambda: len(results) >= sent_while_down + 20, 10, "traffic after resync")
    failures = [code for code in results if code != 200]
    print(f"{len(results)} requests across a control plane kill, {len(failures)} failed")
    assert failures == []
    assert {w: mesh.envoy_pid(w) for w in envoys} == envoys


def test_a_crashed_envoy_is_restarted_by_its_agent(mesh: LocalMesh) -> None:
    old = mesh.envoy_pid("backend-1")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: mesh.envoy_pid("backend-1") != old, 20, "a new Envoy for backend-1")

    def backend_1_serves() -> bool:
        status, body = mesh.get("http://frontend:8080/")
        backend = body.get("backend", {})
        return status == 200 and isinstance(backend, dict) and backend["instance"] == "backend-1"

    wait_for(backend_1_serves, 20, "backend-1 serving again through its new Envoy")


def test_workload_group_instances_join_and_leave_with_their_health(mesh: LocalMesh) -> None:
    group = mesh.config_dir / "backend-pool.yaml"
    group.write_text(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\n"
        "metadata:\n  name: backend-pool\n  annotations:\n"
        "    heddle.dev/command: VERSION=pool python3 apps/backend.py\n"
        f"    heddle.dev/addresses: {mesh.subnet}7\n"
        "spec:\n  metadata:\n    labels: {app: backend, version: v2}\n"
        "  template:\n    serviceAccount: backend\n"
        "  probe:\n    periodSeconds: 1\n    failureThreshold: 2\n"
        "    tcpSocket: {port: 9090}\n")  # Istio's validation asks for a check method
    cluster = "outbound|9090|v2|backend.default.svc.cluster.local"

    def frontend_endpoints() -> str:
        return mesh.heddle("proxy-config", "endpoints", "frontend", "-o", "json").stdout

    def pool_endpoint_in(cluster_name: str) -> bool:
        dump = json.loads(frontend_endpoints())
        return any(f"{mesh.subnet}7" in json.dumps(c) for c in dump
                   if c["cluster_name"] == cluster_name)

    wait_for(lambda: pool_endpoint_in(cluster), 20, "the registered instance in EDS")

    def pool_serves() -> bool:
        backend = mesh.get("http://frontend:8080/")[1].get("backend", {})
        return isinstance(backend, dict) and backend.get("instance") == "backend-pool-1"

    wait_for(pool_serves, 20, "the group instance serving traffic")
    agent = mesh.state().workload("backend-pool-1")
    assert agent is not None
    os.kill(agent.agent_pid, signal.SIGSTOP)  # stops answering its readiness probe
    try:
        wait_for(lambda: not pool_endpoint_in(cluster), 20, "unhealthy instance out of EDS")
    finally:
        os.kill(agent.agent_pid, signal.SIGCONT)
    wait_for(lambda: pool_endpoint_in(cluster), 20, "the instance back once healthy")
    group.unlink()
    wait_for(lambda: not pool_endpoint_in(cluster), 20, "the instance gone with its group")


def test_tcp_services_are_reached_through_connect(mesh: LocalMesh) -> None:
    """A TCP client asks its sidecar for a tunnel (HTTP CONNECT), as HTTPS clients do."""
    with socket.create_connection((f"{mesh.subnet}1", 15001), timeout=10) as conn:
        conn.sendall(b"CONNECT echo:9000 HTTP/1.1\r\nHost: echo:9000\r\n\r\n")
        reply = conn.makefile("rb")
        status = reply.readline()
        assert status.split()[1] == b"200", status
        while reply.readline() not in (b"\r\n", b""):
            pass
        conn.sendall(b"hello over tcp\n")
        assert reply.readline() == b"echo: hello over tcp\n"
        conn.shutdown(socket.SHUT_WR)  # a clean close, seen end to end
        assert reply.readline() == b""
    wait_for(lambda: "inbound|9000||" in mesh.envoy_log("echo"), 10,
             "the echo sidecar's TCP access log")


def rss_bytes(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


def test_an_alias_bomb_is_refused_and_later_edits_still_apply(mesh: LocalMesh) -> None:
    state = mesh.state()
    debug = f"http://127.0.0.1:{state.debug_port}/debug"
    processes = {"control plane": state.control_plane_pid, "supervisor": state.supervisor_pid}
    before = {what: rss_bytes(pid) for what, pid in processes.items()}
    bomb = mesh.config_dir / "bomb.yaml"
    bomb.write_text(alias_bomb(8))

    def refused() -> bool:
        with urllib.request.urlopen(f"{debug}/diagnostics", timeout=5) as response:
            problems = json.loads(response.read())
        return any(str(bomb) in p and "aliases expand" in p for p in problems)

    try:
        wait_for(refused, 10, "the alias bomb refused, naming its file")
        grown = {what: rss_bytes(pid) - before[what] for what, pid in processes.items()}
        print(f"memory growth on the alias bomb: {grown}")
        assert all(growth < 100 * 1024 * 1024 for growth in grown.values()), grown
        assert "aliases expand" in (mesh.home / "mesh" / "logs"
                                    / "control-plane.log").read_text()
        added = mesh.config_dir / "after-bomb.yaml"
        added.write_text("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
                         "metadata: {name: after-bomb}\nspec:\n"
                         "  hosts: [after-bomb.example.com]\n"
                         "  ports: [{number: 80, name: http, protocol: HTTP}]\n"
                         "  resolution: DNS\n")

        def picked_up() -> bool:
            with urllib.request.urlopen(f"{debug}/resources", timeout=5) as response:
                return "after-bomb" in response.read().decode()

        wait_for(picked_up, 10, "an edit after the bomb reaching the control plane")
        assert all(pid_alive(pid) for pid in processes.values())
        added.unlink()
    finally:
        bomb.unlink()
