"""Istio's protocol selection for a service port.

A port's protocol comes from its `protocol` field (ServiceEntry, Sidecar), else the
Kubernetes `appProtocol`, else the prefix of its name (`http-web`, `grpc`, `tcp-db`). A port
that none of them names is AUTO, Istio's "unsupported" protocol: its sidecars detect HTTP
per connection (Envoy's HTTP and TLS inspectors) and treat anything else as TCP. Detection
needs the client to speak first, so server-first protocols (MySQL, SMTP, ...) need an
explicit name; as in Istio, the well-known ports of a few of them are TCP when unnamed.
"""

from __future__ import annotations

AUTO = "AUTO"  # Istio's protocol.Unsupported: detected per connection

HTTP_PROTOCOLS = frozenset({"HTTP", "HTTP2", "GRPC", "GRPC-WEB"})
HTTP2_PROTOCOLS = frozenset({"HTTP2", "GRPC", "GRPC-WEB"})
TLS_PROTOCOLS = frozenset({"TLS", "HTTPS"})

# What Istio's protocol.Parse accepts, case-insensitively.
_KNOWN = {
    "tcp": "TCP", "udp": "UDP", "grpc": "GRPC", "grpc-web": "GRPC-WEB", "http": "HTTP",
    "http_proxy": "HTTP_PROXY", "http2": "HTTP2", "https": "HTTPS", "tls": "TLS",
    "mongo": "MONGO", "redis": "REDIS", "mysql": "MYSQL",
}
# The standard names Kubernetes defines for appProtocol.
_KUBERNETES_APP_PROTOCOLS = {"kubernetes.io/h2c": "HTTP2", "kubernetes.io/ws": "HTTP",
                             "kubernetes.io/wss": "HTTPS"}
# Server-first protocols whose well-known ports Istio makes TCP when nothing names them
# (SMTP, DNS, MySQL, MongoDB): detection would wait for a client that waits for the server.
SERVER_FIRST_PORTS = frozenset({25, 53, 3306, 27017})


def parse(value: str) -> str:
    """A protocol as written in a `protocol` field: AUTO when it names none Istio knows."""
    return _KNOWN.get(value.lower(), AUTO)


def from_name(name: str, number: int) -> str:
    """The protocol a port name's prefix (before the first `-`) names, as Istio's
    ConvertProtocol reads it; `grpc-web` is a prefix of its own."""
    lowered = name.lower()
    if lowered.startswith("grpc-web"):
        return "GRPC-WEB"
    protocol = parse(lowered.split("-", 1)[0])
    if protocol == AUTO and number in SERVER_FIRST_PORTS:
        return "TCP"
    return protocol


def of_kubernetes_port(name: str, number: int, app_protocol: str | None,
                       transport: str | None = None) -> str:
    """A v1 Service port: UDP when its transport is; else `appProtocol` when set (it
    replaces the name, as in Istio), else the name."""
    if (transport or "").upper() == "UDP":
        return "UDP"
    if app_protocol:
        known = _KUBERNETES_APP_PROTOCOLS.get(app_protocol)
        return known if known is not None else from_name(app_protocol, number)
    return from_name(name, number)


def of_declared_port(protocol: str | None, name: str, number: int) -> str:
    """A ServiceEntry or Sidecar port: its `protocol` when set, else what its name says
    (Istio reads only `protocol` there; the name is Heddle's fallback, as before)."""
    return parse(protocol) if protocol else from_name(name, number)


def speaks_http(protocol: str) -> bool:
    """Whether HTTP routing applies to the port: declared HTTP, or detected on AUTO."""
    return protocol in HTTP_PROTOCOLS or protocol == AUTO
