"""`heddle analyze` against istioctl analyze's own test table (istio_analyzer_cases.yaml):
every case of every analyzer Heddle implements runs as upstream runs it (only the analyzer's
declared input kinds loaded, `istio-system` as Istio's namespace, a dummy ingress gateway
unless the mesh config turns ingress off), and its (message type, resource) pairs are
compared with upstream's, with multiplicity.

The known misses are a ratchet (istio_analyzer_known_misses.txt): a new miss fails, and so
does a listed one that no longer happens (take it off the list). Run this file as a script
for the report: `python -m tests.compat.test_istio_analyzer_oracle`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from heddle.analyze.analyzer import Analyzer
from heddle.analyze.rejected import rejected_resources
from heddle.analyze.run import ALL_ANALYZERS, analysis_input, analyze
from heddle.api.loader import load_paths

HERE = Path(__file__).parent
CASES = HERE / "istio_analyzer_cases.yaml"
KNOWN_MISSES = HERE / "istio_analyzer_known_misses.txt"
TESTDATA = ("istio", "pkg", "config", "analysis", "analyzers", "testdata")

# Istio's Go type of each analyzer Heddle implements, and Heddle's (Istio's metadata) name.
IMPLEMENTED = {
    "virtualservice.DestinationRuleAnalyzer": "virtualservice.DestinationRuleAnalyzer",
    "virtualservice.DestinationHostAnalyzer": "virtualservice.DestinationHostAnalyzer",
    "virtualservice.GatewayAnalyzer": "virtualservice.GatewayAnalyzer",
    "virtualservice.ConflictingMeshGatewayHostsAnalyzer":
        "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
    "virtualservice.JWTClaimRouteAnalyzer": "virtualservice.JWTClaimRouteAnalyzer",
    "sidecar.SelectorAnalyzer": "sidecar.SelectorAnalyzer",
    "gateway.CertificateAnalyzer": "gateway.CertificateAnalyzer",
    "telemetry.LightstepAnalyzer": "telemetry.LightstepAnalyzer",
    "k8sgateway.SelectorAnalyzer": "k8sgateway.SelectorAnalyzer",
    "deprecation.FieldAnalyzer": "deprecation.DeprecationAnalyzer",
    "conditions.ConditionAnalyzer": "conditions.ConditionAnalyzer",
    "telemetry.ProviderAnalyzer": "telemetry.ProviderAnalyzer",
    "telemetry.DefaultSelectorAnalyzer": "telemetry.DefaultSelectorAnalyzer",
    "telemetry.SelectorAnalyzer": "telemetry.SelectorAnalyzer",
    "service.PortNameAnalyzer": "service.PortNameAnalyzer",
    "schemaValidation.CollectionValidationAnalyzer(collections.VirtualService)":
        "virtualservice.UnreachableRuleAnalyzer",
    "envoyfilter.EnvoyPatchAnalyzer": "envoyfilter.EnvoyPatchAnalyzer",
    "authz.AuthorizationPoliciesAnalyzer": "auth.AuthorizationPoliciesAnalyzer",
    "serviceentry.ConflictingServiceEntryProtocolAnalyzer":
        "serviceentry.ConflictingServiceEntryProtocolAnalyzer",
    "serviceentry.ProtocolAddressesAnalyzer": "serviceentry.Analyzer",
    "gateway.SecretAnalyzer": "gateway.SecretAnalyzer",
    "gateway.ConflictingGatewayAnalyzer": "gateway.ConflictingGatewayAnalyzer",
    "gateway.IngressGatewayPortAnalyzer": "gateway.IngressGatewayPortAnalyzer",
    "destinationrule.PodNotSelectedAnalyzer": "destinationrule.SubsetSelectPodAnalyzer",
    "destinationrule.CaCertificateAnalyzer": "destinationrule.CaCertificateAnalyzer",
}


@dataclass(frozen=True)
class Outcome:
    case: str
    analyzer: str
    matched: int
    missing: tuple[tuple[str, str], ...]  # expected by upstream, not reported
    extra: tuple[tuple[str, str], ...]  # reported, not expected

    def miss_lines(self) -> list[str]:
        return ([f"{self.case}: missing {t} {o}" for t, o in self.missing]
                + [f"{self.case}: extra {t} {o}" for t, o in self.extra])


def _origin(written: str) -> str:
    """`Kind name` (written without a namespace) is where Heddle puts it: `default`."""
    kind, _, name = written.partition(" ")
    return written if "/" in name else f"{kind} default/{name}"


def run_case(case: dict[str, Any], analyzer: Analyzer, testdata: Path) -> Outcome:
    paths = [testdata / f for f in case["inputs"]]
    loaded = load_paths(paths)
    mesh = {}
    if case.get("meshConfig"):
        mesh = yaml.safe_load((testdata / case["meshConfig"]).read_text()) or {}
    world = analysis_input(loaded.resources, loaded.unmanaged, mesh, kinds=analyzer.inputs,
                           rejected=rejected_resources(paths, loaded))
    # Upstream's test dedupes messages of the same text about the same resource (its
    # reader keeps no lines); Heddle's messages there differ only in the field they name.
    messages = {(m.type.name, m.origin, m.text) for m in analyze(world, [analyzer])}
    found = Counter((name, origin) for name, origin, _ in messages)
    expected = Counter((t, _origin(o)) for t, o in case["expected"])
    return Outcome(case["name"], analyzer.name, sum((found & expected).values()),
                   tuple(sorted((expected - found).elements())),
                   tuple(sorted((found - expected).elements())))


def run_all(corpus: Path) -> list[Outcome]:
    testdata = corpus.joinpath(*TESTDATA)
    by_name = {a.name: a for a in ALL_ANALYZERS}
    cases = yaml.safe_load(CASES.read_text())
    return [run_case(case, by_name[IMPLEMENTED[case["analyzer"]]], testdata)
            for case in cases if case["analyzer"] in IMPLEMENTED]


def known_misses() -> set[str]:
    lines = KNOWN_MISSES.read_text().splitlines()
    return {line for line in lines if line and not line.startswith("#")}


def test_every_implemented_analyzer_is_in_the_table() -> None:
    assert set(IMPLEMENTED.values()) <= {a.name for a in ALL_ANALYZERS}


def test_analyzers_match_istios_expectations_up_to_the_known_misses(corpus: Path) -> None:
    outcomes = run_all(corpus)
    misses = {line for o in outcomes for line in o.miss_lines()}
    known = known_misses()
    assert sorted(misses - known) == [], "new misses against istioctl analyze's expectations"
    assert sorted(known - misses) == [], "fixed: take these off the known-misses list"


def report(corpus: Path) -> None:
    outcomes = run_all(corpus)
    per_analyzer: dict[str, list[int]] = {}
    for o in outcomes:
        total = per_analyzer.setdefault(o.analyzer, [0, 0, 0, 0])
        total[0] += o.matched
        total[1] += o.matched + len(o.missing)
        total[2] += len(o.extra)
        total[3] += 1 if not (o.missing or o.extra) else 0
    cases = Counter(o.analyzer for o in outcomes)
    for name, (matched, expected, extra, clean) in sorted(per_analyzer.items()):
        print(f"{name}: {matched}/{expected} expected pairs matched, {extra} extra; "
              f"{clean}/{cases[name]} cases exact")
    for o in outcomes:
        for line in o.miss_lines():
            print("  " + line)


if __name__ == "__main__":
    report(Path(__file__).resolve().parents[2].parent / "shared" / "corpus")

pytest_plugins: list[str] = []
_ = pytest
