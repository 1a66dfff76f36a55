"""Istio's rules for a Gateway: its name, servers, hosts, ports, binds and server TLS."""

from __future__ import annotations

from typing import Any

from heddle.api.diagnostics import Severity
from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import items, mapping
from heddle.api.semantics.istio_hosts import is_dns1123_label, is_ip, namespaced_host_problems

GATEWAY_SEMANTICS = "internal.istio.io/gateway-semantics"
UNIX_PREFIX = "unix://"
# Istio's protocol names (any case) and how it groups them.
PROTOCOLS = {"tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-Web",
             "http": "HTTP", "http_proxy": "HTTP_PROXY", "http2": "HTTP2", "https": "HTTPS",
             "tls": "TLS", "mongo": "Mongo", "redis": "Redis", "mysql": "MySQL"}
HTTP_PROTOCOLS = {"HTTP", "HTTP2", "HTTP_PROXY", "GRPC", "GRPC-Web"}
TLS_PROTOCOLS = {"HTTPS", "TLS"}
CIPHER_SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA", "AES256-SHA", "DES-CBC3-SHA",
}
_HOST_FIX = 'write "NAMESPACE/HOST" (or a bare HOST) with a fully qualified name, "*" or "*.DOMAIN"'


def protocol(name: Any) -> str | None:
    """Istio's protocol for a port's `protocol`, None where Istio does not know it."""
    return PROTOCOLS.get(str(name or "").lower())


def valid_cipher_suite(suite: str) -> bool:
    """Istio lets through ALL and expressions starting with an operator (`-`, `+`, `!`)."""
    return suite in ("", "ALL") or not suite[0].isalnum() or suite in CIPHER_SUITES


def unix_address_problem(address: str) -> str | None:
    if not address:
        return "a unix address must not be empty"
    if address.startswith("@"):  # an abstract socket
        return None
    if not address.startswith("/") or address.endswith("/"):
        return f"{address} is not an absolute path to a file"
    return None


def _warning(path: PathKey, message: str, fix: str) -> FieldProblem:
    return FieldProblem(path, message, fix, Severity.WARNING)


