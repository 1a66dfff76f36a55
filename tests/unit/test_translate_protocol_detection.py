"""Istio's automatic protocol selection: a port no protocol field, appProtocol or name prefix
names is AUTO; the client's proxy routes HTTP to it by VirtualService http rules (and still
tunnels TCP), and the server's sidecar tells HTTP from TCP by the HTTP inspector (plaintext)
or the client's ALPN (mTLS). Simulated calls, golden files, and real Envoy accepts them."""

from __future__ import annotations

import textwrap

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import ROOT, check_golden

from heddle.api.loader import load_paths, load_text
from heddle.model.mesh_config import MeshConfig
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.registry import protocols
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.testing.simulation import Call, Direction, Error, Protocol, Tls, simulate
from heddle.translate.alpn import ALPN_FILTER
from heddle.translate.sidecar import CLUSTER, LISTENER, ROUTE, ProxyResources, sidecar_resources

CLIENT = Proxy(ProxyType.SIDECAR, "client", "default", "127.0.30.1", "127.128.30.1",
               (("app", "client"),), "client")
WEB = Proxy(ProxyType.SIDECAR, "web-v1", "default", "127.0.30.2", "127.128.30.2",
            (("app", "web"), ("version", "v1")), "web")
WEB_HOST = "web.default.svc.cluster.local"


def snapshot(*extra: str) -> MeshSnapshot:
    """tests/golden/auto/mesh.yaml, with `extra` documents."""
    result = load_paths([ROOT / "tests" / "golden" / "auto"])
    more = load_text("\n---\n".join(textwrap.dedent(e) for e in extra), "extra.yaml") \
        if extra else None
    assert result.errors == [] and (more is None or more.errors == [])
    resources = [*result.resources, *(more.resources if more else [])]
    return MeshSnapshot.build(1, resources, mesh_config=MeshConfig.from_objects(
        [*result.unmanaged, *(more.unmanaged if more else [])]))


def resources(proxy: Proxy, *extra: str) -> ProxyResources:
    return sidecar_resources(snapshot(*extra), proxy)


@pytest.mark.parametrize(("name", "number", "app_protocol", "expected"), [
    ("", 8080, None, protocols.AUTO),  # unnamed
    ("first-port", 8080, None, protocols.AUTO),  # a name that is no protocol
    ("web", 80, None, protocols.AUTO),
    ("http-web", 80, None, "HTTP"),
    ("HTTP2", 80, None, "HTTP2"),
    ("grpc-web-api", 80, None, "GRPC-WEB"),
    ("tcp-db", 5432, None, "TCP"),
    ("", 3306, None, "TCP"),  # server-first well-known ports: MySQL, SMTP, DNS, MongoDB
    ("", 25, None, "TCP"),
    ("", 27017, None, "TCP"),
    ("web", 8080, "http", "HTTP"),  # appProtocol replaces the name
    ("http", 8080, "custom", protocols.AUTO),
    ("", 8080, "kubernetes.io/h2c", "HTTP2"),
    ("", 8080, "kubernetes.io/ws", "HTTP"),
])
def test_a_kubernetes_port_gets_istios_protocol(name: str, number: int,
                                                app_protocol: str | None,
                                                expected: str) -> None:
    assert protocols.of_kubernetes_port(name, number, app_protocol) == expected


def test_a_udp_port_is_udp_whatever_its_name() -> None:
    assert protocols.of_kubernetes_port("http", 53, None, "UDP") == "UDP"


def test_a_declared_protocol_decides_and_the_name_is_the_fallback() -> None:
    assert protocols.of_declared_port("HTTP", "tcp-x", 80) == "HTTP"
    assert protocols.of_declared_port(None, "tcp-x", 80) == "TCP"
    assert protocols.of_declared_port(None, "admin", 80) == protocols.AUTO


def test_the_registry_reads_unnamed_service_ports_as_auto() -> None:
    ports = {(s.name, p.number): p.protocol for s in snapshot().registry.services
             for p in s.ports}
    assert ports == {("web", 8080): protocols.AUTO, ("web", 8081): "HTTP",
                     ("raw", 9000): protocols.AUTO, ("db", 3306): "TCP"}


# --- the client's outbound proxy ---------------------------------------------------------

