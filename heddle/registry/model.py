"""The registry's view of the mesh: services with ports, and the workloads behind them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

DOMAIN_SUFFIX = "svc.cluster.local"


class Location(StrEnum):
    MESH_INTERNAL = "MESH_INTERNAL"
    MESH_EXTERNAL = "MESH_EXTERNAL"


class Resolution(StrEnum):
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    NONE = "NONE"


@dataclass(frozen=True, order=True)
class ServicePort:
    number: int
    name: str
    protocol: str  # HTTP, HTTP2, GRPC, HTTPS, TLS, TCP, ... as Istio names them
    target_port: int | None = None


@dataclass(frozen=True)
class Service:
    """One hostname with its ports; a ServiceEntry with several hosts is several services."""

    hostname: str
    namespace: str
    name: str
    ports: tuple[ServicePort, ...]
    location: Location = Location.MESH_INTERNAL
    resolution: Resolution = Resolution.STATIC
    # Labels that pick the workloads behind the service; None when endpoints are listed.
    selector: tuple[tuple[str, str], ...] | None = None
    addresses: tuple[str, ...] = ()
    export_to: tuple[str, ...] = ()

    def port(self, number: int) -> ServicePort | None:
        return next((p for p in self.ports if p.number == number), None)


@dataclass(frozen=True, order=True)
class Workload:
    """Something that runs: a WorkloadEntry, an endpoint of a ServiceEntry, an agent."""

    namespace: str
    name: str
    address: str
    labels: tuple[tuple[str, str], ...] = ()
    service_account: str = "default"
    # Port name -> port the workload really listens on (WorkloadEntry `ports`).
    ports: tuple[tuple[str, int], ...] = ()
    locality: str = ""
    weight: int = 1
    network: str = ""

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


@dataclass(frozen=True, order=True)
class Endpoint:
    """One address:port that serves a service port."""

    address: str
    port: int
    workload: Workload = field(compare=False)


def service_fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.{DOMAIN_SUFFIX}"


def resolve_host(host: str, namespace: str) -> str:
    """Istio reads a short name (`reviews`) relative to the namespace of the resource using it."""
    return host if "." in host or host == "*" else service_fqdn(host, namespace)
