"""Which Services a workload serves, by the port it listens on: each Service of its
namespace whose workloads include it, and for each of the Service's ports the port the
workload answers on (its WorkloadEntry's port of that name, else the targetPort, else the
port itself). Once per snapshot and workload: rate limits, metrics and tracing all ask."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Service, ServicePort


@dataclass(frozen=True)
class ServedPort:
    service: Service
    port: ServicePort


def served(snapshot: MeshSnapshot, proxy: Proxy) -> Mapping[int, tuple[ServedPort, ...]]:
    """The workload's port -> the (Service, port) pairs that reach it there, by hostname
    (the registry's order)."""
    def compute() -> Mapping[int, tuple[ServedPort, ...]]:
        found: dict[int, list[ServedPort]] = {}
        registry = snapshot.registry
        for service in registry.services:
            if service.selector is None or service.namespace != proxy.namespace:
                continue
            for workload in registry.workloads_of(service):
                if workload.address != proxy.address:
                    continue
                for port in service.ports:
                    target = (dict(workload.ports).get(port.name) or port.target_port
                              or port.number)
                    found.setdefault(target, []).append(ServedPort(service, port))
        return MappingProxyType({number: tuple(pairs) for number, pairs in found.items()})

    return snapshot.memo(("served", proxy.namespace, proxy.address), compute)
