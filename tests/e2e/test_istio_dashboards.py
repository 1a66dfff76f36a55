"""Istio's bundled Grafana dashboards (mesh, service, workload) against the real Prometheus of
`heddle up --prometheus`, under traffic in examples/hello: every panel query that concerns
the HTTP or TCP traffic of the view returns the series it expects.

Each dashboard is opened as a user would open it for a service or workload of the mesh: its
template variables are filled in as Grafana fills them (query variables resolved against
Prometheus), and each panel's PromQL runs through Prometheus's HTTP API. A panel that does
not apply (another protocol, gRPC, component versions, a direction of traffic the view has
none of, or one Istio's own metrics leave empty) is listed with why.
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from heddle.local.prometheus import PrometheusMissing, find_binary
from heddle.testing.dashboard_panels import View, why_not
from heddle.testing.dashboards import (
    PanelQuery,
    panel_queries,
    rate_interval,
    resolve_variables,
    substitute,
)
from heddle.testing.loopback import free_port
from heddle.testing.prometheus import PrometheusApi
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

DASHBOARDS = Path(__file__).resolve().parents[3] / "shared/corpus/istio-telemetry/dashboards"
MESH, SERVICE, WORKLOAD = ("istio-mesh-dashboard.gen.json", "istio-service-dashboard.json",
                           "istio-workload-dashboard.json")
# Above Envoy's stats flush (5 s), when its histograms change: two scrapes closer than that
# may see the same buckets, and the panels' irate() of them is then nothing (NaN).
SCRAPE_INTERVAL = 10.0
# Grafana's $__interval for these dashboards' 30 minute range on a panel of ~120 points.
INTERVAL = 15.0
BUILTINS = {"__rate_interval": rate_interval(SCRAPE_INTERVAL, INTERVAL),
            "__interval": f"{INTERVAL:g}s", "__range": "1800s"}
OUTSIDE = "outside.example"  # a service outside the mesh: no sidecar, no SPIFFE id
NOT_TRAFFIC = "not traffic"  # panels about something else may have data of their own

# The hello mesh carries HTTP (client -> frontend -> backend) and TCP (client -> echo); the
# traffic below adds plaintext callers from outside the mesh, calls out of it and faults.
HTTP, TCP = frozenset({"http"}), frozenset({"tcp"})


@dataclass(frozen=True)
class Opened:
    """A dashboard opened for one view, with the variables the user picked."""

    dashboard: str
    view: View
    choices: dict[str, list[str]]


OPENED = [
    Opened(MESH, View("the mesh", HTTP | TCP), {}),
    Opened(SERVICE, View("frontend.default.svc.cluster.local", HTTP),
           {"service": ["frontend.default.svc.cluster.local"]}),
    Opened(SERVICE, View("echo.default.svc.cluster.local", TCP),
           {"service": ["echo.default.svc.cluster.local"]}),
    Opened(WORKLOAD, View("frontend", HTTP, calls_out=HTTP),
           {"namespace": ["default"], "workload": ["frontend"]}),
    Opened(WORKLOAD, View("client", HTTP | TCP, serves=False, calls_out=HTTP | TCP,
                          calls_outside_mesh=True),
           {"namespace": ["default"], "workload": ["client"]}),
    Opened(WORKLOAD, View("echo", TCP), {"namespace": ["default"], "workload": ["echo"]}),
]

EXTRA = """
# A request with x-fault: 404 or 503 gets that status from the caller's sidecar.
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: frontend}
spec:
  hosts: [frontend.default.svc.cluster.local]
  http:
  - match: [{headers: {x-fault: {exact: "404"}}}]
    fault: {abort: {httpStatus: 404, percentage: {value: 100}}}
    route: [{destination: {host: frontend.default.svc.cluster.local}}]
  - match: [{headers: {x-fault: {exact: "503"}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 100}}}
    route: [{destination: {host: frontend.default.svc.cluster.local}}]
  - route: [{destination: {host: frontend.default.svc.cluster.local}}]
