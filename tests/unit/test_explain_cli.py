"""`heddle explain --last-failure` and `heddle describe` against a running mesh stay light:
the CLI reads the log and renders the page; the control plane (here a stand-in answering
as its debug API does) computes it. And what an Envoy says of a cluster's hosts reads as
words."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from heddle.explain.endpoint_state import host_states, summary

ROOT = Path(__file__).resolve().parents[2]
LINE = ('[2026-01-01T00:00:00.000Z] "GET /reviews/0 HTTP/1.1" 503 NC cluster_not_found - "-" '
        '0 0 0 - "-" "curl" "id-1" "reviews:9080" "-" - - 127.0.20.1:15001 127.0.20.1:4000 - '
        'default.reviews.0 downstream_peer=- upstream_peer=- ratelimit=-:-\n')

PROBE = r"""
import json, os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

home = Path(sys.argv[1])
asked = []

class ControlPlane(BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def answer(self, value):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        asked.append(self.path)
        self.answer({"title": "Service reviews", "sections": [{"title": "S", "lines": ["x"]}]})
    def do_POST(self):
        asked.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        self.answer({"title": "client.default", "summary": "subset v9 is missing",
                     "facts": {"flags": ["NC"]}, "sections": []})

server = ThreadingHTTPServer(("127.0.0.1", 0), ControlPlane)
threading.Thread(target=server.serve_forever, daemon=True).start()
(home / "mesh").mkdir(parents=True, exist_ok=True)
(home / "mesh" / "state.json").write_text(json.dumps({
    "config_dir": "/x", "supervisor_pid": os.getpid(), "xds_port": 1,
    "debug_port": server.server_address[1], "workloads": {}}))
os.environ["HEDDLE_HOME"] = str(home)
before = set(sys.modules)
from heddle.cli.main import main
try:
    main(sys.argv[2:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "asked": asked, "modules": sorted(
    n for n, m in sys.modules.items() if m is not None and n not in before)}))
"""

# What computing a page takes, and the CLI must not load for it.
TRANSLATION = ("heddle.translate", "heddle.model.snapshot", "heddle.api.models",
               "heddle.api.loader", "heddle.explain.why", "heddle.explain.describe",
               "heddle.explain.traffic", "pydantic", "google.protobuf", "envoy", "grpc", "re2",
               "yaml", "ruamel")


def run(tmp_path: Path, *args: str) -> tuple[dict[str, object], str]:
    home = tmp_path / "home"
    log = home / "mesh" / "workloads" / "client.default" / "envoy.log"
    log.parent.mkdir(parents=True)
    log.write_text("[2026-01-01 00:00:00.000][1][info][main] Envoy's own line\n" + LINE)
    out = subprocess.run([sys.executable, "-c", PROBE, str(home), *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["code"] in (0, None), out.stdout + out.stderr
    modules = [m for m in result["modules"]
               if any(m == h or m.startswith(h + ".") for h in TRANSLATION)]
    assert modules == []
    return result, out.stdout


def test_explain_last_failure_sends_the_parsed_line_and_prints_the_answer(
        tmp_path: Path) -> None:
    result, stdout = run(tmp_path, "explain", "client", "--last-failure")
    [question] = result["asked"]  # type: ignore[misc]
    assert question["workload"] == "client" and question["namespace"] == "default"
    assert question["entry"]["response_flags"] == "NC"
    assert question["entry"]["route_name"] == "default.reviews.0"
    assert "=> subset v9 is missing" in stdout


def test_describe_asks_the_debug_api(tmp_path: Path) -> None:
    result, stdout = run(tmp_path, "describe", "reviews")
    assert result["asked"] == ["/debug/describe?name=reviews&namespace=default"]
    assert "Service reviews" in stdout


def clusters(*hosts: dict[str, object]) -> dict[str, object]:
    return {"cluster_statuses": [{"name": "outbound|9080||reviews", "host_statuses": [
        {"address": {"socket_address": {"address": f"127.0.0.{i}", "port_value": 9080}},
         "health_status": health} for i, health in enumerate(hosts, 1)]}]}


def test_hosts_ejected_as_outliers_are_named() -> None:
    dump = clusters({"eds_health_status": "HEALTHY", "failed_outlier_check": True},
                    {"eds_health_status": "HEALTHY"})
    assert host_states(dump, "outbound|9080||reviews") == [
        ("127.0.0.1:9080", "ejected as an outlier (outlierDetection)"),
        ("127.0.0.2:9080", "healthy")]
    assert summary("outbound|9080||reviews", host_states(dump, "outbound|9080||reviews")) == ""


@pytest.mark.parametrize(("health", "words"), [
    ({"failed_outlier_check": True}, "is ejected as an outlier right now"),
    ({"eds_health_status": "UNHEALTHY"}, "no host of outbound|9080||reviews is healthy"),
])
def test_a_cluster_with_no_usable_host_says_why(health: dict[str, object], words: str) -> None:
    states = host_states(clusters(health), "outbound|9080||reviews")
    assert words in summary("outbound|9080||reviews", states)
    assert host_states(clusters(health), "other") == []
