"""GAMMA through real sidecars: an HTTPRoute whose parentRef is a Service decides where the
client's sidecar sends that service's traffic (by header, then by weight), and an edit of
the route changes the sidecar's routes while the mesh runs."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

SERVICES = """\
# `backends` is what the client calls; the route splits it between the two versions.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backends}
spec:
  hosts: [backends.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9090, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: backend}}
""" + "".join(f"""---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: backend-{v}}}
spec:
  hosts: [backend-{v}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 9090, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: backend, version: {v}}}}}
""" for v in ("v1", "v2"))


def route(v1_weight: int, v2_weight: int) -> str:
    return f"""\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: backends-split}}
spec:
  parentRefs:
  - {{group: "", kind: Service, name: backends, port: 9090}}
  rules:
  - matches:
    - headers: [{{name: x-variant, value: canary}}]
    backendRefs: [{{name: backend-v2, port: 9090}}]
  - backendRefs:
    - {{name: backend-v1, port: 9090, weight: {v1_weight}}}
    - {{name: backend-v2, port: 9090, weight: {v2_weight}}}
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    extra = {"gamma-services.yaml": SERVICES, "gamma-route.yaml": route(100, 0)}
    with running_mesh(tmp_path_factory.mktemp("gamma"), extra=extra) as running:
        yield running


def versions(mesh: LocalMesh, count: int, headers: dict[str, str] | None = None) -> set[str]:
    """The versions that answered `count` requests to backends:9090 sent by the client
    through its sidecar."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://{mesh.subnet}1:15001"}))
    seen = set()
    for _ in range(count):
        request = urllib.request.Request("http://backends:9090/", headers=headers or {})
        with opener.open(request, timeout=5) as response:
            assert response.status == 200
            seen.add(json.loads(response.read())["version"])
    return seen


def client_routes(mesh: LocalMesh) -> str:
    return mesh.heddle("proxy-config", "routes", "client", "-o", "json").stdout


def named_route(mesh: LocalMesh, name: str) -> dict[str, Any]:
    """The Envoy route `name` on port 9090 of the client's sidecar."""
    for config in json.loads(client_routes(mesh)):
        for host in config.get("virtual_hosts", []):
            for found in host.get("routes", []):
                if found.get("name") == name and "backends" in host.get("name", ""):
                    return dict(found)
    raise AssertionError(f"no route {name} for backends in the client's sidecar")


def test_an_httproute_on_a_service_splits_sidecar_traffic_by_header_and_weight(
        mesh: LocalMesh) -> None:
    wait_for(lambda: "default.backends-split.1" in client_routes(mesh), 20,
             "the route's rules in the client's sidecar")
    assert named_route(mesh, "default.backends-split.1")["route"]["cluster"] == (
        "outbound|9090||backend-v1.default.svc.cluster.local")
    assert versions(mesh, 10) == {"v1"}
    assert versions(mesh, 10, {"x-variant": "canary"}) == {"v2"}

    updated = mesh.home / "gamma-route.yaml"  # applied, outside the watched directory
    updated.write_text(route(0, 100))
    mesh.heddle("apply", "-f", str(updated))
    wait_for(lambda: versions(mesh, 5) == {"v2"}, 20, "all traffic moved to v2 by the edit")
    assert versions(mesh, 20) == {"v2"}
    assert named_route(mesh, "default.backends-split.1")["route"]["cluster"] == (
        "outbound|9090||backend-v2.default.svc.cluster.local")


def test_get_httproute_shows_the_status_the_control_plane_keeps(mesh: LocalMesh) -> None:
    shown = yaml.safe_load(mesh.heddle("get", "httproute", "backends-split", "-o",
                                       "yaml").stdout)
    (parent,) = shown["status"]["parents"]
    assert parent["parentRef"] == {"group": "", "kind": "Service", "name": "backends",
                                   "namespace": "default", "port": 9090}
    assert parent["controllerName"] == "heddle.dev/gateway-controller"
    assert {c["type"]: (c["status"], c["reason"]) for c in parent["conditions"]} == {
        "Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")}
