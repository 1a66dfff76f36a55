"""Istio's rules for ServiceEntry, WorkloadEntry and WorkloadGroup (ValidateServiceEntry,
validateWorkloadEntry, ValidateWorkloadGroup)."""

from __future__ import annotations

import re
from typing import Any

from heddle.api.diagnostics import Severity
from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import check_cidr, items, mapping
from heddle.api.semantics.gateway import (
    HTTP_PROTOCOLS,
    TLS_PROTOCOLS,
    UNIX_PREFIX,
    protocol,
    unix_address_problem,
)
from heddle.api.semantics.istio_common import export_to_problems, label_problems
from heddle.api.semantics.istio_hosts import (
    fqdn_problem,
    is_dns1123_label,
    is_ip,
    partial_wildcard_problem,
    wildcard_domain_problem,
)

AUTOALLOCATE_LABEL = "networking.istio.io/enable-autoallocate-ip"
_TCP_PROTOCOLS = {"TCP", "HTTPS", "TLS", "Mongo", "Redis", "MySQL"}
_PROBE_HEADER = re.compile("^[-A-Za-z0-9]+$")


def _error(path: PathKey, message: str, fix: str) -> FieldProblem:
    return FieldProblem(path, message, fix)


def _warning(path: PathKey, message: str, fix: str) -> FieldProblem:
    return FieldProblem(path, message, fix, Severity.WARNING)


def _port_number(path: PathKey, number: Any) -> list[FieldProblem]:
    if not isinstance(number, int) or not 1 <= number <= 65535:
        return [_error(path, f"port number {number} must be in the range 1..65535",
                       "use a port from 1 to 65535")]
    return []


def _port_name(path: PathKey, name: Any) -> list[FieldProblem]:
    if not is_dns1123_label(str(name or "")):
        return [_error(path, f"invalid port name {name!r}", "a port name is one DNS label, "
                                                            "e.g. http")]
    return []


def workload_entry_problems(path: PathKey, entry: dict[str, Any],
                            service_ports: set[str] | None, allow_fqdn: bool,
                            ) -> list[FieldProblem]:
    """One workload: its address (an IP, a host name where allowed, or unix://PATH), its
    port names and numbers (those of the ServiceEntry, when it belongs to one), labels."""
    problems: list[FieldProblem] = []
    address = str(entry.get("address") or "")
    ports = mapping(entry.get("ports"))
    unix = address.startswith(UNIX_PREFIX)
    if not address:
        if not entry.get("network"):
            return [_error((*path, "address"), "address is required",
                           "give the workload's IP address or host name")]
        problems.append(_warning((*path, "address"), f"address is unset with network "
                                                     f"{entry['network']!r}",
                                 "reach it through the network's gateway, or set address"))
    if unix:
        problem = unix_address_problem(address.removeprefix(UNIX_PREFIX))
        if problem:
            problems.append(_error((*path, "address"), problem,
                                   "write unix:///ABSOLUTE/PATH or unix://@NAME"))
        if ports:
            problems.append(_error((*path, "ports"), f"unix endpoint {address} must not "
                                                     "have ports", "remove ports"))
    elif address and not is_ip(address):
        if not allow_fqdn:
            problems.append(_error((*path, "address"), f"endpoint address {address!r} is not "
                                                       "an IP address",
                                   "use an IP address with resolution STATIC, or resolution "
                                   "DNS for host names"))
        elif fqdn_problem(address):
            problems.append(_error((*path, "address"), f"endpoint address {address!r} is "
                                                       "neither a host name nor an IP address",
                                   "write an IP address or a fully qualified host name"))
    for name, port in ports.items():
        if service_ports is not None and name not in service_ports:
            problems.append(_error((*path, "ports", name), f"endpoint port {name!r} is not a "
                                                           "port of the ServiceEntry",
                                   "name one of the ServiceEntry's ports"))
        problems += _port_name((*path, "ports", name), name)
        problems += _port_number((*path, "ports", name), port)
    problems += label_problems((*path, "labels"), entry.get("labels"))
    if unix and service_ports is not None and len(service_ports) != 1:
        problems.append(_error(path, "a unix endpoint needs exactly one service port",
                               "give the ServiceEntry one port"))
    return problems


def _selector(spec: dict[str, Any]) -> list[FieldProblem]:
    selector = spec.get("workloadSelector")
    if selector is None:
        return []
    labels = mapping(mapping(selector).get("labels"))
    errors = [_error(("spec", "workloadSelector", "labels", key), "empty keys and "
                     "wildcards are not supported in a selector", "match exact labels")
              for key, value in labels.items()
              if not key or "*" in str(key) or "*" in str(value)]
    if errors:
        return errors
    if not labels:
        return [_warning(("spec", "workloadSelector"), "the workload selector has no labels: "
                                                       "it selects every workload in the "
                                                       "namespace", "add labels")]
    return []


