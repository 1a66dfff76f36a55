"""Access logs in Istio's formats, from the mesh config or the Telemetry API, and accepted by
real Envoy (the CEL filter extension included)."""

from __future__ import annotations

from types import MappingProxyType

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.access_loggers.filters.cel.v3 import cel_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import ROOT

from heddle.api.diagnostics import SourcePosition
from heddle.api.loader import load_paths, load_text
from heddle.api.resource import UnmanagedObject
from heddle.model.mesh_config import MeshConfig
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.access_logs import (
    CEL_FILTER,
    HEDDLE_JSON_FIELDS,
    HEDDLE_TEXT_FIELDS,
    ISTIO_JSON_FORMAT,
    ISTIO_TEXT_FORMAT,
)
from heddle.translate.listeners import OUTBOUND_LISTENER
from heddle.translate.sidecar import LISTENER, sidecar_resources

FRONTEND = Proxy(ProxyType.SIDECAR, "frontend", "default", "127.0.10.2", "127.1.10.2",
                 (("app", "frontend"), ("version", "v1")), "frontend")
BACKEND = Proxy(ProxyType.SIDECAR, "backend", "default", "127.0.10.3", "127.1.10.3",
                (("app", "backend"), ("version", "v1")), "backend")
FILTERS = ("envoy.filters.network.http_connection_manager", "envoy.filters.network.tcp_proxy")


def snapshot(mesh: str | None = None, extra: str = "") -> MeshSnapshot:
    loaded = load_paths([ROOT / "examples" / "hello"])
    added = load_text(extra, "telemetry.yaml") if extra else None
    assert loaded.errors == [] and (added is None or added.errors == [])
    config = MeshConfig()
    if mesh is not None:
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "istio", "namespace": "istio-system"},
                "data": {"mesh": mesh}}
        config = MeshConfig.from_objects([UnmanagedObject(
            "v1", "ConfigMap", "istio-system", "istio", SourcePosition("mesh.yaml", 1, 1),
            MappingProxyType(body))])
        assert config.diagnostics == ()
    resources = [*loaded.resources, *(added.resources if added else [])]
    return MeshSnapshot.build(1, resources, mesh_config=config)


def logs_by_listener(snap: MeshSnapshot, proxy: Proxy,
                     ) -> dict[str, list[accesslog_pb2.AccessLog]]:
    """Listener name -> the access logs of every HTTP manager and TCP proxy in it (not the
    stats loggers that count Istio's metrics)."""
    found: dict[str, list[accesslog_pb2.AccessLog]] = {}
    for name, listener in sidecar_resources(snap, proxy).of(LISTENER).items():
        logs = found.setdefault(name, [])
        for chain in listener.filter_chains:  # type: ignore[attr-defined]
            for f in chain.filters:
                if f.name not in FILTERS:
                    continue
                config = hcm.HttpConnectionManager() if f.name == FILTERS[0] \
                    else tcp_proxy_pb2.TcpProxy()
                f.typed_config.Unpack(config)
                logs.extend(log for log in config.access_log
                            if log.name != "envoy.access_loggers.stats")
    return found


def file_log(log: accesslog_pb2.AccessLog) -> file_pb2.FileAccessLog:
    assert log.name == "envoy.access_loggers.file"
    config = file_pb2.FileAccessLog()
    log.typed_config.Unpack(config)
    return config


def test_by_default_every_listener_logs_istio_text_and_heddle_facts_to_stdout() -> None:
    by_listener = logs_by_listener(snapshot(), FRONTEND)
    assert set(by_listener) == {OUTBOUND_LISTENER, "127.0.10.2_8080"}
    for logs in by_listener.values():
        assert logs
        for log in logs:
            config = file_log(log)
            assert config.path == "/dev/stdout"
            text = config.log_format.text_format_source.inline_string
            assert text == f"{ISTIO_TEXT_FORMAT} {HEDDLE_TEXT_FIELDS}\n"


def test_istio_default_format_string_is_verbatim() -> None:
    assert ISTIO_TEXT_FORMAT.startswith(
        '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
        "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% ")
    assert ISTIO_TEXT_FORMAT.endswith(
        "%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%")
    assert "%RESPONSE_CODE%" in ISTIO_JSON_FORMAT.values() and len(ISTIO_JSON_FORMAT) == 24


