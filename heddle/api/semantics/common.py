"""Checks shared by several kinds: RE2 regexes and CIDRs.

Durations are checked by the CRDs' own CEL rules (`duration(self) >= duration('1ms')`)."""

from __future__ import annotations

import ipaddress
from typing import Any

import re2

from heddle.api.problems import FieldProblem, PathKey


def check_regex(path: PathKey, pattern: Any) -> list[FieldProblem]:
    """Envoy compiles these with RE2, which lacks lookaround and backreferences."""
    if not isinstance(pattern, str):
        return []
    try:
        re2.compile(pattern)
    except Exception as err:
        detail = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else err
        return [FieldProblem(path, f"invalid RE2 regex {pattern!r}: {detail}",
                             "RE2 has no lookahead, lookbehind or backreferences")]
    return []


def check_cidr(path: PathKey, value: Any) -> list[FieldProblem]:
    if not isinstance(value, str):
        return []
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return [FieldProblem(path, f"invalid IP address or CIDR {value!r}",
                             "write an address like 10.0.0.1 or a range like 10.0.0.0/16")]
    return []


def items(value: Any) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list) else []


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
