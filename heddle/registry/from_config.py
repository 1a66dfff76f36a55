"""Building services and workloads from ServiceEntry, WorkloadEntry and v1 Service resources.

Pure functions of the resources given: no I/O, so the snapshot can hold the result.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from heddle.api import istio_defaults
from heddle.api.models import (
    ServiceEntrySpec,
    ServiceSpec,
    WorkloadEntrySpec,
    WorkloadGroupSpec,
)
from heddle.api.models._generated.networking_serviceentry import ServiceEntrySpecEndpoint
from heddle.api.models._generated.networking_workloadgroup import WorkloadGroupSpecTemplate
from heddle.api.resource import Resource
from heddle.api.specs import spec_of
from heddle.registry import protocols
from heddle.registry.model import (
    Endpoint,
    Location,
    Resolution,
    Service,
    ServicePort,
    Workload,
    service_fqdn,
)


def _labels(value: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((value or {}).items()))


# A workload's fields, written in a WorkloadEntry, a ServiceEntry endpoint or a WorkloadGroup
# template.
WorkloadFields = WorkloadEntrySpec | ServiceEntrySpecEndpoint | WorkloadGroupSpecTemplate


def workload_from_entry(name: str, namespace: str, spec: WorkloadFields) -> Workload:
    return Workload(
        namespace=namespace,
        name=name,
        address=spec.address or "",
        labels=_labels(spec.labels),
        service_account=spec.serviceAccount or istio_defaults.SERVICE_ACCOUNT,
        ports=tuple(sorted((spec.ports or {}).items())),
        locality=spec.locality or "",
        weight=spec.weight or istio_defaults.WORKLOAD_WEIGHT,
        network=spec.network or "",
    )


def _service_entry(resource: Resource[Any]) -> list[tuple[Service, list[Workload]]]:
    spec = spec_of(resource, ServiceEntrySpec)
    ports = tuple(
        ServicePort(p.number, p.name, protocols.of_declared_port(p.protocol, p.name, p.number),
                    p.targetPort or None)
        for p in spec.ports or []
    )
    selector = spec.workloadSelector
    inline = [
        workload_from_entry(f"{resource.name}-{i}", resource.namespace, endpoint)
        for i, endpoint in enumerate(spec.endpoints or [])
    ]
    found = []
    for host in spec.hosts:
        service = Service(
            hostname=host,
            namespace=resource.namespace,
            name=resource.name,
            ports=ports,
            location=Location(spec.location or istio_defaults.SERVICE_ENTRY_LOCATION),
            resolution=Resolution(spec.resolution or istio_defaults.SERVICE_ENTRY_RESOLUTION),
            selector=_labels(selector.labels) if selector is not None else None,
            addresses=tuple(address.root for address in spec.addresses or ()),
            export_to=tuple(spec.exportTo or ()),
        )
        found.append((service, inline))
    return found


def _kube_service(resource: Resource[Any]) -> Service:
    spec = spec_of(resource, ServiceSpec)
    ports = []
    for p in spec.ports or []:
        name = p.name or ""
        protocol = protocols.of_kubernetes_port(name, p.port, p.appProtocol,
                                                p.protocol.value if p.protocol else None)
        target = p.targetPort
        ports.append(ServicePort(p.port, name, protocol,
                                 target if isinstance(target, int) else None))
    selector = spec.selector
    return Service(
        hostname=service_fqdn(resource.name, resource.namespace),
        namespace=resource.namespace,
        name=resource.name,
        ports=tuple(ports),
        location=Location.MESH_INTERNAL,
        resolution=Resolution.STATIC,
        selector=_labels(selector) if selector is not None else None,
        addresses=tuple(a for a in [spec.clusterIP] if a and a != "None"),
    )


@dataclass(frozen=True)
class Registry:
    """Every service, every workload, and which workloads serve which service."""

    services: tuple[Service, ...]
    workloads: tuple[Workload, ...]
    _inline: Mapping[tuple[str, str], tuple[Workload, ...]]
    # Workloads by (namespace, selector), filled as asked: the registry never changes.
    _selected: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Workload, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def with_services(self, services: Iterable[Service]) -> Registry:
        """Only `services`, with every workload still known (a proxy's narrowed view)."""
        narrowed = replace(self, services=tuple(services))
        # The workloads are the same, so which of them a selector picks is too: fifty
        # namespaces' views share one answer per selector rather than each scanning again.
        object.__setattr__(narrowed, "_selected", self._selected)
        return narrowed

    @cached_property
    def _by_hostname(self) -> dict[str, Service]:
        found: dict[str, Service] = {}
        for service in self.services:
            found.setdefault(service.hostname, service)
        return found

    @cached_property
    def _by_namespace(self) -> dict[str, list[Workload]]:
        found: dict[str, list[Workload]] = {}
        for workload in self.workloads:
            found.setdefault(workload.namespace, []).append(workload)
        return found

    @cached_property
    def _by_name(self) -> dict[tuple[str, str], Workload]:
        found: dict[tuple[str, str], Workload] = {}
        for workload in self.workloads:
            found.setdefault((workload.namespace, workload.name), workload)
        return found

    @cached_property
    def _by_address(self) -> dict[tuple[str, str], Workload]:
        found: dict[tuple[str, str], Workload] = {}
        for workload in self.workloads:
            found.setdefault((workload.namespace, workload.address), workload)
        return found

    def service(self, hostname: str) -> Service | None:
        return self._by_hostname.get(hostname)

    def workload(self, namespace: str, name: str) -> Workload | None:
        """The first workload of that name (a thousand proxies connecting each ask)."""
        return self._by_name.get((namespace, name))

    def workload_at(self, namespace: str, address: str) -> Workload | None:
        """The first workload of that namespace at `address`."""
        return self._by_address.get((namespace, address))

    def workloads_of(self, service: Service) -> tuple[Workload, ...]:
        if service.selector is None:
            return self._inline.get((service.namespace, service.hostname), ())
        key = (service.namespace, service.selector)
        if key not in self._selected:
            self._selected[key] = tuple(
                w for w in self._by_namespace.get(service.namespace, ())
                if all(pair in w.labels for pair in service.selector))
        return self._selected[key]

    def endpoints(self, service: Service, port: ServicePort,
                  subset_labels: Mapping[str, str] | None = None) -> tuple[Endpoint, ...]:
        """Where `port` of `service` is served; a workload's named port overrides the number."""
        found = []
        for workload in self.workloads_of(service):
            if not workload.ready:
                continue
            labels = workload.label_map
            if subset_labels and any(labels.get(k) != v for k, v in subset_labels.items()):
                continue
            named = dict(workload.ports).get(port.name)
            number = named or port.target_port or port.number
            found.append(Endpoint(workload.address, number, workload))
        return tuple(sorted(found))


def workload_from_group(group: Resource[Any], name: str, address: str) -> Workload:
    """An instance of a WorkloadGroup: its template, plus the group's metadata labels,
    at the address the instance's proxy connected from (Istio's auto-registration)."""
    spec = spec_of(group, WorkloadGroupSpec)
    labels = {**(spec.template.labels or {}),
              **((spec.metadata.labels if spec.metadata is not None else None) or {})}
    return workload_from_entry(name, group.namespace, spec.template.model_copy(
        update={"labels": labels, "address": address}))


def build_registry(resources: Iterable[Resource[Any]],
                   registered: Iterable[Workload] = (),
                   unready: Collection[tuple[str, str]] = frozenset()) -> Registry:
    """`registered`: workloads that joined at run time (WorkloadGroup instances);
    `unready`: the (namespace, name) of WorkloadEntries whose agents report them not
    ready, kept out of the endpoints."""
    services: list[Service] = []
    workloads: list[Workload] = list(registered)
    inline: dict[tuple[str, str], tuple[Workload, ...]] = {}
    for resource in resources:
        group, kind = resource.key.group, resource.kind
        if group == "networking.istio.io" and kind == "ServiceEntry":
            for service, endpoints in _service_entry(resource):
                services.append(service)
                inline[(service.namespace, service.hostname)] = tuple(endpoints)
        elif group == "networking.istio.io" and kind == "WorkloadEntry":
            workload = workload_from_entry(resource.name, resource.namespace,
                                           spec_of(resource, WorkloadEntrySpec))
            if (workload.namespace, workload.name) in unready:
                workload = replace(workload, ready=False)
            workloads.append(workload)
        elif group == "" and kind == "Service":
            services.append(_kube_service(resource))
    services.sort(key=lambda s: (s.hostname, s.namespace, s.name))
    return Registry(tuple(services), tuple(sorted(workloads)), inline)
