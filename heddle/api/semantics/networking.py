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

_POLICY_FIELDS = ("outlierDetection", "connectionPool", "loadBalancer", "tls")


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % f for f in range(2, int(n ** 0.5) + 1))


def _client_tls(path: PathKey, tls: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    mode = tls.get("mode")
    credential = tls.get("credentialName")
    if mode in ("SIMPLE", "MUTUAL") and credential and any(
            tls.get(k) for k in ("clientCertificate", "privateKey", "caCertificates", "caCrl")):
        problems.append(FieldProblem(path, "clientCertificate, privateKey, caCertificates and "
                                     "caCrl cannot be set with credentialName",
                                     "keep credentialName (the Secret holds them) or the "
                                     "file paths"))
    if mode == "MUTUAL" and not credential and not (
            tls.get("clientCertificate") and tls.get("privateKey")):
        problems.append(FieldProblem(path, "MUTUAL TLS needs clientCertificate and privateKey, "
                                     "or credentialName", "add them, or use ISTIO_MUTUAL"))
    if tls.get("insecureSkipVerify") and mode in ("SIMPLE", "MUTUAL"):
        clash = ["caCertificates", "subjectAltNames"] + (["credentialName"]
                                                         if mode == "SIMPLE" else [])
        if any(tls.get(k) for k in clash):
            problems.append(FieldProblem(path, f"{', '.join(clash)} cannot be set when "
                                         "insecureSkipVerify is true",
                                         "drop them, or drop insecureSkipVerify"))
    return problems


def _load_balancer(path: PathKey, lb: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if "simple" in lb and "consistentHash" in lb:
        problems.append(FieldProblem(path,
                                     'fields "simple" and "consistentHash" are mutually exclusive',
                                     "keep one of them"))
    consistent = mapping(lb.get("consistentHash"))
    if consistent.get("minimumRingSize") and (consistent.get("ringHash") is not None
                                              or consistent.get("maglev") is not None):
        problems.append(FieldProblem((*path, "consistentHash"),
                                     "only one of minimumRingSize or maglev/ringHash can be "
                                     "set", "move minimumRingSize into ringHash"))
    maglev = consistent.get("maglev")
    if maglev is not None:
        size = mapping(maglev).get("tableSize")
        if not isinstance(size, int) or not _is_prime(size) or size >= 5000011:
            problems.append(FieldProblem((*path, "consistentHash", "maglev", "tableSize"),
                                         f"maglev tableSize {size} must be a prime number "
                                         "below 5000011", "use e.g. 65537"))
    return problems


def _connection_pool(path: PathKey, pool: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if not pool.get("http") and not pool.get("tcp"):
        problems.append(FieldProblem(path, "connection pool must have at least one field",
                                     "set tcp or http settings, or remove connectionPool"))
    http = mapping(pool.get("http"))
    if http.get("h2UpgradePolicy") == "UPGRADE" and http.get("useClientProtocol"):
        problems.append(FieldProblem((*path, "http"), "useClientProtocol must not be true "
                                     "when h2UpgradePolicy is UPGRADE", "keep one of them"))
    return problems


def _outlier_detection(path: PathKey, outlier: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for name in ("maxEjectionPercent", "minHealthPercent"):
        percent = outlier.get(name)
        if isinstance(percent, int) and not 0 <= percent <= 100:
            problems.append(FieldProblem((*path, name), f"{name} {percent} is out of range",
                                         "use a value from 0 to 100"))
    if outlier.get("consecutiveLocalOriginFailures") and not outlier.get(
            "splitExternalLocalOriginErrors"):
        problems.append(FieldProblem((*path, "consecutiveLocalOriginFailures"),
                                     "consecutiveLocalOriginFailures needs "
                                     "splitExternalLocalOriginErrors: true",
                                     "set splitExternalLocalOriginErrors: true"))
    return problems


def _policy_parts(path: PathKey, policy: dict[str, Any]) -> list[FieldProblem]:
    return [*_client_tls((*path, "tls"), mapping(policy.get("tls"))),
            *_load_balancer((*path, "loadBalancer"), mapping(policy.get("loadBalancer"))),
            *(_connection_pool((*path, "connectionPool"), mapping(policy["connectionPool"]))
              if policy.get("connectionPool") is not None else []),
            *_outlier_detection((*path, "outlierDetection"),
                                mapping(policy.get("outlierDetection")))]


def _traffic_policy(path: PathKey, policy: Any) -> list[FieldProblem]:
    """Istio's validateTrafficPolicy: no empty policies, then each part."""
    if policy is None:
        return []
    policy = mapping(policy)
    problems: list[FieldProblem] = []
    if not any(policy.get(k) is not None for k in (
            *_POLICY_FIELDS, "portLevelSettings", "tunnel", "proxyProtocol", "retryBudget")):
        problems.append(FieldProblem(path, "traffic policy must have at least one field",
                                     "set a policy, or remove trafficPolicy"))
    problems += _policy_parts(path, policy)
    for i, port_policy in items(policy.get("portLevelSettings")):
        port_policy = mapping(port_policy)
        port_path = (*path, "portLevelSettings", i)
        port = mapping(port_policy.get("port")).get("number")
        problems += check_port((*port_path, "port", "number"), port)
        if not any(port_policy.get(k) is not None for k in _POLICY_FIELDS):
            problems.append(FieldProblem(port_path,
                                         "port traffic policy must have at least one field",
                                         "set a policy for the port, or remove it"))
        problems += _policy_parts(port_path, port_policy)
    return problems


def check_destination_rule(spec: dict[str, Any]) -> list[FieldProblem]:
    problems = check_fqdn_or_wildcard(("spec", "host"), spec.get("host"))
    if not spec.get("host"):
        problems.append(FieldProblem(("spec",), "host is required",
                                     "name the service this rule applies to"))
    problems += _traffic_policy(("spec", "trafficPolicy"), spec.get("trafficPolicy"))
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
                                    mapping(subset).get("trafficPolicy"))
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
