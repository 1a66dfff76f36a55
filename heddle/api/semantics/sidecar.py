"""Istio's rules for a Sidecar (ValidateSidecar): its workload selector, ingress listeners
(ports, binds, default endpoints, TLS, connection pools), egress listeners (ports or unix
sockets, hosts as NAMESPACE/HOST, one catch-all last) and outbound traffic policy."""

from __future__ import annotations

from typing import Any

from heddle.api.diagnostics import Severity
from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import items, mapping
from heddle.api.semantics.gateway import (
    HTTP_PROTOCOLS as _HTTP,
)
from heddle.api.semantics.gateway import (
    TLS_PROTOCOLS,
    UNIX_PREFIX,
    protocol,
    server_tls_problems,
    unix_address_problem,
)
from heddle.api.semantics.istio_hosts import (
    fqdn_problem,
    is_dns1123_label,
    is_ip,
    namespaced_host_problems,
)
from heddle.api.semantics.traffic_policy import connection_pool_problems

_LOOPBACKS = {"127.0.0.1", "0.0.0.0", "::1", "::"}
_HOST_FIX = 'write NAMESPACE/HOST: "*/*", "./*", "ns1/svc.ns1.svc.cluster.local", "~ns2/*"'


def _error(path: PathKey, message: str, fix: str) -> FieldProblem:
    return FieldProblem(path, message, fix)