def test_http_to_an_auto_port_follows_the_virtual_service_http_rules() -> None:
    config = resources(CLIENT)
    canary = simulate(config, Call(host="web", port=8080, headers={"x-canary": "yes"}))
    assert (canary.route, canary.cluster) == ("default.web.0", f"outbound|8080|v2|{WEB_HOST}")
    plain = simulate(config, Call(host="web", port=8080))
    assert (plain.route, plain.cluster) == ("default.web.1", f"outbound|8080|v1|{WEB_HOST}")


def test_a_tunnel_to_an_auto_port_follows_the_tcp_rules() -> None:
    tunnel = simulate(resources(CLIENT), Call(host="web", port=8080, protocol=Protocol.TCP))
    assert (tunnel.route, tunnel.cluster) == ("connect", f"outbound|8080|v1|{WEB_HOST}")


def test_an_unnamed_port_without_a_virtual_service_gets_the_default_route() -> None:
    config = resources(CLIENT)
    assert simulate(config, Call(host="raw", port=9000)).cluster \
        == "outbound|9000||raw.default.svc.cluster.local"
    assert simulate(config, Call(host="raw", port=9000, protocol=Protocol.TCP)).route \
        == "connect"


def test_a_server_first_port_is_reached_only_by_tunnel() -> None:
    config = resources(CLIENT)
    assert simulate(config, Call(host="db", port=3306)).status == 404
    assert simulate(config, Call(host="db", port=3306, protocol=Protocol.TCP)).cluster \
        == "outbound|3306||db.default.svc.cluster.local"


def _routes(config: ProxyResources, virtual_host: str) -> dict[str, rc.Route]:
    [routes] = config.of(ROUTE).values()
    [host] = [h for h in routes.virtual_hosts if h.name == virtual_host]  # type: ignore[attr-defined]
    return {r.name: r for r in host.routes}


def _offers_istio_alpn(route: rc.Route) -> bool:
    return ALPN_FILTER in route.typed_per_filter_config


def test_http_to_an_auto_port_offers_istio_alpn_and_tunnels_do_not() -> None:
    routes = _routes(resources(CLIENT), f"{WEB_HOST}:8080")
    assert {name: _offers_istio_alpn(r) for name, r in routes.items()} == {
        "default.web.0": True, "default.web.1": True, "connect": False}
    # Declared HTTP ports need no ALPN: their server's listener has only an HTTP chain.
    assert not any(_offers_istio_alpn(r)
                   for r in _routes(resources(CLIENT), f"{WEB_HOST}:8081").values())


def test_http_routed_from_a_declared_port_to_an_auto_port_offers_istio_alpn() -> None:
    config = resources(CLIENT, """
        apiVersion: v1
        kind: Service
        metadata: {name: api}
        spec: {ports: [{name: http, port: 80}]}
        ---
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: api}
        spec:
          hosts: [api.default.svc.cluster.local]
          http:
          - match: [{uri: {prefix: /raw}}]
            route: [{destination: {host: raw.default.svc.cluster.local, port: {number: 9000}}}]
          - route: [{destination: {host: web.default.svc.cluster.local, port: {number: 8081}}}]
        """)
    routes = _routes(config, "api.default.svc.cluster.local:80")
    assert {name: _offers_istio_alpn(r) for name, r in routes.items()} == {
        "default.api.0": True, "default.api.1": False, "connect": False}


def test_a_destination_that_originates_tls_is_offered_no_istio_alpn() -> None:
    config = resources(CLIENT, """
        apiVersion: networking.istio.io/v1
        kind: DestinationRule
        metadata: {name: raw}
        spec:
          host: raw.default.svc.cluster.local
          trafficPolicy: {tls: {mode: SIMPLE}}
        """)
    [default, _] = _routes(config, "raw.default.svc.cluster.local:9000").values()
    assert default.name == "default" and not _offers_istio_alpn(default)


