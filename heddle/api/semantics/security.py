"""Istio's rule for the `istio.io/dry-run` annotation, on every Istio kind."""

from __future__ import annotations

from typing import Any

from heddle.api.problems import FieldProblem, PathKey

DRY_RUN_ANNOTATION = "istio.io/dry-run"
# Go's strconv.ParseBool, with which Istio reads the annotation (and validates it).
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False,
             "False": False}


def parse_go_bool(value: str) -> bool | None:
    """True or False as Go's strconv.ParseBool reads `value`; None where it refuses it."""
    return _GO_BOOLS.get(value)


def check_dry_run_annotation(group: str, kind: str, spec: dict[str, Any],
                             annotations: dict[str, Any]) -> list[FieldProblem]:
    """Istio's checkDryRunAnnotation, for every Istio kind: only an AuthorizationPolicy may
    carry `istio.io/dry-run`, only with action ALLOW or DENY, and only a boolean value."""
    if DRY_RUN_ANNOTATION not in annotations:
        return []
    path: PathKey = ("metadata", "annotations", DRY_RUN_ANNOTATION)
    if (group, kind) != ("security.istio.io", "AuthorizationPolicy"):
        return [FieldProblem(path, f"{kind} does not support the annotation "
                                   f"{DRY_RUN_ANNOTATION}",
                             "remove the annotation: only an AuthorizationPolicy has a "
                             "dry-run mode")]
    action = spec.get("action", "ALLOW")
    if action not in ("ALLOW", "DENY"):
        return [FieldProblem(path, f"{DRY_RUN_ANNOTATION} supports only action ALLOW or DENY, "
                                   f"not {action}",
                             "remove the annotation, or dry-run an ALLOW or DENY policy")]
    value = annotations[DRY_RUN_ANNOTATION]
    if not isinstance(value, str) or parse_go_bool(value) is None:
        return [FieldProblem(path, f"invalid {DRY_RUN_ANNOTATION} value {value!r}",
                             'write "true" or "false"')]
    return []
