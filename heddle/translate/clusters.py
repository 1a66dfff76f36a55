"""Clusters (CDS) and their endpoints (EDS) for services and DestinationRule subsets."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from heddle.api import istio_defaults
from heddle.api.models.destination_rule_parts import ClientTLS, LocalityLbSetting
from heddle.model.destination_rules import MergedDestinationRule, destination_rule
from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Location, Resolution, Service, ServicePort
from heddle.registry.protocols import AUTO, HTTP2_PROTOCOLS
from heddle.translate.auto_mtls import endpoint_uses_mtls, service_may_use_mtls
from heddle.translate.egress import passthrough_cluster
from heddle.translate.locality import (
    apply_locality,
    label_priority,
    locality_groups,
    uses_locality_weights,
)
from heddle.translate.metrics.peer import add_cluster_metadata, endpoint_metadata
from heddle.translate.mtls import (
    istio_mutual_socket,
    plaintext_socket,
    spiffe_id,
    tls_mode_match,
    tls_mode_metadata,
)
from heddle.translate.names import inbound_cluster, outbound_cluster, parse_cluster
from heddle.translate.traffic_policy import (
    ClusterPolicy,
    ProtocolOptions,
    apply_traffic_policy,
    attach_protocol_options,
    effective_policy,
)
from heddle.translate.upstream_tls import origination_socket

CONNECT_TIMEOUT = duration_pb2.Duration(seconds=istio_defaults.CONNECT_TIMEOUT_SECONDS)


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


def _rule(snapshot: MeshSnapshot, service: Service, proxy: Proxy | None,
          ) -> MergedDestinationRule | None:
    if proxy is None:
        return destination_rule(snapshot, service.hostname, service.namespace)
    return destination_rule(snapshot, service.hostname, service.namespace, proxy.namespace,
                            proxy.label_map)


def outbound_targets(snapshot: MeshSnapshot, proxy: Proxy | None = None,
                     ) -> Iterator[OutboundTarget]:
    """Every service port, and each subset of the DestinationRule the proxy sees for it."""
    for service in snapshot.registry.services:
        rule = _rule(snapshot, service, proxy)
        subsets = rule.subsets if rule is not None else ()
        for port in service.ports:
            yield OutboundTarget(service, port)
            for subset in subsets:
                yield OutboundTarget(service, port, subset.name, subset.labels)


def is_ip_address(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _socket_address(address: str, port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address=address, port_value=port)
    )


def client_locality(snapshot: MeshSnapshot, proxy: Proxy | None) -> str:
    """The locality of the workload behind `proxy` (its WorkloadEntry's), or ""."""
    if proxy is None:
        return ""
    workload = snapshot.registry.workload_at(proxy.namespace, proxy.address)
    return workload.locality if workload is not None else ""


def load_assignment(snapshot: MeshSnapshot, target: OutboundTarget, proxy: Proxy | None = None,
                    ) -> endpoint_pb2.ClusterLoadAssignment:
    endpoints = snapshot.registry.endpoints(target.service, target.port,
                                            dict(target.subset_labels))
    policy = effective_policy(_rule(snapshot, target.service, proxy), target.port.number,
                              target.subset)
    setting = _locality_setting(policy)
    locality = client_locality(snapshot, proxy)
    outlier = policy.outlier_detection is not None
    # failoverPriority: endpoints matching more of the client's labels, in order, first.
    priority_labels = (setting.failoverPriority if setting is not None else None) or []
    ranked = outlier and bool(priority_labels) and proxy is not None
    client_labels = proxy.label_map if proxy is not None else {}
    tls_mode = _tls_mode(policy.tls)
    by_locality: dict[tuple[str, int], list[endpoint_components_pb2.LbEndpoint]] = {}
    for endpoint in endpoints:
        if not is_ip_address(endpoint.address):
            # A hostname (a WorkloadEntry may name one) is no EDS address: Envoy refuses the
            # whole response for it, every other cluster's endpoints with it. Only a DNS
            # cluster resolves names; here the endpoint is left out.
            continue
        lb = endpoint_components_pb2.LbEndpoint(
            endpoint=endpoint_components_pb2.Endpoint(
                address=_socket_address(endpoint.address, endpoint.port)),
            load_balancing_weight=wrappers_pb2.UInt32Value(value=endpoint.workload.weight),
        )
        mtls = endpoint_uses_mtls(snapshot, endpoint, tls_mode)
        if mtls:  # auto-mTLS: TLS to these
            lb.metadata.CopyFrom(tls_mode_metadata())
        # Who the endpoint is, for the client's metrics (destination_workload, ...).
        lb.metadata.MergeFrom(endpoint_metadata(endpoint.workload, mtls))
        rank = label_priority(priority_labels, client_labels, locality,
                              endpoint.workload.label_map, endpoint.workload.locality) \
            if ranked else 0
        by_locality.setdefault((endpoint.workload.locality, rank), []).append(lb)
    assignment = endpoint_pb2.ClusterLoadAssignment(cluster_name=target.cluster_name,
                                                    endpoints=locality_groups(by_locality))
    if not ranked:
        apply_locality(assignment, locality, setting, outlier)
    return assignment


def _locality_setting(policy: ClusterPolicy) -> LocalityLbSetting | None:
    lb = policy.load_balancer
    return lb.localityLbSetting if lb is not None else None


def _tls_mode(tls: ClientTLS | None) -> str:
    return str(tls.mode) if tls is not None and tls.mode else ""


def _peer_identities(snapshot: MeshSnapshot, service: Service) -> list[str]:
    """The SPIFFE ids the destination may present: its workloads' service accounts."""
    return sorted({spiffe_id(w.namespace, w.service_account)
                   for w in snapshot.registry.workloads_of(service)})


def _apply_tls(snapshot: MeshSnapshot, target: OutboundTarget, cluster: cluster_pb2.Cluster,
               tls: ClientTLS | None, rule_namespace: str,
               options: ProtocolOptions) -> None:
    """Istio's choice of upstream TLS: the DestinationRule's mode when it sets one (DISABLE,
    ISTIO_MUTUAL, or SIMPLE/MUTUAL origination); otherwise auto-mTLS inside the mesh (unless
    the destination's namespace or the mesh disables mTLS), ISTIO_MUTUAL to the endpoints
    EDS marks `tlsMode: istio` (see auto_mtls) and plaintext to the rest."""
    mode = _tls_mode(tls)
    if tls is not None and mode in ("SIMPLE", "MUTUAL"):
        cluster.transport_socket.CopyFrom(
            origination_socket(snapshot, tls, rule_namespace, options))
        return
    if mode == "DISABLE" or cluster.type == cluster_pb2.Cluster.ORIGINAL_DST:
        return
    if mode != "ISTIO_MUTUAL" and (target.service.location is not Location.MESH_INTERNAL
                                   or not service_may_use_mtls(snapshot, target.service)):
        return
    port, subset, host = target.port.number, target.subset, target.service.hostname
    sans = (tls.subjectAltNames if tls is not None else None) or []
    mutual = istio_mutual_socket(sans or _peer_identities(snapshot, target.service),
                                 sni=(tls.sni if tls is not None else None)
                                 or f"outbound_.{port}_.{subset}_.{host}")
    if mode == "ISTIO_MUTUAL":
        cluster.transport_socket.CopyFrom(mutual)
        return
    cluster.transport_socket_matches.add(name="tlsMode-istio", match=tls_mode_match(),
                                         transport_socket=mutual)
    cluster.transport_socket_matches.add(name="tlsMode-disabled",
                                         transport_socket=plaintext_socket())


def dns_targets(snapshot: MeshSnapshot, target: OutboundTarget) -> list[tuple[str, int]]:
    """What a DNS cluster resolves: the ServiceEntry's endpoints (by name; a subset's only
    those with its labels, possibly none), else its host. LOGICAL_DNS takes one, as Istio."""
    port = target.port
    service = target.service
    if snapshot.registry.workloads_of(service):
        endpoints = snapshot.registry.endpoints(service, port, dict(target.subset_labels))
        found = [(e.address, e.port) for e in endpoints]
    else:
        found = [(service.hostname, port.target_port or port.number)]
    return found[:1] if service.resolution is Resolution.DNS_ROUND_ROBIN else found


def _connects_to_requested_host(snapshot: MeshSnapshot, target: OutboundTarget) -> bool:
    """resolution NONE without endpoints: Istio sends such traffic to the address the
    application connected to; behind an explicit proxy that is the host it asked for."""
    service = target.service
    return (service.resolution is Resolution.NONE and service.selector is None
            and not snapshot.registry.workloads_of(service))


def _base_cluster(target: OutboundTarget, snapshot: MeshSnapshot) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(name=target.cluster_name, connect_timeout=CONNECT_TIMEOUT)
    if target.service.resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN):
        cluster.type = (cluster_pb2.Cluster.STRICT_DNS
                        if target.service.resolution is Resolution.DNS
                        else cluster_pb2.Cluster.LOGICAL_DNS)
        cluster.load_assignment.cluster_name = target.cluster_name
        for address, port in dns_targets(snapshot, target):
            cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address.CopyFrom(
                _socket_address(address, port))
    elif _connects_to_requested_host(snapshot, target):
        cluster.CopyFrom(passthrough_cluster(target.cluster_name))
    else:
        cluster.type = cluster_pb2.Cluster.EDS
        cluster.eds_cluster_config.eds_config.CopyFrom(config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            resource_api_version=config_source_pb2.V3,
        ))
    add_cluster_metadata(cluster.metadata, target.service)  # destination_service, ...
    return cluster


