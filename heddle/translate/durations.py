"""Istio durations (Go syntax: `1.5s`, `100ms`, `1h30m`) as protobuf Durations."""

from __future__ import annotations

import re
from decimal import Decimal

from google.protobuf import duration_pb2

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_NANOS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
          "h": 3600 * 10**9}


def parse_duration(text: str) -> duration_pb2.Duration:
    """Validation has already accepted `text`; a malformed value here is a bug."""
    parts = list(_PART.finditer(text))
    if not parts or "".join(m.group(0) for m in parts) != text:
        raise ValueError(f"invalid duration {text!r}")
    nanos = int(sum(Decimal(m.group(1)) * _NANOS[m.group(2)] for m in parts))
    return duration_pb2.Duration(seconds=nanos // 10**9, nanos=nanos % 10**9)
