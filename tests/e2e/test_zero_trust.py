"""Zero trust in a running mesh: SPIFFE identities over mTLS, PeerAuthentication STRICT,
PERMISSIVE and port-level DISABLE, join tokens bound to one identity, and certificate
rotation under traffic."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from heddle.agent.ca_client import CertificateClient
from heddle.ca.identity import Identity
from heddle.ca.tokens import TokenIssuer
from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh, steady_traffic

CERT_LIFETIME = 4.0  # seconds: rotation every ~2 s


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("zero-trust"),
                      "--cert-lifetime", str(CERT_LIFETIME)) as running:
        yield running


def plaintext_get(address: str, port: int) -> int:
    """A client outside the mesh: plain HTTP straight to a workload's pod IP."""
    conn = http.client.HTTPConnection(address, port, timeout=5)
    try:
        conn.request("GET", "/", headers={"Host": "frontend:8080"})
        return conn.getresponse().status
    finally:
        conn.close()


def app_log_lines(mesh: LocalMesh, workload: str) -> int:
    path = mesh.home / "mesh" / "workloads" / f"{workload}.default" / "app.log"
    return len(path.read_text().splitlines())


def first_answer(mesh: LocalMesh) -> tuple[int, dict[str, object]]:
    """The frontend's answer through the client's sidecar. With 4 s certificates a loaded
    machine can be mid-rotation just after `up` (a 502): wait, bounded, for an answer."""
    answers: list[tuple[int, dict[str, object]]] = []

    def answered() -> bool:
        answers.append(mesh.get("http://frontend:8080/"))
        return answers[-1][0] == 200

    wait_for(answered, 15, "the frontend answering through the mesh")
    return answers[-1]


def test_calls_inside_the_mesh_carry_the_callers_spiffe_identity(mesh: LocalMesh) -> None:
    status, body = first_answer(mesh)
    assert status == 200
    backend = body["backend"]
    assert isinstance(backend, dict)
    assert "URI=spiffe://cluster.local/ns/default/sa/frontend" in str(backend["peer"])
    assert "By=spiffe://cluster.local/ns/default/sa/backend" in str(backend["peer"])


def test_permissive_accepts_plaintext_and_mtls_on_the_same_port(mesh: LocalMesh) -> None:
    assert plaintext_get(f"{mesh.subnet}2", 8080) == 200
    assert first_answer(mesh)[0] == 200


def test_strict_refuses_a_client_outside_the_mesh_before_the_app(mesh: LocalMesh) -> None:
    policy = mesh.config_dir / "strict.yaml"
    policy.write_text("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
                      "metadata: {name: default, namespace: default}\n"
                      "spec:\n  mtls: {mode: STRICT}\n")
    listener = f"{mesh.subnet}2_8080"

    def strict_in_envoy() -> bool:
        listeners = json.loads(mesh.heddle("proxy-config", "listeners", "frontend",
                                           "-o", "json").stdout)
        [inbound] = [x for x in listeners if x["name"] == listener]
        return [c.get("name") for c in inbound["filter_chains"]] == ["mtls"]

    try:
        wait_for(strict_in_envoy, 10, "frontend's inbound listener STRICT")
        seen = app_log_lines(mesh, "frontend")
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            plaintext_get(f"{mesh.subnet}2", 8080)
        assert mesh.get("http://frontend:8080/")[0] == 200  # mTLS from a sidecar still works
        assert app_log_lines(mesh, "frontend") == seen + 1  # only the mTLS request arrived
    finally:
        policy.unlink()
    wait_for(lambda: not strict_in_envoy(), 10, "back to PERMISSIVE")


def inbound_chains(mesh: LocalMesh, workload: str, listener: str) -> list[str]:
    """The filter chains (mtls, plaintext) of a workload's inbound listener, from its Envoy."""
    listeners = json.loads(mesh.heddle("proxy-config", "listeners", workload,
                                       "-o", "json").stdout)
    return [c.get("name") for x in listeners if x["name"] == listener
            for c in x["filter_chains"]]


def told_tls_modes(mesh: LocalMesh, cluster: str) -> list[str]:
    """The `tlsMode` the client's Envoy holds for each endpoint of `cluster` ("" if none)."""
    assignments = json.loads(mesh.heddle("proxy-config", "endpoints", "client",
                                         "-o", "json").stdout)
    return [lb.get("metadata", {}).get("filter_metadata", {})
            .get("envoy.transport_socket_match", {}).get("tlsMode", "")
            for a in assignments if a["cluster_name"] == cluster
            for group in a.get("endpoints", []) for lb in group.get("lb_endpoints", [])]


