"""Bootstraps that embed generated resources, for `validate_bootstrap` (`envoy --mode
validate`): a sidecar's xDS resources in one static config, so that Envoy checks what it
would be sent without a control plane.

    out = validate_bootstrap(sidecar_bootstrap(sidecar_resources(snapshot, proxy)))
    assert out.returncode == 0, out.stdout + out.stderr
"""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf.json_format import MessageToDict

from heddle.translate.sidecar import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyResources


def http_listener(port: int, route_config: route_pb2.RouteConfiguration) -> dict[str, Any]:
    """A plain HTTP listener that serves `route_config` inline, to put routes before Envoy."""
    return {
        "name": f"0.0.0.0_{port}",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network."
                         "http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": f"outbound_{port}",
                "route_config": MessageToDict(route_config),
                "http_filters": [{
                    "name": "envoy.filters.http.fault",
                    "typed_config": {"@type": "type.googleapis.com/"
                                              "envoy.extensions.filters.http.fault.v3.HTTPFault"},
                }, {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/"
                                              "envoy.extensions.filters.http.router.v3.Router"},
                }],
            },
        }]}],
    }


def static_bootstrap(clusters: list[cluster_pb2.Cluster],
                     endpoints: list[endpoint_pb2.ClusterLoadAssignment],
                     listeners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A bootstrap that embeds the clusters, with EDS clusters' endpoints inlined, and keeps
    an ADS config source so that anything still naming ADS resolves."""
    by_name = {cla.cluster_name: cla for cla in endpoints}
    static = []
    for cluster in clusters:
        copy = cluster_pb2.Cluster()
        copy.CopyFrom(cluster)
        if copy.type == cluster_pb2.Cluster.EDS:
            copy.type = cluster_pb2.Cluster.STATIC
            copy.ClearField("eds_cluster_config")
            copy.load_assignment.CopyFrom(by_name[copy.name])
        static.append(MessageToDict(copy))
    static.append({
        "name": "xds-grpc", "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/"
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {"cluster_name": "xds-grpc", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {
                "address": "127.0.0.1", "port_value": 15010}}}}]}]},
    })
    static.append({  # the agent's SDS socket, as the agent's bootstrap declares it
        "name": "sds-grpc", "type": "STATIC", "connect_timeout": "1s",
        "typed_extension_protocol_options": static[-1]["typed_extension_protocol_options"],
        "load_assignment": {"cluster_name": "sds-grpc", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"pipe": {"path": "/tmp/heddle-validate-sds.sock"}}}}]}]},
    })
    return {
        "node": {"id": "sidecar~127.0.10.2~frontend.default~default.svc.cluster.local",
                 "cluster": "frontend.default"},
        "static_resources": {"clusters": static, "listeners": listeners or []},
        "dynamic_resources": {"ads_config": {
            "api_type": "GRPC", "transport_api_version": "V3",
            "grpc_services": [{"envoy_grpc": {"cluster_name": "xds-grpc"}}]}},
    }


def sidecar_bootstrap(resources: ProxyResources) -> dict[str, Any]:
    """Embed a sidecar's xDS resources in one bootstrap: RDS and EDS references inlined."""
    routes = resources.of(ROUTE)
    listeners = []
    for listener in resources.of(LISTENER).values():
        as_dict = MessageToDict(listener)
        for chain in as_dict.get("filterChains", []):
            for flt in chain.get("filters", []):
                config = flt.get("typedConfig", {})
                if "rds" in config:
                    config["routeConfig"] = MessageToDict(routes[config.pop("rds")[
                        "routeConfigName"]])
        listeners.append(as_dict)
    clusters = [c for c in resources.of(CLUSTER).values() if isinstance(c, cluster_pb2.Cluster)]
    endpoints = [e for e in resources.of(ENDPOINT).values()
                 if isinstance(e, endpoint_pb2.ClusterLoadAssignment)]
    return static_bootstrap(clusters, endpoints, listeners)
