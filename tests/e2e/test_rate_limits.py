"""Rate limits through real Envoy: Envoy Gateway's BackendTrafficPolicy on a Gateway API
route (global: counted by the rate-limit service `heddle up` runs, one bucket per client by
a Distinct header) and on a Service (a local token bucket in each of its sidecars)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import yaml

from heddle.local.workloads import low_port_offset
from heddle.testing.load import SteadyLoad
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

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
    type: Global
    global:
      rules:
      - clientSelectors: [{headers: [{name: x-user-id, type: Distinct}]}]
        limit: {requests: 5, unit: Minute}
      - clientSelectors: [{headers: [{name: x-trial-user, type: Distinct}]}]
        limit: {requests: 2, unit: Minute}
        shadowMode: true
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {name: backend-local}
spec:
  targetRefs: [{group: networking.istio.io, kind: ServiceEntry, name: backend}]
  rateLimit:
    local:
      rules:
      # Only /reports: the frontend's calls (to /) pass, whatever this test's load.
      - clientSelectors: [{path: {type: PathPrefix, value: /reports}}]
        limit: {requests: 10, unit: Second}
    global:
      rules:
      - clientSelectors: [{headers: [{name: x-user-id, type: Distinct}]}]
        limit: {requests: 3, unit: Minute}
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("rate-limits"),
                      extra={"rate-limits.yaml": LIMITS}) as running:
        yield running


def gateway(mesh: LocalMesh) -> str:
    address = mesh.state().workloads["web-heddle.default"].address
    return f"http://{address}:{80 + low_port_offset()}/"


def as_user(client: httpx.Client, mesh: LocalMesh, user: str) -> httpx.Response:
    return client.get(gateway(mesh), headers={"host": "api.example", "x-user-id": user})


def test_a_global_limit_lets_exactly_n_through_per_client_then_429_with_retry_after(
        mesh: LocalMesh) -> None:
    with httpx.Client(trust_env=False, timeout=5) as client:
        wait_for(lambda: as_user(client, mesh, "probe").status_code == 200, 30,
                 "the gateway routes api.example")
        alice = [as_user(client, mesh, "alice") for _ in range(8)]
        assert [r.status_code for r in alice] == [200] * 5 + [429] * 3
        refused = alice[5]
        assert 0 < int(refused.headers["retry-after"]) <= 60
        assert refused.headers["x-ratelimit-limit"].startswith("5")
        # Bob has a bucket of his own: alice being over hers does not limit him.
        assert [as_user(client, mesh, "bob").status_code for _ in range(5)] == [200] * 5
        # No x-user-id: the rule's descriptor is not made, and nothing limits the request.
        assert all(client.get(gateway(mesh), headers={"host": "api.example"}).status_code
                   == 200 for _ in range(8))
    # The gateway's access log (Envoy flushes it each second) names the rule and the
    # descriptor that refused each 429.
    def refusals() -> list[str]:
        return [line for line in mesh.envoy_log("web-heddle").splitlines()
                if '" 429 ' in line]

    wait_for(lambda: len(refusals()) >= 3, 10, "the 429s in the gateway's access log")
    assert len(refusals()) == 3, refusals()
    assert all("ratelimit=heddle.rule=default/per-user/global/0,heddle.place=" in line
               and "c0=alice" in line for line in refusals()), refusals()


def test_shadow_mode_never_refuses_and_logs_what_it_would_have(mesh: LocalMesh) -> None:
    with httpx.Client(trust_env=False, timeout=5) as client:
        wait_for(lambda: as_user(client, mesh, "probe-2").status_code == 200, 30,
                 "the gateway routes api.example")
        statuses = [client.get(gateway(mesh), headers={
            "host": "api.example", "x-trial-user": "eve"}).status_code for _ in range(5)]
    assert statuses == [200] * 5

    def would() -> list[str]:
        return [line for line in mesh.envoy_log("web-heddle").splitlines()
                if "shadow_ratelimit=heddle.rule=default/per-user/global/1" in line]

    wait_for(lambda: len(would()) >= 3, 10, "the shadow hits in the gateway's access log")
    assert len(would()) == 3 and all("c0=eve" in line for line in would()), would()
    # A client cannot make a request log as shadow-limited: the header Heddle's shadow
    # filter sets is removed from what the client sends.
    token = uuid.uuid4().hex
    with httpx.Client(trust_env=False, timeout=5) as client:
        assert client.get(f"{gateway(mesh)}?forged={token}", headers={
            "host": "api.example", "x-trial-user": "mallory",
            "x-heddle-ratelimit-shadow": "forged"}).status_code == 200

    def forged() -> list[str]:
        return [line for line in mesh.envoy_log("web-heddle").splitlines() if token in line]

    wait_for(forged, 10, "the forged request in the gateway's access log")
    assert all("forged" not in line.replace(f"forged={token}", "") for line in forged()), \
        forged()


def test_a_per_client_limit_holds_on_calls_between_services(mesh: LocalMesh) -> None:
    """Through the client's sidecar to the backend Service: its two replicas' sidecars ask
    the rate-limit service, so the per-user bucket is the Service's, not a replica's."""
    proxies = {"http://": httpx.HTTPTransport(proxy=f"http://{mesh.subnet}1:15001")}
    with httpx.Client(trust_env=False, timeout=5, mounts=proxies) as client:
        def call(user: str) -> int:
            return client.get("http://backend:9090/", headers={"x-user-id": user}).status_code

        wait_for(lambda: call("probe") == 200, 30, "the client reaches the backend")
        assert [call("carol") for _ in range(5)] == [200] * 3 + [429] * 2
        assert [call("dave") for _ in range(3)] == [200] * 3


def test_status_and_get_show_the_service_and_each_policys_targets(mesh: LocalMesh) -> None:
    status = mesh.heddle("status").stdout
    assert "rate limits 127.0.0.1:" in status and "(counters in memory)" in status
    shown = yaml.safe_load(mesh.heddle("get", "backendtrafficpolicy", "per-user", "-o",
                                       "yaml").stdout)
    (ancestor,) = shown["status"]["ancestors"]
    assert ancestor["ancestorRef"]["name"] == "api"
    assert ancestor["conditions"][0]["type"] == "Accepted"
    assert ancestor["conditions"][0]["status"] == "True"


def paced(client: httpx.Client, url: str, rate: float, seconds: float) -> list[int]:
    """GET `url` at `rate` per second for `seconds`: the statuses."""
    statuses = []
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        statuses.append(client.get(url).status_code)
    return statuses


def test_a_local_limit_of_10_rps_on_a_sidecar_holds_under_50_rps(mesh: LocalMesh) -> None:
    # Straight to one backend's sidecar (PERMISSIVE: plaintext is accepted), whose inbound
    # side carries the Service's token bucket.
    url = f"http://{mesh.subnet}3:9090/reports"
    with httpx.Client(trust_env=False, timeout=5) as client:
        wait_for(lambda: paced(client, url, 50, 1).count(429) > 0, 30,
                 "the backend's sidecar limits")  # and its bucket is drained
    # 50 rps from five threads, so that one slow answer does not slow the rate.
    with SteadyLoad(url, lambda _: "backend", concurrency=5, seconds=10, rate=50,
                    limit=500) as load:
        wait_for(lambda: len(load.samples) >= 500, 30, "500 requests answered")
    # Its threads each check the limit before sending: one more may go.
    samples = sorted(load.samples, key=lambda s: s.started)[:500]
    statuses = [int(s.error.split()[1].rstrip(":")) if s.error.startswith("status ") else
                200 if not s.error else -1 for s in samples]
    assert set(statuses) <= {200, 429}, {s.error for s in samples if s.error}
    assert len(samples) == 500
    # 10 tokens a second over the time the requests took to send (10 s when paced).
    span = samples[-1].started - samples[0].started + 1 / 50
    assert 10 * span - 5 <= statuses.count(200) <= 10 * span + 5, (statuses.count(200), span)

    # The sidecar's access log flags each refusal (RL) and names the route's local rule.
    def refused() -> list[str]:
        return [line for line in mesh.envoy_log("backend-1").splitlines()
                if '/reports HTTP/1.1" 429 RL ' in line]

    wait_for(lambda: len(refused()) >= statuses.count(429), 10, "the 429s in the log")
    assert all("ratelimit=-:default/backend-local/local/0" in line for line in refused())
