"""Quota leasing through real Envoy: a BackendTrafficPolicy in lease mode on a Gateway API
route holds its global limit from quota the rate-limit service `heddle up` runs leases the
gateway (RLQS), and the service's work is the proxy's reports, not its requests."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from heddle.local.workloads import low_port_offset
from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

LIMIT = 20  # per second
LEASED = f"""
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
  rules: [{{backendRefs: [{{name: frontend, port: 8080}}]}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: leased
  annotations: {{heddle.dev/rate-limit-mode: lease}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}}]
  rateLimit:
    type: Global
    global:
      rules:
      - limit: {{requests: {LIMIT}, unit: Second}}
"""
# Envoy keeps no per-message stats of an RLQS stream; what it sends the service (the service
# runs inside the control plane) is counted in bytes on the service's cluster.
SENT = "^cluster.heddle-ratelimit.upstream_cx_tx_bytes_total$"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("quota"),
                      extra={"leased.yaml": LEASED}) as running:
        yield running


def gateway_address(mesh: LocalMesh) -> str:
    return mesh.state().workloads["web-heddle.default"].address


def paced(client: httpx.Client, url: str, rate: float, seconds: float) -> list[int]:
    """GET `url` at `rate` per second for `seconds`: the statuses."""
    statuses = []
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        statuses.append(client.get(url, headers={"host": "api.example"}).status_code)
    return statuses


def bytes_sent(admin: EnvoyAdmin) -> int:
    """What the gateway sent the quota service: its usage reports (what the service reads)."""
    return sum(admin.stats(SENT).values())


def test_a_leased_limit_holds_within_one_burst_of_the_limit(mesh: LocalMesh) -> None:
    url = f"http://{gateway_address(mesh)}:{80 + low_port_offset()}/"
    with httpx.Client(trust_env=False, timeout=5) as client:
        wait_for(lambda: paced(client, url, 60, 1).count(429) > 0, 40,
                 "the gateway limits api.example from its lease")
        seconds = 8
        statuses = paced(client, url, 60, seconds)
    assert set(statuses) <= {200, 429}
    passed = statuses.count(200)
    print(f"leased: {passed} of {len(statuses)} passed at 60 rps for {seconds}s "
          f"(limit {LIMIT}/s: {LIMIT * seconds})")
    # A token bucket of the limit, whole to this one proxy: at most its rate over the time
    # plus one full bucket (a fresh assignment starts full); it does limit, not refuse all.
    assert LIMIT * seconds * 0.8 <= passed <= LIMIT * seconds + LIMIT, passed


def test_the_services_work_does_not_grow_with_the_request_rate(mesh: LocalMesh) -> None:
    url = f"http://{gateway_address(mesh)}:{80 + low_port_offset()}/"
    admin = EnvoyAdmin(gateway_address(mesh))
    per_second = {}
    with httpx.Client(trust_env=False, timeout=5) as client:
        for rate in (10, 80):
            before, started = bytes_sent(admin), time.monotonic()
            paced(client, url, rate, 10)
            per_second[rate] = (bytes_sent(admin) - before) / (time.monotonic() - started)
    print(f"bytes per second to the quota service, by request rate: {per_second}")
    # A report every 5 s, whatever the rate: 8 times the requests, the same traffic (each
    # report names the same one bucket; its counts take a byte or two more).
    assert per_second[10] > 0
    assert per_second[80] <= 1.25 * per_second[10], per_second
