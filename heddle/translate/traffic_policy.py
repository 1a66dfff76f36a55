"""DestinationRule trafficPolicy on outbound clusters, as Istio applies it: which policy holds
for a cluster (host, port level, subset), load balancing, connection pools (circuit
breakers and HTTP protocol options), outlier detection, and the route-side hash policies
that consistent hashing needs. TLS origination is in upstream_tls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 import (
    HttpProtocolOptions as ProtocolOptions,
)
from google.protobuf import any_pb2, wrappers_pb2

from heddle.api import istio_defaults
from heddle.api.models.destination_rule_parts import (
    ClientTLS,
    ConnectionPool,
    ConsistentHash,
    LoadBalancer,
    OutlierDetection,
    PortTrafficPolicy,
    TcpSettings,
    TrafficPolicy,
)
from heddle.model.destination_rules import MergedDestinationRule, destination_rule
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.durations import parse_duration
from heddle.translate.names import parse_cluster

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
__all__ = [
    "ClusterPolicy",
    "ProtocolOptions",
    "apply_traffic_policy",
    "attach_protocol_options",
    "effective_policy",
    "hash_policies",
    "is_http2",
    "policy_for_cluster",
]


@dataclass(frozen=True)
class ClusterPolicy:
    """The parts of a traffic policy in force for one cluster (None: left to the defaults)."""

    connection_pool: ConnectionPool | None = None
    outlier_detection: OutlierDetection | None = None
    load_balancer: LoadBalancer | None = None
    tls: ClientTLS | None = None

    @classmethod
    def of(cls, policy: TrafficPolicy | PortTrafficPolicy) -> ClusterPolicy:
        return cls(policy.connectionPool, policy.outlierDetection, policy.loadBalancer,
                   policy.tls)


NO_POLICY = ClusterPolicy()


def _port_level(policy: TrafficPolicy | None, port: int) -> tuple[ClusterPolicy, bool]:
    """A port's settings replace the whole policy (fields they omit take defaults, they are
    not inherited), as in Istio; without any for `port`, the top-level policy."""
    if policy is None:
        return NO_POLICY, False
    for setting in policy.portLevelSettings or []:
        if setting.port is not None and setting.port.number == port:
            return ClusterPolicy.of(setting), True
    return ClusterPolicy.of(policy), False


def effective_policy(rule: MergedDestinationRule | None, port: int, subset: str = "",
                     ) -> ClusterPolicy:
    """The policy for one cluster: the host's (its port level if any), then the subset's
    fields over it one by one, or the subset's port level over all of it."""
    if rule is None:
        return NO_POLICY
    merged, _ = _port_level(rule.traffic_policy, port)
    found = rule.subset(subset) if subset else None
    if found is None or found.traffic_policy is None:
        return merged
    override, whole = _port_level(found.traffic_policy, port)
    if whole:
        return override
    inherited = {part.name: getattr(merged, part.name) for part in fields(ClusterPolicy)
                 if getattr(override, part.name) is None}
    return replace(override, **inherited)


def policy_for_cluster(snapshot: MeshSnapshot, cluster_name: str,
                       client_namespace: str | None = None,
                       client_labels: Mapping[str, str] | None = None) -> ClusterPolicy:
    """The effective policy of an outbound cluster, by its Istio-style name, as the client
    sees it (the same rule its clusters are built from)."""
    _, port, subset, host = parse_cluster(cluster_name)
    service = snapshot.registry.service(host)
    if service is None:
        return NO_POLICY
    rule = destination_rule(snapshot, host, service.namespace, client_namespace, client_labels)
    return effective_policy(rule, port, subset)


# -- load balancing -------------------------------------------------------------------------

_SIMPLE = {
    "ROUND_ROBIN": cluster_pb2.Cluster.ROUND_ROBIN,
    "RANDOM": cluster_pb2.Cluster.RANDOM,
    "LEAST_REQUEST": cluster_pb2.Cluster.LEAST_REQUEST,
    "LEAST_CONN": cluster_pb2.Cluster.LEAST_REQUEST,  # deprecated alias in Istio
}


def make_original_dst(cluster: cluster_pb2.Cluster) -> None:
    """PASSTHROUGH: connect to wherever the client meant to go; no endpoints of ours."""
    cluster.type = cluster_pb2.Cluster.ORIGINAL_DST
    cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    cluster.ClearField("load_assignment")
    cluster.ClearField("eds_cluster_config")


def _slow_start(lb: LoadBalancer) -> cluster_pb2.Cluster.SlowStartConfig | None:
    """`warmupDurationSecs`, or `warmup` (duration, minimumPercent, aggression)."""
    warmup = lb.warmup
    duration = warmup.duration if warmup is not None else lb.warmupDurationSecs
    if duration is None:
        return None
    config = cluster_pb2.Cluster.SlowStartConfig(slow_start_window=parse_duration(duration))
    if warmup is not None and warmup.minimumPercent is not None:
        config.min_weight_percent.value = warmup.minimumPercent
    if warmup is not None and warmup.aggression is not None:
        config.aggression.default_value = warmup.aggression
        config.aggression.runtime_key = "upstream.slow_start.aggression"
    return config