def server_tls_problems(path: PathKey, tls: dict[str, Any]) -> list[FieldProblem]:
    """Istio's validateTLSOptions for a Gateway server's tls."""
    problems: list[FieldProblem] = []
    mode = tls.get("mode", "PASSTHROUGH")
    suites = [s for _, s in items(tls.get("cipherSuites")) if isinstance(s, str)]
    if tls.get("minProtocolVersion") in ("TLSV1_0", "TLSV1_1") and not suites:
        problems.append(_warning((*path, "minProtocolVersion"),
                                 "TLS versions below TLSV1_2 need compatible cipherSuites: the "
                                 "default ones no longer include any", "set cipherSuites"))
    invalid = sorted({s for s in suites if not valid_cipher_suite(s)})
    if invalid:
        problems.append(_warning((*path, "cipherSuites"),
                                 f"invalid cipher suites {invalid} are ignored",
                                 "use BoringSSL names, e.g. ECDHE-RSA-AES128-GCM-SHA256"))
    valid = [s for s in suites if valid_cipher_suite(s)]
    duplicates = sorted({s for s in valid if valid.count(s) > 1})
    if duplicates:
        problems.append(_warning((*path, "cipherSuites"),
                                 f"duplicate cipher suites {duplicates} are ignored",
                                 "list each cipher suite once"))
    certificates = [mapping(c) for _, c in items(tls.get("tlsCertificates"))]
    credential_names = items(tls.get("credentialNames"))
    if mode == "ISTIO_MUTUAL":
        for name, what in (("serverCertificate", "a server certificate"),
                           ("privateKey", "a private key"), ("caCertificates", "a CA bundle"),
                           ("tlsCertificates", "tlsCertificates"),
                           ("credentialName", "a credentialName"),
                           ("credentialNames", "credentialNames")):
            if tls.get(name):
                problems.append(FieldProblem((*path, name),
                                             f"ISTIO_MUTUAL TLS cannot have {what}",
                                             "remove it: ISTIO_MUTUAL uses the mesh's "
                                             "certificates"))
        return problems
    certificate_fields = ("caCrl", "serverCertificate", "privateKey", "caCertificates",
                          "tlsCertificates", "credentialName", "credentialNames")
    if mode in ("PASSTHROUGH", "AUTO_PASSTHROUGH") and any(tls.get(k)
                                                           for k in certificate_fields):
        problems.append(_warning(path, f"{mode} mode does not use certificates: they are "
                                       "ignored", "remove the certificate fields"))
    sources = sum((bool(tls.get("serverCertificate") and tls.get("privateKey")),
                   bool(tls.get("credentialName")), bool(credential_names),
                   bool(certificates)))
    if sources > 1:
        problems.append(FieldProblem(path, "only one of credentialName, credentialNames, "
                                           "serverCertificate/privateKey and tlsCertificates "
                                           "may be set", "keep one source of certificates"))
    terminating = mode in ("SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL")
    if terminating and (tls.get("credentialName") or credential_names):
        return problems  # the certificates come from the credential
    if terminating:
        prefix = "SIMPLE TLS" if mode == "SIMPLE" else "MUTUAL TLS"
        if mode != "SIMPLE" and not tls.get("caCertificates"):
            problems.append(FieldProblem((*path, "caCertificates"),
                                         f"{prefix} requires a client CA bundle",
                                         "set caCertificates, or use credentialName"))
        if len(certificates) > 2:
            problems.append(_warning((*path, "tlsCertificates"),
                                     f"{prefix} supports at most 2 server certificates",
                                     "keep one RSA and one ECDSA certificate"))
        for certificate in certificates or [tls]:
            if not certificate.get("serverCertificate"):
                problems.append(FieldProblem(path, f"{prefix} requires a server certificate",
                                             "set credentialName, or serverCertificate and "
                                             "privateKey"))
            if not certificate.get("privateKey"):
                problems.append(FieldProblem(path, f"{prefix} requires a private key",
                                             "set credentialName, or serverCertificate and "
                                             "privateKey"))
    if tls.get("caCrl"):
        if tls.get("credentialName"):
            problems.append(FieldProblem((*path, "caCrl"), "caCrl is not supported with "
                                         "credentialName", "put the CRL in the credential"))
        if mode == "SIMPLE":
            problems.append(FieldProblem((*path, "caCrl"), "caCrl is not supported with "
                                         "SIMPLE TLS", "remove caCrl, or use MUTUAL"))
    return problems


def _port(path: PathKey, port: dict[str, Any], bind: str) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if protocol(port.get("protocol")) is None:
        problems.append(FieldProblem((*path, "protocol"),
                                     f"invalid protocol {port.get('protocol')!r}",
                                     "use HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TLS, TCP, MONGO, "
                                     "REDIS or MYSQL"))
    number = port.get("number", 0)
    if isinstance(number, int) and (number > 0 or not bind.startswith(UNIX_PREFIX)) and not (
            1 <= number <= 65535):
        problems.append(FieldProblem((*path, "number"),
                                     f"port number {number} must be in the range 1..65535",
                                     "use a port from 1 to 65535 (0 only with a unix:// bind)"))
    if port.get("targetPort"):
        problems.append(FieldProblem((*path, "targetPort"), "targetPort has no effect on "
                                     "Gateways", "remove targetPort"))
    if not port.get("name"):
        problems.append(FieldProblem((*path, "name"), "the server port needs a name",
                                     "name the port, e.g. http"))
    return problems


def _bind(path: PathKey, port: dict[str, Any], bind: str) -> list[FieldProblem]:
    if bind.startswith(UNIX_PREFIX):
        problems = []
        problem = unix_address_problem(bind.removeprefix(UNIX_PREFIX))
        if problem:
            problems.append(FieldProblem((*path, "bind"), problem,
                                         "write unix:///ABSOLUTE/PATH or unix://@NAME"))
        if port.get("number"):
            problems.append(FieldProblem((*path, "port", "number"),
                                         "the port number must be 0 for a unix domain socket",
                                         "set number: 0"))
        problems.append(_warning((*path, "bind"), "Heddle's gateways do not listen on unix "
                                                  "domain sockets: this server gets no "
                                                  "listener", "serve it on a TCP port"))
        return problems
    if bind and not is_ip(bind):
        return [FieldProblem((*path, "bind"), f"{bind} is not a valid IP",
                             "bind to an IP address, or to unix:///PATH")]
    return []


