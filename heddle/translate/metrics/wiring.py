"""Where the metrics attach: the HTTP filters (peer exchange, gRPC message counts), the
stats loggers of each connection manager and TCP proxy, and the service an inbound port
serves. listeners.py and gateway.py call these; `overrides` is Telemetry's seam."""

from __future__ import annotations

from envoy.config.accesslog.v3 import accesslog_pb2 as al
from envoy.extensions.filters.http.grpc_stats.v3 import config_pb2 as grpc_stats_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from heddle.model.proxy import Proxy
from heddle.model.serving import served
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Service
from heddle.translate.filters.context import Direction, FilterContext, http_filter
from heddle.translate.metrics.exchange import read_peer_headers, send_peer_headers
from heddle.translate.metrics.loggers import http_loggers, tcp_loggers
from heddle.translate.metrics.overrides import NO_OVERRIDES, MetricOverrides
from heddle.translate.metrics.sides import (
    client_labels,
    server_http_labels,
    server_tcp_labels,
)

GRPC_STATS = "envoy.filters.http.grpc_stats"


def peer_filters(context: FilterContext) -> list[hcm.HttpFilter]:
    """First in every chain, so that a request refused by a later filter is still counted
    with its peer: the client's labels read (inbound) or sent (outbound and gateways),
    and gRPC messages counted into filter state for the message metrics."""
    exchange = read_peer_headers() if context.direction is Direction.INBOUND \
        else send_peer_headers(context.proxy)
    return [exchange, http_filter(GRPC_STATS, grpc_stats_pb2.FilterConfig(
        emit_filter_state=True))]


def port_service(snapshot: MeshSnapshot, proxy: Proxy, port: int) -> Service | None:
    """The service a workload's inbound port serves (the first by hostname when several
    do): Istio's destination_service on the server side."""
    pairs = served(snapshot, proxy).get(port, ())
    return pairs[0].service if pairs else None


def inbound_http_loggers(snapshot: MeshSnapshot, proxy: Proxy, port: int, mtls: bool,
                         overrides: MetricOverrides = NO_OVERRIDES) -> list[al.AccessLog]:
    return http_loggers(server_http_labels(proxy, port_service(snapshot, proxy, port), mtls),
                        "destination", overrides)


def outbound_http_loggers(proxy: Proxy, overrides: MetricOverrides = NO_OVERRIDES,
                          tunnels: bool = True) -> list[al.AccessLog]:
    """The outbound proxy (requests and CONNECT tunnels) or a gateway's HTTP servers."""
    return http_loggers(client_labels(proxy), "source", overrides, tunnels=tunnels)


def count_tunnels(manager: hcm.HttpConnectionManager) -> None:
    """A CONNECT tunnel's opening is logged (and counted) once its upstream connects."""
    manager.access_log_options.flush_log_on_tunnel_successfully_established = True


def inbound_tcp(snapshot: MeshSnapshot, proxy: Proxy, port: int, mtls: bool,
                tcp: tcp_proxy_pb2.TcpProxy,
                overrides: MetricOverrides = NO_OVERRIDES) -> None:
    """Counts an inbound TCP proxy's connections. Over mutual TLS the upstream connects once
    the client's handshake is done: the opening is counted knowing who the client is."""
    tcp.access_log.extend(tcp_loggers(server_tcp_labels(
        snapshot, proxy, port_service(snapshot, proxy, port), mtls), "destination", overrides))
    tcp.access_log_options.flush_access_log_on_connected = True
    if mtls:
        tcp.upstream_connect_mode = tcp_proxy_pb2.ON_DOWNSTREAM_TLS_HANDSHAKE
        # Envoy asks how much the client may send before then: nothing is read until then.
        tcp.max_early_data_bytes.value = 0


def gateway_tcp(proxy: Proxy, tcp: tcp_proxy_pb2.TcpProxy,
                overrides: MetricOverrides = NO_OVERRIDES) -> None:
    """A gateway's TCP or TLS-passthrough server: the source side of the connection."""
    tcp.access_log.extend(tcp_loggers(client_labels(proxy, tcp=True), "source", overrides))
    tcp.access_log_options.flush_access_log_on_connected = True
