"""Istio's automatic protocol selection through real sidecars: v1 Services whose ports have
no name (as the Gateway API conformance backends' mostly do) get HTTP routing and L7 policy
for HTTP, and still carry TCP.

`plain` is the hello backend app (two versions) behind an unnamed port, with a
VirtualService that routes on a header and a DENY policy on a path; `rawecho` is the hello
echo app behind another unnamed port."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

UNNAMED_PORTS = """\
apiVersion: v1
kind: Service
metadata: {name: plain}
spec:
  selector: {app: plain}
  ports: [{port: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: rawecho}
spec:
  selector: {app: rawecho}
  ports: [{port: 9000}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: plain-v1
  annotations: {heddle.dev/command: VERSION=v1 python3 apps/backend.py}
spec: {address: SUBNET.21, labels: {app: plain, version: v1}, serviceAccount: plain}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: plain-v2
  annotations: {heddle.dev/command: VERSION=v2 python3 apps/backend.py}
spec: {address: SUBNET.22, labels: {app: plain, version: v2}, serviceAccount: plain}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: rawecho
  annotations: {heddle.dev/command: python3 apps/echo.py}
spec: {address: SUBNET.23, labels: {app: rawecho}, serviceAccount: rawecho}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: plain}
spec:
  host: plain.default.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: plain}
spec:
  hosts: [plain.default.svc.cluster.local]
  http:
  - match: [{headers: {x-canary: {exact: "yes"}}}]
    route: [{destination: {host: plain.default.svc.cluster.local, subset: v2}}]
    headers: {response: {add: {x-routed-by: canary}}}
  - route: [{destination: {host: plain.default.svc.cluster.local, subset: v1}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: plain-private}
spec:
  selector: {matchLabels: {app: plain}}
  action: DENY
  rules: [{to: [{operation: {paths: [/private*]}}]}]
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("detection"),
                      extra={"unnamed.yaml": UNNAMED_PORTS}) as running:
        yield running


def request(url: str, proxy: str | None, headers: dict[str, str] | None = None,
            ) -> tuple[int, dict[str, str], bytes]:
    """(status, response headers, body): through the HTTP proxy `proxy` (a sidecar's
    outbound listener), or straight to the URL's address when None."""
    handler = urllib.request.ProxyHandler({"http": proxy} if proxy else {})
    opener = urllib.request.build_opener(handler)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}),
                         timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def through_client(mesh: LocalMesh, url: str, headers: dict[str, str] | None = None,
                   ) -> tuple[int, dict[str, str], bytes]:
    return request(url, f"http://{mesh.subnet}1:15001", headers)


def test_http_to_an_unnamed_port_follows_the_virtual_service(mesh: LocalMesh) -> None:
    url = "http://plain:9090/"
    status, headers, body = through_client(mesh, url)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["version"] == "v1"
    assert "x-routed-by" not in {k.lower() for k in headers}
    # The server's sidecar served it as HTTP over mTLS: it told the app who called.
    assert "spiffe://cluster.local/ns/default/sa/client" in answer["peer"]

    status, headers, body = through_client(mesh, url, {"x-canary": "yes"})
    assert status == 200, body
    assert json.loads(body)["version"] == "v2"
    assert {k.lower(): v for k, v in headers.items()}["x-routed-by"] == "canary"


def test_the_servers_sidecar_applies_http_policy_on_an_unnamed_port(mesh: LocalMesh) -> None:
    status, _, body = through_client(mesh, "http://plain:9090/private/data")
    assert (status, body) == (403, b"RBAC: access denied")
    assert through_client(mesh, "http://plain:9090/public")[0] == 200


def test_plaintext_http_is_detected_by_the_servers_sidecar(mesh: LocalMesh) -> None:
    """A caller without a sidecar (PERMISSIVE): the HTTP inspector finds HTTP, so the
    request is served, policed and logged as HTTP."""
    authority, token = f"{mesh.subnet}21:9090", uuid.uuid4().hex
    status, _, body = request(f"http://{authority}/{token}", proxy=None)
    assert status == 200, body
    assert json.loads(body)["peer"] == ""  # plaintext: no client certificate to report
    assert request(f"http://{authority}/private", proxy=None)[:3:2] == (
        403, b"RBAC: access denied")

    def logged() -> list[str]:
        return [line for line in mesh.envoy_log("plain-v1").splitlines() if token in line]

    wait_for(logged, 10, "the request in the server sidecar's access log")
    assert f'"GET /{token} HTTP/1.1" 200 ' in logged()[0] and f'"{authority}"' in logged()[0]


def test_tcp_to_another_unnamed_port_still_works(mesh: LocalMesh) -> None:
    with socket.create_connection((f"{mesh.subnet}1", 15001), timeout=10) as conn:
        conn.sendall(b"CONNECT rawecho:9000 HTTP/1.1\r\nHost: rawecho:9000\r\n\r\n")
        reply = conn.makefile("rb")
        assert b" 200" in reply.readline()
        while reply.readline() not in (b"\r\n", b""):
            pass
        conn.sendall(b"hello over an unnamed port\n")
        assert reply.readline() == b"echo: hello over an unnamed port\n"