def _dns(spec: dict[str, Any], resolution: str, service_ports: set[str],
         ) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    endpoints = items(spec.get("endpoints"))
    if not endpoints:
        for i, host in items(spec.get("hosts")):
            problem = fqdn_problem(str(host))
            if problem:
                problems.append(_error(("spec", "hosts", i), f"with resolution {resolution} "
                                       f"and no endpoints, hosts must be fully qualified: "
                                       f"{problem}", "name the host, or add endpoints"))
                break
    if resolution == "DNS_ROUND_ROBIN" and len(endpoints) > 1:
        problems.append(_error(("spec", "endpoints"), f"resolution {resolution} takes at most "
                                                      "one endpoint",
                               "use resolution DNS for several endpoints"))
    for i, endpoint in endpoints:
        here = ("spec", "endpoints", i)
        if endpoint is None:
            problems.append(_error(here, "an endpoint cannot be null", "remove it"))
            continue
        endpoint = mapping(endpoint)
        address = str(endpoint.get("address") or "")
        if not is_ip(address) and fqdn_problem(address):
            problems.append(_error((*here, "address"), f"endpoint address {address!r} is "
                                                       "neither a host name nor an IP address",
                                   "write an IP address or a fully qualified host name"))
        problems += label_problems((*here, "labels"), endpoint.get("labels"))
        for name, port in mapping(endpoint.get("ports")).items():
            if name not in service_ports:
                problems.append(_error((*here, "ports", name), f"endpoint port {name!r} is not "
                                                               "a port of the ServiceEntry",
                                       "name one of the ServiceEntry's ports"))
            problems += _port_name((*here, "ports", name), name)
            problems += _port_number((*here, "ports", name), port)
    if items(spec.get("addresses")) and len(items(spec.get("hosts"))) > 1 and any(
            protocol(mapping(p).get("protocol")) in _TCP_PROTOCOLS
            for _, p in items(spec.get("ports"))):
        problems.append(_warning(("spec", "hosts"), "a ServiceEntry with addresses and a TCP "
                                                    "port should have one host",
                                 "split the hosts into one ServiceEntry each"))
    return problems


def check_service_entry(spec: dict[str, Any], metadata: dict[str, Any],
                        ) -> list[FieldProblem]:
    namespace = str(metadata.get("namespace") or "default")
    problems = _selector(spec)
    if any(p.severity is Severity.ERROR for p in problems):
        return problems
    resolution = str(spec.get("resolution") or "NONE")
    if spec.get("workloadSelector") is not None and spec.get("endpoints") is not None:
        problems.append(_error(("spec",), "only one of WorkloadSelector or Endpoints is "
                                          "allowed", "select workloads, or list endpoints"))
    hosts = items(spec.get("hosts"))
    if not hosts:
        problems.append(_error(("spec", "hosts"), "a ServiceEntry needs at least one host",
                               "add hosts"))
    for i, host in hosts:
        host = str(host)
        if host == "*":
            problems.append(_error(("spec", "hosts", i), "host * is not allowed",
                                   "name the hosts"))
            continue
        problem = wildcard_domain_problem(host)
        if problem:
            problems.append(_error(("spec", "hosts", i), problem,
                                   "write a DNS name, optionally starting with '*.'"))
        partial = partial_wildcard_problem(host)
        if partial and resolution != "DYNAMIC_DNS":
            problems.append(_warning(("spec", "hosts", i), partial,
                                     "write *.DOMAIN, or the full name"))
    cidr = False
    for i, address in items(spec.get("addresses")):
        cidr = cidr or "/" in str(address)
        problems += check_cidr(("spec", "addresses", i), address)
    if cidr and resolution not in ("NONE", "STATIC"):
        problems.append(_error(("spec", "addresses"), "CIDR addresses are allowed only with "
                                                      "resolution NONE or STATIC",
                               "list single addresses, or change the resolution"))
    labels = mapping(metadata.get("labels"))
    autoallocate = resolution != "NONE" and str(labels.get(AUTOALLOCATE_LABEL, "")).lower() != (
        "false")
    names: set[str] = set()
    numbers: set[int] = set()
    for i, port in items(spec.get("ports")):
        here = ("spec", "ports", i)
        if port is None:
            problems.append(_error(here, "a port may not be null", "remove it"))
            continue
        port = mapping(port)
        name, number = str(port.get("name") or ""), port.get("number", 0)
        if name in names:
            problems.append(_error((*here, "name"), f"port name {name!r} is already defined",
                                   "give each port a unique name"))
        if number in numbers:
            problems.append(_error((*here, "number"), f"port {number} is already defined",
                                   "list each port once"))
        names.add(name)
        numbers.add(number)
        if port.get("targetPort"):
            problems += _port_number((*here, "targetPort"), port["targetPort"])
        if not items(spec.get("addresses")) and not autoallocate and port.get(
                "protocol") in (None, "", "TCP"):
            problems.append(_warning(here, "addresses are required for ports serving TCP (or "
                                           "an unset protocol) without IP auto-allocation",
                                     "add addresses, or set the port's protocol"))
        problems += _port_name((*here, "name"), name)
        proto = port.get("protocol")
        if proto and protocol(proto) is None:
            problems.append(_error((*here, "protocol"), f"unsupported protocol {proto!r}",
                                   "use HTTP, HTTPS, HTTP2, GRPC, TLS, TCP, MONGO, REDIS or "
                                   "MYSQL"))
        problems += _port_number((*here, "number"), number)
    endpoints = items(spec.get("endpoints"))
    if resolution == "NONE":
        if endpoints:
            problems.append(_error(("spec", "endpoints"), "resolution NONE takes no endpoints",
                                   "set resolution: STATIC (IP endpoints) or DNS"))
        if spec.get("workloadSelector") is not None:
            problems.append(_warning(("spec", "workloadSelector"), "workloadSelector should "
                                     "not be set with resolution NONE",
                                     "set resolution: STATIC"))
    elif resolution == "STATIC":
        for i, endpoint in endpoints:
            if endpoint is None:
                problems.append(_error(("spec", "endpoints", i), "an endpoint cannot be null",
                                       "remove it"))
                continue
            problems += workload_entry_problems(("spec", "endpoints", i), mapping(endpoint),
                                                names, allow_fqdn=False)
    elif resolution in ("DNS", "DNS_ROUND_ROBIN"):
        problems += _dns(spec, resolution, names)
    elif resolution == "DYNAMIC_DNS":
        # Istio's schema has it; Heddle's registry does not serve it yet, and letting it
        # through broke building the whole mesh's snapshot, not just this entry.
        problems.append(_error(("spec", "resolution"), "resolution DYNAMIC_DNS is not "
                                                       "supported by Heddle yet",
                               "use resolution: DNS (Envoy resolves each host)"))
    if resolution != "NONE" and len(hosts) > 1:
        for _, port in items(spec.get("ports")):
            proto = protocol(mapping(port).get("protocol"))
            if proto not in HTTP_PROTOCOLS and proto not in TLS_PROTOCOLS:
                problems.append(_error(("spec", "hosts"), "several hosts with a port that is "
                                                          "neither HTTP nor TLS",
                                       "split the hosts into one ServiceEntry each, or use "
                                       "resolution NONE"))
                break
    problems += export_to_problems(("spec", "exportTo"), namespace, spec.get("exportTo"),
                                   service_entry=True)
    return problems


