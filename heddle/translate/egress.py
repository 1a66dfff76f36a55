"""Traffic to hosts the mesh does not know: Istio's PassthroughCluster and BlackHoleCluster.

Under ALLOW_ANY, Istio forwards such traffic to its original destination. Heddle's sidecars
are explicit HTTP proxies (no iptables), so the destination is the host the application
asked for: a dynamic forward proxy cluster resolves it and connects there. Under
REGISTRY_ONLY the catch-all route answers 502, as Istio's `block_all` route does.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.clusters.dynamic_forward_proxy.v3 import cluster_pb2 as dfp_cluster_pb2
from envoy.extensions.common.dynamic_forward_proxy.v3 import dns_cache_pb2
from envoy.extensions.filters.http.dynamic_forward_proxy.v3 import dynamic_forward_proxy_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from heddle.api import istio_defaults
from heddle.model.scope import REGISTRY_ONLY

PASSTHROUGH_CLUSTER = "PassthroughCluster"
BLACKHOLE_ROUTE = "block_all"
PASSTHROUGH_ROUTE = "allow_any"
DFP_FILTER = "envoy.filters.http.dynamic_forward_proxy"
_DNS_CACHE = "passthrough_dns_cache"


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _dns_cache() -> dns_cache_pb2.DnsCacheConfig:
    # The cluster and the filter must name the same cache with the same settings.
    return dns_cache_pb2.DnsCacheConfig(name=_DNS_CACHE,
                                        dns_lookup_family=cluster_pb2.Cluster.V4_ONLY)


def passthrough_filter() -> any_pb2.Any:
    """Config of the HTTP filter that resolves the requested host for the passthrough
    cluster (it does nothing on routes to other clusters)."""
    return _pack(dynamic_forward_proxy_pb2.FilterConfig(dns_cache_config=_dns_cache()))


def passthrough_cluster(name: str = PASSTHROUGH_CLUSTER) -> cluster_pb2.Cluster:
    """Connects to the host of each request (resolved by the filter's DNS cache)."""
    cluster = cluster_pb2.Cluster(name=name,
                                  lb_policy=cluster_pb2.Cluster.CLUSTER_PROVIDED,
                                  connect_timeout=duration_pb2.Duration(
                                      seconds=istio_defaults.CONNECT_TIMEOUT_SECONDS))
    cluster.cluster_type.name = "envoy.clusters.dynamic_forward_proxy"
    cluster.cluster_type.typed_config.Pack(
        dfp_cluster_pb2.ClusterConfig(dns_cache_config=_dns_cache()))
    return cluster


def catch_all_routes(mode: str) -> list[rc.Route]:
    """Routes of the `*` virtual host: where requests for unknown hosts (and CONNECT tunnels
    to them) go."""
    if mode == REGISTRY_ONLY:
        return [rc.Route(name=BLACKHOLE_ROUTE, match=rc.RouteMatch(prefix="/"),
                         direct_response=rc.DirectResponseAction(status=502)),
                rc.Route(name=BLACKHOLE_ROUTE, match=rc.RouteMatch(connect_matcher={}),
                         direct_response=rc.DirectResponseAction(status=502))]
    connect = rc.RouteAction(cluster=PASSTHROUGH_CLUSTER, upgrade_configs=[
        rc.RouteAction.UpgradeConfig(upgrade_type="CONNECT",
                                     connect_config=rc.RouteAction.UpgradeConfig.ConnectConfig())])
    return [rc.Route(name=PASSTHROUGH_ROUTE, match=rc.RouteMatch(prefix="/"),
                     route=rc.RouteAction(cluster=PASSTHROUGH_CLUSTER,
                                          timeout=duration_pb2.Duration())),
            rc.Route(name=PASSTHROUGH_ROUTE, match=rc.RouteMatch(connect_matcher={}),
                     route=connect)]
