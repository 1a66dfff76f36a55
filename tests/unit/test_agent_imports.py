"""The agent runs beside every workload, so what it imports is its footprint: its entry point
loads no translation, no typed models or schemas, no CLI framework and no HTTP framework, and
neither the gRPC client side nor `cryptography` (those run in its certificate helper)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Run the real entry point (`python -m heddle.agent`) as far as its option parsing: by then
# everything the agent imports at start-up is loaded.
PROBE = """
import json, runpy, sys
sys.argv = ["heddle.agent", "--help"]
try:
    runpy.run_module("heddle.agent", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print(json.dumps(sorted(name for name, module in sys.modules.items() if module is not None)))
"""

FORBIDDEN = ("heddle.translate", "heddle.api", "heddle.xds", "heddle.config", "heddle.local",
             "heddle.cli", "pydantic", "pydantic_core", "jsonschema", "fastjsonschema",
             "ruamel", "yaml", "typer", "click", "rich", "aiohttp", "httpx", "cryptography",
             "jwt", "ssl", "hashlib", "heddle.agent.ca_client", "heddle.ca.authority",
             "heddle.ca.service")


def agent_modules() -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    modules: list[str] = json.loads(out.stdout.splitlines()[-1])
    return modules


def test_the_agent_imports_no_translation_models_schemas_or_frameworks() -> None:
    modules = agent_modules()
    assert "heddle.agent.agent" in modules and "heddle.agent.sds" in modules
    loaded = sorted(m for m in modules
                    if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert loaded == []


def test_the_agent_loads_only_the_envoy_protos_sds_needs() -> None:
    envoy = {m for m in agent_modules() if m.startswith("envoy.") and m.endswith("_pb2")}
    assert "envoy.extensions.transport_sockets.tls.v3.secret_pb2" in envoy
    assert "envoy.service.discovery.v3.discovery_pb2" in envoy
    assert not {m for m in envoy if m.startswith(("envoy.config.listener", "envoy.config.route",
                                                  "envoy.config.cluster",
                                                  "envoy.extensions.filters"))}


def test_the_cli_agent_command_takes_the_agent_entry_points_options() -> None:
    out = subprocess.run([sys.executable, "-m", "heddle", "agent", "--help"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("usage: heddle agent")
    assert "--ca-address" in out.stdout
