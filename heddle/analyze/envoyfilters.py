"""EnvoyFilter analyzers: patch operations that cannot apply where they are aimed
(IST0152-0154), and relative operations (INSERT_BEFORE/AFTER, REPLACE, REMOVE) whose
outcome depends on the order filters are applied in (IST0151, IST0155)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import ISTIO, AnalysisInput, spec
from heddle.analyze.messages import (
    ENVOY_FILTER_ADD_INCORRECTLY,
    ENVOY_FILTER_RELATIVE_OPERATION,
    ENVOY_FILTER_RELATIVE_WITH_PROXY_VERSION,
    ENVOY_FILTER_REMOVE_INCORRECTLY,
    ENVOY_FILTER_REPLACE_INCORRECTLY,
    Message,
)
from heddle.api.resource import Resource

ENVOY_FILTER = (ISTIO, "EnvoyFilter")
_ROUTE_LEVEL = ("ROUTE_CONFIGURATION", "HTTP_ROUTE")
_REPLACEABLE = ("NETWORK_FILTER", "HTTP_FILTER", "VIRTUAL_HOST")
_RELATIVE = ("INSERT_BEFORE", "INSERT_AFTER")
_ORDER_FIX = ("set spec.priority so the order EnvoyFilters apply in is fixed, or use an "
              "absolute operation (INSERT_FIRST, ADD, MERGE)")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _target(patch: Mapping[str, Any]) -> tuple[str, str] | None:
    """What a patch is about, to tell whether an earlier patch restricted to some proxy
    versions touched it too: the patched value's name, else the matched filter's."""
    value = _dict(_dict(patch.get("patch")).get("value"))
    if "name" in value:
        return ("value", str(value["name"]))
    name = _dict(_dict(_dict(_dict(patch.get("match")).get("listener")).get("filterChain"))
                 .get("filter")).get("name")
    return ("filter", str(name)) if name else None


def _relative(ef: Resource[Any], i: int, target: tuple[str, str] | None,
              versioned: list[tuple[str, str] | None]) -> Iterator[Message]:
    if spec(ef).get("priority"):
        return
    path = ("spec", "configPatches", i, "patch", "operation")
    if target in versioned:
        yield report(ENVOY_FILTER_RELATIVE_WITH_PROXY_VERSION, ef,
                     "this EnvoyFilter uses a relative operation on a filter that a patch "
                     "matching proxy versions also changes: after an upgrade the filter it "
                     "is relative to may be gone", _ORDER_FIX, path)
    else:
        yield report(ENVOY_FILTER_RELATIVE_OPERATION, ef,
                     "this EnvoyFilter has no priority and uses a relative patch operation: "
                     "what it does depends on the order EnvoyFilters are applied in",
                     _ORDER_FIX, path)


def _check(world: AnalysisInput) -> Iterator[Message]:
    versioned: list[tuple[str, str] | None] = []
    for ef in world.of_kind(*ENVOY_FILTER):
        for i, patch in enumerate(spec(ef).get("configPatches") or []):
            patch = _dict(patch)
            body = patch.get("patch")
            if not isinstance(body, dict):
                break
            target = _target(patch)
            operation = str(body.get("operation") or "")
            apply_to = str(patch.get("applyTo") or "")
            path = ("spec", "configPatches", i, "patch", "operation")
            if operation == "ADD" and apply_to in _ROUTE_LEVEL:
                yield report(ENVOY_FILTER_ADD_INCORRECTLY, ef,
                             f"ADD does not apply to {apply_to}: it has no list to add to",
                             "use MERGE, or apply the patch to VIRTUAL_HOST", path)
            elif operation == "REMOVE" and apply_to in _ROUTE_LEVEL:
                yield report(ENVOY_FILTER_REMOVE_INCORRECTLY, ef,
                             f"REMOVE does not apply to {apply_to}",
                             "remove a VIRTUAL_HOST, a filter or a listener instead", path)
            elif operation == "REMOVE" or operation in _RELATIVE:
                yield from _relative(ef, i, target, versioned)
            elif operation == "REPLACE":
                if apply_to not in _REPLACEABLE:
                    yield report(ENVOY_FILTER_REPLACE_INCORRECTLY, ef,
                                 f"REPLACE applies only to {', '.join(_REPLACEABLE)}, not to "
                                 f"{apply_to}", "use MERGE, or REMOVE and ADD", path)
                else:
                    yield from _relative(ef, i, target, versioned)
            if _dict(_dict(patch.get("match")).get("proxy")).get("proxyVersion"):
                versioned.append(target)


ANALYZERS = (
    Analyzer("envoyfilter.EnvoyPatchAnalyzer", "Checks the patches of EnvoyFilters",
             frozenset({ENVOY_FILTER}), _check),
)
