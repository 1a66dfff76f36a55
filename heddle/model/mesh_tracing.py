"""The mesh config's `defaultConfig.tracing`: the sampling percentage, custom tags and path
tag length every proxy gets where no Telemetry resource says otherwise (which provider
spans go to is `defaultProviders.tracing`, read with the other default providers).

Istio's defaults: 1 % of requests sampled (PILOT_TRACE_SAMPLING), a `sampling` of 0 read as
unset and one above 100 as 1. Istio reads ProxyConfig with protobuf's JSON rules, so both
`customTags` and `custom_tags` spellings are accepted. `enableTracing` only switches
Istio's legacy tracer of the proxy bootstrap, which Heddle does not have: it is not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from heddle.api.diagnostics import Diagnostic, ResourceRef, Severity, SourcePosition

DEFAULT_SAMPLING = 1.0  # percent: Istio's PILOT_TRACE_SAMPLING default
_FIELD = "data.mesh.defaultConfig.tracing"


class TagKind(StrEnum):
    LITERAL = "literal"
    ENVIRONMENT = "environment"
    HEADER = "header"


@dataclass(frozen=True)
class CustomTag:
    """A span tag: a literal value, an environment variable of the proxy, or a request
    header (`value` is the literal, the variable's name or the header's name)."""

    name: str
    kind: TagKind
    value: str
    default: str = ""


@dataclass(frozen=True)
class MeshTracing:
    sampling: float = DEFAULT_SAMPLING
    custom_tags: tuple[CustomTag, ...] = ()
    max_path_tag_length: int = 0


def _get(mapping: Mapping[str, Any], camel: str, snake: str) -> Any:
    return mapping.get(camel, mapping.get(snake))


def read_custom_tags(value: object, field: str) -> tuple[tuple[CustomTag, ...], list[str]]:
    """Tags keyed by name, each `{literal: {value}}`, `{environment: {name, defaultValue}}`
    or `{header: {name, defaultValue}}` (as both ProxyConfig and Telemetry write them),
    sorted by name as Istio sorts them; and what is wrong, one message per bad tag."""
    if value is None:
        return (), []
    if not isinstance(value, dict):
        return (), [f"{field} must be a mapping of tag name to its source"]
    tags: list[CustomTag] = []
    problems: list[str] = []
    for name, source in sorted(value.items()):
        kinds = [k for k in TagKind if isinstance(source, dict) and k.value in source]
        if len(kinds) != 1:
            problems.append(f"{field}.{name} must have exactly one of literal, environment, "
                            "header")
            continue
        body = source[kinds[0].value] or {}
        key = "value" if kinds[0] is TagKind.LITERAL else "name"
        if not isinstance(body, dict) or not isinstance(body.get(key), str) or not body[key]:
            problems.append(f"{field}.{name}.{kinds[0].value}.{key} must be a non-empty string")
            continue
        default = _get(body, "defaultValue", "default_value") or ""
        tags.append(CustomTag(str(name), kinds[0], body[key], str(default)))
    return tuple(tags), problems


def read_mesh_tracing(mesh: Mapping[str, Any], source: SourcePosition | None,
                      ref: ResourceRef) -> tuple[MeshTracing, tuple[Diagnostic, ...]]:
    """The tracing settings of the `mesh` key; a bad value is reported and its default used."""
    problems: list[Diagnostic] = []

    def problem(field: str, message: str, fix: str) -> None:
        problems.append(Diagnostic(Severity.ERROR, message, position=source, resource=ref,
                                   field=field, fix=fix))

    default_config = mesh.get("defaultConfig") or {}
    tracing = default_config.get("tracing") if isinstance(default_config, dict) else None
    if tracing is None:
        return MeshTracing(), tuple(problems)
    if not isinstance(tracing, dict):
        problem(_FIELD, "defaultConfig.tracing must be a mapping; defaults used",
                "write e.g. `tracing: {sampling: 10}`")
        return MeshTracing(), tuple(problems)
    sampling = tracing.get("sampling", 0)
    if isinstance(sampling, bool) or not isinstance(sampling, int | float) or sampling < 0:
        problem(f"{_FIELD}.sampling", f"sampling must be a percentage from 0 to 100, not "
                f"{sampling!r}; {DEFAULT_SAMPLING} is used", "write e.g. `sampling: 10`")
        sampling = 0
    # 0 means unset (Istio's rule: ProxyConfig cannot tell 0 from absent); over 100 means 1.
    rate = DEFAULT_SAMPLING if sampling == 0 or sampling > 100 else float(sampling)
    tags, tag_problems = read_custom_tags(_get(tracing, "customTags", "custom_tags"),
                                          f"{_FIELD}.customTags")
    for message in tag_problems:
        problem(f"{_FIELD}.customTags", message + "; the tag is left out",
                "write e.g. `customTags: {team: {literal: {value: payments}}}`")
    length = _get(tracing, "maxPathTagLength", "max_path_tag_length") or 0
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        problem(f"{_FIELD}.maxPathTagLength", "maxPathTagLength must be a positive integer; "
                "Envoy's default (256) is used", "write e.g. `maxPathTagLength: 256`")
        length = 0
    return MeshTracing(rate, tags, length), tuple(problems)
