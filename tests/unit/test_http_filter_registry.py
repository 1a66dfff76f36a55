"""The ordered registry of HTTP filter builders that sidecar connection managers are built from."""

from __future__ import annotations

import sys
from pathlib import Path

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from pytest import MonkeyPatch

from heddle.model.proxy import Proxy, ProxyType
from heddle.translate.filters import registry
from heddle.translate.filters.context import Direction, FilterContext, http_filter
from heddle.translate.filters.registry import HTTP_FILTERS, http_filters
from heddle.translate.listeners import OUTBOUND_LISTENER
from heddle.translate.sidecar import LISTENER, sidecar_resources

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_translate_authz import BACKEND, snapshot
from test_translate_clusters import hello_snapshot

FRONTEND = Proxy(ProxyType.SIDECAR, "frontend", "default", "127.0.10.2", "127.1.10.2",
                 (("app", "frontend"), ("version", "v1")), "frontend")


def _names(chain: list[hcm.HttpFilter]) -> list[str]:
    return [f.name for f in chain]


def test_registry_orders_authentication_then_authorization_then_route_filters_then_router(
        ) -> None:
    assert [name for name, _ in HTTP_FILTERS] == [
        "internal_headers", "peer_metadata", "jwt_authn", "ext_authz", "rbac",
        "local_ratelimit", "ratelimit", "rate_limit_quota", "cors", "fault",
        "dynamic_forward_proxy", "alpn", "router"]


def test_inbound_chain_runs_jwt_then_custom_then_deny_allow_audit_then_the_router() -> None:
    chain = http_filters(FilterContext(snapshot(), BACKEND, Direction.INBOUND, 8080))
    names = _names(chain)
    assert names[-1] == "envoy.filters.http.router"
    rbac = [n for n in names if n.startswith("envoy.filters.http.rbac.")
            and not n.endswith(".custom")]
    assert rbac == ["envoy.filters.http.rbac.deny", "envoy.filters.http.rbac.allow",
                    "envoy.filters.http.rbac.audit"]
    assert "envoy.filters.http.cors" not in names  # route filters act on the outbound side


def test_outbound_chain_is_cors_fault_forward_proxy_alpn_then_the_router() -> None:
    chain = http_filters(FilterContext(hello_snapshot(), FRONTEND, Direction.OUTBOUND))
    # First the peer metadata of Istio's metrics (the caller's labels out, gRPC messages
    # counted), then the route filters.
    assert _names(chain) == ["heddle.internal_headers",
                             "envoy.filters.http.header_mutation", "envoy.filters.http.grpc_stats",
                             "envoy.filters.http.cors", "envoy.filters.http.fault",
                             "envoy.filters.http.dynamic_forward_proxy", "heddle.alpn",
                             "envoy.filters.http.router"]
    # The ALPN filter runs only on the routes that carry its configuration.
    assert [f.name for f in chain if f.disabled] == ["heddle.alpn"]


def test_a_gateway_chain_authenticates_and_authorizes_then_routes_without_a_forward_proxy(
        ) -> None:
    # The backend's policies, on a proxy they would select, built as a gateway's chain.
    chain = http_filters(FilterContext(snapshot(), BACKEND, Direction.GATEWAY, 80))
    names = _names(chain)
    assert names[:4] == ["heddle.internal_headers",
                         "envoy.filters.http.header_mutation", "envoy.filters.http.grpc_stats",
                         "envoy.filters.http.jwt_authn"]
    assert "envoy.filters.http.rbac.deny" in names and "envoy.filters.http.cors" in names
    assert names.index("envoy.filters.http.rbac.audit") < names.index("envoy.filters.http.cors")
    assert names[-3:] == ["envoy.filters.http.fault", "heddle.alpn", "envoy.filters.http.router"]
    assert "envoy.filters.http.dynamic_forward_proxy" not in names  # routes name services


def test_a_registered_builder_shows_up_in_the_chain_at_its_position() -> None:
    def stats(context: FilterContext) -> list[hcm.HttpFilter]:
        return [http_filter("example.stats", router_pb2.Router())] \
            if context.direction is Direction.OUTBOUND else []

    *before, last = HTTP_FILTERS
    registry = (*before, ("stats", stats), last)
    outbound = _names(http_filters(FilterContext(hello_snapshot(), FRONTEND,
                                                 Direction.OUTBOUND), registry))
    assert outbound[-2:] == ["example.stats", "envoy.filters.http.router"]
    inbound = _names(http_filters(FilterContext(hello_snapshot(), FRONTEND, Direction.INBOUND,
                                                8080), registry))
    assert "example.stats" not in inbound


def test_sidecar_listeners_are_assembled_from_the_registry(monkeypatch: MonkeyPatch) -> None:
    def stats(context: FilterContext) -> list[hcm.HttpFilter]:
        return [http_filter(f"example.stats.{context.direction}", router_pb2.Router())]

    *before, last = HTTP_FILTERS
    monkeypatch.setattr(registry, "HTTP_FILTERS", (*before, ("stats", stats), last))
    listeners = sidecar_resources(hello_snapshot(), FRONTEND).of(LISTENER)
    for name, expected in ((OUTBOUND_LISTENER, "example.stats.outbound"),
                           ("127.0.10.2_8080", "example.stats.inbound")):
        listener = listeners[name]
        assert isinstance(listener, listener_pb2.Listener)
        for chain in listener.filter_chains:
            manager = hcm.HttpConnectionManager()
            chain.filters[0].typed_config.Unpack(manager)
            assert _names(list(manager.http_filters))[-2:] == [
                expected, "envoy.filters.http.router"]
