"""Edge security at the default ingress gateway of `heddle up`: JWTs verified and
AuthorizationPolicy enforced by the gateway's real Envoy, before anything reaches a backend.

examples/hello runs with an Istio Gateway selecting `istio: ingressgateway`: plain HTTP for
api.example.com and, on 443, partner.example.com with MUTUAL TLS (client certificates from
a partner CA). Policies in istio-system select the gateway by its labels, as in Istio's
"ingress JWT" and "authorization on ingress gateway" tasks: a RequestAuthentication whose
JWKS the gateway fetches from a loopback server, an ALLOW policy that wants a verified token
on api.example.com and the partner's SPIFFE id on partner.example.com, and a DENY on /admin*.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from heddle.local.workloads import low_port_offset
from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.server_certs import Issued, TestCA, tls_secret_yaml
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh
from .test_jwt import OTHER_KEY, REMOTE_ISSUER, REMOTE_KEY, JwksServer, token

GATEWAY = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: edge, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["api.example.com"]
  - port: {number: 443, name: https-partner, protocol: HTTPS}
    hosts: ["partner.example.com"]
    tls: {mode: MUTUAL, credentialName: partner-cert}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: edge, namespace: default}
spec:
  hosts: ["api.example.com", "partner.example.com"]
  gateways: ["istio-system/edge"]
  http: [{route: [{destination: {host: backend.default.svc.cluster.local, port: {number: 9090}}}]}]
"""
POLICIES = """
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: edge-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: ISSUER
    jwksUri: JWKS_URI
    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: require-jwt, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  rules:
  - from: [{source: {requestPrincipals: ["*"]}}]
    to: [{operation: {hosts: ["api.example.com", "api.example.com:*"]}}]
  - from: [{source: {principals: ["cluster.local/ns/partners/sa/acme"]}}]
    to: [{operation: {hosts: ["partner.example.com", "partner.example.com:*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-admin, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  action: DENY
  rules: [{to: [{operation: {paths: ["/admin*"]}}]}]
"""
PARTNER_CA = TestCA("partner CA")
SERVER = PARTNER_CA.issue("partner.example.com")
ACME = PARTNER_CA.issue("acme.example.com", client=True,
                        uris=("spiffe://cluster.local/ns/partners/sa/acme",))
MALLORY = PARTNER_CA.issue("mallory.example.com", client=True,
                           uris=("spiffe://cluster.local/ns/partners/sa/mallory",))
DNS_ONLY = PARTNER_CA.issue("acme.example.com", client=True)
INGRESS = "istio-ingressgateway.istio-system"


def port(number: int) -> int:
    """Where the gateway listens for server port `number` (moved when not root)."""
    return number + low_port_offset() if number < 1024 else number


@dataclass
class Edge:
    mesh: LocalMesh
    address: str  # the gateway's

    def log(self, workload: str, name: str) -> str:
        path = self.mesh.home / "mesh" / "workloads" / workload / name
        return path.read_text() if path.exists() else ""

    def backend_logs(self) -> str:
        """Everything both backends (their applications and their sidecars) have logged."""
        return "".join(self.log(f"backend-{n}.default", name)
                       for n in (1, 2) for name in ("app.log", "envoy.log"))

    def gateway_log(self) -> str:
        return self.log(INGRESS, "envoy.log")

    def get(self, path: str, bearer: str = "") -> tuple[int, dict[str, Any]]:
        """GET http://api.example.com{path} through the gateway."""
        conn = http.client.HTTPConnection(self.address, port(80), timeout=10)
        headers = {"Host": "api.example.com", **(
            {"Authorization": f"Bearer {bearer}"} if bearer else {})}
        try:
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            return response.status, json.loads(body) if response.status == 200 else {}
        finally:
            conn.close()

    def partner_get(self, path: str, tmp: Path, certificate: Issued) -> int:
        """GET https://partner.example.com{path} with a client certificate: the status."""
        context = ssl.create_default_context(cadata=PARTNER_CA.cert_pem.decode())
        (tmp / "client.crt").write_bytes(certificate.cert_pem)
        (tmp / "client.key").write_bytes(certificate.key_pem)
        context.load_cert_chain(tmp / "client.crt", tmp / "client.key")
        with socket.create_connection((self.address, port(443)), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname="partner.example.com") as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: partner.example.com\r\n"
                        "Connection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        return int(data.split(b" ", 2)[1])


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    secret = tls_secret_yaml("partner-cert", "istio-system", SERVER, PARTNER_CA.cert_pem)
    with running_mesh(tmp_path_factory.mktemp("edge"),
                      extra={"gateway.yaml": GATEWAY, "secrets.yaml": secret}) as mesh:
        jwks = JwksServer(f"{mesh.subnet}50")  # loopback only, as the mesh
        try:
            address = mesh.state().workloads[INGRESS].address
            (mesh.config_dir / "edge-security.yaml").write_text(
                POLICIES.replace("ISSUER", REMOTE_ISSUER).replace("JWKS_URI", jwks.uri))
            admin = EnvoyAdmin(address)

            def in_force() -> bool:
                listeners = json.dumps(admin.listeners())
                return all(name in listeners for name in (
                    "origins-istio-system-edge-jwt-0", "policy[require-jwt]",
                    "policy[deny-admin]")) and admin.nothing_draining()
            wait_for(in_force, 30, "the gateway's policies in force on every connection")
            yield Edge(mesh, address)
        finally:
            jwks.close()


