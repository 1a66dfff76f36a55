"""Istio's rules for DestinationRule, Gateway, ServiceEntry, Sidecar and workloads."""

from __future__ import annotations

from typing import Any

from heddle.api.problems import FieldProblem
from heddle.api.semantics.common import (
    check_cidr,
    check_fqdn_or_wildcard,
    check_port,
    items,
    mapping,
)


def check_service_entry(spec: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for i, host in items(spec.get("hosts")):
        problems += check_fqdn_or_wildcard(("spec", "hosts", i), host)
    for i, address in items(spec.get("addresses")):
        problems += check_cidr(("spec", "addresses", i), address)
    names: set[str] = set()
    for i, port in items(spec.get("ports")):
        port = mapping(port)
        problems += check_port(("spec", "ports", i, "number"), port.get("number"))
        name = port.get("name")
        if isinstance(name, str):
            if name in names:
                problems.append(FieldProblem(("spec", "ports", i, "name"),
                                             f"duplicate port name {name!r}",
                                             "give each port a unique name"))
            names.add(name)
    resolution = spec.get("resolution", "NONE")
    if resolution == "DYNAMIC_DNS":
        # Istio's schema has it; Heddle's registry does not serve it yet, and letting it
        # through broke building the whole mesh's snapshot, not just this entry.
        problems.append(FieldProblem(("spec", "resolution"),
                                     "resolution DYNAMIC_DNS is not supported by Heddle yet",
                                     "use resolution: DNS (Envoy resolves each host)"))
    if resolution == "NONE" and spec.get("endpoints"):
        problems.append(FieldProblem(("spec", "endpoints"),
                                     "endpoints need resolution STATIC or DNS",
                                     "set resolution: STATIC (IP endpoints) or DNS"))
    for i, endpoint in items(spec.get("endpoints")):
        address = mapping(endpoint).get("address")
        if resolution == "STATIC" and isinstance(address, str) and not address.startswith(
            "unix://"
        ):
            problems += check_cidr(("spec", "endpoints", i, "address"), address)
    return problems


def check_workload_entry(spec: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for name, port in mapping(spec.get("ports")).items():
        problems += check_port(("spec", "ports", name), port)
    return problems