def test_an_empty_access_log_file_turns_the_mesh_config_log_off() -> None:
    assert all(not logs for logs in logs_by_listener(snapshot('accessLogFile: ""'),
                                                     FRONTEND).values())


def test_json_encoding_writes_istios_keys_and_heddles() -> None:
    mesh = "accessLogFile: /tmp/heddle-access.log\naccessLogEncoding: JSON\n"
    for logs in logs_by_listener(snapshot(mesh), FRONTEND).values():
        config = file_log(logs[0])
        assert config.path == "/tmp/heddle-access.log"
        fields = MessageToDict(config.log_format.json_format)
        assert fields == {**ISTIO_JSON_FORMAT, **HEDDLE_JSON_FIELDS}
        assert not config.log_format.json_format_options.sort_properties


def test_a_users_format_is_taken_as_written_with_a_newline() -> None:
    text = logs_by_listener(snapshot("accessLogFormat: '%RESPONSE_CODE% %UPSTREAM_HOST%'"),
                            FRONTEND)[OUTBOUND_LISTENER][0]
    assert file_log(text).log_format.text_format_source.inline_string == \
        "%RESPONSE_CODE% %UPSTREAM_HOST%\n"
    mesh = "accessLogEncoding: JSON\naccessLogFormat: '{\"code\": \"%RESPONSE_CODE%\"}'"
    encoded = logs_by_listener(snapshot(mesh), FRONTEND)[OUTBOUND_LISTENER][0]
    assert MessageToDict(file_log(encoded).log_format.json_format) == {"code": "%RESPONSE_CODE%"}


QUIET_FRONTEND = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: quiet-frontend, namespace: default}
spec:
  selector: {matchLabels: {app: frontend}}
  accessLogging:
  - providers: [{name: envoy}]
    disabled: true
"""


def test_a_telemetry_resource_turns_one_workloads_logs_off_and_no_others() -> None:
    snap = snapshot(extra=QUIET_FRONTEND)
    assert all(not logs for logs in logs_by_listener(snap, FRONTEND).values())
    assert all(logs for logs in logs_by_listener(snap, BACKEND).values())


def test_server_mode_logs_only_inbound() -> None:
    snap = snapshot(extra=QUIET_FRONTEND.replace("disabled: true",
                                                 "disabled: true\n    match: {mode: SERVER}"))
    by_listener = logs_by_listener(snap, FRONTEND)
    assert by_listener[OUTBOUND_LISTENER] and not by_listener["127.0.10.2_8080"]


ERRORS_AS_JSON = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging:
  - providers: [{name: errors-json}]
    filter: {expression: "response.code >= 400"}
"""
JSON_PROVIDER = """
extensionProviders:
- name: errors-json
  envoyFileAccessLog:
    path: /dev/stdout
    logFormat:
      labels: {code: "%RESPONSE_CODE%", flags: "%RESPONSE_FLAGS%"}
"""


def test_a_cel_filter_and_a_json_provider_are_translated_and_real_envoy_accepts_them() -> None:
    snap = snapshot(JSON_PROVIDER, ERRORS_AS_JSON)
    logs = [log for found in logs_by_listener(snap, FRONTEND).values() for log in found]
    assert len(logs) >= 2  # the outbound proxy and each inbound chain: one provider's log each
    for log in logs:
        assert MessageToDict(file_log(log).log_format.json_format) == {
            "code": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%"}
        # The provider's filter, beside the one that leaves out connection-opening logs.
        (cel,) = [f for f in log.filter.and_filter.filters if f.HasField("extension_filter")]
        assert cel.extension_filter.name == CEL_FILTER
        expression = cel_pb2.ExpressionFilter()
        cel.extension_filter.typed_config.Unpack(expression)
        assert expression.expression == "response.code >= 400"
    out = validate_bootstrap(sidecar_bootstrap(sidecar_resources(snap, FRONTEND)))
    assert out.returncode == 0, out.stdout + out.stderr
