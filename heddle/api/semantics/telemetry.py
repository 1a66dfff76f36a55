"""Istio's rules for Telemetry (pkg/config/validation ValidateTelemetry) beyond its schema."""

from __future__ import annotations

from typing import Any

from heddle.api.diagnostics import Severity
from heddle.api.kuadrant_cel import syntax_error
from heddle.api.problems import FieldProblem
from heddle.api.semantics.common import items, mapping


def check_telemetry(spec: dict[str, Any]) -> list[FieldProblem]:
    """The CRD's own rules (one of selector or targetRefs, tag override values) are checked
    with the schema; these are the ones only Istio's validation states."""
    problems: list[FieldProblem] = []
    for i, item in items(spec.get("accessLogging")):
        expression = mapping(mapping(item).get("filter")).get("expression")
        if isinstance(expression, str):
            error = syntax_error(expression)
            if error:
                problems.append(FieldProblem(
                    ("spec", "accessLogging", i, "filter", "expression"),
                    f"must be a valid CEL expression: {error}",
                    "write a CEL condition on request/response attributes, e.g. "
                    "`response.code >= 400`"))
    tracing = items(spec.get("tracing"))
    if len(tracing) > 1:
        problems.append(FieldProblem(("spec", "tracing"), "multiple tracing is not supported",
                                     "write one tracing entry", Severity.WARNING))
    for i, item in tracing:
        if len(items(mapping(item).get("providers"))) > 1:
            problems.append(FieldProblem(
                ("spec", "tracing", i, "providers"), "multiple providers is not supported; "
                "the first is used", "name one provider", Severity.WARNING))
    return problems
