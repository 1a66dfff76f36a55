"""Structural validation of a resource body against its CRD's OpenAPI schema."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from heddle.api.compiled_schemas import CompiledSchemas
from heddle.api.kinds import KindInfo
from heddle.api.openapi import to_json_schema
from heddle.api.problems import FieldProblem, did_you_mean

_PY_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean",
                  list: "list", dict: "object", type(None): "null"}


_validators: dict[tuple[str, str, str], Draft7Validator] = {}
_compiled = CompiledSchemas()


def validator_for(info: KindInfo, version: str) -> Draft7Validator:
    """One validator per kind and schema, built on first use (a kind's schemas are fixed
    when the kinds are loaded)."""
    key = (info.group, info.kind, info.versions[version])
    validator = _validators.get(key)
    if validator is None:
        validator = _validators[key] = Draft7Validator(to_json_schema(info.schemas[key[2]]))
    return validator


def _type_name(value: Any) -> str:
    return _PY_TYPE_NAMES.get(type(value), type(value).__name__)


def _required_sets(alternatives: list[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for alt in alternatives:
        names.extend(alt.get("required", []))
    return names


def _describe(error: ValidationError) -> list[FieldProblem]:
    path = tuple(error.absolute_path)
    instance: Any = error.instance
    expected: Any = error.validator_value
    schema = error.schema if isinstance(error.schema, dict) else {}
    match error.validator:
        case "additionalProperties":
            known = list(schema.get("properties", {}))
            unknown = [k for k in instance if k not in schema.get("properties", {})]
            return [
                FieldProblem(
                    (*path, key),
                    f'unknown field "{key}"',
                    did_you_mean(key, known) or "remove it",
                )
                for key in unknown
            ]
        case "required":
            missing = [k for k in expected if k not in instance]
            return [
                FieldProblem(path, f'missing required field "{key}"', f'add "{key}"')
                for key in missing
            ]
        case "type":
            wanted = expected
            wanted_text = " or ".join(wanted) if isinstance(wanted, list) else str(wanted)
            return [
                FieldProblem(
                    path,
                    f"expected {wanted_text}, got {_type_name(instance)} {instance!r}",
                    f"write a value of type {wanted_text}",
                )
            ]
        case "enum":
            allowed = [str(v) for v in expected]
            return [
                FieldProblem(
                    path,
                    f"unsupported value {instance!r}",
                    did_you_mean(str(instance), allowed)
                    or "expected one of: " + ", ".join(allowed),
                )
            ]
        case "oneOf" | "anyOf":
            names = _required_sets(expected)
            if names and isinstance(instance, dict):
                present = [n for n in names if n in instance]
                if len(present) > 1:
                    return [
                        FieldProblem(
                            path,
                            "fields " + ", ".join(f'"{n}"' for n in present)
                            + " are mutually exclusive",
                            f'keep only one of {", ".join(present)}',
                        )
                    ]
                if error.validator == "anyOf" and not present:
                    return [
                        FieldProblem(
                            path,
                            "one of " + ", ".join(f'"{n}"' for n in names) + " is required",
                            "set exactly one of them",
                        )
                    ]
            best = [p for sub in (error.context or []) for p in _describe(sub)]
            return best[:1] or [FieldProblem(path, error.message)]
        case "pattern":
            return [FieldProblem(path, f"{instance!r} has the wrong format",
                                 f"write a value matching {expected}")]
        case "minimum" | "maximum" | "exclusiveMinimum" | "exclusiveMaximum":
            return [FieldProblem(path, error.message, f"use a value within the {error.validator}"
                                 f" of {expected}")]
        case "minLength" | "maxLength" | "minItems" | "maxItems":
            return [FieldProblem(path, error.message, f"{error.validator} is {expected}")]
        case _:
            return [FieldProblem(path, error.message)]


def check_schema(info: KindInfo, version: str, body: dict[str, Any]) -> list[FieldProblem]:
    """Every schema violation in `body`; identity fields are checked by the loader and
    metadata by metadata_check."""
    checked = {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "metadata")}
    schema_key = (info.group, info.kind, info.versions[version])
    if _compiled.passes(schema_key, lambda: to_json_schema(info.schemas[schema_key[2]]),
                        checked):
        return []
    problems: list[FieldProblem] = []
    seen: set[tuple[Any, ...]] = set()
    for error in validator_for(info, version).iter_errors(checked):
        for problem in _describe(error):
            key = (problem.path, problem.message)
            if key not in seen:
                seen.add(key)
                problems.append(problem)
    return sorted(problems, key=lambda p: [str(x) for x in p.path])
