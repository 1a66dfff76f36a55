"""The mesh config's telemetry settings: the legacy access log (`accessLogFile`,
`accessLogEncoding`, `accessLogFormat`), `defaultProviders`, and the extension providers
Istio has built in (`envoy`, `prometheus`, `stackdriver`), which a user's provider of the
same name replaces.

Heddle's one departure from Istio's defaults: `accessLogFile` is `/dev/stdout` when the mesh
config does not set it (Istio's demo profile), so a local mesh logs every request as Heddle
always has; `accessLogFile: ""` turns the legacy log off, as in Istio.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from heddle.api.diagnostics import Diagnostic, ResourceRef, Severity, SourcePosition

DEV_STDOUT = "/dev/stdout"
DEFAULT_ACCESS_LOG_FILE = DEV_STDOUT
TEXT = "TEXT"
JSON = "JSON"
ENCODINGS = (TEXT, JSON)

# The providers every Istio mesh config has (pkg/config/mesh DefaultMeshConfig).
BUILTIN_PROVIDERS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "prometheus": MappingProxyType({"name": "prometheus", "prometheus": {}}),
    "stackdriver": MappingProxyType({"name": "stackdriver", "stackdriver": {}}),
    "envoy": MappingProxyType({"name": "envoy", "envoyFileAccessLog": {"path": DEV_STDOUT}}),
})


@dataclass(frozen=True)
class DefaultProviders:
    """`defaultProviders`: the providers used where no Telemetry resource names any. Without
    the key, what Istio's install writes: metrics from `prometheus`, nothing else."""

    access_logging: tuple[str, ...] = ()
    tracing: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ("prometheus",)


@dataclass(frozen=True)
class AccessLogSettings:
    """The legacy mesh-wide access log, used where no Telemetry resource (and no default
    provider) configures access logging. `file` "" means off."""

    file: str = DEFAULT_ACCESS_LOG_FILE
    encoding: str = TEXT
    # TEXT: an Envoy format string; JSON: a JSON object of key -> format string. "" means
    # Istio's default format (text or JSON keys).
    format: str = ""


def find_provider(providers: Mapping[str, Mapping[str, Any]], name: str,
                  ) -> Mapping[str, Any] | None:
    """The extension provider called `name` (case-insensitive, as Istio compares them),
    the user's first, then Istio's built-in ones."""
    for table in (providers, BUILTIN_PROVIDERS):
        for known, body in table.items():
            if known.lower() == name.lower():
                return body
    return None


def _names(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(v) for v in value if isinstance(v, str) and v)
    return ()


def read_telemetry(mesh: Mapping[str, Any], source: SourcePosition | None, ref: ResourceRef,
                   ) -> tuple[AccessLogSettings, DefaultProviders, tuple[Diagnostic, ...]]:
    """The settings the `mesh` key of the mesh ConfigMap gives; a bad value is reported (the
    field and the fix) and its default used."""
    problems: list[Diagnostic] = []

    def problem(field: str, message: str, fix: str) -> None:
        problems.append(Diagnostic(Severity.ERROR, message, position=source, resource=ref,
                                   field=f"data.mesh.{field}", fix=fix))

    file = mesh.get("accessLogFile", DEFAULT_ACCESS_LOG_FILE)
    if file is None:
        file = DEFAULT_ACCESS_LOG_FILE
    if not isinstance(file, str):
        problem("accessLogFile", f"must be a path, not {file!r}; {DEFAULT_ACCESS_LOG_FILE} is "
                "used", "write a path such as `accessLogFile: /dev/stdout`, or \"\" for none")
        file = DEFAULT_ACCESS_LOG_FILE
    encoding = mesh.get("accessLogEncoding") or TEXT
    if encoding not in ENCODINGS:
        close = difflib.get_close_matches(str(encoding).upper(), ENCODINGS, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        problem("accessLogEncoding", f"unknown encoding {encoding!r}; TEXT is used",
                f"{hint}use TEXT or JSON")
        encoding = TEXT
    log_format = mesh.get("accessLogFormat") or ""
    if not isinstance(log_format, str):
        problem("accessLogFormat", "must be a string; Istio's default format is used",
                "quote the format: `accessLogFormat: '[%START_TIME%] %RESPONSE_CODE%'`")
        log_format = ""
    if encoding == JSON and log_format and _json_object_error(log_format):
        problem("accessLogFormat", "with accessLogEncoding JSON the format must be a JSON "
                f"object of strings ({_json_object_error(log_format)}); Istio's JSON keys are "
                "used", "write e.g. `accessLogFormat: '{\"code\": \"%RESPONSE_CODE%\"}'`")
        log_format = ""

    if "defaultProviders" not in mesh:
        return (AccessLogSettings(file, str(encoding), log_format), DefaultProviders(),
                tuple(problems))
    defaults = mesh.get("defaultProviders") or {}
    if not isinstance(defaults, dict):
        problem("defaultProviders", "must be a mapping; none are used",
                "write `defaultProviders: {accessLogging: [envoy]}`")
        defaults = {}
    for key in ("accessLogging", "tracing", "metrics"):
        value = defaults.get(key)
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) for v in value)):
            problem(f"defaultProviders.{key}", "must be a list of provider names",
                    f"write `{key}: [NAME]` with names from extensionProviders")
    return (AccessLogSettings(file, str(encoding), log_format),
            DefaultProviders(_names(defaults.get("accessLogging")),
                             _names(defaults.get("tracing")), _names(defaults.get("metrics"))),
            tuple(problems))


def _json_object_error(text: str) -> str | None:
    try:
        parsed = json.loads(text)
    except ValueError as err:
        return f"not JSON: {err}"
    if not isinstance(parsed, dict) or not parsed:
        return "not a non-empty JSON object"
    return None
