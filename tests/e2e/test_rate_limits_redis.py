"""Global limits counted in a real Redis by two replicas of the rate-limit service, through
a real gateway Envoy: exactly N pass however the proxy spreads its questions; with Redis
stopped the gateway fails open within the service's timeout and the mesh stays up; limiting
resumes soon after Redis returns."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from heddle.local.workloads import low_port_offset
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh
from .redis_server import RedisServer, free_port, redis_server  # noqa: F401 (fixture)

LIMITS = """
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web}
spec:
  gatewayClassName: heddle
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api}
spec:
  parentRefs: [{name: web}]
  hostnames: [api.example]
  rules: [{backendRefs: [{name: frontend, port: 8080}]}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: per-user}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: api}]
  rateLimit:
    global:
      rules:
      - clientSelectors: [{headers: [{name: x-user-id, type: Distinct}]}]
        limit: {requests: 6, unit: Minute}
"""


@pytest.fixture
def replicated(tmp_path: Path, redis_server: RedisServer,  # noqa: F811
               ) -> Iterator[tuple[LocalMesh, RedisServer, str]]:
    """A mesh whose control plane's rate-limit service counts in Redis, and a second
    replica (`heddle ratelimit`) on the configuration it writes; yields the replica's
    metrics URL too."""
    port, metrics = free_port(), free_port()
    with running_mesh(tmp_path, "--redis", redis_server.url, "--ratelimit-replica",
                      f"127.0.0.1:{port}", extra={"limits.yaml": LIMITS}) as mesh:
        replica = subprocess.Popen(
            [sys.executable, "-m", "heddle", "ratelimit", "--config-dir",
             str(mesh.home / "mesh" / "ratelimit"), "--port", str(port), "--redis",
             redis_server.url, "--metrics-port", str(metrics)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=mesh.env)
        try:
            yield mesh, redis_server, f"http://127.0.0.1:{metrics}/metrics"
        finally:
            replica.terminate()
            replica.wait(10)


def answered(metrics: str) -> float:
    """Decisions the second replica made (its total_hits counters, summed)."""
    try:
        text = httpx.get(metrics, trust_env=False, timeout=2).text
    except httpx.HTTPError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("ratelimit_service_rate_limit_total_hits_total{"))


def test_two_replicas_on_one_redis_let_exactly_n_through_and_redis_outages_fail_open(
        replicated: tuple[LocalMesh, RedisServer, str]) -> None:
    mesh, redis, metrics = replicated
    address = mesh.state().workloads["web-heddle.default"].address
    url = f"http://{address}:{80 + low_port_offset()}/"
    with httpx.Client(trust_env=False, timeout=5) as client:
        def status(user: str) -> int:
            return client.get(url, headers={"host": "api.example",
                                            "x-user-id": user}).status_code

        wait_for(lambda: status("probe") == 200, 30, "the gateway routes api.example")
        wait_for(lambda: answered(metrics) > 0 or status("warm") < 0, 20,
                 "the second replica answering the gateway")
        assert [status("alice") for _ in range(10)] == [200] * 6 + [429] * 4
        assert [status("bob") for _ in range(6)] == [200] * 6

        redis.stop()
        started = time.monotonic()
        during = []
        for _ in range(8):
            sent = time.monotonic()
            during.append((status("carol"), time.monotonic() - sent))
        # Open: every request passes, each delayed at most by the service's Redis timeout
        # (0.1 s) and the proxy's (0.1 s), with room for a loaded machine.
        assert [code for code, _ in during] == [200] * 8
        assert max(seconds for _, seconds in during) < 1.5, during
        assert mesh.heddle("status").returncode == 0

        redis.start()
        back = time.monotonic()
        tries = iter(range(1000))

        def limited_again() -> bool:
            user = f"dave-{next(tries)}"  # a fresh bucket each time: 6 pass, the 7th not
            return [status(user) for _ in range(7)][-1] == 429

        wait_for(limited_again, 10, "limiting once Redis is back")
        resumed = time.monotonic() - back
    assert resumed < 2.0 + 1.0, resumed  # 2 s, and the seven requests of the last check
    assert started < back
