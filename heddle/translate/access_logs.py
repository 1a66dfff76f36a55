"""Access logs for one side of a proxy, as Istio writes them.

Where the Telemetry API configures access logging (see heddle.model.telemetry), each enabled
`envoyFileAccessLog` provider becomes a file access log, its `filter.expression` Envoy's CEL
access-log filter. Elsewhere the mesh config decides, as Istio's fallback does:
`accessLogFile` (Heddle defaults it to /dev/stdout; "" turns logging off),
`accessLogEncoding` TEXT or JSON, `accessLogFormat`.

Without a format of the user's, lines are Istio's default text format, or its JSON keys,
followed by what Heddle adds so each line explains itself: the peers' SPIFFE identities, the
dry-run authorization decisions and the rate-limit rule that refused (or would have refused)
the request. The deciding authorization policy is in Istio's own `response_code_details`
(`rbac_access_denied_matched_policy[ns[NS]-policy[NAME]-rule[N]]`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import substitution_format_string_pb2 as sfs
from envoy.extensions.access_loggers.file.v3 import file_pb2
from envoy.extensions.access_loggers.filters.cel.v3 import cel_pb2
from google.protobuf import any_pb2
from google.protobuf.message import Message

from heddle.model.mesh_telemetry import DEV_STDOUT, JSON, AccessLogSettings
from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.model.telemetry import CLIENT, SERVER, LoggingConfig, access_logging
from heddle.translate.metrics.loggers import skip_opening_logs

__all__ = ["CLIENT", "HEDDLE_JSON_FIELDS", "HEDDLE_TEXT_FIELDS", "ISTIO_JSON_FORMAT",
           "ISTIO_TEXT_FORMAT", "SERVER", "access_logs"]

FILE_ACCESS_LOG = "envoy.access_loggers.file"
CEL_FILTER = "envoy.access_loggers.extension_filters.cel"

# Istio's default text format (pilot/pkg/model EnvoyTextLogFormat), without its newline.
ISTIO_TEXT_FORMAT = (
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% "
    "%CONNECTION_TERMINATION_DETAILS% \"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" "
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
    "\"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" "
    "\"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% "
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%"
)

# Istio's default JSON keys (EnvoyJSONLogFormatIstio).
ISTIO_JSON_FORMAT: Mapping[str, str] = {
    "start_time": "%START_TIME%",
    "route_name": "%ROUTE_NAME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
}

_RBAC = "envoy.filters.http.rbac"
_RATELIMIT = "envoy.filters.http.ratelimit"
# What Heddle adds, as key -> Envoy command: the same facts in text (key=value) and JSON.
_HEDDLE_FIELDS: Mapping[str, str] = {
    # The peers' identities (SPIFFE ids) where mTLS carried them.
    "downstream_peer": "%DOWNSTREAM_PEER_URI_SAN%",
    "upstream_peer": "%UPSTREAM_PEER_URI_SAN%",
    # Dry-run authorization policies: the rule that would have decided, and the decision.
    "dry_run_deny": f"%DYNAMIC_METADATA({_RBAC}:istio_dry_run_deny_shadow_effective_policy_id)%"
                    f":%DYNAMIC_METADATA({_RBAC}:istio_dry_run_deny_shadow_engine_result)%",
    "dry_run_allow": f"%DYNAMIC_METADATA({_RBAC}:istio_dry_run_allow_shadow_effective_policy_id)%"
                     f":%DYNAMIC_METADATA({_RBAC}:istio_dry_run_allow_shadow_engine_result)%",
    # A 429's rule: the global service's descriptor, or the route's local rule; shadow-mode
    # rules name what they would have refused.
    "ratelimit": f"%DYNAMIC_METADATA({_RATELIMIT}:limited_by)%:%RESP(X-HEDDLE-RATELIMIT)%",
    "shadow_ratelimit": f"%DYNAMIC_METADATA({_RATELIMIT}:shadow_limited_by)%"
                        ":%REQ(X-HEDDLE-RATELIMIT-SHADOW)%",
}
HEDDLE_TEXT_FIELDS = " ".join(f"{key}={command}" for key, command in _HEDDLE_FIELDS.items())
HEDDLE_JSON_FIELDS: Mapping[str, str] = _HEDDLE_FIELDS
DEFAULT_TEXT_FORMAT = f"{ISTIO_TEXT_FORMAT} {HEDDLE_TEXT_FIELDS}\n"
DEFAULT_JSON_FORMAT: Mapping[str, str] = {**ISTIO_JSON_FORMAT, **HEDDLE_JSON_FIELDS}


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _text(format_string: str, omit_empty: bool = False) -> sfs.SubstitutionFormatString:
    """A text format; Istio ends every format with a newline if it has none."""
    text = format_string or DEFAULT_TEXT_FORMAT
    if not text.endswith("\n"):
        text += "\n"
    found = sfs.SubstitutionFormatString(omit_empty_values=omit_empty)
    found.text_format_source.inline_string = text
    return found


def _json(fields: Mapping[str, Any] | None, omit_empty: bool = False,
          ) -> sfs.SubstitutionFormatString:
    """A JSON format (a Struct: Envoy writes its keys in its own order, as for Istio)."""
    found = sfs.SubstitutionFormatString(omit_empty_values=omit_empty)
    found.json_format.update(dict(fields) if fields else dict(DEFAULT_JSON_FORMAT))
    found.json_format_options.sort_properties = False
    return found


def _file_log(path: str, log_format: sfs.SubstitutionFormatString,
              filter_: accesslog_pb2.AccessLogFilter | None = None) -> accesslog_pb2.AccessLog:
    logger = file_pb2.FileAccessLog(path=path or DEV_STDOUT, log_format=log_format)
    log = accesslog_pb2.AccessLog(name=FILE_ACCESS_LOG, typed_config=_pack(logger))
    # Never the logs flushed as a connection opens: those are there to count opened
    # connections (Istio's TCP metrics), not to be written.
    if filter_ is None:
        log.filter.CopyFrom(skip_opening_logs())
    else:
        log.filter.and_filter.filters.extend([skip_opening_logs(), filter_])
    return log


def _mesh_format(settings: AccessLogSettings) -> sfs.SubstitutionFormatString:
    if settings.encoding == JSON:
        # A format that does not parse was reported with the mesh config; its keys fall back.
        fields = json.loads(settings.format) if settings.format else None
        return _json(fields if isinstance(fields, dict) else None)
    return _text(settings.format)


def _cel(expression: str) -> accesslog_pb2.AccessLogFilter:
    found = accesslog_pb2.AccessLogFilter()
    found.extension_filter.name = CEL_FILTER
    found.extension_filter.typed_config.Pack(cel_pb2.ExpressionFilter(expression=expression))
    return found


def _from_provider(config: LoggingConfig, mesh: AccessLogSettings,
                   ) -> accesslog_pb2.AccessLog | None:
    """An `envoyFileAccessLog` provider's log; the gRPC and OpenTelemetry log services need
    a collector cluster Heddle does not build yet, and are left out."""
    if config.kind != "envoyFileAccessLog":
        return None
    spec = config.config.get("envoyFileAccessLog") or {}
    path = str(spec.get("path") or DEV_STDOUT)
    omit = bool(spec.get("omitEmptyValues"))
    log_format = spec.get("logFormat") or {}
    filter_ = _cel(config.filter) if config.filter else None
    if config.provider == "envoy" and not log_format and not omit:
        # Istio's built-in provider takes its format from the mesh config.
        return _file_log(path, _mesh_format(mesh), filter_)
    if "labels" in log_format:
        labels = log_format.get("labels")
        return _file_log(path, _json(labels if isinstance(labels, dict) else None, omit),
                         filter_)
    return _file_log(path, _text(str(log_format.get("text") or ""), omit), filter_)


def access_logs(snapshot: MeshSnapshot, proxy: Proxy, mode: str,
                ) -> list[accesslog_pb2.AccessLog]:
    """The access logs of one side of `proxy`: `CLIENT` (outbound listeners, gateways) or
    `SERVER` (inbound listeners), for an HTTP connection manager or a TCP proxy alike."""
    resolved = access_logging(snapshot, proxy, mode)
    mesh = snapshot.mesh_config.access_log
    if resolved.uses_mesh_config:
        return [_file_log(mesh.file, _mesh_format(mesh))] if mesh.file else []
    return [log for config in resolved.enabled
            if (log := _from_provider(config, mesh)) is not None]
