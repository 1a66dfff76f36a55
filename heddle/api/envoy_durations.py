"""Go-style durations in EnvoyFilter patch values ("500ms", "1m30s"), which istiod reads
and protobuf's JSON form does not (it wants "0.5s"): rewritten, field by field of the
message the value is, before the value is parsed."""

from __future__ import annotations

import re
from typing import Any

from heddle.api.go_durations import nanoseconds

_PROTO_JSON = re.compile(r"^-?\d+(\.\d{1,9})?s$")
DURATION = "google.protobuf.Duration"


def _as_proto_json(text: str) -> str:
    if _PROTO_JSON.match(text):
        return text
    ns = nanoseconds(text)
    if ns is None:
        return text  # left for the parser to name
    whole, fraction = divmod(abs(ns), 1_000_000_000)
    sign = "-" if ns < 0 else ""
    return f"{sign}{whole}.{fraction:09d}s".replace(".000000000s", "s")


def _field(descriptor: Any, key: str) -> Any:
    for field in descriptor.fields:
        if key in (field.name, field.json_name):
            return field
    return None


def _value(field: Any, value: Any, resolve: Any) -> Any:
    message = field.message_type
    if message is None:
        return value
    if message.full_name == DURATION and isinstance(value, str):
        return _as_proto_json(value)
    if isinstance(value, dict):
        return normalise_durations(value, message, resolve)
    return value


def normalise_durations(value: dict[str, Any], descriptor: Any, resolve: Any,
                        ) -> dict[str, Any]:
    """`value` with every Duration field as protobuf JSON. `descriptor`: the message's
    (protobuf's C and Python descriptors both serve); `resolve(type_url)` gives the
    descriptor an Any's `@type` names (None where unknown)."""
    if descriptor.full_name == "google.protobuf.Any" and isinstance(value.get("@type"), str):
        inner = resolve(value["@type"])
        return normalise_durations(value, inner, resolve) if inner is not None else value
    out: dict[str, Any] = {}
    for key, item in value.items():
        field = _field(descriptor, key)
        if field is None:
            out[key] = item
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            entry = field.message_type.fields_by_name["value"]
            out[key] = ({k: _value(entry, v, resolve) for k, v in item.items()}
                        if isinstance(item, dict) else item)
        elif field.is_repeated and isinstance(item, list):
            out[key] = [_value(field, v, resolve) for v in item]
        else:
            out[key] = _value(field, item, resolve)
    return out
