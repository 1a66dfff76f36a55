"""DestinationRule trafficPolicy on outbound clusters, as Istio applies it: which policy holds
for a cluster (host, port level, subset), load balancing, connection pools (circuit
breakers and HTTP protocol options), outlier detection, and the route-side hash policies
that consistent hashing needs. TLS origination is in upstream_tls.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 import (
    HttpProtocolOptions as ProtocolOptions,
)
from google.protobuf import any_pb2, wrappers_pb2

from heddle.model.destination_rules import MergedDestinationRule, destination_rule
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.durations import parse_duration
from heddle.translate.names import parse_cluster

HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
__all__ = [
    "ProtocolOptions",
    "apply_traffic_policy",
    "attach_protocol_options",
    "effective_policy",
    "hash_policies",
    "is_http2",
    "policy_for_cluster",
]
_FIELDS = ("connectionPool", "outlierDetection", "loadBalancer", "tls")
_MAX = 2**32 - 1  # Istio's "no limit" for every circuit-breaker threshold


def _port_level(policy: Mapping[str, Any], port: int) -> tuple[dict[str, Any], bool]:
    """A port's settings replace the whole policy (fields they omit take defaults, they are
    not inherited), as in Istio; without any for `port`, the top-level policy."""
    for setting in policy.get("portLevelSettings") or []:
        if int((setting.get("port") or {}).get("number", -1)) == port:
            return {k: setting[k] for k in _FIELDS if setting.get(k) is not None}, True
    return {k: policy[k] for k in _FIELDS if policy.get(k) is not None}, False


def effective_policy(rule: MergedDestinationRule | None, port: int, subset: str = "",
                     ) -> dict[str, Any]:
    """The policy for one cluster: the host's (its port level if any), then the subset's
    fields over it one by one, or the subset's port level over all of it."""
    if rule is None:
        return {}
    merged, _ = _port_level(rule.traffic_policy, port)
    found = rule.subset(subset) if subset else None
    if found is None or not found.traffic_policy:
        return merged
    override, whole = _port_level(found.traffic_policy, port)
    for key in _FIELDS:
        if key in override:
            merged[key] = override[key]
        elif whole:
            merged.pop(key, None)
    return merged


