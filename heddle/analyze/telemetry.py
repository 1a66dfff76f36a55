"""Telemetry analyzers: a selector that picks no pod (IST0101), several Telemetries selecting
one pod (IST0159) or none in one namespace (IST0160), and access logging with no provider
when the mesh has no default one (IST0157)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import AnalysisInput, selector_text, selects, spec
from heddle.analyze.messages import (
    CONFLICTING_TELEMETRY_SELECTORS,
    DEPRECATED,
    INVALID_TELEMETRY_PROVIDER,
    MULTIPLE_TELEMETRIES_WITHOUT_SELECTORS,
    REFERENCED_RESOURCE_NOT_FOUND,
    Message,
)
from heddle.api.resource import Resource

TELEMETRY = ("telemetry.istio.io", "Telemetry")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _names(telemetries: list[Resource[Any]]) -> str:
    return ",".join(sorted(t.name for t in telemetries))


def _check_selectors(world: AnalysisInput) -> Iterator[Message]:
    pods = [w for w in world.workloads() if w.kind == "Pod"]
    by_pod: dict[tuple[str, str], list[Resource[Any]]] = defaultdict(list)
    for telemetry in world.of_kind(*TELEMETRY):
        labels = _dict(_dict(spec(telemetry).get("selector")).get("matchLabels"))
        if not labels:
            continue
        selector = {str(k): str(v) for k, v in labels.items()}
        chosen = [p for p in pods
                  if p.namespace == telemetry.namespace and selects(selector, p.labels)]
        if not chosen:
            yield report(REFERENCED_RESOURCE_NOT_FOUND, telemetry,
                         f"referenced selector not found: \"{selector_text(selector)}\"",
                         f"label a pod in namespace {telemetry.namespace!r} with it, or "
                         "correct spec.selector.matchLabels", ("spec", "selector"))
        for pod in chosen:
            by_pod[(pod.namespace, pod.name)].append(telemetry)
    for (namespace, name), telemetries in sorted(by_pod.items()):
        if len(telemetries) < 2:
            continue
        for telemetry in telemetries:
            yield report(CONFLICTING_TELEMETRY_SELECTORS, telemetry,
                         f"the Telemetries {_names(telemetries)} in namespace {namespace!r} "
                         f"select the same workload pod {name!r}, which can lead to undefined "
                         "behavior", "make their selectors pick disjoint pods, or merge them")


def _check_default_selectors(world: AnalysisInput) -> Iterator[Message]:
    by_namespace: dict[str, list[Resource[Any]]] = defaultdict(list)
    for telemetry in world.of_kind(*TELEMETRY):
        if spec(telemetry).get("selector") is None:
            by_namespace[telemetry.namespace].append(telemetry)
    for namespace, telemetries in sorted(by_namespace.items()):
        if len(telemetries) < 2:
            continue
        for telemetry in telemetries:
            yield report(MULTIPLE_TELEMETRIES_WITHOUT_SELECTORS, telemetry,
                         f"the Telemetries {_names(telemetries)} in namespace {namespace!r} "
                         "have no selector, which can lead to undefined behavior",
                         "keep one Telemetry without a selector per namespace")


def _check_providers(world: AnalysisInput) -> Iterator[Message]:
    if _dict(world.mesh.get("defaultProviders")).get("accessLogging"):
        return
    for telemetry in world.of_kind(*TELEMETRY):
        for i, logging in enumerate(spec(telemetry).get("accessLogging") or []):
            logging = _dict(logging)
            if logging.get("disabled") is True or logging.get("providers"):
                continue
            yield report(INVALID_TELEMETRY_PROVIDER, telemetry,
                         f"Telemetry {telemetry.namespace}/{telemetry.name} turns on access "
                         "logging without a provider, and the mesh config has no default "
                         "access log provider: nothing is logged",
                         "name a provider (e.g. envoy) in accessLogging.providers, or set "
                         "defaultProviders.accessLogging in the mesh config",
                         ("spec", "accessLogging", i))


def _check_lightstep(world: AnalysisInput) -> Iterator[Message]:
    lightstep = {str(p.get("name")) for p in world.mesh.get("extensionProviders") or []
                 if isinstance(p, dict) and "lightstep" in p}
    if not lightstep:
        return
    for telemetry in world.of_kind(*TELEMETRY):
        for i, tracing in enumerate(spec(telemetry).get("tracing") or []):
            for provider in _dict(tracing).get("providers") or []:
                name = str(_dict(provider).get("name") or "")
                if name in lightstep:
                    yield report(DEPRECATED, telemetry,
                                 f"the Lightstep provider {name} is deprecated",
                                 "migrate to an OpenTelemetry provider",
                                 ("spec", "tracing", i, "providers"))


ANALYZERS = (
    Analyzer("telemetry.SelectorAnalyzer", "Checks that Telemetries with a selector match a "
             "pod, and that no two select the same pod",
             frozenset({TELEMETRY, ("", "Pod")}), _check_selectors),
    Analyzer("telemetry.DefaultSelectorAnalyzer", "Checks that no two Telemetries in a "
             "namespace lack a selector", frozenset({TELEMETRY}), _check_default_selectors),
    Analyzer("telemetry.ProviderAnalyzer", "Checks that access logging has a provider",
             frozenset({TELEMETRY, ("", "MeshConfig")}), _check_providers),
    Analyzer("telemetry.LightstepAnalyzer", "Checks for the deprecated Lightstep provider",
             frozenset({TELEMETRY, ("", "MeshConfig")}), _check_lightstep),
)
