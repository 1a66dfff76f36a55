"""The project's environment has the real Envoy binary and Envoy's protobufs side by side."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def test_envoy_binary_runs_from_the_environment() -> None:
    envoy = Path(sys.executable).with_name("envoy")
    assert envoy.exists() or shutil.which("envoy")
    out = subprocess.run([str(envoy), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "version:" in out.stdout


def test_envoy_protos_import_beside_the_binary_package() -> None:
    from envoy.config.cluster.v3 import cluster_pb2
    from envoy.config.listener.v3 import listener_pb2

    cluster = cluster_pb2.Cluster(name="outbound|9080||reviews.default.svc.cluster.local")
    assert listener_pb2.Listener(name="virtualOutbound").name == "virtualOutbound"
    assert cluster.name.startswith("outbound|9080")


def test_cli_entry_point_is_installed() -> None:
    heddle = Path(sys.executable).with_name("heddle")
    out = subprocess.run([str(heddle), "version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("heddle ")
