"""The Envoy bootstrap an agent writes: who the proxy is and where its control plane is."""

from __future__ import annotations

from typing import Any

from heddle.agent.sds import ROOT_SECRET, WORKLOAD_SECRET
from heddle.ca.identity import CONTROL_PLANE_NAMES
from heddle.model import ports
from heddle.model.metric_names import ISTIO_BUCKETS, STAT_PREFIX
from heddle.model.proxy import Proxy

XDS_CLUSTER = "xds-grpc"
SDS_CLUSTER = "sds-grpc"  # the agent's SDS server on a Unix socket, as Istio names it
HEALTH_CHECKS = "HEALTH_CHECKS"  # node metadata: the agent serves readiness on 15021


def _http2_cluster(name: str, address: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "type": "STATIC",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/"
                         "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {
                    "connection_keepalive": {"interval": "30s", "timeout": "5s"}}},
            },
        },
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": address}}]}]},
    }


def _sds_secret(name: str) -> dict[str, Any]:
    return {"name": name, "sds_config": {
        "api_config_source": {"api_type": "GRPC", "transport_api_version": "V3",
                              "grpc_services": [{"envoy_grpc": {"cluster_name": SDS_CLUSTER}}]},
        "resource_api_version": "V3"}}


def _control_plane_mtls() -> dict[str, Any]:
    """Envoy's side of the secure xDS port: present the workload certificate, trust only
    the mesh root, and accept only the control plane's serving name (sent as SNI too).
    Both secrets come from the agent's SDS socket, so a rotated certificate is used for the
    next connection without a restart."""
    name = CONTROL_PLANE_NAMES[0]
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/"
                     "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": name,
            "common_tls_context": {
                "alpn_protocols": ["h2"],
                "tls_certificate_sds_secret_configs": [_sds_secret(WORKLOAD_SECRET)],
                "combined_validation_context": {
                    "default_validation_context": {"match_typed_subject_alt_names": [
                        {"san_type": "DNS", "matcher": {"exact": name}}]},
                    "validation_context_sds_secret_config": _sds_secret(ROOT_SECRET),
                },
            },
        },
    }


def bootstrap(proxy: Proxy, xds_host: str, xds_port: int, delta: bool = False,
              admin_port: int = ports.ADMIN, sds_socket: str = "",
              xds_mtls: bool = False, health_checks: bool = False) -> dict[str, Any]:
    """Everything else arrives over ADS; the admin API listens on the pod IP; certificates
    come from the agent's SDS socket when one is given. `xds_mtls`: ADS over mutual TLS with
    the workload certificate (the control plane's secure port; needs `sds_socket`).
    `health_checks`: the agent answers readiness on the health port, so the control plane
    may take a WorkloadEntry's endpoint out of EDS while it is not ready (what Istio's
    `proxy.istio.io/health-checks-enabled` annotation asks of an entry's agent)."""
    if xds_mtls and not sds_socket:
        raise ValueError("ADS over mutual TLS needs the agent's SDS socket")
    xds = _http2_cluster(XDS_CLUSTER, {"socket_address": {
        "address": xds_host, "port_value": xds_port}})
    if xds_mtls:
        xds["transport_socket"] = _control_plane_mtls()
    clusters = [xds]
    if sds_socket:
        clusters.append(_http2_cluster(SDS_CLUSTER, {"pipe": {"path": sds_socket}}))
    ads_type = "DELTA_GRPC" if delta else "GRPC"
    config_source = {"ads": {}, "resource_api_version": "V3"}
    return {
        "node": {
            "id": proxy.id,
            "cluster": f"{proxy.name}.{proxy.namespace}",
            "metadata": {
                "LABELS": proxy.label_map,
                "SERVICE_ACCOUNT": proxy.service_account,
                "APP_ADDRESS": proxy.app_address,
                "NAMESPACE": proxy.namespace,
                **({"WORKLOAD_GROUP": proxy.workload_group} if proxy.workload_group else {}),
                **({HEALTH_CHECKS: "true"} if health_checks else {}),
                **({"LOW_PORT_OFFSET": str(proxy.low_port_offset)}
                   if proxy.low_port_offset else {}),
            },
        },
        "admin": {"address": {"socket_address": {"address": proxy.address,
                                                 "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": ads_type,
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
                "set_node_on_first_message_only": True,
            },
            "lds_config": config_source,
            "cds_config": config_source,
        },
        "static_resources": {"clusters": clusters},
        # Istio's histograms (istio_request_duration_milliseconds, ..._bytes): its buckets.
        "stats_config": {"histogram_bucket_settings": [
            {"match": {"prefix": f"{STAT_PREFIX}."}, "buckets": list(ISTIO_BUCKETS)}]},
    }
