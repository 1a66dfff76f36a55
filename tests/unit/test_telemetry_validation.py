"""Bad Telemetry resources and access-log mesh settings are reported with the resource, the
field and the fix; a bad mesh setting keeps its default."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

from heddle.api.diagnostics import SourcePosition
from heddle.api.loader import load_text
from heddle.api.resource import UnmanagedObject
from heddle.model.mesh_config import MeshConfig
from heddle.model.mesh_telemetry import DEV_STDOUT, TEXT

HEDDLE = str(Path(sys.executable).with_name("heddle"))


def mesh_config(mesh: str) -> MeshConfig:
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system"}, "data": {"mesh": mesh}}
    return MeshConfig.from_objects([UnmanagedObject(
        "v1", "ConfigMap", "istio-system", "istio", SourcePosition("mesh.yaml", 1, 1),
        MappingProxyType(body))])


def test_mesh_defaults_log_istio_text_to_stdout_and_count_metrics_with_prometheus() -> None:
    for config in (MeshConfig(), mesh_config("outboundTrafficPolicy: {mode: ALLOW_ANY}")):
        assert (config.access_log.file, config.access_log.encoding) == (DEV_STDOUT, TEXT)
        assert config.default_providers.metrics == ("prometheus",)
    assert mesh_config('accessLogFile: ""').access_log.file == ""
    assert mesh_config("defaultProviders: {accessLogging: [envoy]}").default_providers.metrics \
        == ()


def test_an_unknown_encoding_names_the_field_and_the_choices() -> None:
    config = mesh_config("accessLogEncoding: JSN")
    [problem] = config.diagnostics
    assert problem.field == "data.mesh.accessLogEncoding"
    assert "unknown encoding 'JSN'" in problem.message and "did you mean JSON?" in problem.fix
    assert config.access_log.encoding == TEXT


def test_a_json_format_that_is_not_a_json_object_is_reported_and_istios_keys_used() -> None:
    config = mesh_config("accessLogEncoding: JSON\naccessLogFormat: '%RESPONSE_CODE%'")
    [problem] = config.diagnostics
    assert problem.field == "data.mesh.accessLogFormat" and "JSON object" in problem.message
    assert config.access_log.format == ""


def test_default_providers_must_be_lists_of_names() -> None:
    [problem] = mesh_config("defaultProviders: {accessLogging: envoy}").diagnostics
    assert problem.field == "data.mesh.defaultProviders.accessLogging"
    assert "[NAME]" in problem.fix


def test_a_filter_that_is_not_cel_is_an_error_at_its_field() -> None:
    loaded = load_text("""apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: errors, namespace: default}
spec:
  accessLogging:
  - providers: [{name: envoy}]
    filter: {expression: "response.code >= ("}
""", "telemetry.yaml")
    [error] = loaded.errors
    assert str(error.resource) == "Telemetry default/errors"
    assert error.field == "spec.accessLogging[0].filter.expression"
    assert "must be a valid CEL expression" in error.message
    assert "response.code >= 400" in error.fix


def test_heddle_validate_warns_of_a_provider_the_mesh_config_lacks(
        write_yaml: Callable[..., Path]) -> None:
    path = write_yaml("""
        apiVersion: telemetry.istio.io/v1
        kind: Telemetry
        metadata: {name: logs, namespace: istio-system}
        spec:
          accessLogging:
          - providers: [{name: envoi}]
        """)
    out = subprocess.run([HEDDLE, "validate", "-f", str(path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr  # Istio ignores it: a warning, not an error
    assert "spec.accessLogging[0].providers[0].name: no extension provider 'envoi'" in out.stdout
    assert 'did you mean "envoy"?' in out.stdout
    assert "1 warnings" in out.stdout
