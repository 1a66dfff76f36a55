"""examples/nginx-cutover: Debian's NGINX, run by the mesh as a workload with a sidecar, is
the legacy ingress behind Heddle's gateway (a Gateway API Gateway of class heddle). Routes
not yet migrated go to it, migrated ones to their mesh services, and /orders moves from
NGINX to the orders service by editing the weights of one HTTPRoute, under steady load.
Real Envoy, real NGINX, real traffic.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from heddle.local.state import pid_alive
from heddle.local.workloads import low_port_offset
from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.load import Response, Sample, SteadyLoad, split
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

ORDERS_ROUTE = "default.orders.0"  # the gateway's Envoy route of HTTPRoute orders, rule 0
NGINX_CLUSTER = "outbound|8080||legacy-nginx.default.svc.cluster.local"
ORDERS_CLUSTER = "outbound|8080||orders.default.svc.cluster.local"
# How many requests each step's split is measured on: with the split's binomial spread
# (at most 1.1 points at 2,500), ±3 points is over 2.7 standard deviations at the worst.
STEP_REQUESTS = 2500
TOLERANCE = 3.0  # points
MIN_RATE = 200.0  # requests per second, in every step and over the whole run
RATE = 400.0  # what the load asks for


def nginx_processes(mesh: LocalMesh) -> list[int]:
    """The legacy NGINX's master (from its pid file) and its workers."""
    folder = mesh.home / "mesh" / "workloads" / "legacy-nginx.default" / "nginx"
    master = int((folder / "nginx.pid").read_text())
    workers = [int(p) for task in Path(f"/proc/{master}/task").iterdir()
               for p in (task / "children").read_text().split()]
    return [master, *workers]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("nginx-cutover"),
                      example="nginx-cutover") as running:
        nginx = nginx_processes(running)
        yield running
    # heddle down stopped NGINX with its workload (its workers rewrite their environment
    # for their titles, so running_mesh's HEDDLE_HOME check cannot see them).
    assert [pid for pid in nginx if pid_alive(pid)] == []


def gateway_url(mesh: LocalMesh, path: str) -> str:
    address = mesh.state().workloads["edge-heddle.default"].address
    return f"http://{address}:{80 + low_port_offset()}{path}"


def served_by(response: Response) -> str:
    """Who answered: "nginx" for the legacy NGINX, else the mesh service's name."""
    try:
        return str(json.loads(response.body)["served_by"])
    except (ValueError, KeyError, TypeError):
        return ""


def get(mesh: LocalMesh, path: str) -> httpx.Response:
    return httpx.get(gateway_url(mesh, path), trust_env=False, timeout=5)


def route_weights(mesh: LocalMesh) -> dict[str, int]:
    """The weight of each cluster of the orders route in the gateway's Envoy now."""
    admin = EnvoyAdmin(mesh.state().workloads["edge-heddle.default"].address)
    for config in admin.config_dump("dynamic_route_configs")["configs"]:
        for host in config.get("route_config", {}).get("virtual_hosts", []):
            for route in host.get("routes", []):
                if route.get("name") == ORDERS_ROUTE:
                    action: dict[str, Any] = route["route"]
                    if "cluster" in action:
                        return {action["cluster"]: 100}
                    return {c["name"]: int(c["weight"])
                            for c in action["weighted_clusters"]["clusters"]}
    return {}


def set_orders_weights(mesh: LocalMesh, nginx: int, orders: int) -> None:
    """Edit the weights in the watched directory's orders-route.yaml, as a person would."""
    path = mesh.config_dir / "orders-route.yaml"
    text, edits = re.subn(r"(name: legacy-nginx, port: 8080, weight: )\d+", rf"\g<1>{nginx}",
                          path.read_text())
    text, more = re.subn(r"(name: orders, port: 8080, weight: )\d+", rf"\g<1>{orders}", text)
    assert (edits, more) == (1, 1), "orders-route.yaml no longer has the two weights"
    path.write_text(text)


