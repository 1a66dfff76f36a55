"""The registry's view of the mesh: services with ports, and the workloads behind them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

T = TypeVar("T")

DOMAIN_SUFFIX = "svc.cluster.local"


def _hash_once(cls: type[T]) -> type[T]:
    """A frozen dataclass whose hash is computed once per object: services and workloads
    are fields of every cache key the generator builds (a million lookups at 1000 x 1000),
    and the generated hash re-walks every field each time. Not pickled: string hashes
    differ between processes."""
    computed: Callable[[Any], int] = cls.__hash__

    def __hash__(self: Any) -> int:
        try:
            return self.__dict__["_hash"]  # type: ignore[no-any-return]
        except KeyError:
            value = computed(self)
            object.__setattr__(self, "_hash", value)
            return value

    def __getstate__(self: Any) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_hash"}

    cls.__hash__ = __hash__  # type: ignore[method-assign]
    cls.__getstate__ = __getstate__  # type: ignore[method-assign]
    return cls


class Location(StrEnum):
    MESH_INTERNAL = "MESH_INTERNAL"
    MESH_EXTERNAL = "MESH_EXTERNAL"


class Resolution(StrEnum):
    STATIC = "STATIC"
    DNS = "DNS"
    DNS_ROUND_ROBIN = "DNS_ROUND_ROBIN"
    NONE = "NONE"


@_hash_once
@dataclass(frozen=True, order=True)
class ServicePort:
    number: int
    name: str
    protocol: str  # HTTP, HTTP2, GRPC, HTTPS, TLS, TCP, ... as Istio names them
    target_port: int | None = None


@_hash_once
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


@_hash_once
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
    # False while its agent reports it not ready: it stays a workload of its services (for
    # their SANs, its own inbound side) but serves none of their endpoints, as a Pod that
    # fails its readiness probe leaves the EndpointSlice and Istio leaves an unhealthy
    # WorkloadEntry out of EDS.
    ready: bool = True

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
