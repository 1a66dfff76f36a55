"""Turning a Kubernetes structural (OpenAPI v3) schema into a strict JSON Schema.

Kubernetes prunes unknown fields unless a schema preserves them; `kubectl apply` with strict
field validation rejects them instead, and so does Heddle: every object that lists its
properties gets `additionalProperties: false`.
"""

from __future__ import annotations

from typing import Any

_DROP = {"x-kubernetes-validations", "x-kubernetes-list-type", "x-kubernetes-list-map-keys",
         "x-kubernetes-map-type", "x-kubernetes-embedded-resource"}


def to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [to_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {k: to_json_schema(v) for k, v in node.items() if k not in _DROP}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.pop("anyOf", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    structural_object = out.get("type") == "object" and "properties" in out
    if structural_object and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Prune nulls and fill in `default`s the way the Kubernetes API server does before
    validating: a null field that is not `nullable` is dropped, not rejected."""
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        out = {
            k: v
            for k, v in value.items()
            if v is not None or props.get(k, {}).get("nullable", False)
        }
        for key, sub in props.items():
            if key not in out and "default" in sub:
                out[key] = sub["default"]
            if key in out:
                out[key] = apply_defaults(sub, out[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in out:
                if key not in props:
                    out[key] = apply_defaults(extra, out[key])
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], v) for v in value]
    return value
