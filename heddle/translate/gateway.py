"""Everything one gateway proxy (router mode) needs: Istio Gateways and the VirtualServices
bound to them, as istiod builds them.

- The Gateways whose `selector` matches the proxy's labels are merged: one listener per
  server port, bound on the proxy's address (a port below 1024 moved by the proxy's
  `low_port_offset` where it may not bind it).
- Plaintext HTTP servers (HTTP, HTTP2, GRPC) of a port share one filter chain and the route
  configuration `http.PORT`; each HTTPS server that terminates TLS gets its own filter chain
  (matched by SNI, its hosts) with its certificate and the routes
  `https.PORT.PORT_NAME.GATEWAY.NAMESPACE`; TLS PASSTHROUGH servers get a chain per SNI
  host of the bound VirtualServices' `tls` rules; TCP servers and TLS servers that
  terminate forward by the bound VirtualServices' `tcp` rules.
- A VirtualService is bound when its `gateways` name the Gateway (`name` in its own
  namespace, or `ns/name`; without `gateways` it is bound to `mesh`, the sidecars, only) and
  one of its hosts meets a server host (`ns/host`: `*/`, `./` the Gateway's namespace, or a
  namespace the VirtualService must be in). A virtual host takes the narrower of the two
  names. `httpsRedirect` makes the server's virtual hosts redirect to HTTPS.
- Clusters and endpoints are a sidecar's outbound ones (ISTIO_MUTUAL to workloads with a
  sidecar); `credentialName` certificates are served by the control plane (gateway_tls).
- RequestAuthentication and AuthorizationPolicy apply as on a sidecar's inbound side, to
  every HTTP connection manager (jwt_authn, ext_authz, RBAC from the filter registry) and
  every TCP chain (network RBAC), with the policies `authz.applicable_policies` picks for
  the gateway workload: by selector, mesh-wide from the root namespace, or by `targetRefs`
  naming its Gateway API Gateway. Remote JWKS are fetched through their own clusters.

What the configuration gets wrong (a server that conflicts with another on its port, a
credential without a usable Secret) is skipped and said in `GatewayConfig.problems`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from google.protobuf import any_pb2, wrappers_pb2
from google.protobuf.message import Message

from heddle.api.models import GatewaySpec, VirtualServiceSpec
from heddle.api.models._generated.networking_gateway import GatewaySpecServer
from heddle.api.models.virtual_service_parts import RouteDestination
from heddle.api.resource import Resource
from heddle.api.specs import spec_of
from heddle.model.proxy import Proxy
from heddle.model.scope import NETWORKING, proxy_scope
from heddle.model.selectors import matches
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import resolve_host
from heddle.translate.access_logs import CLIENT, access_logs
from heddle.translate.authz import network_rbac_filters
from heddle.translate.clusters import outbound_clusters, outbound_endpoints
from heddle.translate.envoy_filters import apply_envoy_filters
from heddle.translate.filters.context import Direction, FilterContext
from heddle.translate.filters.registry import http_filters
from heddle.translate.gateway_tls import CredentialProblem, credential_secrets, server_tls
from heddle.translate.jwt import jwks_clusters
from heddle.translate.listeners import websocket_upgrade
from heddle.translate.metrics.telemetry_overrides import metric_overrides
from heddle.translate.metrics.wiring import gateway_tcp, outbound_http_loggers
from heddle.translate.path_normalization import apply_path_normalization
from heddle.translate.rate_limits import rate_limit_clusters
from heddle.translate.routes import (
    MESH_GATEWAY,
    destination_cluster,
    gateway_ref,
    routes_for,
    tell_auto_ports_it_is_http,
)
from heddle.translate.sidecar import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET, ProxyResources
from heddle.translate.tracing import apply_tracing

HCM = "envoy.filters.network.http_connection_manager"
TCP_PROXY = "envoy.filters.network.tcp_proxy"
PRIVILEGED_BELOW = 1024
HTTP_PROTOCOLS = ("HTTP", "HTTP2", "GRPC", "GRPC-WEB")
PASSTHROUGH_MODES = ("PASSTHROUGH", "AUTO_PASSTHROUGH")


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


@dataclass(frozen=True)
class BoundServer:
    """One server of a Gateway that selects this proxy."""

    gateway: Resource[Any]
    index: int
    server: GatewaySpecServer

    @property
    def ref(self) -> str:
        return f"{self.gateway.namespace}/{self.gateway.name}"

    @property
    def protocol(self) -> str:
        return self.server.port.protocol.upper()

    @property
    def mode(self) -> str:
        tls = self.server.tls
        return tls.mode.value if tls is not None and tls.mode is not None else ""

    @property
    def kind(self) -> str:
        """http (plaintext HTTP), https (terminated), passthrough, tls (terminated, TCP
        inside) or tcp."""
        if self.protocol in HTTP_PROTOCOLS:
            return "http"
        if self.protocol in ("HTTPS", "TLS") and self.server.tls is not None:
            if self.mode in PASSTHROUGH_MODES:
                return "passthrough"
            return "https" if self.protocol == "HTTPS" else "tls"
        return "tcp"

    @property
    def is_tls(self) -> bool:
        return self.kind in ("https", "passthrough", "tls")

    @property
    def route_name(self) -> str:
        port = self.server.port
        if self.kind == "http":
            return f"http.{port.number}"
        return f"https.{port.number}.{port.name}.{self.gateway.name}.{self.gateway.namespace}"

    def describe(self) -> str:
        port = self.server.port
        return (f"Gateway {self.ref} server {self.index} (port {port.number} "
                f"{port.name or port.protocol})")

    def hosts(self) -> list[tuple[str, str]]:
        """(namespace, host) per server host: namespace `*` for any."""
        found = []
        for host in self.server.hosts:
            namespace, _, name = host.rpartition("/")
            if namespace == ".":
                namespace = self.gateway.namespace
            found.append((namespace or "*", name))
        return found

    def sni_names(self) -> list[str]:
        """Filter chain server names: none for a server of every host."""
        names = [h for _, h in self.hosts()]
        return [] if "*" in names else sorted(set(names))


@dataclass
class GatewayConfig:
    resources: ProxyResources
    problems: list[str] = field(default_factory=list)


def selected_gateways(snapshot: MeshSnapshot, proxy: Proxy) -> list[Resource[Any]]:
    """Istio Gateways whose selector matches the proxy (one without a selector selects
    every gateway proxy), by namespace and name."""
    labels = proxy.label_map
    return [g for g in snapshot.of_kind(NETWORKING, "Gateway")
            if matches(dict(spec_of(g, GatewaySpec).selector or {}), labels)]


def bound_port(proxy: Proxy, number: int) -> int:
    """Where a server port listens on this proxy: as written, unless it is privileged and
    the proxy may not bind it (then `low_port_offset` higher)."""
    return number + proxy.low_port_offset if number < PRIVILEGED_BELOW else number


def _merged_servers(gateways: Iterable[Resource[Any]], problems: list[str],
                    ) -> dict[int, list[BoundServer]]:
    """Servers by port, as Istio merges them: plaintext HTTP servers share a port; TLS
    servers share one by SNI (a host repeated on the port is skipped); nothing else
    shares."""
    by_port: dict[int, list[BoundServer]] = {}
    sni_by_port: dict[int, set[str]] = {}
    for gateway in gateways:
        for i, server in enumerate(spec_of(gateway, GatewaySpec).servers or []):
            bound = BoundServer(gateway, i, server)
            if bound.mode == "AUTO_PASSTHROUGH":
                problems.append(f"{bound.describe()}: tls mode AUTO_PASSTHROUGH is not "
                                "supported (it serves multi-network traffic); skipped")
                continue
            number = server.port.number
            present = by_port.get(number)
            if bound.is_tls:
                hosts = set(bound.sni_names() or ["*"])
                known = sni_by_port.setdefault(number, set())
                if hosts & known:
                    repeated = ", ".join(sorted(hosts & known))
                    problems.append(f"{bound.describe()}: host(s) {repeated} "
                                    f"already served on port {number} by another TLS server; "
                                    "skipped")
                    continue
            if present is not None:
                first = present[0]
                compatible = (bound.is_tls and first.is_tls) or (
                    bound.kind == first.kind == "http")
                if not compatible:
                    problems.append(f"{bound.describe()}: port {number} is already served by "
                                    f"{first.describe()} as {first.protocol}; skipped (only "
                                    "plaintext HTTP servers, or TLS servers told apart by "
                                    "SNI, share a port)")
                    continue
                if bound.kind == "https" and any(s.route_name == bound.route_name
                                                 for s in present):
                    problems.append(f"{bound.describe()}: port name {server.port.name!r} is "
                                    f"used twice on port {number}; skipped")
                    continue
            if bound.is_tls:
                sni_by_port[number].update(bound.sni_names() or ["*"])
            by_port.setdefault(number, []).append(bound)
    return by_port


def _bound_virtual_services(snapshot: MeshSnapshot, server: BoundServer,
                            ) -> list[tuple[Resource[Any], list[str]]]:
    """The VirtualServices bound to the server's Gateway, with the hosts each serves there
    (the narrower of its host and the server host that meet)."""
    found = []
    for vs in snapshot.of_kind(NETWORKING, "VirtualService"):
        spec = spec_of(vs, VirtualServiceSpec)
        gateways = {gateway_ref(g, vs.namespace) for g in spec.gateways or [MESH_GATEWAY]}
        if server.ref not in gateways:
            continue
        hosts: list[str] = []
        for host in (resolve_host(h, vs.namespace) if h != "*" else h for h in spec.hosts or []):
            for namespace, server_host in server.hosts():
                if namespace not in ("*", vs.namespace):
                    continue
                if server_host == "*" or fnmatch.fnmatchcase(host, server_host):
                    hosts.append(host)
                elif fnmatch.fnmatchcase(server_host, host):
                    hosts.append(server_host)
        if hosts:
            found.append((vs, list(dict.fromkeys(hosts))))
    return found


def _route_config(snapshot: MeshSnapshot, proxy: Proxy, name: str,
                  servers: list[BoundServer]) -> route_pb2.RouteConfiguration:
    """The virtual hosts of every VirtualService bound to these servers (one route
    configuration's), each VirtualService's rules in order; a host two VirtualServices
    name gets the rules of both, the first's first. No host bound: 404 for every request."""
    config = route_pb2.RouteConfiguration(
        name=name, validate_clusters=wrappers_pb2.BoolValue(value=False))
    port = servers[0].server.port.number
    hosts: dict[str, rc.VirtualHost] = {}
    for server in servers:
        redirect = bool(server.server.tls and server.server.tls.httpsRedirect)
        for vs, names in _bound_virtual_services(snapshot, server):
            routes = routes_for(snapshot, vs, port, proxy, gateway=server.ref)
            tell_auto_ports_it_is_http(snapshot, routes, proxy)
            if not routes:
                continue
            for host in names:
                virtual_host = hosts.get(host)
                if virtual_host is None:
                    virtual_host = hosts[host] = rc.VirtualHost(
                        name=f"{host}:{port}",
                        domains=["*"] if host == "*" else [host, f"{host}:*"])
                    if redirect:
                        virtual_host.require_tls = rc.VirtualHost.ALL
                virtual_host.routes.extend(routes)
    # Wildcard hosts last, the narrowest first: Envoy prefers exact domains anyway.
    for host in sorted(hosts, key=lambda h: (h.startswith("*"), -len(h), h)):
        config.virtual_hosts.append(hosts[host])
    if not hosts:
        config.virtual_hosts.add(name=f"blackhole:{port}", domains=["*"], routes=[rc.Route(
            name="default", match=rc.RouteMatch(prefix="/"),
            direct_response=rc.DirectResponseAction(status=404))])
    return config


def _manager(snapshot: MeshSnapshot, proxy: Proxy, route_name: str,
             port: int) -> listener_components_pb2.Filter:
    manager = hcm.HttpConnectionManager(
        stat_prefix=route_name,
        rds=hcm.Rds(route_config_name=route_name, config_source=config_source_pb2.ConfigSource(
            ads=config_source_pb2.AggregatedConfigSource(),
            resource_api_version=config_source_pb2.V3)),
        # From the registry, as a gateway's: authentication, authorization (the deciding
        # policy lands in the access log, as on sidecars), route filters, the router.
        http_filters=http_filters(FilterContext(snapshot, proxy, Direction.GATEWAY, port)),
        access_log=[*access_logs(snapshot, proxy, CLIENT),
                    *outbound_http_loggers(proxy, metric_overrides(snapshot, proxy),
                                          tunnels=False)],
        upgrade_configs=websocket_upgrade(),
        # The gateway is the edge: the client's address is the peer's, as in Istio.
        use_remote_address=wrappers_pb2.BoolValue(value=True))
    apply_path_normalization(manager, snapshot.mesh_config)
    return listener_components_pb2.Filter(name=HCM, typed_config=_pack(manager))


def _tcp_proxy(snapshot: MeshSnapshot, gateway: Proxy, namespace: str,
               destinations: Sequence[RouteDestination], port: int, stat_prefix: str,
               ) -> list[listener_components_pb2.Filter]:
    """The gateway's AuthorizationPolicies on the connection (network RBAC: HTTP-only
    fields make ALLOW rules match nothing and are ignored by DENY rules, as on sidecars),
    then the TCP proxy to the destinations."""
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=stat_prefix,
                                   access_log=access_logs(snapshot, gateway, CLIENT))
    gateway_tcp(gateway, proxy, metric_overrides(snapshot, gateway))
    clusters = [(destination_cluster(snapshot, namespace, d.destination, port), d.weight or 0)
                for d in destinations]
    if len(clusters) == 1:
        proxy.cluster = clusters[0][0]
    else:
        for name, weight in clusters:
            proxy.weighted_clusters.clusters.add(name=name, weight=weight)
    return [*(listener_components_pb2.Filter(name=name, typed_config=_pack(config))
              for name, config in network_rbac_filters(snapshot, gateway, port)),
            listener_components_pb2.Filter(name=TCP_PROXY, typed_config=_pack(proxy))]


