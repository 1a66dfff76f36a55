"""Traffic leaving the mesh and what each proxy is told: ALLOW_ANY lets a request to an
unregistered host through, REGISTRY_ONLY blocks it (502), and a Sidecar with egress `./*`
cuts a proxy's clusters down to its own namespace's services."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

REGISTRY_ONLY = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
"""

# Ten services of another team, in another namespace: the client never calls them.
OTHER_TEAM = "\n---\n".join(
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
    f"metadata: {{name: svc-{i}, namespace: payments}}\n"
    f"spec:\n  hosts: [svc-{i}.payments.svc.cluster.local]\n  location: MESH_INTERNAL\n"
    "  resolution: STATIC\n  ports: [{number: 8080, name: http, protocol: HTTP}]\n"
    f"  endpoints: [{{address: 127.0.0.{i + 1}}}]\n"
    for i in range(10))

SIDECAR_OWN_NAMESPACE = """\
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  egress: [{hosts: ["./*"]}]
"""


class ExternalServer:
    """An HTTP server outside the mesh: no ServiceEntry names it. Counts what reaches it."""

    def __init__(self, address: str) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = b"external"
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://{address}:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("egress")) as running:
        yield running


def status_of(mesh: LocalMesh, url: str) -> int:
    """The status a request from the client workload gets, sent through its sidecar."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://{mesh.subnet}1:15001"}))
    try:
        with opener.open(url, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def tunnel_status(mesh: LocalMesh, url: str) -> str:
    """A CONNECT tunnel through the client's sidecar to the server of `url` (how TCP leaves
    the mesh), then a GET through it: the tunnel's status line, and the GET's if it opened."""
    target = url.split("/")[2]
    with socket.create_connection((f"{mesh.subnet}1", 15001), timeout=5) as conn:
        conn.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        reply = conn.recv(4096).decode(errors="replace").split("\r\n")[0]
        if " 200" not in reply:
            return reply
        conn.sendall(f"GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
                     .encode())
        return reply + " | " + conn.recv(4096).decode(errors="replace").split("\r\n")[0]


def envoy_clusters(mesh: LocalMesh) -> str:
    """The clusters the client's Envoy holds now, as JSON text."""
    return mesh.heddle("proxy-config", "clusters", "client", "-o", "json").stdout


def client_clusters(mesh: LocalMesh) -> tuple[int, int]:
    """The client proxy's cluster count and configuration bytes, as `proxy-status` shows."""
    statuses = json.loads(mesh.heddle("proxy-status", "-o", "json").stdout)
    [client] = [s for s in statuses if s["proxy"].split("~")[2] == "client.default"]
    config = client["config"]
    return config["Cluster"]["resources"], sum(c["bytes"] for c in config.values())


def partner_entry(server: ExternalServer) -> str:
    """A ServiceEntry registering an external API (resolved by DNS; here the name is an IP)."""
    address, port = server.url.split("/")[2].split(":")
    return ("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: partner}\n"
            "spec:\n  hosts: [api.partner.test]\n  location: MESH_EXTERNAL\n"
            f"  resolution: DNS\n  ports: [{{number: 80, name: http, protocol: HTTP, "
            f"targetPort: {port}}}]\n  endpoints: [{{address: {address}}}]\n")


def test_registry_only_blocks_an_unregistered_host_that_allow_any_lets_through(
        mesh: LocalMesh) -> None:
    external = ExternalServer(f"{mesh.subnet}70")
    partner = ExternalServer(f"{mesh.subnet}71")
    policy = mesh.config_dir / "mesh-config.yaml"
    entry = mesh.config_dir / "partner.yaml"
    try:
        entry.write_text(partner_entry(partner))
        assert status_of(mesh, external.url) == 200  # ALLOW_ANY: Istio's default
        assert external.hits == 1
        assert tunnel_status(mesh, external.url) == "HTTP/1.1 200 OK | HTTP/1.0 200 OK"
        wait_for(lambda: "PassthroughCluster" in mesh.envoy_log("client"), 10,
                 "the passthrough request in the client's access log")

        policy.write_text(REGISTRY_ONLY)
        wait_for(lambda: status_of(mesh, external.url) == 502, 15, "REGISTRY_ONLY in force")
        hits = external.hits
        assert [status_of(mesh, external.url) for _ in range(5)] == [502] * 5
        assert tunnel_status(mesh, external.url).startswith("HTTP/1.1 502")
        assert external.hits == hits  # nothing reached the unregistered host
        assert status_of(mesh, "http://frontend:8080/") == 200  # registered: still served
        assert status_of(mesh, "http://api.partner.test/") == 200  # a registered external API
        assert partner.hits == 1

        policy.unlink()
        wait_for(lambda: status_of(mesh, external.url) == 200, 15, "ALLOW_ANY again")
    finally:
        policy.unlink(missing_ok=True)
        entry.unlink(missing_ok=True)
        external.close()
        partner.close()


def test_a_sidecar_with_own_namespace_egress_shrinks_the_proxy_config(mesh: LocalMesh) -> None:
    other = mesh.config_dir / "payments.yaml"
    sidecar = mesh.config_dir / "sidecar.yaml"
    try:
        other.write_text(OTHER_TEAM)
        wait_for(lambda: (text := envoy_clusters(mesh)).count(".payments.svc") >= 10
                 and "partner" not in text, 15, "the payments services in the client's Envoy")
        before = client_clusters(mesh)
        sidecar.write_text(SIDECAR_OWN_NAMESPACE)
        wait_for(lambda: ".payments.svc" not in envoy_clusters(mesh), 15, "the Sidecar in force")
        after = client_clusters(mesh)
        print(f"client proxy: {before[0]} clusters / {before[1]} bytes of config without a "
              f"Sidecar; {after[0]} clusters / {after[1]} bytes with egress ./*")
        assert after[0] == before[0] - 10 and after[1] < before[1]
        assert status_of(mesh, "http://frontend:8080/") == 200  # its own namespace: served
    finally:
        other.unlink(missing_ok=True)
        sidecar.unlink(missing_ok=True)
