"""Plain YAML scalars as the YAML 1.2 core schema reads them: `true`, `null`, `42`, `1.5`;
everything else (`yes`, `on`, `2001-12-14`, `0777`...) is a string, so a value means the
same wherever it is written."""

from __future__ import annotations

import math
import re
from typing import Any

from yaml.nodes import ScalarNode
from yaml.resolver import BaseResolver

NULL = "tag:yaml.org,2002:null"
BOOL = "tag:yaml.org,2002:bool"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
MERGE = "tag:yaml.org,2002:merge"

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_MERGE = re.compile(r"^<<$")


class CoreSchemaResolver(BaseResolver):
    """Tags plain scalars by the core schema (and `<<` as a merge key) as they are
    composed; quoted scalars stay strings."""

    yaml_implicit_resolvers: dict[str | None, list[tuple[str, re.Pattern[str]]]] = {}


for _tag, _pattern, _first in (
    (NULL, _NULL, ["~", "n", "N", ""]),
    (BOOL, _BOOL, list("tTfF")),
    (INT, _INT, list("-+0123456789")),
    (FLOAT, _FLOAT, list("-+.0123456789")),
    (MERGE, _MERGE, ["<"]),
):
    CoreSchemaResolver.add_implicit_resolver(_tag, _pattern, _first)  # "": the empty scalar


def scalar_value(node: ScalarNode) -> Any:
    """The Python value of a scalar node by its (resolved or explicit) tag."""
    text, tag = node.value, node.tag
    if tag == NULL and _NULL.match(text):
        return None
    if tag == BOOL and _BOOL.match(text):
        return text.lower() == "true"
    if tag == INT and _INT.match(text):
        return _int(text)
    if tag == FLOAT and (_FLOAT.match(text) or _INT.match(text)):
        return _float(text)
    return text  # !!str, an unknown tag, or an explicit tag its text does not fit


def _int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)


def _float(text: str) -> float:
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if lowered.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


def key_text(value: Any) -> str:
    """A mapping key as JSON (and so Kubernetes) writes it: `9000`, `true`, `null`."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)
