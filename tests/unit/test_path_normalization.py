"""meshConfig.pathNormalization: read from ConfigMap istio-system/istio, mapped onto every HTTP
connection manager of a sidecar as Istio maps it, and accepted by real Envoy."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import pytest
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from test_translate_clusters import ROOT

from heddle.api.diagnostics import SourcePosition
from heddle.api.loader import load_paths
from heddle.api.resource import UnmanagedObject
from heddle.model.mesh_config import MeshConfig
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.path_normalization import apply_path_normalization
from heddle.translate.sidecar import LISTENER, sidecar_resources

BACKEND = Proxy(ProxyType.SIDECAR, "backend-1", "default", "127.0.10.3", "127.255.10.3",
                (("app", "backend"), ("version", "v1")), "backend")
HEDDLE = str(Path(sys.executable).with_name("heddle"))
Manager = hcm.HttpConnectionManager


def mesh_config(mesh: str) -> MeshConfig:
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system"},
            "data": {"mesh": mesh}}
    return MeshConfig.from_objects([UnmanagedObject(
        "v1", "ConfigMap", "istio-system", "istio", SourcePosition("mesh.yaml", 1, 1),
        MappingProxyType(body))])


def settings(manager: hcm.HttpConnectionManager) -> tuple[bool, bool, int]:
    return (manager.normalize_path.value, manager.merge_slashes,
            manager.path_with_escaped_slashes_action)


# Istio's listener builder (buildHTTPConnectionManager): mode -> normalize_path,
# merge_slashes, path_with_escaped_slashes_action.
ISTIO_MAPPING = {
    "NONE": (False, False, Manager.KEEP_UNCHANGED),
    "BASE": (True, False, Manager.KEEP_UNCHANGED),
    "DEFAULT": (True, False, Manager.KEEP_UNCHANGED),
    "MERGE_SLASHES": (True, True, Manager.KEEP_UNCHANGED),
    "DECODE_AND_MERGE_SLASHES": (True, True, Manager.UNESCAPE_AND_FORWARD),
}


@pytest.mark.parametrize("mode", sorted(ISTIO_MAPPING))
def test_each_mode_sets_the_connection_manager_as_istio_does(mode: str) -> None:
    config = mesh_config(f"pathNormalization:\n  normalization: {mode}\n")
    assert config.diagnostics == ()
    assert settings(apply_path_normalization(Manager(), config)) == ISTIO_MAPPING[mode]


@pytest.mark.parametrize("mesh", ["", "outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
                                  "pathNormalization: {}\n"])
def test_without_a_mode_paths_are_normalized_as_base(mesh: str) -> None:
    for config in (mesh_config(mesh), MeshConfig(), MeshConfig.from_objects([])):
        assert config.path_normalization == "BASE"
        assert settings(apply_path_normalization(Manager(), config)) == ISTIO_MAPPING["BASE"]


def test_an_unknown_mode_is_reported_where_it_is_written_and_keeps_base() -> None:
    config = mesh_config("pathNormalization:\n  normalization: MERGE_SLASH\n")
    assert config.path_normalization == "BASE"  # a typo never turns normalization off
    [problem] = config.diagnostics
    assert problem.is_error
    assert str(problem).startswith(
        "mesh.yaml:1:1: error: ConfigMap istio-system/istio: "
        "data.mesh.pathNormalization.normalization: unknown path normalization 'MERGE_SLASH'")
    assert "did you mean MERGE_SLASHES?" in problem.fix


def test_a_mode_given_without_its_mapping_is_reported() -> None:
    config = mesh_config("pathNormalization: NONE\n")
    assert config.path_normalization == "BASE"
    assert "must be a mapping" in config.diagnostics[0].message
    assert "normalization: BASE" in config.diagnostics[0].fix


def snapshot(mesh: str | None) -> MeshSnapshot:
    result = load_paths([ROOT / "examples" / "hello", ROOT / "tests" / "golden" / "authz"])
    assert result.errors == []
    config = mesh_config(mesh) if mesh is not None else MeshConfig()
    return MeshSnapshot.build(1, result.resources, mesh_config=config)


def connection_managers(snap: MeshSnapshot) -> list[hcm.HttpConnectionManager]:
    found = []
    for listener in sidecar_resources(snap, BACKEND).of(LISTENER).values():
        for chain in listener.filter_chains:  # type: ignore[attr-defined]
            for filter_ in chain.filters:
                manager = Manager()
                if filter_.typed_config.Unpack(manager):
                    found.append(manager)
    return found


@pytest.mark.parametrize("mode", ["NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"])
def test_every_connection_manager_of_a_sidecar_normalizes_and_envoy_accepts_it(
        mode: str) -> None:
    snap = snapshot(f"pathNormalization:\n  normalization: {mode}\n")
    managers = connection_managers(snap)
    # The outbound HTTP proxy, and the mTLS and plaintext chains of the inbound port.
    assert [m.stat_prefix for m in managers] == ["outbound_http_proxy", "inbound_9090",
                                                 "inbound_9090"]
    assert {settings(m) for m in managers} == {ISTIO_MAPPING[mode]}
    out = validate_bootstrap(sidecar_bootstrap(sidecar_resources(snap, BACKEND)))
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_bad_mode_does_not_stop_translation() -> None:
    snap = snapshot("pathNormalization:\n  normalization: 7\n")
    assert {settings(m) for m in connection_managers(snap)} == {ISTIO_MAPPING["BASE"]}


def test_heddle_validate_fails_on_an_unknown_mode(write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("""
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: istio, namespace: istio-system}
        data:
          mesh: |
            pathNormalization:
              normalization: DECODE_AND_MERGE
        """)
    out = subprocess.run([HEDDLE, "validate", "-f", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1
    assert "unknown path normalization 'DECODE_AND_MERGE'" in out.stderr
    assert "1 errors" in out.stdout
