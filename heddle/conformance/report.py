"""The run's report: a line per scenario (pass / fail / skip and why), the counts, and the
upstream suite's ConformanceReport (per profile: core and extended results, statistics and
the supported features, the extended features whose every scenario passed)."""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import yaml

from heddle.conformance.runner import Outcome
from heddle.conformance.scenarios import Scenario

# The features a profile's Core conformance is made of (pkg/features); the rest are Extended.
CORE_FEATURES = {"Gateway", "HTTPRoute", "ReferenceGrant", "GRPCRoute", "Mesh"}
# (profile, route kind, GAMMA): the upstream's conformance profiles these scenarios belong to
PROFILES = (("GATEWAY-HTTP", "HTTPRoute", False), ("GATEWAY-GRPC", "GRPCRoute", False),
            ("MESH-HTTP", "HTTPRoute", True), ("MESH-GRPC", "GRPCRoute", True))
GATEWAY_API_VERSION = "v1.4.0-dev (corpus commit 4564255ac2c3)"


def is_core(scenario: Scenario) -> bool:
    return all(f in CORE_FEATURES for f in scenario.features)


def _kind(scenario: Scenario) -> str:
    grpc = scenario.route_kind == "GRPCRoute" or "GRPCRoute" in scenario.features
    return "GRPCRoute" if grpc else "HTTPRoute"


def summary(scenarios: Iterable[Scenario], outcomes: Iterable[Outcome]) -> str:
    by_name = {o.scenario: o for o in outcomes}
    lines = []
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for scenario in scenarios:
        outcome = by_name.get(scenario.name)
        if outcome is None:
            continue
        counts[outcome.result] += 1
        level = "core" if is_core(scenario) else "extended"
        lines.append(f"{outcome.result.upper():4}  {scenario.name} [{level}]"
                     + (f": {outcome.reason}" if outcome.reason else ""))
    total = sum(counts.values())
    lines.append(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped "
                 f"of {total} scenarios")
    return "\n".join(lines)


def _result(passed: int, failed: int, skipped: int) -> str:
    if failed:
        return "failure"
    return "partial" if skipped else "success"


def conformance_report(scenarios: list[Scenario], outcomes: list[Outcome],
                       now: datetime.datetime | None = None) -> str:
    by_name = {o.scenario: o for o in outcomes}
    profiles = []
    for profile, kind, mesh in PROFILES:
        mine = [s for s in scenarios if s.name in by_name and s.mesh == mesh and
                _kind(s) == kind]
        if not mine:
            continue
        entry: dict[str, object] = {"name": profile}
        for level, chosen in (("core", [s for s in mine if is_core(s)]),
                              ("extended", [s for s in mine if not is_core(s)])):
            results = [by_name[s.name].result for s in chosen]
            stats = {"Passed": results.count("pass"), "Failed": results.count("fail"),
                     "Skipped": results.count("skip")}
            block: dict[str, object] = {
                "result": _result(stats["Passed"], stats["Failed"], stats["Skipped"]),
                "statistics": stats}
            failed = sorted(s.name for s in chosen if by_name[s.name].result == "fail")
            skipped = sorted(s.name for s in chosen if by_name[s.name].result == "skip")
            if failed:
                block["failedTests"] = failed
            if skipped:
                block["skippedTests"] = skipped
            if level == "extended":
                # Inferred from the run (the upstream reports what it was told): supported
                # when every scenario run that needs the feature passed; unsupported when one
                # failed; the features of skipped scenarios alone are neither.
                features: dict[str, bool] = {}
                for s in chosen:
                    result = by_name[s.name].result
                    for feature in s.features:
                        if feature in CORE_FEATURES:
                            continue
                        if result == "skip":
                            features.setdefault(feature, True)
                        else:
                            features[feature] = features.get(feature, True) and result == "pass"
                ran = {f for s in chosen if by_name[s.name].result != "skip"
                       for f in s.features}
                block["supportedFeatures"] = sorted(f for f, ok in features.items()
                                                    if ok and f in ran)
                block["unsupportedFeatures"] = sorted(f for f, ok in features.items() if not ok)
                block["untestedFeatures"] = sorted(f for f in features if f not in ran)
            entry[level] = block
        profiles.append(entry)
    report = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "ConformanceReport",
        "date": (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "gatewayAPIVersion": GATEWAY_API_VERSION, "gatewayAPIChannel": "experimental",
        "implementation": {"organization": "heddle", "project": "heddle",
                           "url": "https://github.com/heddle-mesh/heddle", "version": "0.1.0",
                           "contact": []},
        "mode": "default", "profiles": profiles,
    }
    return yaml.safe_dump(report, sort_keys=False)
