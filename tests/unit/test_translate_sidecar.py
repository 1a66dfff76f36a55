"""A whole sidecar's configuration for examples/hello: golden, and accepted by real Envoy."""

from __future__ import annotations

from google.protobuf.json_format import MessageToDict
from test_translate_clusters import check_golden, hello_snapshot

from heddle.model.proxy import Proxy, ProxyType, parse_node_id
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.listeners import OUTBOUND_LISTENER
from heddle.translate.sidecar import CLUSTER, LISTENER, ROUTE, sidecar_resources

FRONTEND = Proxy(ProxyType.SIDECAR, "frontend", "default", "127.0.10.2", "127.1.10.2",
                 (("app", "frontend"), ("version", "v1")), "frontend")


def test_node_id_round_trips() -> None:
    assert FRONTEND.id == "sidecar~127.0.10.2~frontend.default~default.svc.cluster.local"
    assert parse_node_id(FRONTEND.id) == (ProxyType.SIDECAR, "127.0.10.2", "frontend", "default")


def test_frontend_gets_an_outbound_proxy_and_an_inbound_listener_for_its_port() -> None:
    resources = sidecar_resources(hello_snapshot(), FRONTEND)
    listeners = resources.of(LISTENER)
    assert sorted(listeners) == ["127.0.10.2_8080", OUTBOUND_LISTENER]
    outbound = listeners[OUTBOUND_LISTENER]
    assert outbound.address.socket_address.port_value == 15001  # type: ignore[attr-defined]
    assert "inbound|8080||" in resources.of(CLUSTER)
    inbound = resources.of(CLUSTER)["inbound|8080||"]
    endpoint = inbound.load_assignment.endpoints[0].lb_endpoints[0].endpoint  # type: ignore[attr-defined]
    assert endpoint.address.socket_address.address == "127.1.10.2"


def test_proxy_routes_tell_services_apart_by_host_and_port() -> None:
    [config] = sidecar_resources(hello_snapshot(), FRONTEND).of(ROUTE).values()
    domains = {h.name: list(h.domains) for h in config.virtual_hosts}  # type: ignore[attr-defined]
    assert "backend:9090" in domains["backend.default.svc.cluster.local:9090"]
    assert "backend" not in domains["backend.default.svc.cluster.local:9090"]


def test_sidecar_resources_match_golden_and_real_envoy_accepts_them() -> None:
    resources = sidecar_resources(hello_snapshot(), FRONTEND)
    check_golden("sidecar-frontend.json", {
        type_url.rsplit(".", 1)[-1]: {name: MessageToDict(m) for name, m in sorted(items.items())}
        for type_url, items in resources.by_type.items()
    })
    out = validate_bootstrap(sidecar_bootstrap(resources))
    assert out.returncode == 0, out.stdout + out.stderr


def test_tcp_services_are_reached_by_connect_and_served_by_tcp_proxy() -> None:
    snapshot = hello_snapshot()
    [config] = sidecar_resources(snapshot, FRONTEND).of(ROUTE).values()
    [echo] = [h for h in config.virtual_hosts  # type: ignore[attr-defined]
              if h.name == "echo.default.svc.cluster.local:9000"]
    [route] = echo.routes
    assert route.match.HasField("connect_matcher")
    assert route.route.cluster == "outbound|9000||echo.default.svc.cluster.local"
    assert route.route.upgrade_configs[0].upgrade_type == "CONNECT"
    echo_proxy = Proxy(ProxyType.SIDECAR, "echo", "default", "127.0.10.6", "127.255.10.6",
                       (("app", "echo"),), "echo")
    [inbound] = [listener for name, listener in
                 sidecar_resources(snapshot, echo_proxy).of(LISTENER).items()
                 if name == "127.0.10.6_9000"]
    filters = inbound.filter_chains[0].filters  # type: ignore[attr-defined]
    assert [f.name for f in filters] == ["envoy.filters.network.tcp_proxy"]
