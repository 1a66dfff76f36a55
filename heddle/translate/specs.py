"""The typed spec of a resource, as the loader built it from the CRD's generated model (with
the schema's defaults already applied): what translators read instead of the raw body."""

from __future__ import annotations

from typing import Any

from heddle.api.resource import Resource, SpecT


def spec_of(resource: Resource[Any], model: type[SpecT]) -> SpecT:
    """`resource.spec` as `model`; the snapshot indexes by kind, so anything else is a bug."""
    spec = resource.spec
    if not isinstance(spec, model):
        raise TypeError(f"{resource.key}: spec is {type(spec).__name__}, not {model.__name__}")
    return spec