def apply_load_balancer(cluster: cluster_pb2.Cluster, lb: LoadBalancer | None) -> None:
    """Istio's default is LEAST_REQUEST; `warmupDurationSecs` is slow start for the simple
    round-robin and least-request policies; consistent hashing is RING_HASH or MAGLEV."""
    if cluster.type == cluster_pb2.Cluster.ORIGINAL_DST:
        cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
        return
    simple = lb.simple if lb is not None else None
    if simple == "PASSTHROUGH":
        make_original_dst(cluster)
        return
    cluster.lb_policy = _SIMPLE[str(simple) if simple and simple != "UNSPECIFIED"
                                else istio_defaults.LOAD_BALANCER]
    if lb is None:
        return
    slow_start = _slow_start(lb)
    if slow_start is not None:
        if cluster.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN:
            cluster.round_robin_lb_config.slow_start_config.CopyFrom(slow_start)
        elif cluster.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST:
            cluster.least_request_lb_config.slow_start_config.CopyFrom(slow_start)
    consistent = lb.consistentHash
    if consistent is None:
        return
    if consistent.maglev is not None:
        cluster.lb_policy = cluster_pb2.Cluster.MAGLEV
        if consistent.maglev.tableSize:
            cluster.maglev_lb_config.table_size.value = consistent.maglev.tableSize
    elif consistent.ringHash is not None:
        cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
        if consistent.ringHash.minimumRingSize:
            cluster.ring_hash_lb_config.minimum_ring_size.value = \
                consistent.ringHash.minimumRingSize
    else:  # the deprecated top-level minimumRingSize
        cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
        cluster.ring_hash_lb_config.minimum_ring_size.value = (
            consistent.minimumRingSize or istio_defaults.RING_HASH_MINIMUM_SIZE)


def hash_policy(consistent: ConsistentHash | None) -> rc.RouteAction.HashPolicy | None:
    """What a route hashes on for a consistent-hash destination."""
    if consistent is None:
        return None
    if consistent.httpHeaderName:
        return rc.RouteAction.HashPolicy(header=rc.RouteAction.HashPolicy.Header(
            header_name=consistent.httpHeaderName))
    if consistent.httpCookie is not None:
        spec = consistent.httpCookie
        cookie = rc.RouteAction.HashPolicy.Cookie(name=spec.name, path=spec.path or "")
        if spec.ttl is not None:
            cookie.ttl.CopyFrom(parse_duration(spec.ttl))
        for attribute in spec.attributes or []:
            cookie.attributes.add(name=attribute.name, value=attribute.value or "")
        return rc.RouteAction.HashPolicy(cookie=cookie)
    if consistent.useSourceIp:
        return rc.RouteAction.HashPolicy(
            connection_properties=rc.RouteAction.HashPolicy.ConnectionProperties(source_ip=True))
    if consistent.httpQueryParameterName:
        return rc.RouteAction.HashPolicy(query_parameter=rc.RouteAction.HashPolicy.QueryParameter(
            name=consistent.httpQueryParameterName))
    return None


def hash_policies(snapshot: MeshSnapshot, route: rc.RouteAction | str,
                  client_namespace: str | None = None,
                  client_labels: Mapping[str, str] | None = None,
                  ) -> list[rc.RouteAction.HashPolicy]:
    """For a route action (or one cluster name): a hash policy per destination whose cluster
    hashes consistently, in destination order, as Istio appends them."""
    if isinstance(route, str):
        names = [route]
    else:
        names = ([route.cluster] if route.cluster
                 else [c.name for c in route.weighted_clusters.clusters])
    found = []
    for name in names:
        lb = policy_for_cluster(snapshot, name, client_namespace, client_labels).load_balancer
        policy = hash_policy(lb.consistentHash if lb is not None else None)
        if policy is not None:
            found.append(policy)
    return found


# -- connection pool ------------------------------------------------------------------------

def _seconds(duration: str) -> int:
    return int(parse_duration(duration).seconds)


def _limit(value: int | None) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value or istio_defaults.CIRCUIT_BREAKER_LIMIT)


def _apply_tcp_settings(cluster: cluster_pb2.Cluster, tcp: TcpSettings) -> None:
    if tcp.connectTimeout is not None:
        cluster.connect_timeout.CopyFrom(parse_duration(tcp.connectTimeout))
    keepalive = tcp.tcpKeepalive
    if keepalive is not None:
        socket = address_pb2.TcpKeepalive()
        if keepalive.probes:
            socket.keepalive_probes.value = keepalive.probes
        if keepalive.time is not None:
            socket.keepalive_time.value = _seconds(keepalive.time)
        if keepalive.interval is not None:
            socket.keepalive_interval.value = _seconds(keepalive.interval)
        cluster.upstream_connection_options.tcp_keepalive.CopyFrom(socket)