---
# A plain HTTP server outside the mesh that the client calls.
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: outside}
spec:
  hosts: [%s]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: SUBNET.200, ports: {http: %d}}]
"""


class _Plain(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"outside the mesh\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    try:
        find_binary()
    except PrometheusMissing as missing:
        pytest.skip(str(missing))
    outside_port = free_port()
    with running_mesh(tmp_path_factory.mktemp("dashboards"), "--prometheus",
                      "--prometheus-port", str(free_port()), "--prometheus-scrape-interval",
                      f"{SCRAPE_INTERVAL:g}",
                      extra={"dashboard-traffic.yaml": EXTRA % (OUTSIDE, outside_port)}
                      ) as running:
        server = ThreadingHTTPServer((f"{running.subnet}200", outside_port), _Plain)
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        try:
            yield running
        finally:
            server.shutdown()
            server.server_close()


def _http(url: str, proxy: str | None, headers: dict[str, str] | None = None) -> int:
    handlers = [urllib.request.ProxyHandler({"http": proxy} if proxy else {})]
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}),
                         timeout=5) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


def _tcp(address: tuple[str, int], connect_to: str | None = None) -> bool:
    """One line echoed over TCP: through a sidecar's CONNECT tunnel, or directly."""
    with socket.create_connection(address, timeout=5) as conn:
        reply = conn.makefile("rb")
        if connect_to:
            conn.sendall(f"CONNECT {connect_to} HTTP/1.1\r\nHost: {connect_to}\r\n\r\n".encode())
            if reply.readline().split()[1:2] != [b"200"]:
                return False
            while reply.readline() not in (b"\r\n", b""):
                pass
        conn.sendall(b"a line for the dashboards' TCP panels\n")
        echoed = reply.readline().startswith(b"echo: ")
        conn.shutdown(socket.SHUT_WR)
        reply.read()
        return echoed


@contextlib.contextmanager
def traffic(mesh: LocalMesh, seconds: float = 300, limit: int = 20000) -> Iterator[Counter[str]]:
    """Every kind of traffic the views need, round after round while the block runs: mesh
    HTTP and TCP from the client, faults, a call out of the mesh, and plaintext HTTP and TCP
    from outside the mesh straight to the workloads. Yields the outcomes, counted."""
    client = f"http://{mesh.subnet}1:15001"
    outcomes: Counter[str] = Counter()
    stop = threading.Event()
    sends = [
        ("mesh http", lambda: _http("http://frontend:8080/", client) == 200),
        ("fault 404", lambda: _http("http://frontend:8080/", client, {"x-fault": "404"}) == 404),
        ("fault 503", lambda: _http("http://frontend:8080/", client, {"x-fault": "503"}) == 503),
        ("out of mesh", lambda: _http(f"http://{OUTSIDE}/", client) == 200),
        ("mesh tcp", lambda: _tcp((f"{mesh.subnet}1", 15001), "echo:9000")),
        ("plaintext http", lambda: _http(f"http://{mesh.subnet}2:8080/", None) == 200),
        ("plaintext tcp", lambda: _tcp((f"{mesh.subnet}6", 9000))),
    ]

    def send() -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline and (
                sum(outcomes.values()) < limit):
            for what, one in sends:
                try:
                    outcomes[what if one() else f"{what} failed"] += 1
                except OSError:
                    outcomes[f"{what} failed"] += 1
            stop.wait(0.05)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        yield outcomes
    finally:
        stop.set()
        sender.join()


def without_fallback(expr: str) -> str:
    """The query less a trailing `or vector(N)`, which would answer even with no metrics."""
    return re.sub(r"\s*or\s+vector\(\d+\)\s*$", "", expr)


def _groupings(expr: str) -> set[str]:
    """The labels the query's outermost aggregations group by (le aside)."""
    found: set[str] = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
        found |= {label.strip() for label in group.split(",") if label.strip()}
    return found - {"le"}


