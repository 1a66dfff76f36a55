"""Everything one sidecar needs, by xDS type: the entry point the xDS server calls."""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf.message import Message

from heddle.model.proxy import Proxy
from heddle.model.scope import proxy_scope
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.clusters import client_locality, outbound_clusters, outbound_endpoints
from heddle.translate.egress import passthrough_cluster
from heddle.translate.listeners import OUTBOUND_ROUTE, inbound_clusters, sidecar_listeners
from heddle.translate.routes import proxy_route_config

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
SECRET = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

# The order a server should push in so nothing refers to what the proxy does not have yet.
PUSH_ORDER = (CLUSTER, ENDPOINT, LISTENER, ROUTE)


@dataclass(frozen=True)
class ProxyResources:
    """Named resources per type URL."""

    by_type: dict[str, dict[str, Message]] = field(default_factory=dict)

    def of(self, type_url: str) -> dict[str, Message]:
        return self.by_type.get(type_url, {})


def sidecar_resources(snapshot: MeshSnapshot, proxy: Proxy) -> ProxyResources:
    """Pure: the same snapshot and proxy always give the same resources. The outbound side
    sees only what the proxy may reach (exportTo, its Sidecar resource); the inbound side
    and policies see the whole mesh."""
    scope = proxy_scope(snapshot, proxy)
    outbound = scope.snapshot
    # The outbound side depends on the proxy only through its scope (namespace, Sidecar),
    # labels and locality: replicas of a workload share it, computed once per snapshot.
    labels = tuple(sorted(proxy.labels))
    locality = client_locality(snapshot, proxy)
    outbound_side = outbound.memo(("clusters", labels, locality),
                                  lambda: outbound_clusters(outbound, proxy))
    endpoints = outbound.memo(("endpoints", labels, locality),
                              lambda: outbound_endpoints(outbound, proxy, outbound_side))
    routes = outbound.memo(("routes", labels), lambda: proxy_route_config(
        outbound, OUTBOUND_ROUTE, proxy, scope.outbound_traffic_mode))
    clusters = [*outbound_side, passthrough_cluster(), *inbound_clusters(snapshot, proxy)]
    return with_envoy_filters(snapshot, proxy, ProxyResources({
        CLUSTER: {c.name: c for c in clusters},
        ENDPOINT: {e.cluster_name: e for e in endpoints},
        LISTENER: {listener.name: listener for listener in sidecar_listeners(snapshot, proxy)},
        ROUTE: {OUTBOUND_ROUTE: routes},
    }))


def with_envoy_filters(snapshot: MeshSnapshot, proxy: Proxy,
                       resources: ProxyResources) -> ProxyResources:
    """The translation with tracing, then the EnvoyFilters acting on the proxy, applied
    (those that fail are skipped: the xDS server's generator says why)."""
    # envoy_filters and tracing build on this module's types: imported here, not at the top.
    from heddle.translate.envoy_filters import apply_envoy_filters
    from heddle.translate.tracing import apply_tracing
    return apply_envoy_filters(snapshot, proxy, apply_tracing(snapshot, proxy, resources)[0])[0]
