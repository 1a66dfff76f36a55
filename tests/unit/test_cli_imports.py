"""The verbs that read a running mesh's local state (`get`, `status`, `apply`, `delete`) must
answer in a few tenths of a second, so they load no CLI framework, no API models, schemas
or validation, no gRPC, protobuf or translation, no asyncio and no HTTP library: the
control plane validates what `apply` sends. Each verb runs here, whole, against a stand-in
of a running mesh (its state and a debug API answering as the control plane's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, os, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

home = Path(sys.argv[1])
RESOURCE = {"key": {"group": "networking.istio.io", "kind": "VirtualService",
                    "namespace": "default", "name": "a"},
            "source": "/x/mesh.yaml:3:1",
            "object": {"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                       "metadata": {"name": "a"}, "spec": {"hosts": ["a"]}}}

class ControlPlane(BaseHTTPRequestHandler):
    def log_message(self, *args): pass
    def answer(self, value):
        body = json.dumps(value).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.answer({"version": 1, "resources": [RESOURCE]}
                    if self.path == "/debug/resources" else [])
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        assert self.headers["authorization"] == "Bearer t0ken"
        self.answer({"lines": ["done"], "problems": [], "failed": False})

server = ThreadingHTTPServer(("127.0.0.1", 0), ControlPlane)
threading.Thread(target=server.serve_forever, daemon=True).start()
(home / "mesh").mkdir(parents=True, exist_ok=True)
(home / "mesh" / "api-token").write_text("t0ken\n")
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
print(json.dumps({"code": code, "modules": sorted(
    n for n, m in sys.modules.items() if m is not None and n not in before)}))
"""

HEAVY = ("pydantic", "pydantic_core", "heddle.api.models", "heddle.api.loader",
         "heddle.api.schema_check", "jsonschema", "fastjsonschema", "cel", "re2", "grpc",
         "google.protobuf", "envoy", "xds", "heddle.translate", "heddle.xds", "heddle.app",
         "heddle.config.store", "heddle.config.applied", "heddle.agent", "heddle.ca",
         "heddle.convert",
         "typer", "click", "rich", "httpx", "aiohttp", "watchfiles", "yaml", "cryptography",
         "asyncio", "http.client", "ssl", "email")

VS = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\n"


def run_verb(tmp_path: Path, *args: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "home"), *args],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["code"] in (0, None), out.stdout + out.stderr
    modules: list[str] = result["modules"]
    return modules


@pytest.mark.parametrize("verb", [["get", "vs"], ["get", "virtualservice", "a", "-o", "json"],
                                  ["status"], ["apply", "-f", "{file}"],
                                  ["delete", "-f", "{file}"]])
def test_the_light_verbs_load_nothing_heavy(tmp_path: Path, verb: list[str]) -> None:
    (tmp_path / "vs.yaml").write_text(VS)
    modules = run_verb(tmp_path, *(w.format(file=tmp_path / "vs.yaml") for w in verb))
    assert "heddle.cli.main" in modules
    loaded = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert loaded == []
