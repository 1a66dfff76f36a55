"""Service analyzers: ports whose name (or appProtocol) names no protocol Istio knows, so
their traffic is treated as opaque TCP (IST0118), and ExternalName Services whose port
name says `tcp` (IST0150)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import AnalysisInput, spec
from heddle.analyze.messages import (
    EXTERNAL_NAME_SERVICE_INVALID_PORT_NAME,
    PORT_NAME_NOT_UNDER_NAMING_CONVENTION,
    Message,
)

SERVICE = ("", "Service")
_PROTOCOLS = {"tcp", "udp", "grpc", "grpc-web", "http", "http_proxy", "http2", "https", "tls",
              "mongo", "redis", "mysql", "doublehbone"}
# Ports Istio takes for TCP whatever their name: SMTP, DNS, MySQL, MongoDB.
_WELL_KNOWN_TCP = {25, 53, 3306, 27017}
_APP_PROTOCOLS = {"kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss"}
_MANAGED = "gateway.istio.io/managed"
_MANAGED_BY_ISTIO = {"istio.io-gateway-controller", "istio.io-mesh-controller",
                     "istio.io-eastwest-controller"}


def protocol_known(number: int, name: str, protocol: str, app_protocol: str | None) -> bool:
    """Whether Istio reads a protocol off the port (as its Kubernetes conversion does)."""
    if protocol == "UDP":
        return True
    word = name if app_protocol is None else app_protocol
    if word in _APP_PROTOCOLS and app_protocol is not None:
        return True
    if word[:8].lower() == "grpc-web":
        return True
    return word.split("-", 1)[0].lower() in _PROTOCOLS or number in _WELL_KNOWN_TCP


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _check(world: AnalysisInput) -> Iterator[Message]:
    for service in world.of_kind(*SERVICE):
        labels = service.metadata.labels
        if "istio" in labels or labels.get("release") == "istio":
            continue  # Istio's own control plane
        if labels.get(_MANAGED) in _MANAGED_BY_ISTIO:
            continue  # made by Istio for a Gateway API gateway
        body = spec(service)
        external = body.get("type") == "ExternalName"
        for i, port in enumerate(body.get("ports") or []):
            port = _dict(port)
            name = str(port.get("name") or "")
            number = int(port.get("port") or 0)
            app = port.get("appProtocol")
            known = protocol_known(number, name, str(port.get("protocol") or "TCP"),
                                   None if app is None else str(app))
            if known and not (external and name == "tcp"):
                continue
            path = ("spec", "ports", i)
            if external:
                yield report(EXTERNAL_NAME_SERVICE_INVALID_PORT_NAME, service,
                             "an ExternalName Service's port must name its protocol (not "
                             "`tcp`) for Istio to route it", "name the port http-..., "
                             "https-..., tls-... or set appProtocol", path)
            else:
                yield report(PORT_NAME_NOT_UNDER_NAMING_CONVENTION, service,
                             f"port name {name!r} (port {number}, targetPort "
                             f"{port.get('targetPort', number)}) names no protocol: its "
                             "traffic is detected or treated as plain TCP",
                             "name the port <protocol>[-<suffix>] (http, grpc, tcp, tls ...) "
                             "or set appProtocol", path)


ANALYZERS = (
    Analyzer("service.PortNameAnalyzer", "Checks the port names associated with each service",
             frozenset({SERVICE}), _check),
)
