"""Access logs through real sidecars of examples/hello: Istio's text format explains each
failure (the deciding policy of a 403, `UT` for a timed-out route), a Telemetry resource turns
one workload's logs off or filters them with CEL, and JSON encoding writes JSON lines with
Istio's keys. Each test removes the config it adds."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from heddle.testing.waiting import wait_for
from heddle.translate.access_logs import ISTIO_JSON_FORMAT

from .mesh_fixtures import LocalMesh, running_mesh

BACKENDS = ("backend-1", "backend-2")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("access-logs")) as running:
        yield running


def request(mesh: LocalMesh, url: str) -> int:
    """GET from the client workload through its sidecar: the status."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://{mesh.subnet}1:15001"}))
    try:
        with opener.open(url, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def lines(mesh: LocalMesh, token: str, *workloads: str) -> list[str]:
    return [line for w in workloads for line in mesh.envoy_log(w).splitlines() if token in line]


def applied(mesh: LocalMesh, name: str, text: str) -> Callable[[], None]:
    """Write a config file into the mesh's directory; returns what removes it."""
    path: Path = mesh.config_dir / name
    path.write_text(text)
    return lambda: path.unlink(missing_ok=True)


def until(mesh: LocalMesh, attempt: Callable[[str], bool], what: str) -> None:
    """Send fresh-token traffic (`attempt(token)`) until it shows the new config in force:
    pushes reach each sidecar a little apart, and Envoy flushes its log each second."""
    def settled() -> bool:
        token = uuid.uuid4().hex
        try:
            wait_for(lambda: attempt(token), 5, what)
        except AssertionError:
            return False
        return True
    wait_for(settled, 90, what)


def test_a_denied_request_is_logged_with_403_its_flags_and_the_deciding_policy(
        mesh: LocalMesh) -> None:
    remove = applied(mesh, "deny-logs.yaml", (
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n"
        "metadata: {name: deny-logs}\nspec:\n  selector: {matchLabels: {app: backend}}\n"
        "  action: DENY\n  rules: [{to: [{operation: {paths: ['/denied*']}}]}]\n"))
    try:
        wait_for(lambda: request(mesh, "http://backend:9090/denied-probe") == 403, 30,
                 "the DENY policy in force")
        token = uuid.uuid4().hex
        assert request(mesh, f"http://backend:9090/denied-{token}") == 403
        wait_for(lambda: lines(mesh, token, *BACKENDS), 10, "the denial in the backend's log")
        line = lines(mesh, token, *BACKENDS)[-1]
        print(line)
        # Istio's format: "METHOD PATH PROTOCOL" CODE FLAGS DETAILS ...
        found = re.search(rf'"GET /denied-{token} HTTP/1.1" 403 (\S+) (\S+) ', line)
        assert found is not None, line
        flags, details = found.groups()
        assert flags == "-"  # Envoy sets no flag for an RBAC denial; the details say why
        assert details == "rbac_access_denied_matched_policy[ns[default]-policy[deny-logs]-rule[0]]"
        assert "downstream_peer=spiffe://cluster.local/ns/default/sa/client" in line
        assert '"backend:9090"' in line and "inbound|9090||" in line
    finally:
        remove()


def test_a_timed_out_route_is_logged_ut_with_its_upstream(mesh: LocalMesh) -> None:
    host = "hurried.default.svc.cluster.local"
    remove = applied(mesh, "hurried.yaml", (
        f"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: hurried}}\n"
        f"spec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n"
        f"  ports: [{{number: 9090, name: http, protocol: HTTP}}]\n"
        f"  workloadSelector: {{labels: {{app: backend}}}}\n---\n"
        f"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: hurried}}\n"
        f"spec:\n  hosts: [{host}]\n  http:\n  - route: [{{destination: {{host: {host}}}}}]\n"
        f"    timeout: 0.5s\n    retries: {{attempts: 0}}\n"))
    try:
        wait_for(lambda: request(mesh, f"http://{host}:9090/") == 200, 30, f"{host} routable")
        token = uuid.uuid4().hex
        assert request(mesh, f"http://{host}:9090/{token}?sleep=3") == 504
        wait_for(lambda: lines(mesh, token, "client"), 10, "the timeout in the client's log")
        line = lines(mesh, token, "client")[0]
        print(line)
        assert " 504 UT response_timeout " in line
        assert f" outbound|9090||{host} " in line
        assert re.search(rf'"{re.escape(mesh.subnet)}[34]:9090"', line), line  # upstream_host
    finally:
        remove()


QUIET_BACKEND = """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet-backend}
spec:
  selector: {matchLabels: {app: backend}}
  accessLogging:
  - providers: [{name: envoy}]
    disabled: true
"""


def test_a_telemetry_resource_stops_one_workloads_logs_and_no_others(mesh: LocalMesh) -> None:
    remove = applied(mesh, "quiet-backend.yaml", QUIET_BACKEND)
    try:
        def quiet(token: str) -> bool:
            assert request(mesh, f"http://backend:9090/{token}") == 200
            return bool(lines(mesh, token, "client")) and not lines(mesh, token, *BACKENDS)

        until(mesh, quiet, "the backend's logs off, the client's on")
        token = uuid.uuid4().hex
        for _ in range(5):
            assert request(mesh, f"http://backend:9090/{token}") == 200
        assert request(mesh, f"http://frontend:8080/{token}") == 200
        wait_for(lambda: len(lines(mesh, token, "client")) == 6
                 and lines(mesh, token, "frontend"), 10, "the client's and frontend's lines")
        assert lines(mesh, token, *BACKENDS) == []
    finally:
        remove()
    until(mesh, lambda token: request(mesh, f"http://backend:9090/{token}") == 200
          and bool(lines(mesh, token, *BACKENDS)), "the backend logging again")


ERRORS_ONLY = """apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: backend-errors}
spec:
  selector: {matchLabels: {app: backend}}
  accessLogging:
  - providers: [{name: envoy}]
    filter: {expression: "response.code >= 400"}
"""


def test_a_cel_filter_logs_only_the_requests_it_matches(mesh: LocalMesh) -> None:
    remove = applied(mesh, "backend-errors.yaml", ERRORS_ONLY)
    try:
        def filtered(token: str) -> bool:
            assert request(mesh, f"http://backend:9090/ok-{token}") == 200
            assert request(mesh, f"http://backend:9090/bad-{token}?fail=1") == 503
            return (bool(lines(mesh, f"bad-{token}", *BACKENDS))
                    and bool(lines(mesh, f"ok-{token}", "client"))
                    and not lines(mesh, f"ok-{token}", *BACKENDS))

        until(mesh, filtered, "only the backend's errors logged")
        token = uuid.uuid4().hex
        assert [request(mesh, f"http://backend:9090/ok-{token}") for _ in range(5)] == [200] * 5
        assert request(mesh, f"http://backend:9090/bad-{token}?fail=1") == 503
        wait_for(lambda: lines(mesh, f"bad-{token}", *BACKENDS), 10, "the 503 logged")
        assert all(" 503 " in line for line in lines(mesh, token, *BACKENDS))
        # The client's log is unfiltered: all five, once its Envoy has flushed them.
        wait_for(lambda: len(lines(mesh, f"ok-{token}", "client")) == 5, 10,
                 "the client's five lines logged")
    finally:
        remove()


JSON_MESH = """apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    accessLogFile: /dev/stdout
    accessLogEncoding: JSON
"""


def test_json_encoding_writes_json_lines_with_istios_keys(mesh: LocalMesh) -> None:
    remove = applied(mesh, "mesh-config.yaml", JSON_MESH)

    def records(token: str) -> list[dict[str, object]]:
        found = []
        for line in lines(mesh, token, "client"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue  # a text line, from before the mesh config reached the sidecar
        return found

    try:
        until(mesh, lambda token: request(mesh, f"http://backend:9090/{token}") == 200
              and bool(records(token)), "JSON lines in the client's log")
        token = uuid.uuid4().hex
        assert request(mesh, f"http://backend:9090/{token}") == 200
        wait_for(lambda: records(token), 10, "the request as a JSON line")
        [record] = records(token)
        print(json.dumps(record, indent=1))
        assert set(ISTIO_JSON_FORMAT) <= set(record)
        assert record["response_code"] == 200 and record["path"] == f"/{token}"
        assert record["response_flags"] == "-" and record["authority"] == "backend:9090"
        assert str(record["upstream_cluster"]).startswith("outbound|9090|v")
        assert record["upstream_peer"] == "spiffe://cluster.local/ns/default/sa/backend"
    finally:
        remove()