def policy_for_cluster(snapshot: MeshSnapshot, cluster_name: str,
                       client_namespace: str | None = None,
                       client_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The effective policy of an outbound cluster, by its Istio-style name, as the client
    sees it (the same rule its clusters are built from)."""
    _, port, subset, host = parse_cluster(cluster_name)
    service = snapshot.registry.service(host)
    if service is None:
        return {}
    rule = destination_rule(snapshot, host, service.namespace, client_namespace, client_labels)
    return effective_policy(rule, port, subset)


# -- load balancing -------------------------------------------------------------------------

_SIMPLE = {
    "ROUND_ROBIN": cluster_pb2.Cluster.ROUND_ROBIN,
    "RANDOM": cluster_pb2.Cluster.RANDOM,
    "LEAST_REQUEST": cluster_pb2.Cluster.LEAST_REQUEST,
    "LEAST_CONN": cluster_pb2.Cluster.LEAST_REQUEST,  # deprecated alias in Istio
    "UNSPECIFIED": cluster_pb2.Cluster.LEAST_REQUEST,
}


def make_original_dst(cluster: cluster_pb2.Cluster) -> None:
    """PASSTHROUGH: connect to wherever the client meant to go; no endpoints of ours."""
    cluster.type = cluster_pb2.Cluster.ORIGINAL_DST
    cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
    cluster.ClearField("load_assignment")
    cluster.ClearField("eds_cluster_config")


def _slow_start(lb: Mapping[str, Any]) -> cluster_pb2.Cluster.SlowStartConfig | None:
    """`warmupDurationSecs`, or `warmup` (duration, minimumPercent, aggression)."""
    warmup = lb.get("warmup") or {}
    duration = warmup.get("duration", lb.get("warmupDurationSecs"))
    if duration is None:
        return None
    config = cluster_pb2.Cluster.SlowStartConfig(slow_start_window=parse_duration(str(duration)))
    if warmup.get("minimumPercent") is not None:
        config.min_weight_percent.value = float(warmup["minimumPercent"])
    if warmup.get("aggression") is not None:
        config.aggression.default_value = float(warmup["aggression"])
        config.aggression.runtime_key = "upstream.slow_start.aggression"
    return config


def apply_load_balancer(cluster: cluster_pb2.Cluster, lb: Mapping[str, Any]) -> None:
    """Istio's default is LEAST_REQUEST; `warmupDurationSecs` is slow start for the simple
    round-robin and least-request policies; consistent hashing is RING_HASH or MAGLEV."""
    if cluster.type == cluster_pb2.Cluster.ORIGINAL_DST:
        cluster.lb_policy = cluster_pb2.Cluster.CLUSTER_PROVIDED
        return
    simple = str(lb.get("simple") or "UNSPECIFIED")
    if simple == "PASSTHROUGH":
        make_original_dst(cluster)
        return
    cluster.lb_policy = _SIMPLE.get(simple, cluster_pb2.Cluster.LEAST_REQUEST)
    slow_start = _slow_start(lb)
    if slow_start is not None:
        if cluster.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN:
            cluster.round_robin_lb_config.slow_start_config.CopyFrom(slow_start)
        elif cluster.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST:
            cluster.least_request_lb_config.slow_start_config.CopyFrom(slow_start)
    consistent = lb.get("consistentHash")
    if consistent is None:
        return
    if consistent.get("maglev") is not None:
        cluster.lb_policy = cluster_pb2.Cluster.MAGLEV
        if int(consistent["maglev"].get("tableSize") or 0):
            cluster.maglev_lb_config.table_size.value = int(consistent["maglev"]["tableSize"])
    elif consistent.get("ringHash") is not None:
        cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
        if int(consistent["ringHash"].get("minimumRingSize") or 0):
            cluster.ring_hash_lb_config.minimum_ring_size.value = int(
                consistent["ringHash"]["minimumRingSize"])
    else:  # the deprecated top-level minimumRingSize, Envoy's 1024 when unset
        cluster.lb_policy = cluster_pb2.Cluster.RING_HASH
        cluster.ring_hash_lb_config.minimum_ring_size.value = int(
            consistent.get("minimumRingSize") or 1024)


def hash_policy(consistent: Mapping[str, Any]) -> rc.RouteAction.HashPolicy | None:
    """What a route hashes on for a consistent-hash destination."""
    if consistent.get("httpHeaderName"):
        return rc.RouteAction.HashPolicy(header=rc.RouteAction.HashPolicy.Header(
            header_name=str(consistent["httpHeaderName"])))
    if consistent.get("httpCookie"):
        spec = consistent["httpCookie"]
        cookie = rc.RouteAction.HashPolicy.Cookie(name=str(spec.get("name", "")),
                                                  path=str(spec.get("path", "")))
        if spec.get("ttl") is not None:
            cookie.ttl.CopyFrom(parse_duration(str(spec["ttl"])))
        for attribute in spec.get("attributes") or []:
            cookie.attributes.add(name=str(attribute.get("name", "")),
                                  value=str(attribute.get("value", "")))
        return rc.RouteAction.HashPolicy(cookie=cookie)
    if consistent.get("useSourceIp"):
        return rc.RouteAction.HashPolicy(
            connection_properties=rc.RouteAction.HashPolicy.ConnectionProperties(source_ip=True))
    if consistent.get("httpQueryParameterName"):
        return rc.RouteAction.HashPolicy(query_parameter=rc.RouteAction.HashPolicy.QueryParameter(
            name=str(consistent["httpQueryParameterName"])))
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
        lb = policy_for_cluster(snapshot, name, client_namespace, client_labels).get(
            "loadBalancer") or {}
        policy = hash_policy(lb.get("consistentHash") or {})
        if policy is not None:
            found.append(policy)
    return found


# -- connection pool ------------------------------------------------------------------------

def _seconds(value: Any) -> int:
    return int(parse_duration(str(value)).seconds)


def apply_connection_pool(cluster: cluster_pb2.Cluster, pool: Mapping[str, Any],
                          options: ProtocolOptions) -> None:
    """Circuit-breaker thresholds (Istio sets every one, "unlimited" unless the pool says
    otherwise), connect timeout, TCP keepalive, and the common HTTP protocol options."""
    http = pool.get("http") or {}
    tcp = pool.get("tcp") or {}
    threshold = circuit_breaker_pb2.CircuitBreakers.Thresholds(
        max_connections=wrappers_pb2.UInt32Value(value=int(tcp.get("maxConnections") or _MAX)),
        max_pending_requests=wrappers_pb2.UInt32Value(
            value=int(http.get("http1MaxPendingRequests") or _MAX)),
        max_requests=wrappers_pb2.UInt32Value(value=int(http.get("http2MaxRequests") or _MAX)),
        max_retries=wrappers_pb2.UInt32Value(value=int(http.get("maxRetries") or _MAX)),
        track_remaining=True,
    )
    cluster.circuit_breakers.ClearField("thresholds")
    cluster.circuit_breakers.thresholds.append(threshold)
    if tcp.get("connectTimeout") is not None:
        cluster.connect_timeout.CopyFrom(parse_duration(str(tcp["connectTimeout"])))
    keepalive = tcp.get("tcpKeepalive")
    if keepalive is not None:
        socket = address_pb2.TcpKeepalive()
        if keepalive.get("probes"):
            socket.keepalive_probes.value = int(keepalive["probes"])
        if keepalive.get("time") is not None:
            socket.keepalive_time.value = _seconds(keepalive["time"])
        if keepalive.get("interval") is not None:
            socket.keepalive_interval.value = _seconds(keepalive["interval"])
        cluster.upstream_connection_options.tcp_keepalive.CopyFrom(socket)
    common = options.common_http_protocol_options
    idle = http.get("idleTimeout", tcp.get("idleTimeout"))
    if idle is not None:
        common.idle_timeout.CopyFrom(parse_duration(str(idle)))
    if int(http.get("maxRequestsPerConnection") or 0) > 0:
        common.max_requests_per_connection.value = int(http["maxRequestsPerConnection"])
    if tcp.get("maxConnectionDuration") is not None:
        common.max_connection_duration.CopyFrom(parse_duration(str(tcp["maxConnectionDuration"])))
    if http.get("useClientProtocol"):
        options.use_downstream_protocol_config.SetInParent()
        options.use_downstream_protocol_config.http_protocol_options.SetInParent()
        options.use_downstream_protocol_config.http2_protocol_options.SetInParent()
    elif http.get("h2UpgradePolicy") == "UPGRADE":
        options.explicit_http_config.http2_protocol_options.SetInParent()
    streams = int(http.get("maxConcurrentStreams") or 0)
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

def apply_outlier_detection(cluster: cluster_pb2.Cluster, outlier: Mapping[str, Any]) -> None:
    """Istio's mapping: consecutive-error counters enforced at 100% when non-zero, success
    rate never enforced, and the panic threshold set to minHealthPercent (0 when unset)."""
    out = outlier_detection_pb2.OutlierDetection(
        enforcing_success_rate=wrappers_pb2.UInt32Value(value=0))
    if outlier.get("consecutive5xxErrors") is not None:
        value = int(outlier["consecutive5xxErrors"])
        out.consecutive_5xx.value = value
        out.enforcing_consecutive_5xx.value = 100 if value > 0 else 0
    if outlier.get("consecutiveGatewayErrors") is not None:
        value = int(outlier["consecutiveGatewayErrors"])
        out.consecutive_gateway_failure.value = value
        out.enforcing_consecutive_gateway_failure.value = 100 if value > 0 else 0
    if outlier.get("interval") is not None:
        out.interval.CopyFrom(parse_duration(str(outlier["interval"])))
    if outlier.get("baseEjectionTime") is not None:
        out.base_ejection_time.CopyFrom(parse_duration(str(outlier["baseEjectionTime"])))
    if int(outlier.get("maxEjectionPercent") or 0) > 0:
        out.max_ejection_percent.value = int(outlier["maxEjectionPercent"])
    if outlier.get("splitExternalLocalOriginErrors"):
        out.split_external_local_origin_errors = True
        local = int(outlier.get("consecutiveLocalOriginFailures") or 0)
        if local > 0:
            out.consecutive_local_origin_failure.value = local
            out.enforcing_consecutive_local_origin_failure.value = 100
        out.enforcing_local_origin_success_rate.value = 0
    cluster.outlier_detection.CopyFrom(out)
    cluster.common_lb_config.healthy_panic_threshold.value = float(
        outlier.get("minHealthPercent") or 0)


def apply_traffic_policy(cluster: cluster_pb2.Cluster, policy: Mapping[str, Any],
                         options: ProtocolOptions) -> None:
    """Everything but TLS, in Istio's order: connection pool, outlier detection, load
    balancer. `options` collects HTTP protocol options for the caller to attach."""
    apply_connection_pool(cluster, policy.get("connectionPool") or {}, options)
    if policy.get("outlierDetection") is not None:
        apply_outlier_detection(cluster, policy["outlierDetection"])
    apply_load_balancer(cluster, policy.get("loadBalancer") or {})
