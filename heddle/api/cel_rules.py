"""The CRDs' `x-kubernetes-validations` rules, evaluated as written with a CEL runtime."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from functools import cache
from typing import Any

import cel

from heddle.api.problems import FieldProblem, PathKey


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _is_cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


# Kubernetes adds these library functions to CEL; the runtime lacks them.
_K8S_FUNCTIONS = {"isIP": _is_ip, "isCIDR": _is_cidr}


@cache
def _program(rule: str) -> Any:
    return cel.compile(rule)


def _unsupported(err: Exception) -> bool:
    return "Undefined variable or function" in str(err)


def _rules(schema: dict[str, Any], value: Any, path: PathKey) -> Iterator[
    tuple[dict[str, Any], Any, PathKey]
]:
    for rule in schema.get("x-kubernetes-validations", []):
        yield rule, value, path
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, child in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from _rules(sub, child, (*path, key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, child in enumerate(value):
            yield from _rules(schema["items"], child, (*path, i))


def _fix_for(rule: str) -> str:
    if "duration(" in rule:
        return "write a duration such as 500ms, 10s, 1m or 1h"
    if "65535" in rule:
        return "use a port number from 1 to 65535"
    return f"the CRD requires: {' '.join(rule.split())}"


def check_rules(schema: dict[str, Any], body: dict[str, Any]) -> list[FieldProblem]:
    """Every failing CEL rule of `schema` over `body` (defaults already applied)."""
    problems: list[FieldProblem] = []
    for rule, value, path in _rules(schema, body, ()):
        expression: str = rule["rule"]
        if "oldSelf" in expression:  # transition rules only apply to updates
            continue
        where = path
        field_path = rule.get("fieldPath", "")
        if field_path:
            where = (*path, *[p for p in field_path.strip(".").split(".") if p])
        message = rule.get("message") or f"failed rule: {expression}"
        try:
            ok = _program(expression).execute(
                cel.Context(variables={"self": value}, functions=_K8S_FUNCTIONS)
            )
        except Exception as err:
            if _unsupported(err):
                continue
            problems.append(FieldProblem(where, f"{message} (got {value!r})", _fix_for(expression)))
            continue
        if ok is not True:
            shown = f" (got {value!r})" if not isinstance(value, dict | list) else ""
            problems.append(FieldProblem(where, message + shown, _fix_for(expression)))
    return problems
