"""Kuadrant's RateLimitPolicy, checked before anything runs: every predicate and counter
must be CEL that Envoy can evaluate when it rate limits (heddle.api.kuadrant_cel names what it
knows), and every window one Heddle can count in (heddle.api.kuadrant_windows)."""

from __future__ import annotations

from typing import Any

from heddle.api.kuadrant_cel import syntax_error, unsupported
from heddle.api.kuadrant_windows import (
    MIN_LOCAL_MS,
    MODE_ANNOTATION,
    MODES,
    UNIT_WINDOWS,
    exact_unit,
    is_local,
    same_rate,
    window_ms,
)
from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import items, mapping

MAX_LIMIT = 2**32 - 1  # the rate-limit service's requests_per_unit, and a bucket's tokens


def check_rate_limit_policy(spec: dict[str, Any], annotations: dict[str, Any],
                            ) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    mode = annotations.get(MODE_ANNOTATION)
    if mode is not None and str(mode).lower() not in {m.lower() for m in MODES}:
        problems.append(FieldProblem(
            ("metadata", "annotations", MODE_ANNOTATION), f"unknown rate-limit mode {mode!r}",
            "write Global (the rate-limit service, shared by every proxy) or Local (a "
            "token bucket in each proxy)"))
    local = is_local(annotations)
    problems += _check_predicates(("spec", "when"), spec.get("when"))
    for block in ("defaults", "overrides"):
        if block in spec:
            problems += _check_predicates(("spec", block, "when"),
                                          mapping(spec[block]).get("when"))
            problems += _check_limits(("spec", block, "limits"),
                                      mapping(spec[block]).get("limits"), local)
    problems += _check_limits(("spec", "limits"), spec.get("limits"), local)
    return problems


def _check_limits(path: PathKey, limits: Any, local: bool) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for name, raw in mapping(limits).items():
        limit = mapping(raw)
        here = (*path, name)
        if not limit.get("rates"):
            problems.append(FieldProblem((*here, "rates"), "the limit has no rates",
                                         "add e.g. `rates: [{limit: 10, window: 1m}]`"))
        for i, rate in items(limit.get("rates")):
            problems += _check_rate((*here, "rates", i), mapping(rate), local)
        problems += _check_predicates((*here, "when"), limit.get("when"))
        for i, counter in items(limit.get("counters")):
            problems += _check_cel((*here, "counters", i, "expression"),
                                   mapping(counter).get("expression"))
    return problems


def _check_rate(path: PathKey, rate: dict[str, Any], local: bool) -> list[FieldProblem]:
    window, limit = rate.get("window"), rate.get("limit")
    if not isinstance(window, str) or not isinstance(limit, int):
        return []  # the schema says so
    problems = []
    if limit < 0 or limit > MAX_LIMIT:
        problems.append(FieldProblem((*path, "limit"), f"limit {limit} is out of range",
                                     f"write 0 (refuse every request) to {MAX_LIMIT}"))
    elif local and limit == 0:
        problems.append(FieldProblem(
            (*path, "limit"), "a proxy's token bucket holds at least 1 request",
            "write 1 or more, or count Global (the default) to refuse every request"))
    ms = window_ms(window)
    if local:
        if ms < MIN_LOCAL_MS:
            problems.append(FieldProblem(
                (*path, "window"), f"window {window} is shorter than a proxy's token bucket "
                f"refills ({MIN_LOCAL_MS}ms)", f"write a window of {MIN_LOCAL_MS}ms or more"))
    elif exact_unit(window) is None:
        rescaled = same_rate(limit, window)
        instead = (f"write `limit: {rescaled[0]}, window: {rescaled[1]}` (the same rate, "
                   "counted over the longer window), or " if rescaled else "")
        problems.append(FieldProblem(
            (*path, "window"), f"window {window} is not a unit the rate-limit service counts "
            f"in ({', '.join(UNIT_WINDOWS.values())})",
            f"{instead}count in each proxy's own token bucket, which takes any window: "
            f"annotate the policy {MODE_ANNOTATION}: Local"))
    return problems


def _check_predicates(path: PathKey, predicates: Any) -> list[FieldProblem]:
    return [p for i, item in items(predicates)
            for p in _check_cel((*path, i, "predicate"), mapping(item).get("predicate"))]


def _check_cel(path: PathKey, text: Any) -> list[FieldProblem]:
    if not isinstance(text, str):
        return []
    error = syntax_error(text)
    if error is not None:
        return [FieldProblem(path, f"invalid CEL {text!r}: {error}",
                             "write a CEL expression, e.g. request.headers['x-user-id']")]
    return [FieldProblem(path, f"{u.message} (in {text!r})", u.fix) for u in unsupported(text)]
