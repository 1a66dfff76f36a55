"""Istio's own validation tests as the oracle for `heddle validate`.

tests/compat/istio_validation_cases.yaml holds the cases of Istio's validation test tables
(pkg/config/validation at the corpus commit, ported as data by
scripts/port_istio_validation_cases.py): a resource and Istio's verdict. Each goes through
the loader exactly as `heddle validate` reads a file. Agreement per kind is printed and
written to test-artifacts/istio_validation_oracle.json; the cases where Heddle still
disagrees are listed by id in istio_validation_disagreements.txt, so a new disagreement
fails and a fixed one must be taken off the list (the agreement can only go up)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from heddle.api.diagnostics import Severity
from heddle.api.loader import load_text

HERE = Path(__file__).parent
CASES = HERE / "istio_validation_cases.yaml"
DISAGREEMENTS = HERE / "istio_validation_disagreements.txt"
REPORT = HERE.parents[1] / "test-artifacts" / "istio_validation_oracle.json"
# How Heddle and Istio can differ on a case, worst first. "unsupported" is valid Istio
# config of a feature Heddle does not implement, refused by name (every error says so)
# rather than silently ignored.
CLASSES = ("valid-rejected", "unsupported", "invalid-accepted", "warning-missed")


@dataclass(frozen=True)
class Outcome:
    case_id: str
    kind: str
    istio: str
    heddle: str
    messages: tuple[str, ...]
    errors: tuple[str, ...]

    @property
    def disagreement(self) -> str | None:
        """The class of the difference, or None where Heddle agrees. A warning Heddle gives
        where Istio gives none is not counted: Heddle also warns about its own gaps."""
        if self.istio != "invalid" and self.heddle == "invalid":
            unsupported = all("Heddle" in e for e in self.errors)
            return "unsupported" if unsupported else "valid-rejected"
        if self.istio == "invalid" and self.heddle != "invalid":
            return "invalid-accepted"
        if self.istio == "warning" and self.heddle == "valid":
            return "warning-missed"
        return None


@cache
def cases() -> tuple[dict[str, Any], ...]:
    return tuple(yaml.safe_load(CASES.read_text())["cases"])


def run_case(case: dict[str, Any]) -> Outcome:
    document = {"apiVersion": case["apiVersion"], "kind": case["kind"],
                "metadata": case["metadata"], "spec": case["spec"]}
    result = load_text(yaml.safe_dump(document, sort_keys=False), f"{case['id']}.yaml")
    if result.errors:
        verdict = "invalid"
    elif any(d.severity is Severity.WARNING for d in result.diagnostics):
        verdict = "warning"
    else:
        verdict = "valid"
    return Outcome(case["id"], case["kind"], case["istio"], verdict,
                   tuple(str(d) for d in result.diagnostics if d.severity is not Severity.INFO),
                   tuple(d.message for d in result.errors))


@cache
def outcomes() -> tuple[Outcome, ...]:
    return tuple(run_case(case) for case in cases())


def recorded_disagreements() -> dict[str, str]:
    """id -> class, from the committed list (`CLASS ID` per line, # comments)."""
    recorded = {}
    for line in DISAGREEMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            kind, case_id = line.split(maxsplit=1)
            recorded[case_id] = kind
    return recorded


def agreement_table(results: tuple[Outcome, ...]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for outcome in results:
        row = table.setdefault(outcome.kind, {"cases": 0, "agree": 0,
                                              **dict.fromkeys(CLASSES, 0)})
        row["cases"] += 1
        if outcome.disagreement is None:
            row["agree"] += 1
        else:
            row[outcome.disagreement] += 1
    return dict(sorted(table.items()))


def format_table(table: dict[str, dict[str, int]]) -> str:
    lines = [f"{'kind':24}{'cases':>7}{'agree':>7}{'%':>6}" + "".join(f"{c:>18}"
                                                                      for c in CLASSES)]
    total = Counter[str]()
    for kind, row in [*table.items()]:
        total.update(row)
        lines.append(f"{kind:24}{row['cases']:>7}{row['agree']:>7}"
                     f"{100 * row['agree'] // row['cases']:>6}"
                     + "".join(f"{row[c]:>18}" for c in CLASSES))
    lines.append(f"{'all':24}{total['cases']:>7}{total['agree']:>7}"
                 f"{100 * total['agree'] // max(total['cases'], 1):>6}"
                 + "".join(f"{total[c]:>18}" for c in CLASSES))
    return "\n".join(lines)


def test_every_case_names_a_kind_heddle_loads_and_a_verdict() -> None:
    assert len(cases()) >= 500
    assert len({c["id"] for c in cases()}) == len(cases())
    assert {c["kind"] for c in cases()} == {
        "VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar",
        "AuthorizationPolicy", "RequestAuthentication", "PeerAuthentication", "EnvoyFilter",
        "Telemetry", "WorkloadEntry", "WorkloadGroup"}
    assert {c["istio"] for c in cases()} == {"valid", "invalid", "warning"}


def test_agreement_with_istio_never_drops_below_the_recorded_baseline() -> None:
    results = outcomes()
    table = agreement_table(results)
    print("\n" + format_table(table))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({
        "per_kind": table,
        "disagreements": [{"id": o.case_id, "class": o.disagreement, "istio": o.istio,
                           "heddle": o.heddle, "messages": list(o.messages)}
                          for o in results if o.disagreement],
    }, indent=2))
    found = {o.case_id: o.disagreement for o in results if o.disagreement}
    recorded = recorded_disagreements()
    new = {i: c for i, c in found.items() if recorded.get(i) != c}
    fixed = sorted(set(recorded) - set(found))
    assert not new, ("Heddle now disagrees with Istio on these cases (fix them, or if the "
                     "case is known, record it in " + DISAGREEMENTS.name + "):\n"
                     + "\n".join(f"{c} {i}: {next(o.messages for o in results if o.case_id == i)}"
                                 for i, c in sorted(new.items())))
    assert not fixed, ("these cases agree now: take them off " + DISAGREEMENTS.name + ":\n"
                       + "\n".join(fixed))


# Cases whose YAML reads differently before any validation runs, and why.
PARSER_DIFFERENCES = {
    # `[1.2.3.4, 001:db8::]`: by the YAML spec the last ':' (before ']') is an indicator, so
    # libyaml reads the item as the mapping {"001:db8:": null}; Go's yaml reads a string.
    "crds/serviceentry-valid/full": "libyaml reads the flow item 001:db8:: as a mapping",
}


def test_no_valid_istio_config_is_rejected() -> None:
    """The worst miss: YAML that works with Istio refused by Heddle."""
    rejected = [f"{o.case_id}: {o.messages}" for o in outcomes()
                if o.disagreement == "valid-rejected" and o.case_id not in PARSER_DIFFERENCES]
    assert rejected == []


@pytest.mark.parametrize("case_id", sorted(recorded_disagreements()))
def test_recorded_disagreements_are_real_cases(case_id: str) -> None:
    assert case_id in {c["id"] for c in cases()}