def _tcp_route(snapshot: MeshSnapshot, proxy: Proxy, server: BoundServer,
               ) -> list[listener_components_pb2.Filter] | None:
    """The first `tcp` rule of a bound VirtualService that applies on this port."""
    port = server.server.port.number
    for vs, _ in _bound_virtual_services(snapshot, server):
        for tcp in spec_of(vs, VirtualServiceSpec).tcp or []:
            if not tcp.route:
                continue
            applies = [m for m in tcp.match or [] if m.port in (None, port) and (
                not m.gateways or server.ref in {gateway_ref(g, vs.namespace)
                                                 for g in m.gateways})]
            if tcp.match and not applies:
                continue
            return _tcp_proxy(snapshot, proxy, vs.namespace, tcp.route, port,
                              f"{server.route_name or 'tcp'}.{port}")
    return None


def _passthrough_chains(snapshot: MeshSnapshot, proxy: Proxy, server: BoundServer,
                        ) -> list[listener_components_pb2.FilterChain]:
    """One chain per `tls` rule match of a bound VirtualService: its SNI hosts within the
    server's hosts, forwarded still encrypted."""
    port = server.server.port.number
    chains: list[listener_components_pb2.FilterChain] = []
    taken: set[str] = set()
    server_hosts = [h for _, h in server.hosts()]
    for vs, _ in _bound_virtual_services(snapshot, server):
        for tls in spec_of(vs, VirtualServiceSpec).tls or []:
            for match in tls.match:
                if match.port not in (None, port) or (match.gateways and server.ref not in {
                        gateway_ref(g, vs.namespace) for g in match.gateways}):
                    continue
                names = sorted({h for h in match.sniHosts if h not in taken and any(
                    s == "*" or fnmatch.fnmatchcase(h, s) for s in server_hosts)})
                if not names or not tls.route:
                    continue
                taken.update(names)
                chain = listener_components_pb2.FilterChain(
                    name=f"{server.ref}/{server.index}/{names[0]}")
                chain.filter_chain_match.server_names.extend([] if "*" in names else names)
                chain.filters.extend(_tcp_proxy(snapshot, proxy, vs.namespace, tls.route, port,
                                                f"passthrough.{port}"))
                chains.append(chain)
    return chains


