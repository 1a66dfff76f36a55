"""Durations as Istio's validation reads them: at least 1ms, and whole milliseconds."""

from __future__ import annotations

from typing import Any

from heddle.api.go_durations import nanoseconds
from heddle.api.problems import FieldProblem, PathKey


def duration_problems(path: PathKey, value: Any) -> list[FieldProblem]:
    if not isinstance(value, str):
        return []
    ns = nanoseconds(value)
    if ns is None:
        return [FieldProblem(path, f"invalid duration {value!r}", 'write e.g. "1s" or "250ms"')]
    if ns < 1_000_000:
        return [FieldProblem(path, f"duration {value} must be at least 1ms",
                             "use a duration of 1ms or more")]
    if ns % 1_000_000:
        return [FieldProblem(path, f"duration {value} is finer than a millisecond",
                             "round it to whole milliseconds")]
    return []
