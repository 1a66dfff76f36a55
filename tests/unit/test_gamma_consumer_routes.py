"""GAMMA producer and consumer routes, as Istio applies them: a route in its Service's own
namespace (producer) applies to every client's sidecar; a route in another namespace
(consumer) only to the sidecars of its own namespace, where it wins over the producer's."""

from __future__ import annotations

from typing import Any

from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.sidecar import ROUTE, sidecar_resources
from tests.unit.test_gateway_api_status import snapshot_of

SERVICE = """\
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: shop}
spec:
  ports: [{name: http, port: 80, targetPort: 8080}]
"""


def route(name: str, namespace: str, header: str) -> str:
    """An HTTPRoute on shop/echo that marks its answers with `x-route: header`."""
    return f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  parentRefs: [{{group: "", kind: Service, name: echo, namespace: shop}}]
  rules:
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {{set: [{{name: x-route, value: {header}}}]}}
    backendRefs: [{{name: echo, namespace: shop, port: 80}}]
"""


def sidecar(namespace: str) -> Proxy:
    return Proxy(ProxyType.SIDECAR, f"client-{namespace}", namespace, "127.0.40.1",
                 "127.128.40.1")


def marked(snapshot: MeshSnapshot, namespace: str) -> list[str]:
    """The x-route values a client in `namespace` gets from echo.shop:80 through its proxy."""
    configs: Any = sidecar_resources(snapshot, sidecar(namespace)).of(ROUTE).values()
    found = []
    for config in configs:
        for host in config.virtual_hosts:
            if "echo.shop.svc.cluster.local:80" not in host.domains:
                continue
            for r in host.routes:
                found += [h.header.value for h in r.response_headers_to_add
                          if h.header.key == "x-route"]
    return sorted(set(found))


def derived(snapshot: MeshSnapshot) -> dict[str, Any]:
    return {f"{vs.namespace}/{vs.name}": vs.body["spec"].get("exportTo")
            for vs in snapshot.of_kind("networking.istio.io", "VirtualService")}


def test_a_producer_route_applies_to_clients_of_every_namespace() -> None:
    snapshot = snapshot_of(SERVICE + route("own", "shop", "producer"))
    assert derived(snapshot) == {"shop/echo.shop.svc.cluster.local-mesh": None}
    assert marked(snapshot, "shop") == ["producer"]
    assert marked(snapshot, "elsewhere") == ["producer"]


def test_a_consumer_route_applies_only_to_its_own_namespace() -> None:
    snapshot = snapshot_of(SERVICE + route("mine", "web", "consumer"))
    assert derived(snapshot) == {"web/echo.shop.svc.cluster.local-mesh": ["."]}
    assert marked(snapshot, "web") == ["consumer"]
    assert marked(snapshot, "shop") == []  # the Service's own namespace: untouched
    assert marked(snapshot, "elsewhere") == []


def test_in_its_namespace_a_consumer_route_wins_over_the_producers() -> None:
    snapshot = snapshot_of(SERVICE + route("own", "shop", "producer")
                           + route("mine", "web", "consumer"))
    assert marked(snapshot, "web") == ["consumer"]
    assert marked(snapshot, "shop") == ["producer"]
    assert marked(snapshot, "elsewhere") == ["producer"]
