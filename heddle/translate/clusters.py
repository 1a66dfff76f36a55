"""Clusters (CDS) and their endpoints (EDS) for services and DestinationRule subsets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Location, Resolution, Service, ServicePort, resolve_host
from heddle.translate.egress import passthrough_cluster
from heddle.translate.mtls import (
    has_sidecar,
    istio_mutual_socket,
    plaintext_socket,
    spiffe_id,
    tls_mode_match,
    tls_mode_metadata,
)
from heddle.translate.names import inbound_cluster, outbound_cluster

CONNECT_TIMEOUT = duration_pb2.Duration(seconds=10)


@dataclass(frozen=True)
class OutboundTarget:
    """One outbound cluster: a service port, optionally narrowed to a subset's labels."""

    service: Service
    port: ServicePort
    subset: str = ""
    subset_labels: tuple[tuple[str, str], ...] = ()

    @property
    def cluster_name(self) -> str:
        return outbound_cluster(self.port.number, self.service.hostname, self.subset)


def _subsets(snapshot: MeshSnapshot, service: Service) -> list[tuple[str, dict[str, str]]]:
    found: list[tuple[str, dict[str, str]]] = []
    for rule in snapshot.of_kind("networking.istio.io", "DestinationRule"):
        spec: dict[str, Any] = dict(rule.body.get("spec") or {})
        if resolve_host(str(spec.get("host", "")), rule.namespace) != service.hostname:
            continue
        for subset in spec.get("subsets") or []:
            found.append((str(subset["name"]), dict(subset.get("labels") or {})))
    return found


def outbound_targets(snapshot: MeshSnapshot) -> Iterator[OutboundTarget]:
    for service in snapshot.registry.services:
        subsets = _subsets(snapshot, service)
        for port in service.ports:
            yield OutboundTarget(service, port)
            for name, labels in subsets:
                yield OutboundTarget(service, port, name, tuple(sorted(labels.items())))


def _socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=address, port_value=port)
    )


def load_assignment(snapshot: MeshSnapshot, target: OutboundTarget,
                    ) -> endpoint_pb2.ClusterLoadAssignment:
    endpoints = snapshot.registry.endpoints(target.service, target.port,
                                            dict(target.subset_labels))
    by_locality: dict[str, list[endpoint_components_pb2.LbEndpoint]] = {}
    for endpoint in endpoints:
        lb = endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(
                address=_socket_address(endpoint.address, endpoint.port)),
            load_balancing_weight=wrappers_pb2.UInt32Value(value=endpoint.workload.weight),
        )
        if has_sidecar(endpoint.workload):  # auto-mTLS picks TLS for these endpoints
            lb.metadata.CopyFrom(tls_mode_metadata())
        by_locality.setdefault(endpoint.workload.locality, []).append(lb)
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=target.cluster_name,
        endpoints=[
            endpoint_components_pb2.LocalityLbEndpoints(lb_endpoints=lb)
            for _, lb in sorted(by_locality.items())
        ],
    )


def _destination_tls_mode(snapshot: MeshSnapshot, target: OutboundTarget) -> str:
    """A DestinationRule's tls mode for this cluster (subset over host level), or ""."""
    mode = ""
    for rule in snapshot.of_kind("networking.istio.io", "DestinationRule"):
        spec: dict[str, Any] = dict(rule.body.get("spec") or {})
        if resolve_host(str(spec.get("host", "")), rule.namespace) != target.service.hostname:
            continue
        mode = str(((spec.get("trafficPolicy") or {}).get("tls") or {}).get("mode") or mode)
        for subset in spec.get("subsets") or []:
            if subset.get("name") == target.subset and target.subset:
                policy = subset.get("trafficPolicy") or {}
                mode = str((policy.get("tls") or {}).get("mode") or mode)
    return mode


def _peer_identities(snapshot: MeshSnapshot, service: Service) -> list[str]:
    """The SPIFFE ids the destination may present: its workloads' service accounts."""
    return sorted({spiffe_id(w.namespace, w.service_account)
                   for w in snapshot.registry.workloads_of(service)})


