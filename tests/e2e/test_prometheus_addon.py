"""`heddle up --prometheus`: a real Prometheus (Debian's) beside the mesh, configured as Istio's
add-on is in Kubernetes, scraping the control plane as istiod and every proxy's merged
metrics, following workloads as they come and go; gone with `heddle down`."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from heddle.local.prometheus import PrometheusMissing, find_binary
from heddle.testing.loopback import free_port
from heddle.testing.prometheus import PrometheusApi, Target
from heddle.testing.waiting import wait_for

from .mesh_fixtures import HEDDLE, LocalMesh, mesh_copy, port_args, processes_of, running_mesh

try:
    find_binary()
except PrometheusMissing as missing:
    pytest.skip(str(missing), allow_module_level=True)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("prometheus"), "--prometheus",
                      "--prometheus-port", str(free_port()),
                      "--prometheus-scrape-interval", "1") as running:
        yield running


def api(mesh: LocalMesh) -> PrometheusApi:
    return PrometheusApi(f"http://127.0.0.1:{mesh.state().prometheus_port}")


def pods(mesh: LocalMesh) -> dict[str, Target]:
    return {t.labels["pod"]: t for t in api(mesh).targets() if t.job == "kubernetes-pods"}


def test_status_shows_where_prometheus_serves(mesh: LocalMesh) -> None:
    port = mesh.state().prometheus_port
    assert f"Prometheus http://127.0.0.1:{port}\n" in mesh.heddle("status").stdout
    assert api(mesh).ready()


def test_every_proxy_is_a_pod_target_on_its_merged_metrics_port(mesh: LocalMesh) -> None:
    workloads = mesh.state().workloads.values()
    wait_for(lambda: {w.name for w in workloads} <= set(pods(mesh)), 30,
             "every workload among Prometheus's targets")
    found = pods(mesh)
    for workload in workloads:
        target = found[workload.name]
        assert target.scrape_url == f"http://{workload.address}:15020/stats/prometheus"
        # The labels the add-on's relabelling makes from the pod's metadata.
        assert target.labels["namespace"] == workload.namespace
        assert target.labels["app"] == workload.labels["app"]
        assert target.labels.get("version") == workload.labels.get("version")
        assert target.labels["service_istio_io_canonical_name"] == workload.labels["app"]


def test_the_control_plane_is_scraped_as_istiod(mesh: LocalMesh) -> None:
    state = mesh.state()
    wait_for(lambda: pods(mesh).get("istiod", None) is not None
             and pods(mesh)["istiod"].health == "up", 30, "istiod's target up")
    istiod = pods(mesh)["istiod"]
    assert istiod.scrape_url == f"http://127.0.0.1:{state.debug_port}/metrics"
    assert istiod.labels["namespace"] == "istio-system"
    connected = 'pilot_xds{app="istiod",namespace="istio-system",pod="istiod"}'
    wait_for(lambda: api(mesh).value(connected) == len(state.workloads), 30,
             "pilot_xds counting every connected proxy")


def test_targets_follow_workloads_as_they_come_and_go(mesh: LocalMesh) -> None:
    entry = mesh.config_dir / "backend-3.yaml"
    entry.write_text(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n"
        "metadata:\n  name: backend-3\n  annotations:\n"
        "    heddle.dev/command: VERSION=v3 python3 apps/backend.py\n"
        f"spec:\n  address: {mesh.subnet}5\n  labels: {{app: backend, version: v3}}\n"
        "  serviceAccount: backend\n")
    # Prometheus re-reads the pods file when it changes (and every 30 s at the latest).
    wait_for(lambda: "backend-3" in pods(mesh), 60, "backend-3 among the targets")
    assert pods(mesh)["backend-3"].labels["version"] == "v3"
    entry.unlink()
    wait_for(lambda: "backend-3" not in pods(mesh), 60, "backend-3 gone from the targets")


def test_a_second_mesh_on_the_same_prometheus_port_is_refused(
        mesh: LocalMesh, tmp_path: Path) -> None:
    config_dir, _ = mesh_copy(tmp_path)
    port = str(mesh.state().prometheus_port)
    out = subprocess.run(
        [HEDDLE, "up", str(config_dir), "--detach", *port_args(), "--prometheus",
         "--prometheus-port", port], env={**mesh.env, "HEDDLE_HOME": str(tmp_path / "home")},
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"port {port} (--prometheus-port) is used by the mesh running" in out.stderr


def test_down_stops_prometheus_and_removes_its_data(tmp_path: Path) -> None:
    with running_mesh(tmp_path, "--prometheus", "--prometheus-port", str(free_port()),
                      target="mesh.yaml") as running:
        data = running.home / "mesh" / "prometheus" / "data"
        assert data.is_dir()
        pid = running.state().prometheus_pid
        assert pid > 0
    # running_mesh checked that no process of the mesh (Prometheus included) is left.
    assert not data.parent.exists()


def test_foreground_up_says_where_prometheus_is_and_ctrl_c_removes_its_data(
        tmp_path: Path) -> None:
    config_dir, _ = mesh_copy(tmp_path)
    home = tmp_path / "home"
    output = tmp_path / "up.log"
    port = free_port()
    with output.open("w") as out:
        up = subprocess.Popen([HEDDLE, "up", str(config_dir), *port_args(), "--prometheus",
                               "--prometheus-port", str(port)],
                              env={**os.environ, "HEDDLE_HOME": str(home)},
                              stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Ctrl-C stops the mesh" in output.read_text(), 90, "the mesh ready")
        assert f"Prometheus at http://127.0.0.1:{port}" in output.read_text()
        wait_for(PrometheusApi(f"http://127.0.0.1:{port}").ready, 30, "Prometheus ready")
        assert (home / "mesh" / "prometheus" / "data").is_dir()
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            code = up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            subprocess.run([HEDDLE, "down"], env={**os.environ, "HEDDLE_HOME": str(home)},
                           timeout=60, check=False)
            raise
    assert code == 0, output.read_text()
    assert processes_of(home) == [], "processes left behind by Ctrl-C"
    assert not (home / "mesh" / "prometheus").exists()
