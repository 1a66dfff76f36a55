"""`heddle dashboard` in a real browser (Debian's chromium, headless, driven by playwright):
under traffic through examples/bookinfo, the page shows the bookinfo graph, its numbers
move without a reload, each proxy's sync state is listed, and selecting a workload shows
what applies to it. A screenshot is kept in test-artifacts/."""

from __future__ import annotations

import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import playwright.sync_api as playwright
import pytest

from .mesh_fixtures import ROOT, LocalMesh, running_mesh

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
PRODUCTPAGE = "http://productpage:9080/productpage"
SERVICE = "service:{}.default.svc.cluster.local"
WORKLOAD = "workload:default/{}"
# The calls one bookinfo page makes: client -> productpage -> details, reviews; reviews v2
# and v3 -> ratings.
EDGES = [
    (WORKLOAD.format("client"), SERVICE.format("productpage")),
    (SERVICE.format("productpage"), WORKLOAD.format("productpage-v1")),
    (WORKLOAD.format("productpage-v1"), SERVICE.format("details")),
    (SERVICE.format("details"), WORKLOAD.format("details-v1")),
    (WORKLOAD.format("productpage-v1"), SERVICE.format("reviews")),
    *((SERVICE.format("reviews"), WORKLOAD.format(f"reviews-{v}")) for v in ("v1", "v2", "v3")),
    *((WORKLOAD.format(f"reviews-{v}"), SERVICE.format("ratings")) for v in ("v2", "v3")),
    (SERVICE.format("ratings"), WORKLOAD.format("ratings-v1")),
]


@pytest.fixture(scope="module")
def bookinfo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is not installed at {CHROMIUM} (apt-get install chromium; "
                    f"scripts/test.sh does)")
    with running_mesh(tmp_path_factory.mktemp("dashboard"), example="bookinfo") as mesh:
        yield mesh


class Traffic:
    """Bookinfo pages requested from the client workload, one after another, bounded."""

    def __init__(self, mesh: LocalMesh, seconds: float = 180, limit: int = 20000) -> None:
        self.sent = 0
        self._stop = threading.Event()
        proxy = urllib.request.ProxyHandler({"http": f"http://{mesh.subnet}1:15001"})
        self._opener = urllib.request.build_opener(proxy)
        self._thread = threading.Thread(target=self._send, args=(seconds, limit))

    def _send(self, seconds: float, limit: int) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline and self.sent < limit:
            try:
                with self._opener.open(PRODUCTPAGE, timeout=10) as response:
                    response.read()
            except (urllib.error.URLError, OSError):
                pass
            self.sent += 1
            time.sleep(0.05)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_the_dashboard_shows_the_live_bookinfo_graph(bookinfo: LocalMesh) -> None:
    url = f"http://127.0.0.1:{bookinfo.state().debug_port}/dashboard/"
    assert bookinfo.heddle("dashboard").stdout.strip() == url
    ARTIFACTS.mkdir(exist_ok=True)
    with Traffic(bookinfo), playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM,
                                         args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(url)
            # Every edge of a bookinfo page, with requests flowing on it.
            page.wait_for_function(
                """(edges) => {
                    const cy = window.heddleDashboard && window.heddleDashboard.cy;
                    return cy && edges.every(([s, t]) => {
                        const e = cy.getElementById(s + "->" + t);
                        return e.nonempty() && e.data("rps") > 0;
                    });
                }""", arg=EDGES, timeout=150_000)
            loaded_at, updates, total = page.evaluate(
                """(edge) => [window.heddleDashboard.loadedAt, window.heddleDashboard.updates,
                               window.heddleDashboard.cy.getElementById(edge).data("total")]""",
                f"{EDGES[0][0]}->{EDGES[0][1]}")
            # It updates by itself: more requests counted, and the same page (no reload).
            page.wait_for_function(
                """([edge, total, updates]) => window.heddleDashboard.updates > updates &&
                     window.heddleDashboard.cy.getElementById(edge).data("total") > total""",
                arg=[f"{EDGES[0][0]}->{EDGES[0][1]}", total, updates], timeout=60_000)
            assert page.evaluate("window.heddleDashboard.loadedAt") == loaded_at
            # Every edge inside the mesh is mutual TLS, and its label says so (the first one too:
            # the client workload calls productpage through its sidecar).
            labels = page.evaluate("""(edges) => edges.map(([s, t]) =>
                window.heddleDashboard.cy.getElementById(s + "->" + t).data("label"))""", EDGES)
            assert all(label.startswith("mTLS") for label in labels), labels
            # Every proxy is listed, synced.
            page.wait_for_function(
                "document.querySelectorAll('#proxies td.state-SYNCED').length >= 8",
                timeout=30_000)
            # Selecting a workload shows what applies to it.
            page.evaluate("""() => window.heddleDashboard.cy
                .getElementById("workload:default/reviews-v2").emit("tap")""")
            page.wait_for_function(
                "document.querySelector('#workload').textContent.includes('reviews.default')",
                timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "dashboard-bookinfo.png"), full_page=True)
        finally:
            browser.close()
