"""WebSocket upgrades pass every HTTP connection manager a proxy has, as Istio allows them:
the sidecar's outbound proxy and inbound ports, and the gateway's listeners."""

from __future__ import annotations

from typing import Any

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from test_translate_clusters import hello_snapshot
from test_translate_gateway import GATEWAY, SECRETS, snapshot
from test_translate_sidecar import FRONTEND

from heddle.translate.gateway import gateway_config
from heddle.translate.sidecar import LISTENER, sidecar_resources

HCM = "envoy.filters.network.http_connection_manager"


def _managers(listeners: dict[str, Any]) -> dict[str, list[str]]:
    """Each listener's HTTP connection managers, as their upgrade types."""
    found: dict[str, list[str]] = {}
    for name, listener in listeners.items():
        for chain in listener.filter_chains:
            for f in chain.filters:
                if f.name == HCM:
                    manager = hcm.HttpConnectionManager()
                    f.typed_config.Unpack(manager)
                    found.setdefault(name, []).append(
                        ",".join(u.upgrade_type for u in manager.upgrade_configs))
    return found


def test_sidecar_managers_allow_websocket_upgrades() -> None:
    managers = _managers(sidecar_resources(hello_snapshot(), FRONTEND).of(LISTENER))
    assert managers
    for name, upgrades in managers.items():
        assert all("websocket" in u.split(",") for u in upgrades), name


def test_gateway_managers_allow_websocket_upgrades() -> None:
    managers = _managers(gateway_config(snapshot(SECRETS), GATEWAY).resources.of(LISTENER))
    assert managers
    assert all(u == "websocket" for upgrades in managers.values() for u in upgrades)
