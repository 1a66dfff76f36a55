"""`heddle analyze` behaves like `istioctl analyze`: Istio's codes, levels and resource
names with file:line, istioctl's JSON/YAML fields, and an exit code that gates CI at
--failure-threshold; over files, or over the running mesh's configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
MESHES = sorted(p for p in EXAMPLES.iterdir() if (p / "mesh.yaml").is_file())
# Changes meant for a running `examples/hello` (see its README); one is broken on purpose.
HELLO_EXTRA = EXAMPLES / "hello-extra"

REVIEWS = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: default}
spec:
  address: 127.0.0.20
  labels: {app: reviews, version: v1}
"""

BAD_SUBSET = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v9}
"""

UNVERIFIED_TLS = """
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-tls, namespace: default}
spec:
  host: reviews
  trafficPolicy: {tls: {mode: SIMPLE}}
"""


def heddle(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "heddle", *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env)


def files(*paths: Path) -> list[str]:
    return [arg for path in paths for arg in ("-f", str(path))]


@pytest.mark.parametrize("example", MESHES, ids=lambda p: p.name)
def test_every_shipped_example_analyzes_clean(example: Path) -> None:
    out = heddle("analyze", "--all-namespaces", "--output-threshold", "Info", *files(example))
    assert (out.returncode, out.stdout) == (0, ""), out.stdout + out.stderr
    assert "No validation issues found when analyzing all namespaces." in out.stderr


def test_hello_extras_good_changes_analyze_clean_over_hello() -> None:
    out = heddle("analyze", "-A", *files(EXAMPLES / "hello", HELLO_EXTRA / "all-to-v2.yaml",
                                        HELLO_EXTRA / "backend-3.yaml"))
    assert (out.returncode, out.stdout) == (0, ""), out.stdout + out.stderr


def test_a_schema_error_is_ist0106_at_its_line() -> None:
    out = heddle("analyze", "-f", str(HELLO_EXTRA / "broken-route.yaml"))
    assert out.returncode == 1
    assert out.stdout.startswith(
        "Error [IST0106] (VirtualService default/echo "
        f"{HELLO_EXTRA / 'broken-route.yaml'}:10) spec.tcp[0].route[0].weigth: unknown field")


def test_an_undefined_subset_is_ist0101_and_fails_the_run(
        write_yaml: Callable[[str, str], Path]) -> None:
    write_yaml(REVIEWS, "reviews.yaml")
    vs = write_yaml(BAD_SUBSET, "vs.yaml")
    out = heddle("analyze", "-f", str(vs.parent))
    line = next(i for i, text in enumerate(vs.read_text().splitlines(), 1) if "v9" in text)
    assert out.returncode == 1
    assert out.stdout.splitlines() == [
        f"Error [IST0101] (VirtualService default/reviews {vs}:{line}) "
        "spec.http[0].route[0].destination: referenced host+subset in destinationrule not "
        "found: \"reviews+v9\". Fix: define subset 'v9' in a DestinationRule for host "
        "'reviews', or name one of the subsets defined there"]


def test_json_and_yaml_have_istioctls_fields(write_yaml: Callable[[str, str], Path]) -> None:
    write_yaml(REVIEWS, "reviews.yaml")
    vs = write_yaml(BAD_SUBSET, "vs.yaml")
    as_json = json.loads(heddle("analyze", "-o", "json", "-f", str(vs.parent)).stdout)
    as_yaml = yaml.safe_load(heddle("analyze", "-o", "yaml", "-f", str(vs.parent)).stdout)
    assert as_json == as_yaml
    [entry] = as_json
    assert entry["code"] == "IST0101"
    assert entry["level"] == "Error"
    assert entry["origin"] == "VirtualService default/reviews"
    assert entry["reference"].startswith(f"VirtualService default/reviews {vs}:")
    assert entry["documentationUrl"] == (
        "https://istio.io/latest/docs/reference/config/analysis/ist0101/")
    assert "reviews+v9" in entry["message"]


def test_the_failure_threshold_decides_the_exit_code(
        write_yaml: Callable[[str, str], Path]) -> None:
    write_yaml(REVIEWS, "reviews.yaml")
    dr = write_yaml(UNVERIFIED_TLS, "tls.yaml")
    at_error = heddle("analyze", "-f", str(dr.parent))
    at_warning = heddle("analyze", "--failure-threshold", "Warning", "-f", str(dr.parent))
    assert at_error.returncode == 0
    assert at_error.stdout.startswith("Warning [IST0128] (DestinationRule default/reviews-tls")
    assert at_warning.returncode == 1
    hidden = heddle("analyze", "--output-threshold", "Error", "-f", str(dr.parent))
    assert (hidden.returncode, hidden.stdout) == (0, "")


def test_only_the_namespace_asked_for_is_reported_unless_all(
        write_yaml: Callable[[str, str], Path]) -> None:
    write_yaml(REVIEWS, "reviews.yaml")
    vs = write_yaml(BAD_SUBSET.replace("namespace: default", "namespace: shop"), "vs.yaml")
    assert heddle("analyze", "-f", str(vs.parent)).stdout == ""
    assert "VirtualService shop/reviews" in heddle("analyze", "-n", "shop",
                                                   "-f", str(vs.parent)).stdout
    assert "VirtualService shop/reviews" in heddle("analyze", "-A", "-f", str(vs.parent)).stdout


GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
"""

