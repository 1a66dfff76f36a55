"""Istio's EnvoyFilter rate-limit samples on a running examples/bookinfo mesh, real Envoy:

- samples/ratelimit/local-rate-limit-service.yaml on productpage's inbound side: 10
  requests a minute to /productpage, then 429 with `x-local-rate-limit: true`. The file
  names the virtual host `inbound|http|8000`; productpage serves 9080 (Istio's docs write
  `inbound|http|9080`), so the test applies it with that one name changed (unchanged, as in
  Istio, it matches no route and limits nothing: see the unit tests).
- bookinfo's policy/productpage_envoy_ratelimit.yaml on the ingress gateway (with
  bookinfo-gateway.yaml): the global rate-limit filter asks `heddle ratelimit` (Istio's docs
  deploy envoyproxy/ratelimit; Heddle's reads the same ConfigMap YAML) with domain
  productpage-ratelimit: /productpage once a minute, then 429. The sample's STRICT_DNS
  cluster names ratelimit.default.svc.cluster.local, which no resolver here knows: the
  test points it at the service's loopback address instead, nothing else changed.
"""

from __future__ import annotations

import http.client
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.loopback import free_port
from heddle.testing.waiting import wait_for

from .mesh_fixtures import HEDDLE, ROOT, LocalMesh, running_mesh

SAMPLES = ROOT.parent / "shared" / "corpus" / "istio" / "samples"
LOCAL = SAMPLES / "ratelimit" / "local-rate-limit-service.yaml"
GLOBAL = SAMPLES / "bookinfo" / "policy" / "productpage_envoy_ratelimit.yaml"
GATEWAY = SAMPLES / "bookinfo" / "networking" / "bookinfo-gateway.yaml"
# The ConfigMap of Istio's rate-limit task, for the sample's domain.
RATE_LIMIT_CONFIG = """domain: productpage-ratelimit
descriptors:
  - key: PATH
    value: "/productpage"
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: PATH
    rate_limit: {unit: minute, requests_per_unit: 100}
"""


def client_get(mesh: LocalMesh, url: str) -> tuple[int, dict[str, str]]:
    """A request from the client workload through its sidecar: status and headers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(
        {"http": f"http://{mesh.subnet}1:15001"}))
    try:
        with opener.open(url, timeout=10) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers)


def gateway_get(address: str, path: str) -> int:
    connection = http.client.HTTPConnection(address, 8080, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": "bookinfo.example"})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.fixture(scope="module")
def local_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    sample = LOCAL.read_text().replace("inbound|http|8000", "inbound|http|9080")
    with running_mesh(tmp_path_factory.mktemp("ef-local"), example="bookinfo",
                      extra={"local-rate-limit-service.yaml": sample}) as mesh:
        yield mesh


def test_the_local_sample_limits_productpage_to_ten_a_minute(local_mesh: LocalMesh) -> None:
    admin = EnvoyAdmin(f"{local_mesh.subnet}2")
    wait_for(lambda: "envoy.filters.http.local_ratelimit" in str(admin.config_dump()), 60,
             "productpage's sidecar has the EnvoyFilter's local rate-limit filter")
    # Ready: another path, in the sample's 100 a minute bucket.
    wait_for(lambda: client_get(local_mesh, "http://productpage:9080/health")[0] == 200, 60,
             "productpage answers")
    statuses = [client_get(local_mesh, "http://productpage:9080/productpage?format=json")
                for _ in range(12)]
    assert [s for s, _ in statuses] == [200] * 10 + [429] * 2
    headers = {k.lower(): v for k, v in statuses[-1][1].items()}
    assert headers.get("x-local-rate-limit") == "true"


@pytest.fixture(scope="module")
def global_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalMesh, str]]:
    base = tmp_path_factory.mktemp("ef-global")
    config_dir = base / "ratelimit-config"
    config_dir.mkdir()
    (config_dir / "config.yaml").write_text(RATE_LIMIT_CONFIG)
    port = free_port()
    service = subprocess.Popen(
        [HEDDLE, "ratelimit", "--config-dir", str(config_dir), "--host", "127.0.0.1",
         "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sample = GLOBAL.read_text().replace("address: ratelimit.default.svc.cluster.local",
                                        "address: 127.0.0.1").replace(
        "port_value: 8081", f"port_value: {port}")
    try:
        with running_mesh(base, example="bookinfo", extra={
                "bookinfo-gateway.yaml": GATEWAY.read_text(),
                "productpage_envoy_ratelimit.yaml": sample}) as mesh:
            yield mesh, mesh.state().workloads["istio-ingressgateway.istio-system"].address
    finally:
        service.terminate()
        service.wait(timeout=10)


def test_the_global_sample_lets_productpage_through_the_gateway_once_a_minute(
        global_mesh: tuple[LocalMesh, str]) -> None:
    _, address = global_mesh

    def ready() -> bool:
        try:
            # Routed to productpage (which has no such page: 404), in the 100 a minute bucket.
            return gateway_get(address, "/api/v1/products") == 404
        except OSError:
            return False
    wait_for(ready, 60, "the gateway routes bookinfo and the rate-limit service answers")
    assert [gateway_get(address, "/productpage") for _ in range(3)] == [200, 429, 429]
    assert gateway_get(address, "/api/v1/products") == 404  # another path, its own limit