def echo_reply(host: str, port: int, tunnel: bool) -> bytes:
    """One line to the echo service: through the client's sidecar (CONNECT), or straight to
    the echo workload's pod IP as a client outside the mesh."""
    with socket.create_connection((host, port), timeout=5) as conn:
        reply = conn.makefile("rb")
        if tunnel:
            conn.sendall(b"CONNECT echo:9000 HTTP/1.1\r\nHost: echo:9000\r\n\r\n")
            if not reply.readline().startswith(b"HTTP/1.1 200"):
                return b""
            while reply.readline() not in (b"\r\n", b""):
                pass
        conn.sendall(b"ping\n")
        return reply.readline()


def test_port_level_disable_carries_tcp_in_plaintext_while_other_ports_stay_mtls(
        mesh: LocalMesh) -> None:
    """Namespace STRICT, and the echo workload's port 9000 DISABLE: the client's sidecar is
    told to speak plaintext to that port only (Istio's auto-mTLS per endpoint port)."""
    policy = mesh.config_dir / "port-level.yaml"
    policy.write_text(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        "metadata: {name: default, namespace: default}\nspec:\n  mtls: {mode: STRICT}\n"
        "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
        "metadata: {name: echo, namespace: default}\nspec:\n"
        "  selector: {matchLabels: {app: echo}}\n  portLevelMtls: {9000: {mode: DISABLE}}\n")
    echo, frontend = f"{mesh.subnet}6", f"{mesh.subnet}2"
    echo_cluster = "outbound|9000||echo.default.svc.cluster.local"

    def in_force() -> bool:
        return (inbound_chains(mesh, "echo", f"{echo}_9000") == ["plaintext"]
                and inbound_chains(mesh, "frontend", f"{frontend}_8080") == ["mtls"]
                and told_tls_modes(mesh, echo_cluster) == [""])

    try:
        wait_for(in_force, 15, "echo:9000 plaintext-only, frontend:8080 STRICT, client told")
        # The echo listener has no TLS chain left: a tunnel that echoes went in plaintext.
        tunnelled = f"{mesh.subnet}1", 15001
        wait_for(lambda: echo_reply(*tunnelled, tunnel=True) == b"echo: ping\n", 10,
                 "a TCP echo through the client's sidecar")
        assert echo_reply(echo, 9000, tunnel=False) == b"echo: ping\n"
        # Port 8080 stays mTLS: the client is told tlsMode istio, and plaintext is refused.
        assert told_tls_modes(mesh, "outbound|8080||frontend.default.svc.cluster.local") == [
            "istio"]
        assert mesh.get("http://frontend:8080/")[0] == 200
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
            plaintext_get(frontend, 8080)
    finally:
        policy.unlink()
    wait_for(lambda: inbound_chains(mesh, "echo", f"{echo}_9000") == ["mtls", "plaintext"]
             and told_tls_modes(mesh, echo_cluster) == ["istio"], 15, "back to PERMISSIVE")


def test_a_join_token_for_one_account_cannot_get_another(mesh: LocalMesh) -> None:
    ca_dir = mesh.home / "mesh" / "ca"
    token = TokenIssuer.load_or_create(ca_dir).create("a", "x")
    state = mesh.state()  # the first CSR, with a join token, goes to the join port
    client = CertificateClient(f"127.0.0.1:{state.ca_port}",
                               (ca_dir / "root-cert.pem").read_bytes(), token,
                               join_address=f"127.0.0.1:{state.join_port}")
    granted = asyncio.run(client.request(Identity("a", "x")))
    assert b"BEGIN CERTIFICATE" in granted.cert_chain_pem
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        asyncio.run(client.request(Identity("a", "y")))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    log = (mesh.home / "mesh" / "logs" / "control-plane.log").read_text()
    assert "refused a certificate for a token bound to spiffe://cluster.local/ns/a/sa/x" in log


def test_certificates_rotate_under_traffic_with_no_failure(mesh: LocalMesh) -> None:
    envoys = {w: mesh.envoy_pid(w) for w in ("client", "frontend", "backend-1")}
    agent_log = Path(mesh.home / "mesh" / "workloads" / "frontend.default" / "agent.log")

    def rotations() -> int:
        return agent_log.read_text().count("rotated the workload certificate")

    def envoy_serials() -> set[str]:
        certs = EnvoyAdmin(f"{mesh.subnet}2").certs()
        return {c["cert_chain"][0]["serial_number"] for c in certs if c.get("cert_chain")}

    before, serials_before = rotations(), envoy_serials()
    with steady_traffic(mesh) as results:
        wait_for(lambda: rotations() >= before + 3, 30, "three rotations of frontend's cert")
    failures = [code for code in results if code != 200]
    print(f"{rotations() - before} rotations during {len(results)} requests, "
          f"{len(failures)} failed")
    assert failures == [] and len(results) > 50
    assert envoy_serials().isdisjoint(serials_before)  # Envoy took the new certificate
    assert {w: mesh.envoy_pid(w) for w in envoys} == envoys