INGRESS_OFF = """
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    ingressControllerMode: "OFF"
"""


def test_the_ingress_gateway_is_assumed_unless_the_mesh_config_turns_it_off(
        write_yaml: Callable[[str, str], Path]) -> None:
    gateway = write_yaml(GATEWAY, "gateway.yaml")
    assumed = heddle("analyze", "-f", str(gateway))
    assert (assumed.returncode, assumed.stdout) == (0, ""), assumed.stdout
    write_yaml(INGRESS_OFF, "mesh.yaml")
    off = heddle("analyze", "-f", str(gateway.parent))
    assert off.returncode == 1
    assert "[IST0101] (Gateway default/public" in off.stdout
    assert 'referenced selector not found: "istio=ingressgateway"' in off.stdout


def test_a_resource_validation_refuses_is_still_analyzed(
        write_yaml: Callable[[str, str], Path]) -> None:
    write_yaml(REVIEWS, "reviews.yaml")
    vs = write_yaml(BAD_SUBSET.replace("subset: v9}", "subset: v9, weigth: 100}"), "vs.yaml")
    codes = [line.split()[1] for line in heddle("analyze", "-f", str(vs.parent)).stdout
             .splitlines()]
    assert sorted(codes) == ["[IST0101]", "[IST0106]"]


ROUTE_TO_NOWHERE = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: heddle
  listeners:
  - {name: http, port: 8080, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: orders, namespace: default}
spec:
  parentRefs: [{name: web}]
  rules:
  - backendRefs: [{name: missing, port: 8080}]
"""


def test_the_status_heddle_gives_a_gateway_api_route_is_analyzed(
        write_yaml: Callable[[str, str], Path]) -> None:
    routes = write_yaml(ROUTE_TO_NOWHERE, "routes.yaml")
    out = heddle("analyze", "--failure-threshold", "Warning", "-f", str(routes))
    assert out.returncode == 1
    [line] = out.stdout.splitlines()
    assert line.startswith("Warning [IST0171] (HTTPRoute default/orders ")
    assert "type=ResolvedRefs, reason=BackendNotFound" in line


@pytest.fixture
def running_mesh(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A stand-in for a running mesh: its state file and a debug API answering as the
    control plane's, holding the resources of REVIEWS and BAD_SUBSET."""
    resources: list[dict[str, Any]] = []
    for line, doc in enumerate(yaml.safe_load_all(REVIEWS + "---\n" + BAD_SUBSET)):
        meta = doc["metadata"]
        group = doc["apiVersion"].rpartition("/")[0]
        resources.append({"key": {"group": group, "kind": doc["kind"], "namespace":
                                  meta["namespace"], "name": meta["name"]},
                          "source": f"/mesh/config.yaml:{line * 10 + 1}:1", "object": doc})

    class ControlPlane(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = json.dumps({"version": 1, "resources": resources}).encode()
            self.send_response(200 if self.path == "/debug/resources" else 404)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), ControlPlane)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    (tmp_path / "mesh").mkdir()
    (tmp_path / "mesh" / "state.json").write_text(json.dumps({
        "config_dir": "/mesh", "supervisor_pid": os.getpid(), "xds_port": 1,
        "debug_port": server.server_address[1], "workloads": {}}))
    try:
        yield {**os.environ, "HEDDLE_HOME": str(tmp_path)}
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_without_files_the_running_meshs_configuration_is_analyzed(
        running_mesh: dict[str, str]) -> None:
    out = heddle("analyze", env=running_mesh)
    assert out.returncode == 1, out.stderr
    assert out.stdout.startswith("Error [IST0101] (VirtualService default/reviews "
                                 "/mesh/config.yaml:31) spec.http[0]")
    assert "\"reviews+v9\"" in out.stdout
