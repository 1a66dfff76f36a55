"""The default ingress gateway of `heddle up`, with an Istio Gateway and VirtualServices:
real Envoy, real TLS, real traffic.

examples/hello runs with a Gateway selecting `istio: ingressgateway`: plain HTTP for
web.example.com, and on 443 two HTTPS servers told apart by SNI, a.example.com (SIMPLE,
Secret a-cert) and b.example.com (MUTUAL, Secret b-cert with the CA clients must have).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from heddle.local.workloads import low_port_offset
from heddle.testing.server_certs import Issued, TestCA, tls_secret_yaml
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: ingressgateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["web.example.com"]
  - port: {number: 443, name: https-a, protocol: HTTPS}
    hosts: ["a.example.com"]
    tls: {mode: SIMPLE, credentialName: a-cert}
  - port: {number: 443, name: https-b, protocol: HTTPS}
    hosts: ["b.example.com"]
    tls: {mode: MUTUAL, credentialName: b-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: default}
spec:
  hosts: ["web.example.com", "a.example.com", "b.example.com"]
  gateways: ["istio-system/ingressgateway"]
  http: [{route: [{destination: {host: backend.default.svc.cluster.local, port: {number: 9090}}}]}]
"""
CA = TestCA()
CERT_A = CA.issue("a.example.com")
CERT_B = CA.issue("b.example.com")
CLIENT = CA.issue("client.example.com", client=True)
GATEWAY_SPIFFE = "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"


def secrets_yaml(a: Issued) -> str:
    return (tls_secret_yaml("a-cert", "istio-system", a) + "---\n"
            + tls_secret_yaml("b-cert", "istio-system", CERT_B, CA.cert_pem))


def port(number: int) -> int:
    """Where the gateway listens for server port `number` (moved when not root)."""
    return number + low_port_offset() if number < 1024 else number


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("gateway"),
                      extra={"gateway.yaml": GATEWAY, "secrets.yaml": secrets_yaml(CERT_A)},
                      ) as running:
        yield running


def gateway_address(mesh: LocalMesh) -> str:
    return mesh.state().workloads["istio-ingressgateway.istio-system"].address


def client_context(tmp: Path, certificate: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=CA.cert_pem.decode())
    if certificate is not None:
        (tmp / "client.crt").write_bytes(certificate.cert_pem)
        (tmp / "client.key").write_bytes(certificate.key_pem)
        context.load_cert_chain(tmp / "client.crt", tmp / "client.key")
    return context


def https_get(address: str, sni: str, context: ssl.SSLContext,
              timeout: float = 5.0) -> tuple[int, int, dict[str, object]]:
    """GET / over a new TLS connection with SNI `sni`: (status, the served certificate's
    serial number, the JSON body)."""
    with socket.create_connection((address, port(443)), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=sni) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        serial = x509.load_der_x509_certificate(der).serial_number
        tls.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, serial, json.loads(body) if body.startswith(b"{") else {}


def test_plain_http_through_the_ingress_gateway_reaches_a_backend_over_istio_mutual(
        mesh: LocalMesh) -> None:
    address = gateway_address(mesh)
    with socket.create_connection((address, port(80)), timeout=5) as conn:
        conn.sendall(b"GET /hello HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    answer = json.loads(body)
    assert answer["service"] == "backend"
    # The backend's sidecar saw the gateway's certificate: the hop was ISTIO_MUTUAL.
    assert f"URI={GATEWAY_SPIFFE}" in str(answer["peer"])


def test_https_serves_the_certificate_of_each_sni(mesh: LocalMesh, tmp_path: Path) -> None:
    address = gateway_address(mesh)
    status, serial, answer = https_get(address, "a.example.com", client_context(tmp_path))
    assert (status, serial, answer["service"]) == (200, CERT_A.serial, "backend")
    status, serial, _ = https_get(address, "b.example.com", client_context(tmp_path, CLIENT))
    assert (status, serial) == (200, CERT_B.serial)


def test_a_mutual_server_refuses_a_client_without_a_certificate(
        mesh: LocalMesh, tmp_path: Path) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        # TLS 1.3 finishes the client's side first; the server's refusal comes with the
        # first read.
        https_get(gateway_address(mesh), "b.example.com", client_context(tmp_path))


def test_status_prints_the_gateway_with_its_listeners_as_urls(mesh: LocalMesh) -> None:
    address = gateway_address(mesh)
    out = mesh.heddle("status").stdout
    assert "istio-ingressgateway.istio-system (default ingress gateway) at " \
           f"{address}: http://{address}:{port(80)}" in out
    assert f"https://{address}:{port(443)}" in out


def test_replacing_the_secret_changes_the_served_certificate_within_two_seconds_under_traffic(
        mesh: LocalMesh, tmp_path: Path) -> None:
    address = gateway_address(mesh)
    context = client_context(tmp_path)
    results: list[tuple[float, int, int]] = []  # (time, status or -1, serial)
    failures: list[str] = []
    stop = threading.Event()

    def load(seconds: float = 30, limit: int = 3000) -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline and len(results) < limit:
            try:
                status, serial, _ = https_get(address, "a.example.com", context)
                results.append((time.monotonic(), status, serial))
            except (OSError, ssl.SSLError) as err:
                failures.append(repr(err))
                results.append((time.monotonic(), -1, 0))
            time.sleep(0.01)

    renewed = CA.issue("a.example.com")
    sender = threading.Thread(target=load)
    sender.start()
    try:
        wait_for(lambda: len(results) >= 20, 10, "steady HTTPS traffic")
        replaced_at = time.monotonic()
        (mesh.config_dir / "secrets.yaml").write_text(secrets_yaml(renewed))
        wait_for(lambda: any(s == renewed.serial for _, _, s in results), 10,
                 "the replaced certificate served")
        seen_at = next(t for t, _, s in results if s == renewed.serial)
        time.sleep(0.3)  # a few requests more on the new certificate
    finally:
        stop.set()
        sender.join()
    took = seen_at - replaced_at
    print(f"certificate rotation: {took:.2f} s; {len(results)} requests, "
          f"{len(failures)} failed")
    assert took < 2.0
    assert failures == []
    assert all(status == 200 for _, status, _ in results)
    # Once the new certificate is served, the old one never is again.
    assert {s for t, _, s in results if t > seen_at} == {renewed.serial}
