"""The testing kit's steady load (`heddle.testing.load`) against a local server: it names
who answered each request, counts every kind of failure, keeps to its rate and its bounds."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from heddle.testing.load import Response, SteadyLoad, split


class Handler(BaseHTTPRequestHandler):
    """Answers by path: /a and /b name a backend, /fail is a 503, /anonymous names no one,
    /close answers and closes the connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        status, body = {"/a": (200, b"a"), "/b": (200, b"b"), "/fail": (503, b"down"),
                        "/anonymous": (200, b""), "/close": (200, b"a")}[self.path]
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        if self.path == "/close":
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()


def body(response: Response) -> str:
    return response.body.decode()


def test_each_request_is_named_by_who_answered(server: str) -> None:
    with SteadyLoad(server + "/a", body, concurrency=2, limit=50) as load:
        load.wait_for_samples(50, since=0, timeout=10)
    assert 50 <= len(load.samples) <= 51  # the limit, but for a request of each other thread
    assert split(load.samples) == {"a": 100.0}
    assert load.failures() == []


def test_a_bad_status_an_unnamed_answer_and_a_refused_connection_are_failures(
        server: str) -> None:
    for path, reason in (("/fail", "status 503"), ("/anonymous", "no backend named")):
        with SteadyLoad(server + path, body, concurrency=1, limit=3) as load:
            load.wait_for_samples(3, since=0, timeout=10)
        assert [s.error.startswith(reason) for s in load.failures()] == [True] * 3
    closed = server.rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    with SteadyLoad(closed + "/a", body, concurrency=1, limit=2) as load:
        load.wait_for_samples(2, since=0, timeout=10)
    assert all("ConnectionRefusedError" in s.error for s in load.failures())


def test_a_closed_connection_is_opened_again(server: str) -> None:
    with SteadyLoad(server + "/close", body, concurrency=1, limit=5) as load:
        load.wait_for_samples(5, since=0, timeout=10)
    assert load.failures() == [] and len(load.samples) == 5


def test_the_rate_holds_and_samples_since_a_moment_are_the_later_ones(server: str) -> None:
    with SteadyLoad(server + "/b", body, concurrency=4, rate=100, seconds=10) as load:
        time.sleep(0.5)
        moment = time.monotonic()
        later = load.wait_for_samples(20, since=moment, timeout=10)
    elapsed = load.stopped - load.started
    assert all(s.started > moment for s in later)
    # Paced: never ahead of the schedule (one request per thread may be in flight).
    assert len(load.samples) <= 100 * elapsed + 4
    assert load.achieved_rate() > 50  # and not far behind it on a loaded machine


def test_the_load_stops_at_its_time_bound(server: str) -> None:
    with SteadyLoad(server + "/a", body, concurrency=1, rate=20, seconds=0.5) as load:
        time.sleep(1.0)
        count = len(load.samples)
        time.sleep(0.3)
        assert len(load.samples) == count  # nothing more after `seconds`
    assert count <= 20 * 0.5 + 1
