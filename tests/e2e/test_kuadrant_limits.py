"""Kuadrant's RateLimitPolicy through real Envoy and the rate-limit service `heddle up`
runs: a CEL counter gives each client its own bucket, by a header or by a claim of the JWT
a RequestAuthentication verified (Kuadrant's auth.identity), so one client over its quota
does not limit another."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from heddle.local.workloads import low_port_offset
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh
from .test_jwt import ISSUER, KEY, jwks, token

LIMITS = f"""
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: web}}
spec:
  gatewayClassName: heddle
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: api}}
spec:
  parentRefs: [{{name: web}}]
  hostnames: [api.example]
  rules:
  - name: by-header
    matches: [{{path: {{type: PathPrefix, value: /header}}}}]
    backendRefs: [{{name: frontend, port: 8080}}]
  - name: by-claim
    matches: [{{path: {{type: PathPrefix, value: /claim}}}}]
    backendRefs: [{{name: frontend, port: 8080}}]
---
apiVersion: kuadrant.io/v1
kind: RateLimitPolicy
metadata: {{name: per-user}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api,
              sectionName: by-header}}
  limits:
    per-user:
      rates: [{{limit: 3, window: 1m}}]
      counters: [{{expression: "request.headers['x-user-id']"}}]
---
apiVersion: kuadrant.io/v1
kind: RateLimitPolicy
metadata: {{name: per-subject}}
spec:
  targetRef: {{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api,
              sectionName: by-claim}}
  limits:
    per-subject:
      rates: [{{limit: 3, window: 1m}}]
      when: [{{predicate: "request.method == 'GET'"}}]
      counters: [{{expression: auth.identity.sub}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: web-jwt}}
spec:
  selector: {{matchLabels: {{gateway.networking.k8s.io/gateway-name: web}}}}
  jwtRules: [{{issuer: "{ISSUER}", audiences: [backend], jwks: '{jwks(KEY, "k1")}'}}]
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("kuadrant-limits"),
                      extra={"kuadrant-limits.yaml": LIMITS}) as running:
        yield running


def get(client: httpx.Client, mesh: LocalMesh, path: str, **headers: str) -> int:
    address = mesh.state().workloads["web-heddle.default"].address
    return client.get(f"http://{address}:{80 + low_port_offset()}{path}",
                      headers={"host": "api.example", **headers}).status_code


def test_a_header_counter_gives_each_client_its_own_bucket(mesh: LocalMesh) -> None:
    with httpx.Client(trust_env=False, timeout=5) as client:
        wait_for(lambda: get(client, mesh, "/header", **{"x-user-id": "probe"}) == 200, 30,
                 "the gateway routes api.example")
        alice = [get(client, mesh, "/header", **{"x-user-id": "alice"}) for _ in range(5)]
        assert alice == [200] * 3 + [429] * 2
        # Bob's own bucket: alice over her quota does not limit him.
        assert [get(client, mesh, "/header", **{"x-user-id": "bob"})
                for _ in range(3)] == [200] * 3
        # No x-user-id: the counter has no value, and the limit does not count the request.
        assert [get(client, mesh, "/header") for _ in range(5)] == [200] * 5


def test_a_jwt_claim_counter_counts_per_verified_subject(mesh: LocalMesh) -> None:
    alice, bob = token(subject="alice"), token(subject="bob")
    with httpx.Client(trust_env=False, timeout=5) as client:
        wait_for(lambda: get(client, mesh, "/claim") == 200, 30, "the gateway routes /claim")
        statuses = [get(client, mesh, "/claim", authorization=f"Bearer {alice}")
                    for _ in range(5)]
        assert statuses == [200] * 3 + [429] * 2
        assert [get(client, mesh, "/claim", authorization=f"Bearer {bob}")
                for _ in range(3)] == [200] * 3
        # No token: no verified subject, nothing counted (no AuthorizationPolicy asks for one).
        assert [get(client, mesh, "/claim") for _ in range(5)] == [200] * 5
