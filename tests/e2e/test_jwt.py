"""RequestAuthentication through real sidecars: Envoy verifies JWTs against inline and remote
JWKS, and AuthorizationPolicy can require a token and its claims."""

from __future__ import annotations

import datetime
import http.client
import itertools
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from ruamel.yaml import YAML

from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

ISSUER = "https://issuer.heddle.test"
REMOTE_ISSUER = "http://remote-issuer.heddle.test"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
REMOTE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(key: rsa.RSAPrivateKey, kid: str) -> str:
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return json.dumps({"keys": [{**public, "kid": kid, "alg": "RS256", "use": "sig"}]})


def token(key: rsa.RSAPrivateKey = KEY, kid: str = "k1", issuer: str = ISSUER,
          audience: str = "backend", subject: str = "alice", expires_in: int = 600,
          **claims: Any) -> str:
    now = datetime.datetime.now(datetime.UTC)
    payload = {"iss": issuer, "sub": subject, "aud": audience, "iat": now,
               "exp": now + datetime.timedelta(seconds=expires_in), **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


class JwksServer:
    """A JWKS endpoint on its own loopback address, fetched by Envoy through a cluster."""

    def __init__(self, address: str) -> None:
        body = jwks(REMOTE_KEY, "remote").encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.uri = f"http://{address}:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalMesh, JwksServer]]:
    with running_mesh(tmp_path_factory.mktemp("jwt")) as running:
        server = JwksServer(f"{running.subnet}50")
        try:
            yield running, server
        finally:
            server.close()


_generation = itertools.count(1)


def write(mesh: LocalMesh, server: JwksServer, policies: list[dict[str, Any]]) -> list[str]:
    """RequestAuthentication for the backend, plus the given AuthorizationPolicy specs (named
    afresh each time, so that their arrival in a proxy can be seen); returns those names."""
    generation = next(_generation)
    names = [f"jwt-{generation}-{i}" for i in range(len(policies))]
    docs: list[dict[str, Any]] = [{
        "apiVersion": "security.istio.io/v1", "kind": "RequestAuthentication",
        "metadata": {"name": "backend-jwt"},
        "spec": {"selector": {"matchLabels": {"app": "backend"}}, "jwtRules": [
            {"issuer": ISSUER, "audiences": ["backend"], "jwks": jwks(KEY, "k1"),
             "outputClaimToHeaders": [{"header": "x-jwt-sub", "claim": "sub"}]},
            {"issuer": REMOTE_ISSUER, "jwksUri": server.uri},
        ]}}]
    for name, spec in zip(names, policies, strict=True):
        docs.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                     "metadata": {"name": name},
                     "spec": {"selector": {"matchLabels": {"app": "backend"}}, **spec}})
    path = mesh.config_dir / "jwt.yaml"
    tmp = path.with_suffix(".tmp")
    with tmp.open("w") as fh:
        YAML().dump_all(docs, fh)
    tmp.replace(path)
    return names


def call(mesh: LocalMesh, bearer: str = "", path: str = "/") -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(f"{mesh.subnet}1", 15001, timeout=10)
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    try:
        conn.request("GET", f"http://backend:9090{path}", headers=headers)
        response = conn.getresponse()
        body = response.read()
        return response.status, json.loads(body) if response.status == 200 else {}
    finally:
        conn.close()


def settle(mesh: LocalMesh, server: JwksServer, policies: list[dict[str, Any]],
           probe: str, expected: int) -> None:
    """Write the config, wait until both backends' Envoys serve with exactly it, then check a
    probe request gives `expected`."""
    names = write(mesh, server, policies)

    def in_force(sidecar: EnvoyAdmin) -> bool:
        listeners = json.dumps(sidecar.listeners())
        present = set(re.findall(r"policy\[(jwt-[0-9]+-[0-9]+)\]", listeners))
        return "origins-default-backend-jwt-0" in listeners and present == set(names)

    backends = [EnvoyAdmin(f"{mesh.subnet}{n}") for n in (3, 4)]
    wait_for(lambda: all(in_force(b) and b.nothing_draining() for b in backends), 20,
             "config in force on every connection")
    assert call(mesh, probe)[0] == expected


def test_tokens_are_verified_as_istio_does(mesh: tuple[LocalMesh, JwksServer]) -> None:
    running, server = mesh
    settle(running, server, [], token(OTHER_KEY), 401)  # RequestAuthentication in force
    assert call(running)[0] == 200  # no token: passes, unauthenticated
    status, body = call(running, token())
    assert status == 200
    assert body["jwt_headers"] == {"x-jwt-sub": "alice"}  # outputClaimToHeaders
    assert body["has_authorization"] is False  # forwardOriginalToken defaults to false
    assert call(running, token(OTHER_KEY))[0] == 401  # signed by an unknown key
    # expired beyond the 60 s clock skew Envoy (and so Istio) allows
    assert call(running, token(expires_in=-300))[0] == 401
    assert call(running, token(audience="someone-else"))[0] == 403  # Envoy's answer, as Istio
    assert call(running, path=f"/?access_token={token()}")[0] == 200  # Istio's default param


def test_remote_jwks_is_fetched_by_envoy_through_a_cluster(
    mesh: tuple[LocalMesh, JwksServer],
) -> None:
    running, server = mesh
    settle(running, server, [], token(OTHER_KEY), 401)
    remote = token(REMOTE_KEY, kid="remote", issuer=REMOTE_ISSUER, audience="anything")
    wait_for(lambda: call(running, remote)[0] == 200, 20, "the remote-JWKS token accepted")
    forged = token(OTHER_KEY, kid="remote", issuer=REMOTE_ISSUER)
    assert call(running, forged)[0] == 401


def test_a_policy_can_require_a_token(mesh: tuple[LocalMesh, JwksServer]) -> None:
    running, server = mesh
    settle(running, server, [], "", 200)
    settle(running, server, [{"rules": [{"from": [{"source": {"requestPrincipals": ["*"]}}]}]}],
           "", 403)
    assert call(running, token())[0] == 200


def test_a_policy_can_require_a_principal_and_claims(mesh: tuple[LocalMesh, JwksServer]) -> None:
    running, server = mesh
    settle(running, server, [], token(subject="bob"), 200)
    settle(running, server, [{"rules": [{
        "from": [{"source": {"requestPrincipals": [f"{ISSUER}/alice"]}}],
        "when": [{"key": "request.auth.claims[groups]", "values": ["admins"]}]}]}],
        token(subject="bob", groups=["admins"]), 403)
    assert call(running, token(subject="alice", groups=["admins"]))[0] == 200
    assert call(running, token(subject="alice", groups=["users"]))[0] == 403
    assert call(running, token(subject="alice", groups=["users", "admins"]))[0] == 200
