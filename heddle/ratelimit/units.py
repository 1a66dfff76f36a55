"""The time units of a limit, as Envoy's RLS proto numbers them, and their window lengths."""

from __future__ import annotations

from enum import IntEnum


class Unit(IntEnum):
    """`envoy.service.ratelimit.v3.RateLimitResponse.RateLimit.Unit` (same numbers)."""

    SECOND = 1
    MINUTE = 2
    HOUR = 3
    DAY = 4
    MONTH = 5
    YEAR = 6
    WEEK = 7

    @property
    def seconds(self) -> int:
        """The window length; a month is 30 days and a year 365, as envoyproxy/ratelimit
        counts them (fixed windows aligned to the Unix epoch, not to calendars)."""
        return _SECONDS[self]

    @classmethod
    def parse(cls, text: str) -> Unit | None:
        """A unit as the YAML spells it (any case); None when it names none."""
        return cls.__members__.get(text.upper())


_SECONDS = {Unit.SECOND: 1, Unit.MINUTE: 60, Unit.HOUR: 3600, Unit.DAY: 86_400,
            Unit.WEEK: 7 * 86_400, Unit.MONTH: 30 * 86_400, Unit.YEAR: 365 * 86_400}
