"""Durations as Istio's YAML carries them: protobuf JSON ("1.5s") or Go's ("1m30s")."""

from __future__ import annotations

import re

_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}


def nanoseconds(value: str) -> int | None:
    """A protobuf JSON duration ("1.5s") or a Go one ("1m30s"), in nanoseconds; None where
    it is neither."""
    text = value.strip()
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    if not text:
        return None
    total, pos = 0, 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            return None
        number, unit = match.groups()
        whole, _, fraction = number.partition(".")
        scale = _UNITS[unit]
        total += int(whole or 0) * scale + (int(fraction) * scale // 10 ** len(fraction)
                                            if fraction else 0)
        pos = match.end()
    return sign * total if pos == len(text) else None
