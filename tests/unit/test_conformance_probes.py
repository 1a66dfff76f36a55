"""The multi-request checks of the conformance runner: as the upstream tests decide them."""

from __future__ import annotations

import pytest

from heddle.conformance.manifests import describe
from heddle.conformance.probes import (
    mirror_band,
    mirror_share_error,
    patched,
    stale_conditions,
    with_retry_id,
)
from heddle.conformance.scenarios import Case, ExpectedRequest, Request, Response


def _case(path: str = "/retry/x") -> Case:
    return Case("c", Request(path=path), ExpectedRequest(path=path), Response(),
                retry_simulation=(("succeedAfter", "2"), ("responseCode", "500")))


def test_each_retry_attempt_carries_the_simulation_and_its_own_id_sorted_as_go_encodes() -> None:
    sent = with_retry_id(_case(), "id-1")
    assert sent.request.path == "/retry/x?responseCode=500&succeedAfter=2&uuid=id-1"
    assert sent.expected_request.path == sent.request.path  # the backend sees it so


def test_a_percentage_mirror_passes_within_three_binomial_deviations() -> None:
    low, high = mirror_band(20, 500)
    assert (round(low, 1), round(high, 1)) == (73.2, 126.8)
    mirror = [("infra/infra-backend-v2", 20.0)]
    assert mirror_share_error({"infra/infra-backend-v2": 100}, mirror) is None
    assert mirror_share_error({"infra/infra-backend-v2": 130}, mirror)
    assert mirror_share_error({}, mirror)  # nothing mirrored


def test_conditions_must_observe_the_routes_generation() -> None:
    route = {"metadata": {"generation": 2}, "status": {"parents": [{"conditions": [
        {"type": "Accepted", "observedGeneration": 2},
        {"type": "ResolvedRefs", "observedGeneration": 1}]}]}}
    assert "ResolvedRefs observed generation 1" in (stale_conditions(route) or "")
    route["status"]["parents"][0]["conditions"][1]["observedGeneration"] = 2  # type: ignore[index]
    assert stale_conditions(route) is None
    assert stale_conditions({"metadata": {"generation": 1}}) == "no parent status"


def test_an_update_changes_only_the_named_resource() -> None:
    docs = [{"kind": "HTTPRoute", "metadata": {"name": "r", "namespace": "ns"},
             "spec": {"rules": [{"backendRefs": [{"name": "v1"}]}]}},
            {"kind": "HTTPRoute", "metadata": {"name": "other", "namespace": "ns"}}]
    out = patched(docs, "HTTPRoute ns/r", {"spec.rules.0.backendRefs.0.name": "v2"}, describe)
    assert out[0]["spec"]["rules"][0]["backendRefs"][0]["name"] == "v2"
    assert docs[0]["spec"]["rules"][0]["backendRefs"][0]["name"] == "v1"  # a copy
    assert out[1] is docs[1]
    with pytest.raises(ValueError, match="no HTTPRoute ns/gone"):
        patched(docs, "HTTPRoute ns/gone", {}, describe)