def _port_common(path: PathKey, port: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    name = port.get("name")
    if name and not is_dns1123_label(str(name)):
        problems.append(_error((*path, "name"), f"invalid port name {name!r}",
                               "a port name is one DNS label"))
    proto = port.get("protocol")
    if proto and protocol(proto) is None:
        problems.append(_error((*path, "protocol"), f"unsupported protocol {proto!r}",
                               "use HTTP, HTTPS, HTTP2, GRPC, TLS, TCP, MONGO, REDIS or "
                               "MYSQL"))
    if port.get("targetPort"):
        problems.append(_error((*path, "targetPort"), "targetPort has no effect on Sidecars",
                               "remove targetPort"))
    return problems


def _number(path: PathKey, number: Any) -> list[FieldProblem]:
    if not isinstance(number, int) or not 1 <= number <= 65535:
        return [_error(path, f"port number {number} must be in the range 1..65535",
                       "use a port from 1 to 65535 (0 only with a unix:// bind)")]
    return []


def _bind_ip(path: PathKey, bind: str) -> list[FieldProblem]:
    if bind and not is_ip(bind):
        return [_error(path, f"{bind} is not a valid IP", "bind to an IP address")]
    return []


def _default_endpoint(path: PathKey, endpoint: str) -> list[FieldProblem]:
    fix = "write 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT or unix:///PATH"
    if endpoint.startswith(UNIX_PREFIX):
        problem = unix_address_problem(endpoint.removeprefix(UNIX_PREFIX))
        return [_error(path, problem, fix)] if problem else []
    host, sep, port = endpoint.rpartition(":")
    if not sep:
        return [_error(path, f"defaultEndpoint {endpoint!r} has no port", fix)]
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    problems = []
    if host and host not in _LOOPBACKS:
        problems.append(_error(path, f"defaultEndpoint {endpoint!r} must be a local address",
                               fix))
    if not port.isdigit():
        problems.append(_error(path, f"defaultEndpoint port {port!r} is not a number", fix))
    else:
        problems += _number(path, int(port))
    return problems


def _ingress(path: PathKey, ingress: dict[str, Any], ports: set[int]) -> list[FieldProblem]:
    if ingress.get("port") is None:
        return [_error((*path, "port"), "an ingress listener needs a port",
                       "add port with number and protocol")]
    port = mapping(ingress["port"])
    problems = _port_common((*path, "port"), port)
    problems += _number((*path, "port", "number"), port.get("number", 0))
    problems += _bind_ip((*path, "bind"), str(ingress.get("bind") or ""))
    number = port.get("number", 0)
    if number in ports:
        problems.append(_error((*path, "port", "number"), "ports of IP-bound listeners must "
                               "be unique", "give each ingress listener its own port"))
    ports.add(number)
    if ingress.get("defaultEndpoint"):
        problems += _default_endpoint((*path, "defaultEndpoint"),
                                      str(ingress["defaultEndpoint"]))
    tls = ingress.get("tls")
    if tls is not None:
        tls = mapping(tls)
        here = (*path, "tls")
        for name, what in (("subjectAltNames", "subjectAltNames"),
                           ("httpsRedirect", "httpsRedirect"),
                           ("credentialName", "credentialName"),
                           ("credentialNames", "credentialNames"),
                           ("tlsCertificates", "tlsCertificates")):
            if tls.get(name):
                problems.append(_error((*here, name), f"{what} is not supported in a "
                                                      "Sidecar's ingress tls",
                                       "use serverCertificate, privateKey and "
                                       "caCertificates"))
        if tls.get("mode") in ("ISTIO_MUTUAL", "AUTO_PASSTHROUGH"):
            problems.append(_error((*here, "mode"), f"mode {tls['mode']} cannot be used in a "
                                                    "Sidecar's ingress tls",
                                   "use SIMPLE or MUTUAL"))
        if protocol(port.get("protocol")) not in TLS_PROTOCOLS:
            problems.append(_error(here, "a listener with TLS settings needs protocol HTTPS "
                                         "or TLS", "set port.protocol to HTTPS or TLS"))
        problems += server_tls_problems(here, tls)
    pool = ingress.get("connectionPool")
    problems += connection_pool_problems((*path, "connectionPool"), pool)
    if pool is not None and mapping(pool).get("http") is not None and protocol(
            port.get("protocol")) not in _HTTP:
        problems.append(FieldProblem((*path, "connectionPool", "http"),
                                     f"HTTP connection pool settings on port {number} whose "
                                     "protocol is not HTTP: only the TCP settings apply",
                                     "remove the http settings, or set an HTTP protocol",
                                     Severity.WARNING))
    return problems


def _egress_port(path: PathKey, egress: dict[str, Any]) -> list[FieldProblem]:
    port = mapping(egress["port"])
    bind = str(egress.get("bind") or "")
    problems = _port_common((*path, "port"), port)
    if port.get("number", 0) == 0:  # a unix domain socket listener
        if not bind.startswith(UNIX_PREFIX):
            problems.append(_error((*path, "bind"), "a listener on port 0 needs a unix "
                                                    "domain socket bind", "bind unix:///PATH"))
        else:
            problem = unix_address_problem(bind.removeprefix(UNIX_PREFIX))
            if problem:
                problems.append(_error((*path, "bind"), problem,
                                       "write unix:///ABSOLUTE/PATH or unix://@NAME"))
        problems.append(FieldProblem((*path, "bind"), "Heddle's sidecars do not listen on "
                                                      "unix domain sockets: this listener's "
                                                      "hosts are not reachable through it",
                                     "import the hosts in a listener without a port",
                                     Severity.WARNING))
        if egress.get("captureMode") not in (None, "DEFAULT", "NONE"):
            problems.append(_error((*path, "captureMode"), "captureMode must be DEFAULT or "
                                                           "NONE for a unix socket listener",
                                   "remove captureMode"))
    else:
        problems += _number((*path, "port", "number"), port.get("number"))
        problems += _bind_ip((*path, "bind"), bind)
    return problems


def _egress_hosts(path: PathKey, hosts: list[tuple[int, Any]], namespace: str,
                  ) -> list[FieldProblem]:
    if not hosts:
        return [_error(path, "an egress listener needs at least one host",
                       'add hosts, e.g. "*/*"')]
    problems: list[FieldProblem] = []
    imported: dict[str, set[str]] = {}
    for j, raw in hosts:
        host = str(raw)
        here = (*path, j)
        ns, slash, name = host.partition("/")
        if slash and not ns.startswith("~"):
            ns = namespace if ns == "." else ns
            names = imported.setdefault(ns, set())
            if (name != "*" and (name in names or "*" in names)) or (name == "*" and names):
                problems.append(FieldProblem(here, f"duplicated egress host {host!r}",
                                             "list each host once", Severity.WARNING))
            names.add(name)
        problems += [_error(here, m, _HOST_FIX)
                     for m in namespaced_host_problems(host, is_gateway=False)]
    if "*" in imported.get("*", set()) and len(imported) != 1:
        problems.append(FieldProblem(path, "*/* selects every service: no other hosts can be "
                                           "added", "keep only */*", Severity.WARNING))
    return problems


def _egress(path: PathKey, egress_list: list[tuple[int, Any]], namespace: str,
            ) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    ports: set[int] = set()
    sockets: set[str] = set()
    catch_all = False
    for i, raw in egress_list:
        here = (*path, i)
        if raw is None:
            problems.append(_error(here, "an egress listener may not be null", "remove it"))
            continue
        egress = mapping(raw)
        if egress.get("port") is None:
            if catch_all:
                problems.append(_error(here, "egress can have only one listener without a "
                                             "port", "merge the catch-all listeners"))
                continue
            if i == len(egress_list) - 1:
                catch_all = True
            else:
                problems.append(_error(here, "the egress listener without a port must be the "
                                             "last one", "move it to the end of egress"))
        else:
            problems += _egress_port(here, egress)
            number = mapping(egress["port"]).get("number", 0)
            if number == 0:
                bind = str(egress.get("bind") or "")
                if bind in sockets:
                    problems.append(_error((*here, "bind"), "unix domain sockets of listeners "
                                                            "must be unique",
                                           "give each listener its own socket"))
                sockets.add(bind)
            else:
                if number in ports:
                    problems.append(_error((*here, "port", "number"), "ports of IP-bound "
                                           "listeners must be unique",
                                           "give each egress listener its own port"))
                ports.add(number)
        problems += _egress_hosts((*here, "hosts"), items(egress.get("hosts")), namespace)
    return problems


def _outbound_policy(path: PathKey, policy: Any) -> list[FieldProblem]:
    if policy is None:
        return []
    policy = mapping(policy)
    mode = policy.get("mode", "REGISTRY_ONLY")
    if mode == "ALLOW_ANY_DYNAMIC_DNS":
        return [_error((*path, "mode"), "ALLOW_ANY_DYNAMIC_DNS is only supported in the mesh "
                                        "config, not in a Sidecar",
                       "use ALLOW_ANY or REGISTRY_ONLY")]
    proxy = policy.get("egressProxy")
    if proxy is None:
        return []
    if mode != "ALLOW_ANY":
        return [_error((*path, "egressProxy"), "egressProxy needs mode ALLOW_ANY",
                       "set mode: ALLOW_ANY")]
    proxy = mapping(proxy)
    problems = []
    problem = fqdn_problem(str(proxy.get("host") or ""))
    if problem:
        problems.append(_error((*path, "egressProxy", "host"), problem,
                               "name the egress proxy's service"))
    if proxy.get("port") is None:
        problems.append(_error((*path, "egressProxy", "port"), "egressProxy needs a port",
                               "add port.number"))
        return problems
    subset = proxy.get("subset")
    if subset and not is_dns1123_label(str(subset)):
        problems.append(_error((*path, "egressProxy", "subset"),
                               f"invalid subset name {subset!r}",
                               "a subset name is one DNS label"))
    problems += _number((*path, "egressProxy", "port", "number"),
                        mapping(proxy["port"]).get("number", 0))
    return problems


def check_sidecar(spec: dict[str, Any], metadata: dict[str, Any]) -> list[FieldProblem]:
    namespace = str(metadata.get("namespace") or "default")
    problems: list[FieldProblem] = []
    selector = spec.get("workloadSelector")
    if selector is not None:
        labels = mapping(mapping(selector).get("labels"))
        selector_errors = []
        for key, value in labels.items():
            if not key:
                selector_errors.append(_error(("spec", "workloadSelector", "labels"),
                                              "an empty label key is not supported in a "
                                              "selector", "name the label"))
            if "*" in str(key) or "*" in str(value):
                selector_errors.append(_error(("spec", "workloadSelector", "labels", key),
                                              "wildcards are not supported in a selector",
                                              "match exact labels"))
        if selector_errors:
            return selector_errors
        if not labels:
            problems.append(FieldProblem(("spec", "workloadSelector"),
                                         "the workload selector has no labels: the Sidecar "
                                         "applies to every workload in the namespace",
                                         "add labels, or remove workloadSelector",
                                         Severity.WARNING))
    if not any(spec.get(k) for k in ("egress", "ingress")) and all(
            spec.get(k) is None for k in ("outboundTrafficPolicy", "inboundConnectionPool")):
        return [_error(("spec",), "the Sidecar is empty",
                       "add egress, ingress, outboundTrafficPolicy or inboundConnectionPool")]
    ports: set[int] = set()
    for i, ingress in items(spec.get("ingress")):
        if ingress is None:
            problems.append(_error(("spec", "ingress", i), "an ingress listener may not be "
                                                           "null", "remove it"))
            continue
        problems += _ingress(("spec", "ingress", i), mapping(ingress), ports)
    problems += connection_pool_problems(("spec", "inboundConnectionPool"),
                                         spec.get("inboundConnectionPool"))
    problems += _egress(("spec", "egress"), items(spec.get("egress")), namespace)
    problems += _outbound_policy(("spec", "outboundTrafficPolicy"),
                                 spec.get("outboundTrafficPolicy"))
    return problems
