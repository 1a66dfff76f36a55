"""What a running mesh lists holds the Istio resources Heddle made of Gateway API ones; the
analyzers report on what was written, so those are left out (and made again)."""

from __future__ import annotations

from pathlib import Path

from heddle.analyze.run import without_derived
from heddle.api.loader import build_resource, load_paths
from heddle.model.snapshot import MeshSnapshot

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "nginx-cutover"


def test_the_resources_made_of_gateway_api_ones_are_left_out() -> None:
    written = load_paths([EXAMPLE]).resources
    snapshot = MeshSnapshot.build(0, written)
    assert snapshot.gateway_api.resources, "the example's HTTPRoutes make VirtualServices"
    listed = []
    for resource in snapshot.resources():  # as the debug API lists them, status aside
        rebuilt, problems = build_resource(dict(resource.body))
        assert rebuilt is not None, problems
        listed.append(rebuilt)
    assert sorted(r.key for r in without_derived(listed)) == sorted(r.key for r in written)


def test_a_written_resource_named_as_a_derived_one_stays() -> None:
    written = load_paths([EXAMPLE]).resources
    [derived, *_] = MeshSnapshot.build(0, written).gateway_api.resources
    body = dict(derived.body)
    body["metadata"] = {**body["metadata"], "labels": {"written": "by-hand"}}
    by_hand, problems = build_resource(body)
    assert by_hand is not None, problems
    assert by_hand in without_derived([*written, by_hand])