def outbound_cluster_resource(target: OutboundTarget, snapshot: MeshSnapshot,
                              proxy: Proxy | None = None) -> cluster_pb2.Cluster:
    """The cluster with the DestinationRule's traffic policy for its port and subset."""
    cluster = _base_cluster(target, snapshot)
    if _connects_to_requested_host(snapshot, target):
        return cluster  # the forward proxy cluster picks hosts itself: no lb policy applies
    rule = _rule(snapshot, target.service, proxy)
    policy = effective_policy(rule, target.port.number, target.subset)
    options = ProtocolOptions()
    apply_traffic_policy(cluster, policy, options)
    if uses_locality_weights(client_locality(snapshot, proxy), _locality_setting(policy)):
        cluster.common_lb_config.locality_weighted_lb_config.SetInParent()
    _apply_tls(snapshot, target, cluster, policy.tls,
               rule.namespace if rule else target.service.namespace, options)
    if target.port.protocol in HTTP2_PROTOCOLS and not options.HasField(
            "use_downstream_protocol_config"):
        options.explicit_http_config.http2_protocol_options.SetInParent()  # gRPC needs h2
    elif target.port.protocol == AUTO:
        use_downstream_protocol(options)
    attach_protocol_options(cluster, options)
    return cluster


def use_downstream_protocol(options: ProtocolOptions) -> None:
    """A port of protocol AUTO is spoken upstream as the client spoke it (HTTP/1.1 or
    HTTP/2), as Istio's sidecars do; streams (TCP) ignore HTTP options."""
    options.ClearField("explicit_http_config")
    options.use_downstream_protocol_config.http_protocol_options.SetInParent()
    options.use_downstream_protocol_config.http2_protocol_options.SetInParent()


