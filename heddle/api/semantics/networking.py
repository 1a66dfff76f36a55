"""Istio's rules for DestinationRule, Gateway, ServiceEntry, Sidecar and workloads."""

from __future__ import annotations

from typing import Any

from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import (
    check_cidr,
    check_fqdn_or_wildcard,
    check_port,
    items,
    mapping,
)


def _traffic_policy(path: PathKey, policy: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    tls = mapping(policy.get("tls"))
    if tls.get("mode") == "MUTUAL" and not tls.get("credentialName") and not (
        tls.get("clientCertificate") and tls.get("privateKey")
    ):
        problems.append(FieldProblem((*path, "tls"),
                                     "MUTUAL TLS needs clientCertificate and privateKey, "
                                     "or credentialName", "add them, or use ISTIO_MUTUAL"))
    lb = mapping(policy.get("loadBalancer"))
    if "simple" in lb and "consistentHash" in lb:
        problems.append(FieldProblem((*path, "loadBalancer"),
                                     'fields "simple" and "consistentHash" are mutually exclusive',
                                     "keep one of them"))
    outlier = mapping(policy.get("outlierDetection"))
    percent = outlier.get("maxEjectionPercent")
    if isinstance(percent, int) and not 0 <= percent <= 100:
        problems.append(FieldProblem((*path, "outlierDetection", "maxEjectionPercent"),
                                     f"maxEjectionPercent {percent} is out of range",
                                     "use a value from 0 to 100"))
    for i, port_policy in items(policy.get("portLevelSettings")):
        port = mapping(mapping(port_policy).get("port")).get("number")
        problems += check_port((*path, "portLevelSettings", i, "port", "number"), port)
        problems += _traffic_policy((*path, "portLevelSettings", i), mapping(port_policy))
    return problems


def check_destination_rule(spec: dict[str, Any]) -> list[FieldProblem]:
    problems = check_fqdn_or_wildcard(("spec", "host"), spec.get("host"))
    if not spec.get("host"):
        problems.append(FieldProblem(("spec",), "host is required",
                                     "name the service this rule applies to"))
    problems += _traffic_policy(("spec", "trafficPolicy"), mapping(spec.get("trafficPolicy")))
    seen: set[str] = set()
    for i, subset in items(spec.get("subsets")):
        name = mapping(subset).get("name")
        if not name:
            problems.append(FieldProblem(("spec", "subsets", i), "subset name is required",
                                         "add a name"))
        elif name in seen:
            problems.append(FieldProblem(("spec", "subsets", i, "name"),
                                         f"duplicate subset name {name!r}",
                                         "give each subset a unique name"))
        seen.add(str(name))
        problems += _traffic_policy(("spec", "subsets", i, "trafficPolicy"),
                                    mapping(mapping(subset).get("trafficPolicy")))
    return problems


def check_gateway(spec: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    servers = items(spec.get("servers"))
    if not servers:
        problems.append(FieldProblem(("spec", "servers"), "a Gateway needs at least one server",
                                     "add a server with a port and hosts"))
    port_names: set[str] = set()
    for i, server in servers:
        server = mapping(server)
        port = mapping(server.get("port"))
        problems += check_port(("spec", "servers", i, "port", "number"), port.get("number"))
        name = port.get("name")
        if isinstance(name, str):
            if name in port_names:
                problems.append(FieldProblem(("spec", "servers", i, "port", "name"),
                                             f"duplicate port name {name!r}",
                                             "give each server port a unique name"))
            port_names.add(name)
        for j, host in items(server.get("hosts")):
            problems += check_fqdn_or_wildcard(("spec", "servers", i, "hosts", j), host,
                                               allow_namespace=True)
        tls = mapping(server.get("tls"))
        protocol = str(port.get("protocol", "")).upper()
        if protocol == "HTTPS" and not tls:
            problems.append(FieldProblem(("spec", "servers", i),
                                         "an HTTPS server needs tls settings",
                                         "add tls with mode SIMPLE and credentialName"))
        if tls.get("mode") in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL") and not (
            tls.get("credentialName") or tls.get("credentialNames")
            or tls.get("serverCertificate") or tls.get("tlsCertificates")
        ):
            problems.append(FieldProblem(("spec", "servers", i, "tls"),
                                         f"TLS mode {tls['mode']} needs a certificate",
                                         "set credentialName, or serverCertificate and "
                                         "privateKey"))
    return problems


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


def check_sidecar(spec: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for i, egress in items(spec.get("egress")):
        egress = mapping(egress)
        for j, host in items(egress.get("hosts")):
            if isinstance(host, str) and "/" not in host:
                problems.append(FieldProblem(("spec", "egress", i, "hosts", j),
                                             f"egress host {host!r} has no namespace",
                                             f'write "*/{host}" or "./{host}"'))
            else:
                problems += check_fqdn_or_wildcard(("spec", "egress", i, "hosts", j), host,
                                                   allow_namespace=True)
        problems += check_port(("spec", "egress", i, "port", "number"),
                               mapping(egress.get("port")).get("number"))
    for i, ingress in items(spec.get("ingress")):
        problems += check_port(("spec", "ingress", i, "port", "number"),
                               mapping(mapping(ingress).get("port")).get("number"))
    return problems
