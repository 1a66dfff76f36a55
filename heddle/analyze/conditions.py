"""Negative status conditions (IST0171): the ones written in a resource's status, as istioctl
reads them, and the ones Heddle itself gives Gateway API resources and rate-limit policies
(a route its Gateway does not accept, a backend that does not resolve, a policy whose target
does not exist), so that a file-only run shows what the running mesh would say."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import GATEWAY_API, ISTIO, SECURITY, AnalysisInput
from heddle.analyze.messages import NEGATIVE_CONDITION_STATUS, Message
from heddle.api.resource import Resource
from heddle.model.rate_limits import BTP_GROUP, BTP_KIND, policy_status

_ROUTE_CONDITIONS = {"Accepted", "Programmed", "ResolvedRefs"}
_WAYPOINT = {"istio.io/WaypointBound"}
# The condition types whose status False istioctl reports, by kind.
REPORTED = {
    ("", "Service"): _WAYPOINT,
    (ISTIO, "ServiceEntry"): _WAYPOINT,
    (ISTIO, "WorkloadEntry"): _WAYPOINT,
    (SECURITY, "AuthorizationPolicy"): {"ZtunnelAccepted", "WaypointAccepted"},
    (GATEWAY_API, "Gateway"): _ROUTE_CONDITIONS,
    (GATEWAY_API, "HTTPRoute"): _ROUTE_CONDITIONS,
    (GATEWAY_API, "GRPCRoute"): _ROUTE_CONDITIONS,
}
# Kinds whose status Heddle computes, and the conditions of it reported when False.
COMPUTED = {
    **{(GATEWAY_API, kind): _ROUTE_CONDITIONS
       for kind in ("Gateway", "HTTPRoute", "GRPCRoute", "TCPRoute", "TLSRoute")},
    (BTP_GROUP, BTP_KIND): {"Accepted"},
}


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def conditions_of(status: Mapping[str, Any], parents: bool) -> list[Mapping[str, Any]]:
    """A status's conditions: its own, or (routes, policies) those of each parent/ancestor."""
    if not parents:
        return [_dict(c) for c in status.get("conditions") or []]
    return [_dict(c) for key in ("parents", "ancestors") for p in status.get(key) or []
            for c in _dict(p).get("conditions") or []]


def _message(resource: Resource[Any], condition: Mapping[str, Any], written: bool,
             ) -> Message:
    source = "its status as written" if written else "Heddle's status for it"
    return report(NEGATIVE_CONDITION_STATUS, resource,
                  f"{source} has a negative condition: type={condition.get('type')}, "
                  f"reason={condition.get('reason')}, message={condition.get('message')}",
                  "correct what the condition's message names", ("status",) if written else ())


def _check(world: AnalysisInput) -> Iterator[Message]:
    for (group, kind), types in REPORTED.items():
        route = kind in ("HTTPRoute", "GRPCRoute")
        for resource in world.of_kind(group, kind):
            for condition in conditions_of(_dict(resource.body.get("status")), route):
                ctype = condition.get("type")
                negative = condition.get("status") == "False" and ctype in types
                partial = (kind == "AuthorizationPolicy" and ctype == "WaypointAccepted"
                           and condition.get("reason") == "PartiallyInvalid")
                if negative or partial:
                    yield _message(resource, condition, written=True)
    for (group, kind), types in COMPUTED.items():
        for resource in world.of_kind(group, kind):
            if resource.key not in world.written:
                continue  # refused by validation: Heddle gives it no status
            status = (world.snapshot.gateway_api.status_json(resource.key)
                      or policy_status(world.snapshot, resource) or {})
            for condition in conditions_of(status, kind != "Gateway"):
                if condition.get("status") == "False" and condition.get("type") in types:
                    yield _message(resource, condition, written=False)


ANALYZERS = (
    Analyzer("conditions.ConditionAnalyzer", "Checks for negative status conditions on "
             "resources, written or as Heddle computes them",
             frozenset({*REPORTED, *COMPUTED}), _check),
)