def _listener(snapshot: MeshSnapshot, proxy: Proxy, number: int, servers: list[BoundServer],
              config: GatewayConfig) -> listener_pb2.Listener | None:
    port = bound_port(proxy, number)
    listener = listener_pb2.Listener(
        name=f"{proxy.address}_{port}",
        address=address_pb2.Address(socket_address=address_pb2.SocketAddress(
            address=proxy.address, port_value=port)))
    routes = config.resources.by_type.setdefault(ROUTE, {})
    secrets = config.resources.by_type.setdefault(SECRET, {})
    first = servers[0]
    if first.kind == "http":
        routes[first.route_name] = _route_config(snapshot, proxy, first.route_name, servers)
        listener.filter_chains.add(name=first.route_name).filters.append(
            _manager(snapshot, proxy, first.route_name, number))
    elif first.kind == "tcp":
        found = _tcp_route(snapshot, proxy, first)
        if found is None:
            config.problems.append(f"{first.describe()}: no VirtualService bound to it has a "
                                   "tcp route for this port; nothing listens there")
            return None
        listener.filter_chains.add(name=f"tcp.{number}").filters.extend(found)
    else:
        listener.listener_filters.add(name="envoy.filters.listener.tls_inspector",
                                      typed_config=_pack(tls_inspector_pb2.TlsInspector()))
        for server in servers:
            if server.kind == "passthrough":
                listener.filter_chains.extend(_passthrough_chains(snapshot, proxy, server))
                continue
            assert server.server.tls is not None
            tls = server_tls(server.server.tls, http=server.kind == "https")
            try:
                for name, with_ca in tls.credentials:
                    secrets.update(credential_secrets(snapshot, proxy.namespace, name, with_ca))
            except CredentialProblem as err:
                config.problems.append(f"{server.describe()}: credentialName: {err}; its "
                                       "handshakes fail until it is fixed")
            chain = listener_components_pb2.FilterChain(name=f"{server.ref}/{server.index}")
            chain.filter_chain_match.server_names.extend(server.sni_names())
            chain.transport_socket.CopyFrom(tls.socket)
            if server.kind == "https":
                routes[server.route_name] = _route_config(snapshot, proxy, server.route_name,
                                                          [server])
                chain.filters.append(_manager(snapshot, proxy, server.route_name, number))
            else:
                found = _tcp_route(snapshot, proxy, server)
                if found is None:
                    config.problems.append(f"{server.describe()}: no VirtualService bound to "
                                           "it has a tcp route for this port; skipped")
                    continue
                chain.filters.extend(found)
            listener.filter_chains.append(chain)
        if not listener.filter_chains:
            return None
    return listener