def originates_tls(snapshot: MeshSnapshot, cluster: str, proxy: Proxy | None = None) -> bool:
    """Whether the outbound `cluster` speaks TLS of the user's own (a DestinationRule's
    SIMPLE or MUTUAL), rather than the mesh's mTLS or plaintext."""
    if not cluster.startswith("outbound|"):
        return False
    _, port, subset, host = parse_cluster(cluster)
    service = snapshot.registry.service(host)
    if service is None:
        return False
    policy = effective_policy(_rule(snapshot, service, proxy), port, subset)
    return _tls_mode(policy.tls) in ("SIMPLE", "MUTUAL")


def is_eds(cluster: cluster_pb2.Cluster) -> bool:
    return bool(cluster.type == cluster_pb2.Cluster.EDS)


def inbound_cluster_resource(port: int, app_address: str, app_port: int | None = None,
                             protocol: str = "TCP", app_socket: str = "",
                             ) -> cluster_pb2.Cluster:
    """Where the inbound listener on `port` hands requests to the application itself: its
    address and port, or a Unix socket (in HTTP/2 for HTTP2 and gRPC ports, as the
    application speaks it; for AUTO ports as the client spoke it)."""
    name = inbound_cluster(port)
    cluster = cluster_pb2.Cluster(name=name, connect_timeout=CONNECT_TIMEOUT,
                                  type=cluster_pb2.Cluster.STATIC)
    if protocol in HTTP2_PROTOCOLS or protocol == AUTO:
        options = ProtocolOptions()
        if protocol == AUTO:
            use_downstream_protocol(options)
        else:
            options.explicit_http_config.http2_protocol_options.SetInParent()
        attach_protocol_options(cluster, options)
    cluster.load_assignment.cluster_name = name
    address = cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address
    if app_socket:
        address.pipe.path = app_socket
    else:
        address.CopyFrom(_socket_address(app_address, app_port or port))
    return cluster


def outbound_clusters(snapshot: MeshSnapshot, proxy: Proxy | None = None,
                      ) -> list[cluster_pb2.Cluster]:
    """CDS for a sidecar: one cluster per service port and per DestinationRule subset, with
    the rules `proxy` sees (None: the service's and the root namespace's rules)."""
    return [outbound_cluster_resource(t, snapshot, proxy)
            for t in outbound_targets(snapshot, proxy)]


def outbound_endpoints(snapshot: MeshSnapshot, proxy: Proxy | None = None,
                       clusters: list[cluster_pb2.Cluster] | None = None,
                       ) -> list[endpoint_pb2.ClusterLoadAssignment]:
    """EDS for every outbound cluster that Envoy learns endpoints for over ADS (`clusters`:
    the outbound clusters already built for this proxy, so they are not built again)."""
    built = clusters if clusters is not None else outbound_clusters(snapshot, proxy)
    eds = {c.name for c in built if is_eds(c)}
    return [load_assignment(snapshot, target, proxy)
            for target in outbound_targets(snapshot, proxy) if target.cluster_name in eds]
