"""Listeners (LDS) for a sidecar: the outbound HTTP proxy and one inbound listener per port.

Without iptables, applications reach the mesh through their sidecar as an HTTP proxy
(`http_proxy=http://POD_IP:15001`), and peers reach a workload at POD_IP:PORT where its
sidecar listens and forwards to the application, like Istio's Sidecar `ingress` listeners.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.listener.http_inspector.v3 import http_inspector_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from heddle.api.models import SidecarSpec
from heddle.api.specs import spec_of
from heddle.model.mesh_config import MeshConfig
from heddle.model.proxy import Proxy
from heddle.model.rate_limits import Attachment
from heddle.model.scope import sidecar_for
from heddle.model.snapshot import MeshSnapshot
from heddle.registry import protocols
from heddle.registry.model import ServicePort
from heddle.registry.protocols import HTTP_PROTOCOLS
from heddle.translate import ports
from heddle.translate.access_logs import CLIENT, SERVER, access_logs
from heddle.translate.alpn import ISTIO_HTTP_ALPNS
from heddle.translate.authz import network_rbac_filters
from heddle.translate.clusters import inbound_cluster_resource
from heddle.translate.filters.context import Direction, FilterContext
from heddle.translate.filters.registry import http_filters
from heddle.translate.jwt import jwks_clusters
from heddle.translate.metrics.telemetry_overrides import metric_overrides
from heddle.translate.metrics.wiring import (
    count_tunnels,
    inbound_http_loggers,
    inbound_tcp,
    outbound_http_loggers,
)
from heddle.translate.mtls import (
    DISABLE,
    PERMISSIVE,
    STRICT,
    inbound_mutual_socket,
    peer_authentication_mode,
)
from heddle.translate.names import inbound_cluster
from heddle.translate.path_normalization import apply_path_normalization
from heddle.translate.rate_limits import (
    attach,
    has_policies,
    inbound_attachment,
    needs_remote_address,
    rate_limit_clusters,
)

OUTBOUND_LISTENER = "virtualOutbound"
OUTBOUND_ROUTE = "http_proxy"

def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def websocket_upgrade() -> list[hcm.HttpConnectionManager.UpgradeConfig]:
    """WebSocket upgrades pass every HTTP connection manager, as Istio allows them on all."""
    return [hcm.HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")]


def _listener(name: str, address: str, port: int,
              filters: Iterable[listener_components_pb2.Filter]) -> listener_pb2.Listener:
    listener = listener_pb2.Listener(
        name=name,
        address=address_pb2.Address(socket_address=address_pb2.SocketAddress(
            address=address, port_value=port)),
    )
    listener.filter_chains.add().filters.extend(filters)
    return listener


def outbound_listener(snapshot: MeshSnapshot, proxy: Proxy) -> listener_pb2.Listener:
    """The HTTP proxy the application's outbound traffic goes through (routes over RDS)."""
    manager = hcm.HttpConnectionManager(
        stat_prefix="outbound_http_proxy",
        rds=hcm.Rds(route_config_name=OUTBOUND_ROUTE, config_source=config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            resource_api_version=config_source_pb2.V3)),
        # CORS and fault act only where a route carries their config (VirtualService corsPolicy,
        # fault); the forward proxy filter only on routes to the passthrough cluster.
        http_filters=http_filters(FilterContext(snapshot, proxy, Direction.OUTBOUND)),
        access_log=[*access_logs(snapshot, proxy, CLIENT), *outbound_http_loggers(
            proxy, metric_overrides(snapshot, proxy))],
        # Absolute-form requests (GET http://frontend:8080/) arrive from HTTP proxy clients.
        http_protocol_options={"allow_absolute_url": {"value": True}},
        # CONNECT tunnels carry TCP (and TLS) to services through the same proxy.
        upgrade_configs=[*websocket_upgrade(),
                         hcm.HttpConnectionManager.UpgradeConfig(upgrade_type="CONNECT")],
    )
    count_tunnels(manager)
    # Routes match the normalized path, as the server's sidecar and application will see it.
    apply_path_normalization(manager, snapshot.mesh_config)
    return _listener(OUTBOUND_LISTENER, proxy.address, ports.OUTBOUND, [
        listener_components_pb2.Filter(name="envoy.filters.network.http_connection_manager",
                                       typed_config=_pack(manager)),
    ])


Named = list[tuple[str, Message]]