def check_workload_entry(spec: dict[str, Any]) -> list[FieldProblem]:
    return workload_entry_problems(("spec",), spec, None, allow_fqdn=True)


def _probe(path: PathKey, probe: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for name in ("periodSeconds", "initialDelaySeconds", "timeoutSeconds",
                 "successThreshold", "failureThreshold"):
        value = probe.get(name)
        if isinstance(value, int) and value < 0:
            problems.append(_error((*path, name), f"{name} must not be negative",
                                   "use 0 or more"))
    if probe.get("httpGet") is not None:
        http = mapping(probe["httpGet"])
        problems += _port_number((*path, "httpGet", "port"), http.get("port", 0))
        if http.get("scheme") not in (None, "", "HTTP", "HTTPS"):
            problems.append(_error((*path, "httpGet", "scheme"), "httpGet.scheme must be HTTP "
                                                                 "or HTTPS", "write HTTP or "
                                                                             "HTTPS"))
        for i, header in items(http.get("httpHeaders")):
            name = str(mapping(header).get("name") or "")
            if not _PROBE_HEADER.match(name):
                problems.append(_error((*path, "httpGet", "httpHeaders", i),
                                       f"invalid probe header name {name!r}",
                                       "use letters, digits and '-'"))
    elif probe.get("tcpSocket") is not None:
        problems += _port_number((*path, "tcpSocket", "port"),
                                 mapping(probe["tcpSocket"]).get("port", 0))
    elif probe.get("exec") is not None:
        if not items(mapping(probe["exec"]).get("command")):
            problems.append(_error((*path, "exec", "command"), "exec.command is required",
                                   "give the command to run"))
    else:
        problems.append(_error(path, "the probe needs httpGet, tcpSocket or exec",
                               "say how to check readiness"))
    return problems


def check_workload_group(spec: dict[str, Any]) -> list[FieldProblem]:
    if spec.get("template") is None:
        return [_error(("spec", "template"), "template is required",
                       "add template (labels, serviceAccount, ports)")]
    problems = label_problems(("spec", "metadata", "labels"),
                              mapping(spec.get("metadata")).get("labels"))
    if spec.get("probe") is not None:
        problems += _probe(("spec", "probe"), mapping(spec["probe"]))
    return problems