def has_expected_series(result: list[dict[str, Any]], expr: str) -> bool:
    """Some series with a number (not NaN: a ratio of nothing), and with every label the
    panel groups by among them (its legend's)."""
    finite = [s for s in result if math.isfinite(float(s["value"][1]))]
    if not finite:
        return False
    wanted = _groupings(expr)
    return all(any(s["metric"].get(label) for s in finite) for label in wanted if (
        "label_join" not in expr or label != "destination_workload_var"))


@dataclass(frozen=True)
class Panel:
    opened: Opened
    query: PanelQuery
    expr: str  # variables filled in
    why_not: str | None


def panels(query: Any) -> list[Panel]:
    """Every panel query of every opened dashboard, variables filled in with `query`."""
    found = []
    for opened in OPENED:
        path = DASHBOARDS / opened.dashboard
        values = resolve_variables(path, query, opened.choices, BUILTINS)
        for written in panel_queries(path):
            expr = substitute(written.expr, values)
            found.append(Panel(opened, written, expr, why_not(written.expr, expr,
                                                              opened.view)))
    return found


def test_panels_are_classified_each_with_a_reason_when_it_does_not_apply() -> None:
    found = panels(lambda _: [])
    applies = [p for p in found if p.why_not is None]
    by_dashboard = Counter((p.opened.dashboard, p.opened.view.name) for p in applies)
    assert len(found) == 12 + 2 * 76 + 3 * 71
    assert len(applies) == 157
    # Every opened view has panels that must show data: none is vacuous.
    assert all(by_dashboard[(o.dashboard, o.view.name)] > 0 for o in OPENED)
    assert {p.query.title for p in found if p.why_not and "istio_build" in p.why_not} == {
        "Istio Component Versions"}
    for panel in found:  # no query is left with a variable unfilled
        assert not re.search(r"\$\w", panel.expr), panel.query.name


def test_every_applicable_dashboard_panel_returns_its_series(mesh: LocalMesh) -> None:
    prometheus = PrometheusApi(mesh.state().prometheus_url)
    with traffic(mesh) as outcomes:
        # Without Istio's metrics on the proxies' 15020 there is nothing for any panel.
        wait_for(lambda: prometheus.query('istio_requests_total{reporter="destination"}'),
                 120, "istio_requests_total scraped from the proxies' /stats/prometheus")
        missing: list[Panel] = []
        unexpected: list[Panel] = []

        def every_panel_has_data() -> bool:
            nonlocal missing, unexpected
            missing, unexpected = [], []
            for panel in panels(prometheus.query):
                check = without_fallback(panel.expr)
                if panel.why_not is None:
                    if not has_expected_series(prometheus.query(check), check):
                        missing.append(panel)
                elif not panel.why_not.endswith(NOT_TRAFFIC) and any(
                        math.isfinite(float(s["value"][1])) for s in prometheus.query(check)):
                    unexpected.append(panel)  # no traffic of its kind, yet it has data
            return not missing

        with contextlib.suppress(AssertionError):  # reported below, panel by panel
            wait_for(every_panel_has_data, 180, "data in every applicable panel")
    found = panels(prometheus.query)
    applies = [p for p in found if p.why_not is None]
    print(f"traffic: {dict(sorted(outcomes.items()))}")
    print(f"panels with data / panels that apply: {len(applies) - len(missing)} / "
          f"{len(applies)} (of {len(found)} panel queries in {len(OPENED)} opened views)")
    for opened in OPENED:
        mine = [p for p in found if p.opened == opened]
        print(f"  {opened.dashboard} for {opened.view.name}: "
              f"{sum(p.why_not is None and p not in missing for p in mine)} / "
              f"{sum(p.why_not is None for p in mine)} apply and have data")
        for reason, count in sorted(Counter(p.why_not for p in mine if p.why_not).items()):
            print(f"    not applicable ({count}): {reason}")
    assert not [k for k in outcomes if k.endswith("failed")], outcomes
    assert missing == [], "panels without data:\n" + "\n".join(
        f"{p.query.name} ({p.opened.view.name}): {p.expr}" for p in missing)
    assert unexpected == [], "panels with data that should have none:\n" + "\n".join(
        f"{p.query.name} ({p.opened.view.name}, {p.why_not}): {p.expr}" for p in unexpected)
