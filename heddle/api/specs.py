"""Reading a resource's typed spec: the generated model the loader built from the CRD (with
the schema's defaults applied and nulls pruned), which translation reads instead of the body."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from heddle.api.resource import Resource, SpecT


def spec_of(resource: Resource[Any], model: type[SpecT]) -> SpecT:
    """`resource.spec` as `model`; the snapshot indexes by kind, so anything else is a bug."""
    spec = resource.spec
    if not isinstance(spec, model):
        raise TypeError(f"{resource.key}: spec is {type(spec).__name__}, not {model.__name__}")
    return spec


def is_empty(part: BaseModel) -> bool:
    """Whether a part of a spec was written as `{}`: `fault: {}` (or `redirect: {}`) means
    what leaving it out means, as it did when translators read the YAML's mappings."""
    return all(value is None for _, value in part)
