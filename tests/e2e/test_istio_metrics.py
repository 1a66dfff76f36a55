"""Istio's standard metrics from a running examples/bookinfo mesh (plus a TCP echo service),
read where Prometheus would scrape them: each workload's POD_IP:15020/stats/prometheus.

Both reporters count every request with Istio's names and labels: the client's sidecar
(reporter="source") knows the server from the endpoint it picked, the server's
(reporter="destination") knows the client from what the client's sidecar sent over mutual
TLS; a plaintext client is "unknown", whatever it claims.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from heddle.model.metric_names import ISTIO_BUCKETS
from heddle.testing.waiting import wait_for
from heddle.translate.metrics.standard import HTTP_LABELS, TCP_LABELS

from .mesh_fixtures import ROOT, LocalMesh, running_mesh

ADDRESS = {"client": 1, "productpage-v1": 2, "details-v1": 3, "reviews-v1": 5, "echo": 9}
PAGE = "http://productpage:9080/productpage?format=json"
REQUESTS = 5
TCP_ECHO = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: echo}
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9000, name: tcp-echo, protocol: TCP}
  workloadSelector:
    labels: {app: echo}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: echo-v1
  annotations: {heddle.dev/command: python3 apps/echo.py}
spec:
  address: SUBNET.9
  labels: {app: echo, version: v1}
  serviceAccount: echo
"""
STRICT = """
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"""

Series = tuple[str, dict[str, str], float]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    echo = (ROOT / "examples" / "hello" / "apps" / "echo.py").read_text()
    with running_mesh(tmp_path_factory.mktemp("metrics"), example="bookinfo",
                      extra={"apps/echo.py": echo, "tcp-echo.yaml": TCP_ECHO}) as running:
        wait_for(lambda: _page(running) == 200, 60, "bookinfo serving through the client")
        yield running


def _page(mesh: LocalMesh) -> int:
    try:
        return mesh.get(PAGE, timeout=20)[0]
    except OSError:
        return -1