def test_auto_port_clusters_speak_the_protocol_the_client_spoke() -> None:
    clusters = resources(WEB).of(CLUSTER)

    def options(name: str) -> dict[str, object]:
        found = MessageToDict(clusters[name]).get("typedExtensionProtocolOptions", {})
        return next(iter(found.values()), {})  # type: ignore[no-any-return]

    downstream = {"httpProtocolOptions": {}, "http2ProtocolOptions": {}}
    assert options(f"outbound|8080||{WEB_HOST}")["useDownstreamProtocolConfig"] == downstream
    assert options("inbound|3000||")["useDownstreamProtocolConfig"] == downstream
    assert "useDownstreamProtocolConfig" not in options(f"outbound|8081||{WEB_HOST}")


# --- the server's inbound listener -------------------------------------------------------

def inbound(tls: Tls, protocol: Protocol = Protocol.HTTP, alpn: tuple[str, ...] = (),
            ) -> Call:
    return Call(direction=Direction.INBOUND, address="127.0.30.2", port=3000, host="web",
                tls=tls, protocol=protocol, alpn=alpn)


@pytest.mark.parametrize(("call", "chain", "network_filter"), [
    (inbound(Tls.PLAINTEXT), "plaintext-http", "envoy.filters.network.http_connection_manager"),
    (inbound(Tls.PLAINTEXT, Protocol.HTTP2), "plaintext-http",
     "envoy.filters.network.http_connection_manager"),
    (inbound(Tls.PLAINTEXT, Protocol.TCP), "plaintext-tcp", "envoy.filters.network.tcp_proxy"),
    (inbound(Tls.MTLS, alpn=("istio-http/1.1",)), "mtls-http",
     "envoy.filters.network.http_connection_manager"),
    (inbound(Tls.MTLS, alpn=("istio-h2",)), "mtls-http",
     "envoy.filters.network.http_connection_manager"),
    (inbound(Tls.MTLS, Protocol.TCP), "mtls-tcp", "envoy.filters.network.tcp_proxy"),
])
def test_a_permissive_auto_port_detects_http_and_takes_the_rest_as_tcp(
        call: Call, chain: str, network_filter: str) -> None:
    result = simulate(resources(WEB), call)
    assert result.error is None, result.reason
    assert (result.listener, result.filter_chain) == ("127.0.30.2_3000", chain)
    assert result.network_filters[-1] == network_filter
    assert result.cluster == "inbound|3000||"


def test_a_strict_auto_port_takes_only_mtls() -> None:
    strict = """
        apiVersion: security.istio.io/v1
        kind: PeerAuthentication
        metadata: {name: web}
        spec: {selector: {matchLabels: {app: web}}, mtls: {mode: STRICT}}
        """
    config = resources(WEB, strict)
    assert simulate(config, inbound(Tls.PLAINTEXT)).error == Error.NO_FILTER_CHAIN
    assert simulate(config, inbound(Tls.MTLS, alpn=("istio-http/1.1",))).filter_chain \
        == "mtls-http"
    assert simulate(config, inbound(Tls.MTLS, Protocol.TCP)).filter_chain == "mtls-tcp"


def test_an_auto_port_inspects_http_and_waits_for_the_client_as_istio_does() -> None:
    listener = resources(WEB).of(LISTENER)["127.0.30.2_3000"]
    assert [f.name for f in listener.listener_filters] == [  # type: ignore[attr-defined]
        "envoy.filters.listener.tls_inspector", "envoy.filters.listener.http_inspector"]
    # Istio's protocolDetectionTimeout default, 0s: no deadline for the first bytes.
    assert MessageToDict(listener)["listenerFiltersTimeout"] == "0s"
    declared = resources(WEB).of(LISTENER)["127.0.30.2_8081"]
    assert [f.name for f in declared.listener_filters] == [  # type: ignore[attr-defined]
        "envoy.filters.listener.tls_inspector"]


# --- golden files, accepted by real Envoy ------------------------------------------------

@pytest.mark.parametrize("proxy", [CLIENT, WEB], ids=lambda p: p.name)
def test_auto_port_sidecars_match_golden_and_real_envoy_accepts_them(proxy: Proxy) -> None:
    config = resources(proxy)
    check_golden(f"../auto/sidecar-{proxy.name}.json", {
        type_url.rsplit(".", 1)[-1]: {name: MessageToDict(m) for name, m in sorted(items.items())}
        for type_url, items in config.by_type.items()
    })
    out = validate_bootstrap(sidecar_bootstrap(config))
    assert out.returncode == 0, out.stdout + out.stderr
