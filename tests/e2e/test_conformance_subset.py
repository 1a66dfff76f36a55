"""A fast subset of the Gateway API conformance run (`python -m heddle.conformance`): core
HTTPRoute scenarios and a GRPCRoute one (gRPC calls to the gRPC echo) sent through a real
gateway Envoy to echo backends behind real sidecars, and a GAMMA one sent from a client pod
through its own sidecar (a consumer route). It fails when any of them stops passing."""

from __future__ import annotations

from pathlib import Path

from heddle.conformance.runner import run
from heddle.conformance.scenarios import load_all
from heddle.testing.loopback import unique_subnet

from .mesh_fixtures import processes_of

CORPUS = Path(__file__).resolve().parents[2].parent / "shared/corpus/gateway-api/conformance"
SUBSET = ("HTTPRouteSimpleSameNamespace", "HTTPRouteMatching", "HTTPRouteCrossNamespace",
          "HTTPRouteInvalidCrossNamespaceParentRef", "HTTPRouteRedirectPath",
          "GRPCExactMethodMatching", "MeshConsumerRoute")


def test_core_http_grpc_and_gamma_scenarios_pass(tmp_path: Path) -> None:
    scenarios = [s for s in load_all() if s.name in SUBSET]
    assert sorted(s.name for s in scenarios) == sorted(SUBSET)
    lines: list[str] = []
    outcomes = run(scenarios, CORPUS, unique_subnet(), log=lines.append, workdir=tmp_path)
    results = {o.scenario: (o.result, o.reason) for o in outcomes}
    assert results == {name: ("pass", "") for name in SUBSET}, "\n".join(lines)
    assert sum(len(o.cases) for o in outcomes) >= 17  # each case ran, none vacuously
    assert processes_of(tmp_path / "home") == [], "the run left mesh processes behind"