def apply_connection_pool(cluster: cluster_pb2.Cluster, pool: ConnectionPool | None,
                          options: ProtocolOptions) -> None:
    """Circuit-breaker thresholds (Istio sets every one, "unlimited" unless the pool says
    otherwise), connect timeout, TCP keepalive, and the common HTTP protocol options."""
    http = pool.http if pool is not None else None
    tcp = pool.tcp if pool is not None else None
    threshold = circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=_limit(tcp.maxConnections if tcp else None),
        max_pending_requests=_limit(http.http1MaxPendingRequests if http else None),
        max_requests=_limit(http.http2MaxRequests if http else None),
        max_retries=_limit(http.maxRetries if http else None),
        track_remaining=True,
    )
    cluster.circuit_breakers.ClearField("thresholds")
    cluster.circuit_breakers.thresholds.append(threshold)
    if tcp is not None:
        _apply_tcp_settings(cluster, tcp)
    common = options.common_http_protocol_options
    idle = http.idleTimeout if http is not None and http.idleTimeout is not None \
        else tcp.idleTimeout if tcp is not None else None
    if idle is not None:
        common.idle_timeout.CopyFrom(parse_duration(idle))
    if tcp is not None and tcp.maxConnectionDuration is not None:
        common.max_connection_duration.CopyFrom(parse_duration(tcp.maxConnectionDuration))
    if http is None:
        return
    if (http.maxRequestsPerConnection or 0) > 0:
        common.max_requests_per_connection.value = http.maxRequestsPerConnection
    if http.useClientProtocol:
        options.use_downstream_protocol_config.SetInParent()
        options.use_downstream_protocol_config.http_protocol_options.SetInParent()
        options.use_downstream_protocol_config.http2_protocol_options.SetInParent()
    elif http.h2UpgradePolicy == "UPGRADE":
        options.explicit_http_config.http2_protocol_options.SetInParent()
    streams = http.maxConcurrentStreams or 0
    if streams and options.explicit_http_config.HasField("http2_protocol_options"):
        options.explicit_http_config.http2_protocol_options.max_concurrent_streams.value = streams


def is_http2(options: ProtocolOptions) -> bool:
    return bool(options.explicit_http_config.HasField("http2_protocol_options"))


def attach_protocol_options(cluster: cluster_pb2.Cluster, options: ProtocolOptions) -> None:
    """Only when something was set; HTTP/1.1 unless the policy chose otherwise (Envoy needs
    one of the upstream protocol choices)."""
    if options == ProtocolOptions():
        return
    if options.WhichOneof("upstream_protocol_options") is None:
        options.explicit_http_config.http_protocol_options.SetInParent()
    packed = any_pb2.Any()
    packed.Pack(options)
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].CopyFrom(packed)


# -- outlier detection ----------------------------------------------------------------------

def apply_outlier_detection(cluster: cluster_pb2.Cluster, outlier: OutlierDetection) -> None:
    """Istio's mapping: consecutive-error counters enforced at 100% when non-zero, success
    rate never enforced, and the panic threshold set to minHealthPercent (0 when unset)."""
    out = outlier_detection_pb2.OutlierDetection(
        enforcing_success_rate=wrappers_pb2.UInt32Value(value=0))
    if outlier.consecutive5xxErrors is not None:
        value = outlier.consecutive5xxErrors
        out.consecutive_5xx.value = value
        out.enforcing_consecutive_5xx.value = 100 if value > 0 else 0
    if outlier.consecutiveGatewayErrors is not None:
        value = outlier.consecutiveGatewayErrors
        out.consecutive_gateway_failure.value = value
        out.enforcing_consecutive_gateway_failure.value = 100 if value > 0 else 0
    if outlier.interval is not None:
        out.interval.CopyFrom(parse_duration(outlier.interval))
    if outlier.baseEjectionTime is not None:
        out.base_ejection_time.CopyFrom(parse_duration(outlier.baseEjectionTime))
    if (outlier.maxEjectionPercent or 0) > 0:
        out.max_ejection_percent.value = outlier.maxEjectionPercent
    if outlier.splitExternalLocalOriginErrors:
        out.split_external_local_origin_errors = True
        local = outlier.consecutiveLocalOriginFailures or 0
        if local > 0:
            out.consecutive_local_origin_failure.value = local
            out.enforcing_consecutive_local_origin_failure.value = 100
        out.enforcing_local_origin_success_rate.value = 0
    cluster.outlier_detection.CopyFrom(out)
    cluster.common_lb_config.healthy_panic_threshold.value = float(
        outlier.minHealthPercent or istio_defaults.PANIC_THRESHOLD_PERCENT)


def apply_traffic_policy(cluster: cluster_pb2.Cluster, policy: ClusterPolicy,
                         options: ProtocolOptions) -> None:
    """Everything but TLS, in Istio's order: connection pool, outlier detection, load
    balancer. `options` collects HTTP protocol options for the caller to attach."""
    apply_connection_pool(cluster, policy.connection_pool, options)
    if policy.outlier_detection is not None:
        apply_outlier_detection(cluster, policy.outlier_detection)
    apply_load_balancer(cluster, policy.load_balancer)