def _apply_mtls(snapshot: MeshSnapshot, target: OutboundTarget,
                cluster: cluster_pb2.Cluster) -> None:
    """Auto-mTLS as in Istio: ISTIO_MUTUAL to endpoints with a sidecar, plaintext to the rest,
    unless a DestinationRule says DISABLE or ISTIO_MUTUAL."""
    mode = _destination_tls_mode(snapshot, target)
    if mode in ("DISABLE", "SIMPLE", "MUTUAL"):  # SIMPLE/MUTUAL origination: see issue 5
        return
    port, subset, host = target.port.number, target.subset, target.service.hostname
    mutual = istio_mutual_socket(_peer_identities(snapshot, target.service),
                                 sni=f"outbound_.{port}_.{subset}_.{host}")
    if mode == "ISTIO_MUTUAL":
        cluster.transport_socket.CopyFrom(mutual)
        return
    cluster.transport_socket_matches.add(name="tlsMode-istio", match=tls_mode_match(),
                                         transport_socket=mutual)
    cluster.transport_socket_matches.add(name="tlsMode-disabled",
                                         transport_socket=plaintext_socket())


def dns_targets(snapshot: MeshSnapshot | None, target: OutboundTarget) -> list[tuple[str, int]]:
    """What a DNS cluster resolves: the ServiceEntry's endpoints (by name), else its host."""
    port = target.port
    if snapshot is not None:
        endpoints = snapshot.registry.endpoints(target.service, port, dict(target.subset_labels))
        if endpoints:
            return [(e.address, e.port) for e in endpoints]
    return [(target.service.hostname, port.target_port or port.number)]


def outbound_cluster_resource(target: OutboundTarget,
                              snapshot: MeshSnapshot | None = None) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(name=target.cluster_name, connect_timeout=CONNECT_TIMEOUT)
    if target.service.resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN):
        cluster.type = (cluster_pb2.Cluster.STRICT_DNS
                        if target.service.resolution is Resolution.DNS
                        else cluster_pb2.Cluster.LOGICAL_DNS)
        cluster.load_assignment.cluster_name = target.cluster_name
        for address, port in dns_targets(snapshot, target):
            cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address.CopyFrom(
                _socket_address(address, port))
    elif target.service.resolution is Resolution.NONE and target.service.selector is None \
            and not (snapshot and snapshot.registry.workloads_of(target.service)):
        # Istio sends such traffic to the address the application connected to. Behind an
        # explicit proxy that address is the host it asked for, resolved when asked.
        cluster.CopyFrom(passthrough_cluster(target.cluster_name))
    else:
        cluster.type = cluster_pb2.Cluster.EDS
        cluster.eds_cluster_config.eds_config.CopyFrom(config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            resource_api_version=config_source_pb2.V3,
        ))
        if snapshot is not None and target.service.location is Location.MESH_INTERNAL:
            _apply_mtls(snapshot, target, cluster)
    return cluster


def is_eds(cluster: cluster_pb2.Cluster) -> bool:
    return bool(cluster.type == cluster_pb2.Cluster.EDS)


def inbound_cluster_resource(port: int, app_address: str, app_port: int | None = None,
                             ) -> cluster_pb2.Cluster:
    """Where the inbound listener on `port` hands requests to the application itself."""
    name = inbound_cluster(port)
    cluster = cluster_pb2.Cluster(name=name, connect_timeout=CONNECT_TIMEOUT,
                                  type=cluster_pb2.Cluster.STATIC)
    cluster.load_assignment.cluster_name = name
    cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address.CopyFrom(
        _socket_address(app_address, app_port or port))
    return cluster


def outbound_clusters(snapshot: MeshSnapshot) -> list[cluster_pb2.Cluster]:
    """CDS for a sidecar: one cluster per service port and per DestinationRule subset."""
    return [outbound_cluster_resource(t, snapshot) for t in outbound_targets(snapshot)]


def outbound_endpoints(snapshot: MeshSnapshot) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """EDS for every outbound cluster that Envoy learns endpoints for over ADS."""
    return [
        load_assignment(snapshot, target)
        for target in outbound_targets(snapshot)
        if is_eds(outbound_cluster_resource(target))
    ]