def _inbound_http(port: int, chain: list[hcm.HttpFilter], mesh: MeshConfig, mtls: bool = False,
                  limits: Attachment | None = None,
                  logs: Iterable[accesslog_pb2.AccessLog] = (),
                  metrics: list[accesslog_pb2.AccessLog] | None = None,
                  ) -> listener_components_pb2.Filter:
    """`chain`: the HTTP filters, from the registry (authn, authz, ..., the router);
    `limits`: the rate limits of the Services this port serves; `logs`: its access logs;
    `metrics`: the stats loggers counting Istio's metrics."""
    cluster = inbound_cluster(port)
    route = route_pb2.RouteConfiguration(name=cluster)
    host = route.virtual_hosts.add(name=f"inbound|http|{port}", domains=["*"])
    default = host.routes.add(name="default", match=rc.RouteMatch(prefix="/"),
                              route=rc.RouteAction(cluster=cluster,
                                                   timeout=duration_pb2.Duration()))
    if limits is not None:
        attach(default, limits)
    manager = hcm.HttpConnectionManager(
        stat_prefix=f"inbound_{port}", route_config=route,
        http_filters=chain,
        access_log=[*logs, *(metrics or [])], upgrade_configs=websocket_upgrade())
    if limits is not None and needs_remote_address(limits):
        # The rate limits read the client's address: the peer's, never X-Forwarded-For.
        manager.use_remote_address.value = True
    # Before any policy filter: rules match the path the application will receive.
    apply_path_normalization(manager, mesh)
    if mtls:  # tell the application who called, as Istio does (x-forwarded-client-cert)
        manager.forward_client_cert_details = hcm.HttpConnectionManager.SANITIZE_SET
        manager.set_current_client_cert_details.uri = True
    return listener_components_pb2.Filter(name="envoy.filters.network.http_connection_manager",
                                          typed_config=_pack(manager))


def _inbound_tcp(port: int, policy: Named, snapshot: MeshSnapshot, proxy: Proxy,
                 mtls: bool, logs: Iterable[accesslog_pb2.AccessLog] = (),
                 ) -> list[listener_components_pb2.Filter]:
    tcp = tcp_proxy_pb2.TcpProxy(stat_prefix=f"inbound_{port}", cluster=inbound_cluster(port),
                                 access_log=logs)
    inbound_tcp(snapshot, proxy, port, mtls, tcp,  # Istio's TCP metrics
                metric_overrides(snapshot, proxy))
    return [*(listener_components_pb2.Filter(name=n, typed_config=_pack(c)) for n, c in policy),
            listener_components_pb2.Filter(name="envoy.filters.network.tcp_proxy",
                                           typed_config=_pack(tcp))]


@dataclass(frozen=True)
class InboundPort:
    """A port the sidecar listens on for peers, and where the application serves it."""

    number: int
    port: ServicePort
    app_port: int
    app_socket: str = ""  # a Unix socket path, when the Sidecar's defaultEndpoint names one


def _ingress_overrides(snapshot: MeshSnapshot, proxy: Proxy) -> list[InboundPort] | None:
    """A Sidecar resource's `ingress` replaces the ports taken from services: listen on
    `port`, forward to `defaultEndpoint` (its loopback host is the application's address)."""
    sidecar = sidecar_for(snapshot, proxy)
    ingress = spec_of(sidecar, SidecarSpec).ingress if sidecar else None
    if not ingress:
        return None
    found = []
    for listener in ingress:
        port = listener.port
        if port.number is None:
            continue  # validation lets a port without a number through: it names no port
        number = port.number
        endpoint = listener.defaultEndpoint or ""
        socket_path = endpoint.removeprefix("unix://") if endpoint.startswith("unix://") else ""
        app_port = int(endpoint.rsplit(":", 1)[1]) if ":" in endpoint and not socket_path \
            else port.targetPort or number
        name = port.name or ""
        protocol = protocols.of_declared_port(port.protocol, name, number)
        found.append(InboundPort(number, ServicePort(number, name, protocol), app_port,
                                 socket_path))
    return found


def inbound_ports(snapshot: MeshSnapshot, proxy: Proxy) -> list[InboundPort]:
    """The ports of every service that selects this workload (or its Sidecar's ingress)."""
    overrides = _ingress_overrides(snapshot, proxy)
    if overrides is not None:
        return overrides
    found: dict[int, ServicePort] = {}
    registry = snapshot.registry
    for service in registry.services:
        if service.selector is None or service.namespace != proxy.namespace:
            continue  # selectors pick workloads of their own namespace only
        for workload in registry.workloads_of(service):
            if workload.address != proxy.address:
                continue
            for port in service.ports:
                number = dict(workload.ports).get(port.name) or port.target_port or port.number
                found.setdefault(number, port)
    return [InboundPort(number, port, number) for number, port in sorted(found.items())]