def valid_token(subject: str = "alice") -> str:
    return token(REMOTE_KEY, kid="remote", issuer=REMOTE_ISSUER, subject=subject)


def marker(what: str) -> str:
    """A path no other request uses, to find this one in the logs."""
    return f"/{what}-{uuid.uuid4().hex}"


def test_a_valid_token_reaches_the_backend_with_its_claim_and_without_the_token(
        edge: Edge) -> None:
    path = marker("valid")
    # The gateway fetches the JWKS on first use, through its own cluster.
    wait_for(lambda: edge.get(path, valid_token())[0] == 200, 20, "a valid token accepted")
    status, body = edge.get(path, valid_token())
    assert status == 200
    assert body["service"] == "backend"
    assert body["jwt_headers"] == {"x-jwt-sub": "alice"}  # outputClaimToHeaders
    assert body["has_authorization"] is False  # forwardOriginalToken: false, Istio's default
    assert path in edge.backend_logs()  # what the next tests look for, where they look


def test_an_invalid_token_gets_401_at_the_gateway_and_never_reaches_the_backend(
        edge: Edge) -> None:
    forged, expired = marker("forged"), marker("expired")
    assert edge.get(forged, token(OTHER_KEY, kid="remote", issuer=REMOTE_ISSUER))[0] == 401
    assert edge.get(expired, token(REMOTE_KEY, kid="remote", issuer=REMOTE_ISSUER,
                                   expires_in=-300))[0] == 401
    # A backend logs a request before it answers: had either reached one, it would be there.
    logs = edge.backend_logs()
    assert forged not in logs and expired not in logs
    wait_for(lambda: re.search(rf'{forged} HTTP/[\d.]+" 401 \S+ jwt_authn_access_denied',
                               edge.gateway_log()), 10, "the gateway's access log line")


def test_a_missing_token_gets_403_from_the_policy_requiring_request_principals(
        edge: Edge) -> None:
    path = marker("tokenless")
    assert edge.get(path)[0] == 403
    assert path not in edge.backend_logs()
    # No ALLOW rule matched: the access log says none did.
    wait_for(lambda: re.search(
        rf'{path} HTTP/[\d.]+" 403 \S+ rbac_access_denied_matched_policy\[none\]',
        edge.gateway_log()), 10, "the gateway's access log line")


def test_a_deny_policy_on_a_path_gets_403_and_the_access_log_names_it(edge: Edge) -> None:
    path = "/admin" + marker("denied")
    assert edge.get(path, valid_token())[0] == 403
    assert path not in edge.backend_logs()
    wait_for(lambda: re.search(
        rf'{re.escape(path)} HTTP/[\d.]+" 403 \S+ rbac_access_denied_matched_policy'
        rf'\[ns\[istio-system\]-policy\[deny-admin\]-rule\[0\]\]', edge.gateway_log()),
        10, "the deciding policy in the gateway's access log")


def test_principals_at_a_mutual_server_are_the_client_certificates_spiffe_id(
        edge: Edge, tmp_path: Path) -> None:
    path = marker("partner")
    assert edge.partner_get(path, tmp_path, ACME) == 200
    # The partner CA signs them all: the handshake passes, the policy decides.
    refused = [marker("mallory"), marker("dns-only")]
    assert edge.partner_get(refused[0], tmp_path, MALLORY) == 403
    # Without a URI SAN, Envoy's principal is the DNS name, which no SPIFFE id matches.
    assert edge.partner_get(refused[1], tmp_path, DNS_ONLY) == 403
    logs = edge.backend_logs()
    assert path in logs
    assert not any(p in logs for p in refused)
