"""The GAMMA scenarios' own base: the mesh namespaces, their echo Deployments and Services.

Upstream keeps them in `conformance/mesh/manifests.yaml`, which the shared corpus does not
carry; when a corpus has that file it is used as written, otherwise the same resources are
built here from their facts: namespace `gateway-conformance-mesh` with Deployments echo-v1
and echo-v2 (labels `app: echo`, `version: v1|v2`) behind Services echo-v1, echo-v2 and echo
(all versions), each Service with ports http 80 -> 8080, http-alt 8080, https 443 -> 8443,
tcp 9090 and grpc 7070; namespace `gateway-conformance-mesh-consumer` with a Deployment
echo-v1 and no Service (it only sends). The images are the upstream's `echo-advanced`, which
`manifests.convert` runs as `heddle.conformance.echo`, each pod a workload with a sidecar.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MESH_NAMESPACE = "gateway-conformance-mesh"
CONSUMER_NAMESPACE = "gateway-conformance-mesh-consumer"
ECHO_ADVANCED = "registry.k8s.io/gateway-api/conformance/echo-advanced:v0.1.0"
CORPUS_FILE = Path("mesh") / "manifests.yaml"
CONTAINER_PORTS = (8080, 8443, 9090, 7070)
# name, port, target port (None: the port), appProtocol (None: none)
SERVICE_PORTS: tuple[tuple[str, int, int | None, str | None], ...] = (
    ("http", 80, 8080, "http"), ("http-alt", 8080, None, "http"), ("https", 443, 8443, None),
    ("tcp", 9090, None, None), ("grpc", 7070, None, None))


def _namespace(name: str, role: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"gateway-conformance": role}}}


def _deployment(namespace: str, version: str) -> dict[str, Any]:
    labels = {"app": "echo", "version": version}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"echo-{version}", "namespace": namespace,
                     "labels": {"app": "echo"}},
        "spec": {"selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{
                "name": "echo", "image": ECHO_ADVANCED,
                "ports": [{"containerPort": p, "protocol": "TCP"} for p in CONTAINER_PORTS],
            }]}}},
    }


def _service(name: str, selector: dict[str, str], grpc_app_protocol: str | None,
             ) -> dict[str, Any]:
    ports = []
    for port_name, port, target, app_protocol in SERVICE_PORTS:
        entry: dict[str, Any] = {"name": port_name, "port": port}
        if port_name == "grpc" and grpc_app_protocol:
            app_protocol = grpc_app_protocol
        if app_protocol:
            entry["appProtocol"] = app_protocol
        if target is not None:
            entry["targetPort"] = target
        ports.append(entry)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": MESH_NAMESPACE},
            "spec": {"selector": selector, "ports": ports}}


def documents() -> list[dict[str, Any]]:
    """The mesh base, as upstream declares it."""
    return [
        _namespace(MESH_NAMESPACE, "mesh"),
        _deployment(MESH_NAMESPACE, "v1"),
        _service("echo-v1", {"app": "echo", "version": "v1"}, None),
        _deployment(MESH_NAMESPACE, "v2"),
        _service("echo-v2", {"app": "echo", "version": "v2"}, None),
        _service("echo", {"app": "echo"}, "kubernetes.io/h2c"),
        _namespace(CONSUMER_NAMESPACE, "mesh-consumer"),
        _deployment(CONSUMER_NAMESPACE, "v1"),
    ]


def manifests(corpus: Path) -> str:
    """The mesh base's YAML: the corpus's file when it has one, else `documents()`."""
    path = corpus / CORPUS_FILE
    if path.is_file():
        return path.read_text()
    return yaml.safe_dump_all(documents(), sort_keys=False)
