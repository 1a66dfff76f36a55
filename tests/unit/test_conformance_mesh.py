"""The GAMMA side of the conformance runner: the mesh base built from its facts, the client
pod's requests leaving through its sidecar's HTTP proxy, and the upstream MeshPod's
comparison rules."""

from __future__ import annotations

import http.server
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from heddle.conformance import manifests, mesh_base
from heddle.conformance.compare import Captured
from heddle.conformance.mesh_client import (
    OUTBOUND_PROXY_PORT,
    MeshSender,
    NoClientPod,
    authority,
    compare_mesh,
)
from heddle.conformance.scenarios import Case, load_all, load_scenario
from heddle.local.state import MeshState, WorkloadState

MESH = mesh_base.MESH_NAMESPACE
CONSUMER = mesh_base.CONSUMER_NAMESPACE


def case(text: str) -> Case:
    """The first case of a mesh scenario whose cases are `text`."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.yaml"
        path.write_text(f"name: T\nmanifests: []\nmesh: true\ncases:\n{text}")
        return load_scenario(path).cases[0]


def pod(namespace: str, name: str, address: str, version: str) -> WorkloadState:
    return WorkloadState(name, namespace, address, "", 0, "",
                         labels={"app": "echo", "version": version})


def state(*pods: WorkloadState) -> MeshState:
    return MeshState("", 0, 0, 0, workloads={f"{p.name}.{p.namespace}": p for p in pods})


def test_every_http_mesh_scenario_runs_and_the_grpc_ones_say_why_not() -> None:
    mesh = [s for s in load_all() if s.mesh]
    assert len(mesh) == 23
    assert sorted(s.name for s in mesh if s.skip) == [
        "MeshGRPCRouteRequestHeaderModifier", "MeshGRPCRouteWeight"]
    assert all(s.cases and not s.gateway for s in mesh if not s.skip)


def test_the_mesh_base_runs_each_echo_pod_with_a_sidecar() -> None:
    text = mesh_base.manifests(Path("/nonexistent"))
    converted = manifests.convert(text, manifests.Pods("127.0.9."), "python")
    entries = {manifests.describe(d): d for d in converted.documents
               if d["kind"] == "WorkloadEntry"}
    assert sorted(entries) == [f"WorkloadEntry {CONSUMER}/echo-v1-0",
                               f"WorkloadEntry {MESH}/echo-v1-0",
                               f"WorkloadEntry {MESH}/echo-v2-0"]
    v1 = entries[f"WorkloadEntry {MESH}/echo-v1-0"]
    assert v1["spec"]["labels"] == {"app": "echo", "version": "v1"}
    command = v1["metadata"]["annotations"]["heddle.dev/command"]
    assert "SERVICE_NAME=echo-v1,echo" in command and "ECHO_PORTS=7070,8080,8443,9090" in command
    services = sorted(manifests.describe(d) for d in converted.documents
                      if d["kind"] == "Service")
    assert services == [f"Service {MESH}/echo", f"Service {MESH}/echo-v1",
                        f"Service {MESH}/echo-v2"]
    assert converted.left_out == []


def test_a_corpus_with_the_upstream_mesh_manifests_is_used_as_written(tmp_path: Path) -> None:
    (tmp_path / "mesh").mkdir()
    (tmp_path / "mesh" / "manifests.yaml").write_text("kind: Namespace\n")
    assert mesh_base.manifests(tmp_path) == "kind: Namespace\n"


def test_the_url_names_the_service_as_the_upstream_client_does() -> None:
    running = state(pod(MESH, "echo-v2-0", "127.0.9.3", "v2"))
    assert authority("", running) == "echo"
    assert authority("echo-v1:80", running) == "echo-v1"
    assert authority("echo-v1:8080", running) == "echo-v1:8080"
    assert authority("{podIP:app=echo,version=v2}:8080", running) == "127.0.9.3:8080"
    with pytest.raises(NoClientPod):
        authority("{podIP:app=echo,version=v3}", running)


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Stands for a sidecar's outbound HTTP proxy: answers what it was asked."""

    seen: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        _Proxy.seen.append((self.path, self.headers.get("Host")))
        body = b'{"pod": "echo-v1-0", "headers": {}}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def sidecar_proxy() -> Iterator[str]:
    address = "127.0.213.7"
    server = http.server.ThreadingHTTPServer((address, OUTBOUND_PROXY_PORT), _Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield address
    finally:
        server.shutdown()
        server.server_close()


def test_requests_leave_the_client_pod_through_its_sidecars_proxy(sidecar_proxy: str) -> None:
    _Proxy.seen.clear()
    running = state(pod(CONSUMER, "echo-v1-0", sidecar_proxy, "v1"),
                    pod(MESH, "echo-v1-0", "127.0.213.8", "v1"))
    wrong_host = case("""- request: {host: echo-v2, path: /x, headers: {Host: echo-v1}}
  backend: echo-v1""")
    with MeshSender(running, CONSUMER) as sender:
        got = sender.send(wrong_host)
    assert _Proxy.seen == [("http://echo-v2/x", "echo-v1")]  # the URL says where it goes
    assert got.status == 200 and compare_mesh(wrong_host, got) is None


def test_the_client_pod_must_run() -> None:
    with pytest.raises(NoClientPod, match="no pod app=echo,version=v1 runs in namespace"):
        MeshSender(state(), CONSUMER)


def test_request_headers_are_checked_only_when_an_expected_request_is_written() -> None:
    implied = case("- request: {path: /, headers: {Host: echo-v1}}")
    assert compare_mesh(implied, Captured(200, {}, {"pod": "echo-v1-0", "headers": {}})) is None
    written = case("""- request: {path: /add, headers: {X-Header-Add: a}}
  expectedRequest: {path: /elsewhere, headers: {X-Header-Add: "a,b"}}""")
    seen = {"pod": "echo-v1-0", "path": "/add", "headers": {"X-Header-Add": ["a"]}}
    assert compare_mesh(written, Captured(200, {}, seen)) == (
        "expected X-Header-Add header to be set to a,b, got a")  # the path is not compared
    seen["headers"] = {"X-Header-Add": ["a", "b"]}
    assert compare_mesh(written, Captured(200, {}, seen)) is None
    assert compare_mesh(written, Captured(503, {}, None)) == (
        "wanted status code to be one of [200], got 503")


def test_response_headers_absent_headers_and_the_backend_pod() -> None:
    c = case("""- request: {host: echo-v2}
  response: {headers: {X-Header-Set: set}, absentHeaders: [X-Other]}
  backend: echo-v2""")
    answer = {"pod": "echo-v2-0", "headers": {}}
    assert compare_mesh(c, Captured(200, {"x-header-set": ("set",)}, answer)) is None
    assert compare_mesh(c, Captured(200, {}, answer)) == "expected header X-Header-Set=set, got "
    assert compare_mesh(c, Captured(200, {"x-header-set": ("set",), "x-other": ("1",)},
                                    answer)) == "expected no header 'X-Other', got ['1']"
    assert compare_mesh(c, Captured(200, {"x-header-set": ("set",)},
                                    {"pod": "echo-v1-0"})) == (
        "expected pod name to start with echo-v2, got echo-v1-0")


def test_a_redirects_location_is_checked_too() -> None:
    c = case("""- request: {host: echo, path: /port, unfollowRedirect: true}
  response: {statusCode: 302}
  redirectRequest: {port: "8083"}""")
    assert compare_mesh(c, Captured(302, {}, None, "http://echo:8083/port")) is None
    assert compare_mesh(c, Captured(302, {}, None, "http://echo/port")) == (
        "expected redirected port to be '8083', got ''")
