"""Translators read a resource's typed spec, the generated model the loader built."""

from __future__ import annotations

from pathlib import Path

import pytest

from heddle.api.loader import load_paths
from heddle.api.models import AuthorizationPolicySpec, PeerAuthenticationSpec
from heddle.api.specs import spec_of

ROOT = Path(__file__).resolve().parents[2]


def test_spec_of_gives_the_generated_model_with_aliases_read() -> None:
    result = load_paths([ROOT / "tests" / "golden" / "authz"])
    policies = [r for r in result.resources if r.kind == "AuthorizationPolicy"]
    assert policies
    specs = [spec_of(p, AuthorizationPolicySpec) for p in policies]
    # `from` is a Python keyword: the model names it `from_`.
    assert any(rule.from_ for spec in specs for rule in spec.rules or [])


def test_spec_of_refuses_another_kinds_model() -> None:
    [policy, *_] = [r for r in load_paths([ROOT / "tests" / "golden" / "authz"]).resources
                    if r.kind == "AuthorizationPolicy"]
    with pytest.raises(TypeError, match="not PeerAuthenticationSpec"):
        spec_of(policy, PeerAuthenticationSpec)


def test_a_part_written_as_an_empty_mapping_is_empty() -> None:
    from heddle.api.models.virtual_service_parts import HTTPFault
    from heddle.api.specs import is_empty

    assert is_empty(HTTPFault.model_validate({}))
    assert not is_empty(HTTPFault.model_validate({"delay": {}}))  # says "delay", if no more