def scrape(mesh: LocalMesh, workload: str) -> list[Series]:
    """Every sample on the workload's merged metrics endpoint."""
    url = f"http://{mesh.subnet}{ADDRESS[workload]}:15020/stats/prometheus"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        text = response.read().decode()
    return [(s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


def total(series: list[Series], name: str, **labels: str) -> float:
    return sum(v for n, found, v in series
               if n == name and all(found.get(k) == want for k, want in labels.items()))


def the_series(series: list[Series], name: str, **labels: str) -> dict[str, str]:
    found = [s for n, s, _ in series
             if n == name and all(s.get(k) == want for k, want in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_both_reporters_count_each_request_with_istios_names_and_labels(
        mesh: LocalMesh) -> None:
    client = {"reporter": "source", "destination_workload": "productpage-v1"}
    server = {"reporter": "destination", "source_workload": "client"}
    before = (total(scrape(mesh, "client"), "istio_requests_total", **client),
              total(scrape(mesh, "productpage-v1"), "istio_requests_total", **server))
    for _ in range(REQUESTS):
        assert _page(mesh) == 200

    def counted() -> bool:
        now = (total(scrape(mesh, "client"), "istio_requests_total", **client),
               total(scrape(mesh, "productpage-v1"), "istio_requests_total", **server))
        return now == (before[0] + REQUESTS, before[1] + REQUESTS)
    wait_for(counted, 30, f"{REQUESTS} requests counted by both reporters")

    source = the_series(scrape(mesh, "client"), "istio_requests_total", **client)
    destination = the_series(scrape(mesh, "productpage-v1"), "istio_requests_total", **server)
    assert set(source) == set(destination) == set(HTTP_LABELS)
    both = {
        "source_workload": "client", "source_workload_namespace": "default",
        "source_app": "client", "source_version": "unknown",
        "source_canonical_service": "client", "source_canonical_revision": "latest",
        "source_cluster": "Kubernetes",
        "destination_workload": "productpage-v1", "destination_workload_namespace": "default",
        "destination_app": "productpage", "destination_version": "v1",
        "destination_canonical_service": "productpage", "destination_canonical_revision": "v1",
        "destination_cluster": "Kubernetes",
        "destination_service": "productpage.default.svc.cluster.local",
        "destination_service_name": "productpage", "destination_service_namespace": "default",
        "destination_principal": "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
        "source_principal": "spiffe://cluster.local/ns/default/sa/client",
        "request_protocol": "http", "response_code": "200", "response_flags": "-",
        "grpc_response_status": "",
    }
    assert {k: source[k] for k in both} == both
    assert {k: destination[k] for k in both} == both
    # Istio's client side cannot see the server's policy; auto mTLS made this call mutual.
    assert source["connection_security_policy"] == "unknown"
    assert destination["connection_security_policy"] == "mutual_tls"

    # productpage's own calls: it is the source for details and reviews.
    calls = scrape(mesh, "details-v1")
    assert total(calls, "istio_requests_total", reporter="destination",
                 source_workload="productpage-v1", source_app="productpage",
                 source_version="v1") >= 1
    # Istio's histogram buckets, and one observation per request.
    durations = scrape(mesh, "productpage-v1")
    buckets = sorted(float(s["le"]) for n, s, _ in durations
                     if n == "istio_request_duration_milliseconds_bucket"
                     and s.get("source_workload") == "client" and s["le"] != "+Inf")
    assert buckets == [float(b) for b in ISTIO_BUCKETS]
    wait_for(lambda: total(scrape(mesh, "productpage-v1"),
                           "istio_request_duration_milliseconds_count", **server)
             == before[1] + REQUESTS, 30, "every request's duration observed (stats flush)")
    for name in ("istio_request_bytes_count", "istio_response_bytes_count"):
        assert total(scrape(mesh, "productpage-v1"), name, **server) == before[1] + REQUESTS


def test_a_plaintext_client_cannot_name_itself(mesh: LocalMesh) -> None:
    """Straight to productpage's pod IP, no sidecar: PERMISSIVE lets it in, as "unknown"."""
    request = urllib.request.Request(
        f"http://{mesh.subnet}2:9080/productpage?format=json",
        headers={"x-heddle-peer-workload": "forged", "x-heddle-peer-app": "forged"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=20) as response:
        assert response.status == 200

    def counted() -> bool:
        return total(scrape(mesh, "productpage-v1"), "istio_requests_total",
                     reporter="destination", source_workload="unknown",
                     connection_security_policy="none") >= 1
    wait_for(counted, 30, "the plaintext request counted")
    series = scrape(mesh, "productpage-v1")
    assert total(series, "istio_requests_total", source_workload="forged") == 0
    assert total(series, "istio_requests_total", source_app="forged") == 0
    plain = the_series(series, "istio_requests_total", reporter="destination",
                       connection_security_policy="none")
    assert plain["source_principal"] == plain["destination_principal"] == "unknown"


def _tcp_echo(mesh: LocalMesh, text: bytes) -> None:
    with socket.create_connection((f"{mesh.subnet}1", 15001), timeout=10) as conn:
        conn.sendall(b"CONNECT echo:9000 HTTP/1.1\r\nHost: echo:9000\r\n\r\n")
        reply = conn.makefile("rb")
        status = reply.readline()
        assert status.split()[1] == b"200", status
        while reply.readline() not in (b"\r\n", b""):
            pass
        conn.sendall(text)
        assert reply.readline() == b"echo: " + text
        conn.shutdown(socket.SHUT_WR)
        assert reply.readline() == b""


def test_tcp_connections_are_counted_by_both_reporters(mesh: LocalMesh) -> None:
    wait_for(lambda: _tcp_reachable(mesh), 60, "the echo service through CONNECT")
    client = {"reporter": "source", "destination_workload": "echo-v1"}
    server = {"reporter": "destination", "source_workload": "client"}
    opened = "istio_tcp_connections_opened_total"
    before = (total(scrape(mesh, "client"), opened, **client),
              total(scrape(mesh, "echo"), opened, **server))
    _tcp_echo(mesh, b"hello over tcp\n")
    wait_for(lambda: (total(scrape(mesh, "client"), "istio_tcp_connections_closed_total",
                            **client) >= before[0] + 1
                      and total(scrape(mesh, "echo"), "istio_tcp_connections_closed_total",
                                **server) >= before[1] + 1),
             30, "the connection's close counted by both reporters")
    for workload, labels in (("client", client), ("echo", server)):
        series = scrape(mesh, workload)
        assert total(series, opened, **labels) >= before[0 if workload == "client" else 1] + 1
        # 15 bytes each way ("hello over tcp\n" in, "echo: hello over tcp\n" out).
        assert total(series, "istio_tcp_received_bytes_total", **labels) >= 15
        assert total(series, "istio_tcp_sent_bytes_total", **labels) >= 21
        found = the_series(series, opened, **labels)
        assert set(found) == set(TCP_LABELS)
        assert found["request_protocol"] == "tcp"
        assert found["destination_service"] == "echo.default.svc.cluster.local"
        assert found["destination_app"] == "echo"
        assert found["source_app"] == "client"
        assert found["source_principal"] == "spiffe://cluster.local/ns/default/sa/client"
        assert found["destination_principal"] == "spiffe://cluster.local/ns/default/sa/echo"
    assert the_series(scrape(mesh, "echo"), opened, **server)[
        "connection_security_policy"] == "mutual_tls"


def _tcp_reachable(mesh: LocalMesh) -> bool:
    try:
        _tcp_echo(mesh, b"ping\n")
    except (OSError, AssertionError):
        return False
    return True


def test_strict_mtls_reports_mutual_tls(mesh: LocalMesh) -> None:
    """Last: STRICT stays on. Plaintext is refused; what the client sends is mutual TLS."""
    (mesh.config_dir / "zz-strict.yaml").write_text(STRICT)
    wait_for(lambda: not _plaintext_accepted(mesh), 60, "STRICT refusing plaintext")
    details = {"reporter": "destination", "source_workload": "productpage-v1",
               "connection_security_policy": "mutual_tls"}

    def a_page_counts_as_mutual_tls() -> bool:
        # Read before each page: the inbound chain STRICT replaced took its series with it
        # once it drained (Envoy's stats logger counts in the chain's own scope), so the
        # count restarts once, as Prometheus reads a counter reset.
        before = total(scrape(mesh, "details-v1"), "istio_requests_total", **details)
        assert _page(mesh) == 200
        return total(scrape(mesh, "details-v1"), "istio_requests_total", **details) > before

    wait_for(a_page_counts_as_mutual_tls, 60, "a call over STRICT mTLS counted as mutual_tls")


def _plaintext_accepted(mesh: LocalMesh) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{mesh.subnet}2:9080/productpage?format=json",
                         timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_merged_endpoint_is_announced_for_prometheus(mesh: LocalMesh) -> None:
    state = mesh.state()
    for workload in state.workloads.values():
        assert workload.prometheus == {"prometheus.io/scrape": "true",
                                       "prometheus.io/port": "15020",
                                       "prometheus.io/path": "/stats/prometheus"}