def _server(path: PathKey, server: dict[str, Any], gateway_semantics: bool,
            ) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    hosts = items(server.get("hosts"))
    if not hosts:
        problems.append(FieldProblem((*path, "hosts"), "a server needs at least one host",
                                     'add hosts, e.g. "*"'))
    for j, host in hosts:
        if isinstance(host, str):
            if gateway_semantics and host.startswith("~/"):
                host = "*/" + host[2:]  # Gateway API listeners without routes
            problems += [FieldProblem((*path, "hosts", j), message, _HOST_FIX)
                         for message in namespaced_host_problems(host, is_gateway=True)]
    bind = str(server.get("bind") or "")
    if server.get("port") is None:
        problems.append(FieldProblem((*path, "port"), "a server needs a port",
                                     "add port with number, name and protocol"))
        port_problems: list[FieldProblem] = []
        port: dict[str, Any] = {}
    else:
        port = mapping(server.get("port"))
        port_problems = _port((*path, "port"), port, bind)
    problems += port_problems
    problems += _bind(path, port, bind)
    tls = server.get("tls")
    if tls is not None:
        problems += server_tls_problems((*path, "tls"), mapping(tls))
    if server.get("port") is not None and not any(p.severity is Severity.ERROR
                                                  for p in port_problems):
        proto = protocol(port.get("protocol"))
        if proto in TLS_PROTOCOLS and tls is None:
            problems.append(FieldProblem(path, f"a {proto} server needs tls settings",
                                         "add tls with mode SIMPLE and credentialName"))
        elif proto not in TLS_PROTOCOLS and tls is not None:
            settings = mapping(tls)
            passthrough = settings.get("mode", "PASSTHROUGH") in ("PASSTHROUGH",
                                                                  "AUTO_PASSTHROUGH")
            if proto in HTTP_PROTOCOLS:
                if not passthrough or any(settings.get(k) for k in (
                        "caCertificates", "privateKey", "serverCertificate")):
                    problems.append(FieldProblem((*path, "tls"),
                                                 "a plain-text HTTP server cannot have TLS "
                                                 "settings", "use protocol HTTPS, or keep only "
                                                 "tls.httpsRedirect"))
            else:
                problems.append(FieldProblem((*path, "tls"),
                                             f"a {proto} server cannot have TLS settings",
                                             "use protocol HTTPS or TLS"))
    return problems


def check_gateway(spec: dict[str, Any], metadata: dict[str, Any]) -> list[FieldProblem]:
    annotations = mapping(metadata.get("annotations"))
    gateway_semantics = annotations.get(GATEWAY_SEMANTICS) == "gateway"
    problems: list[FieldProblem] = []
    name = str(metadata.get("name") or "")
    if not gateway_semantics and not is_dns1123_label(name):
        problems.append(FieldProblem(("metadata", "name"), f"invalid gateway name {name!r}",
                                     "a Gateway's name is one DNS label: lower case letters, "
                                     "digits and '-', no dots"))
    servers = items(spec.get("servers"))
    if not servers:
        problems.append(FieldProblem(("spec", "servers"), "a Gateway needs at least one server",
                                     "add a server with a port and hosts"))
    names: set[str] = set()
    for i, raw in servers:
        server = mapping(raw)
        path: PathKey = ("spec", "servers", i)
        problems += _server(path, server, gateway_semantics)
        if server.get("port") is None:
            continue
        port = mapping(server["port"])
        name = str(port.get("name") or "")
        if name in names:
            problems.append(FieldProblem((*path, "port", "name"),
                                         f"port names in servers must be unique: {name!r} "
                                         "is used twice", "give each server port a unique "
                                                          "name"))
        names.add(name)
        if protocol(port.get("protocol")) not in HTTP_PROTOCOLS and mapping(
                server.get("tls")).get("httpsRedirect"):
            problems.append(_warning((*path, "tls", "httpsRedirect"),
                                     "tls.httpsRedirect should only be used with HTTP servers",
                                     "remove httpsRedirect, or move it to the HTTP server"))
    return problems