def gateway_config(snapshot: MeshSnapshot, proxy: Proxy) -> GatewayConfig:
    """Pure: the gateway's resources by xDS type, and what it had to skip."""
    scope = proxy_scope(snapshot, proxy)
    outbound = scope.snapshot
    clusters = outbound_clusters(outbound, proxy)
    config = GatewayConfig(ProxyResources({
        CLUSTER: {c.name: c for c in [*clusters, *jwks_clusters(snapshot, proxy),
                                      *rate_limit_clusters(snapshot, proxy)]},
        ENDPOINT: {e.cluster_name: e for e in outbound_endpoints(outbound, proxy, clusters)},
        LISTENER: {}, ROUTE: {}, SECRET: {}}))
    listeners = config.resources.by_type[LISTENER]
    merged = _merged_servers(selected_gateways(snapshot, proxy), config.problems)
    bound: dict[int, int] = {}
    for number, servers in sorted(merged.items()):
        port = bound_port(proxy, number)
        if port in bound:
            config.problems.append(f"{servers[0].describe()}: port {number} would listen on "
                                   f"{port}, as port {bound[port]} does (moved by "
                                   f"{proxy.low_port_offset}: not root); skipped")
            continue
        listener = _listener(outbound, proxy, number, servers, config)
        if listener is not None:
            bound[port] = number
            listeners[listener.name] = listener
    traced, untraced = apply_tracing(snapshot, proxy, config.resources)
    resources, skipped = apply_envoy_filters(snapshot, proxy, traced)
    return GatewayConfig(resources, [*config.problems, *untraced, *skipped])


def gateway_resources(snapshot: MeshSnapshot, proxy: Proxy) -> ProxyResources:
    return gateway_config(snapshot, proxy).resources


@dataclass(frozen=True)
class GatewayListener:
    """A server port as people reach it: `url` at the gateway's address."""

    number: int
    port: int
    protocol: str
    url: str


def gateway_listeners(snapshot: MeshSnapshot, proxy: Proxy) -> list[GatewayListener]:
    """The gateway's server ports as URLs (what `heddle status` prints), one per port."""
    found = []
    merged = _merged_servers(selected_gateways(snapshot, proxy), [])
    for number, servers in sorted(merged.items()):
        kind = servers[0].kind
        scheme = {"http": "http", "https": "https", "tcp": "tcp"}.get(kind, "tls")
        port = bound_port(proxy, number)
        found.append(GatewayListener(number, port, servers[0].protocol,
                                     f"{scheme}://{proxy.address}:{port}"))
    return found