def wait_for_route(mesh: LocalMesh, clusters: dict[str, int]) -> float:
    """Seconds until the gateway's orders route has these cluster weights."""
    return wait_for(lambda: route_weights(mesh) == clusters, 30,
                    f"the gateway's orders route with weights {clusters}")


def expected_clusters(nginx: int, orders: int) -> dict[str, int]:
    """The gateway's route for the weights: backends of weight 0 are left out."""
    return {c: w for c, w in ((NGINX_CLUSTER, nginx), (ORDERS_CLUSTER, orders)) if w}


def test_routes_not_migrated_reach_nginx_and_migrated_ones_their_services(
        mesh: LocalMesh) -> None:
    wait_for(lambda: route_weights(mesh) == {NGINX_CLUSTER: 100}, 20,
             "the gateway has the orders route")
    answers = {path: get(mesh, path) for path in
               ("/", "/account/settings", "/orders/42", "/catalog/books", "/catalog")}
    assert {path: (r.status_code, r.json()["served_by"]) for path, r in answers.items()} == {
        "/": (200, "nginx"), "/account/settings": (200, "nginx"), "/orders/42": (200, "nginx"),
        "/catalog/books": (200, "catalog"), "/catalog": (200, "catalog")}
    # NGINX matched its own location: the gateway passed the path on unchanged.
    assert answers["/account/settings"].json() == {
        "served_by": "nginx", "location": "/account", "path": "/account/settings"}
    assert answers["/catalog/books"].json()["path"] == "/catalog/books"
    # A legacy redirect is NGINX's own answer, relative, through the gateway.
    shop = get(mesh, "/shop")
    assert (shop.status_code, shop.headers["location"]) == (301, "/catalog/")
    assert "nginx" in shop.text


def test_weights_move_orders_from_nginx_to_the_mesh_with_no_failed_request_under_load(
        mesh: LocalMesh) -> None:
    steps = [(100, 0), (80, 20), (0, 100)]
    measured: list[tuple[tuple[int, int], dict[str, float], float, float]] = []
    with SteadyLoad(gateway_url(mesh, "/orders"), served_by, concurrency=16, rate=RATE,
                    seconds=150, limit=60_000) as load:
        for nginx, orders in steps:
            if (nginx, orders) != steps[0]:
                set_orders_weights(mesh, nginx, orders)
            # The step counts from when the gateway's Envoy has the route: requests sent in
            # the transition count as failures or not, but not in the step's split.
            took = wait_for_route(mesh, expected_clusters(nginx, orders))
            step = load.wait_for_samples(STEP_REQUESTS, since=time.monotonic(), timeout=60)
            measured.append(((nginx, orders), split(step), step_rate(step), took))
    rate, failures = load.achieved_rate(), load.failures()
    for (nginx, orders), shares, step_rps, took in measured:
        print(f"step {nginx}/{orders}: nginx {shares.get('nginx', 0):.1f}% orders "
              f"{shares.get('orders', 0):.1f}% over {STEP_REQUESTS} requests at "
              f"{step_rps:.0f} RPS; route in effect {took:.2f} s after the edit")
    print(f"{len(load.samples)} requests at {rate:.0f} RPS, {len(failures)} failed")
    assert failures == [], describe(failures)
    assert rate >= MIN_RATE
    for (nginx, orders), shares, step_rps, _ in measured:
        assert step_rps >= MIN_RATE, (nginx, orders, step_rps)
        assert set(shares) <= {"nginx", "orders"}
        assert abs(shares.get("nginx", 0) - nginx) <= TOLERANCE, (nginx, orders, shares)
        assert abs(shares.get("orders", 0) - orders) <= TOLERANCE, (nginx, orders, shares)


def step_rate(samples: list[Sample]) -> float:
    return len(samples) / max(samples[-1].finished - samples[0].started, 1e-9)


def describe(failures: list[Sample]) -> str:
    return json.dumps([f"{s.started:.3f}: {s.error}" for s in failures[:10]])