# ALPN that says what a detected connection carries (Istio's names). Plaintext: what the HTTP
# inspector reports (HTTP/1.0 is left to the TCP chain, as Istio does by default: the HTTP
# connection manager would refuse it). Over mTLS the client sidecar names it: see alpn.py.
PLAINTEXT_HTTP_ALPNS = ("http/1.1", "h2c")
MTLS_HTTP_ALPNS = ISTIO_HTTP_ALPNS


def _inbound_listener(snapshot: MeshSnapshot, proxy: Proxy, number: int, port: ServicePort,
                      mode: str) -> listener_pb2.Listener:
    """One filter chain per accepted transport: mTLS (STRICT), plaintext (DISABLE) or both
    (PERMISSIVE), told apart by the TLS inspector. A connection no chain accepts is closed
    before the application sees it. A port of protocol AUTO has an HTTP and a TCP chain for
    each transport: the HTTP inspector (plaintext) or the client sidecar's ALPN (mTLS) picks
    HTTP, anything else is TCP."""
    auto = port.protocol == protocols.AUTO
    http = protocols.speaks_http(port.protocol)
    tcp = port.protocol not in HTTP_PROTOCOLS
    # In the registry's order: authentication, then CUSTOM, DENY, ALLOW and AUDIT
    # authorization, as Istio orders them (authorization reads the verified token's claims).
    http_chain = http_filters(FilterContext(snapshot, proxy, Direction.INBOUND, number)) \
        if http else []
    policy: Named = network_rbac_filters(snapshot, proxy, number) if tcp else []
    limits = inbound_attachment(snapshot, proxy, number) if http and has_policies(
        snapshot) else None
    logs = access_logs(snapshot, proxy, SERVER)

    listener = _listener(f"{proxy.address}_{number}", proxy.address, number, [])
    del listener.filter_chains[:]
    listener.listener_filters.add(name="envoy.filters.listener.tls_inspector",
                                  typed_config=_pack(tls_inspector_pb2.TlsInspector()))
    if auto:
        listener.listener_filters.add(name="envoy.filters.listener.http_inspector",
                                      typed_config=_pack(http_inspector_pb2.HttpInspector()))
        # Istio's protocolDetectionTimeout default: wait for the client's first bytes with
        # no deadline (a server-first protocol needs an explicit port name).
        listener.listener_filters_timeout.SetInParent()
        listener.continue_on_listener_filters_timeout = True

    def add(name: str, mtls: bool, as_http: bool, alpns: tuple[str, ...] = ()) -> None:
        chain = listener.filter_chains.add(name=name)
        chain.filter_chain_match.transport_protocol = "tls" if mtls else "raw_buffer"
        chain.filter_chain_match.application_protocols.extend(alpns)
        if mtls:
            chain.transport_socket.CopyFrom(inbound_mutual_socket())
        chain.filters.extend(
            [_inbound_http(number, http_chain, snapshot.mesh_config, mtls=mtls, limits=limits,
                           logs=logs, metrics=inbound_http_loggers(
                               snapshot, proxy, number, mtls,
                               metric_overrides(snapshot, proxy)))]
            if as_http
            else _inbound_tcp(number, policy, snapshot, proxy, mtls, logs))

    if mode in (STRICT, PERMISSIVE):
        if auto:
            add("mtls-http", True, True, MTLS_HTTP_ALPNS)
            add("mtls-tcp", True, False)
        else:
            add("mtls", True, http)
    if mode in (PERMISSIVE, DISABLE):
        if auto:
            add("plaintext-http", False, True, PLAINTEXT_HTTP_ALPNS)
            add("plaintext-tcp", False, False)
        else:
            add("plaintext", False, http)
    return listener


def inbound_listeners(snapshot: MeshSnapshot, proxy: Proxy) -> list[listener_pb2.Listener]:
    return [_inbound_listener(snapshot, proxy, p.number, p.port,
                              peer_authentication_mode(snapshot, proxy, p.number))
            for p in inbound_ports(snapshot, proxy)]


def inbound_clusters(snapshot: MeshSnapshot, proxy: Proxy) -> list[cluster_pb2.Cluster]:
    """Clusters the inbound side needs: to the application, and to remote JWKS."""
    return [*(inbound_cluster_resource(p.number, proxy.app_address, p.app_port, p.port.protocol,
                                       p.app_socket)
              for p in inbound_ports(snapshot, proxy)),
            *jwks_clusters(snapshot, proxy), *rate_limit_clusters(snapshot, proxy)]


def sidecar_listeners(snapshot: MeshSnapshot, proxy: Proxy) -> list[listener_pb2.Listener]:
    return [outbound_listener(snapshot, proxy), *inbound_listeners(snapshot, proxy)]
