"""Kuadrant's limit windows (Go durations such as `10s`, `1h30m`, `500ms`) and how Heddle
counts them: the rate-limit service (Global, the default: Kuadrant's Limitador is shared by
every gateway replica too) counts in envoyproxy/ratelimit's units only, so a Global window
must be exactly one; a proxy's own token bucket (the annotation `heddle.dev/rate-limit-mode:
Local`) refills at any interval from 50ms."""

from __future__ import annotations

import re
from collections.abc import Mapping

MODE_ANNOTATION = "heddle.dev/rate-limit-mode"
MODES = ("Global", "Local")
# envoyproxy/ratelimit's units, as heddle.model.rate_limits.UNIT_SECONDS has them, in ms.
UNIT_MS = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000,
           "WEEK": 604_800_000, "MONTH": 2_592_000_000, "YEAR": 31_536_000_000}
UNIT_WINDOWS = {"SECOND": "1s", "MINUTE": "1m", "HOUR": "1h", "DAY": "24h", "WEEK": "168h",
                "MONTH": "720h", "YEAR": "8760h"}
MIN_LOCAL_MS = 50  # Envoy's least token-bucket fill interval
_PART = re.compile(r"(\d+)(ms|h|m|s)")
_PART_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


def window_ms(window: str) -> int:
    return sum(int(n) * _PART_MS[unit] for n, unit in _PART.findall(window))


def exact_unit(window: str) -> str | None:
    """The unit a window is exactly, if it is one."""
    ms = window_ms(window)
    return next((unit for unit, length in UNIT_MS.items() if length == ms), None)


def is_local(annotations: Mapping[str, object]) -> bool:
    return str(annotations.get(MODE_ANNOTATION, "")).lower() == "local"


def same_rate(limit: int, window: str) -> tuple[int, str] | None:
    """The same rate over the shortest unit the window divides: 5 per 10s is 30 per 1m."""
    ms = window_ms(window)
    for unit, length in UNIT_MS.items():
        if ms and length >= ms and length % ms == 0:
            return limit * (length // ms), UNIT_WINDOWS[unit]
    return None
