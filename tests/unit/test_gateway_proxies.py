"""A gateway proxy as its agent announces it and the control plane reads it back; where the
local runtime puts gateways; routers are pushed every change."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import json_format

from heddle.agent.bootstrap import bootstrap
from heddle.agent.main import parser
from heddle.api.resource import ResourceKey
from heddle.local.workloads import gateway_addresses
from heddle.model.gateways import INGRESS_LABELS, INGRESS_NAME, INGRESS_NAMESPACE
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.xds.proxies import UnknownProxy, proxy_from_node
from heddle.xds.push import PushContext

GATEWAY = Proxy(ProxyType.ROUTER, INGRESS_NAME, INGRESS_NAMESPACE, "127.0.10.250",
                "127.0.10.250", INGRESS_LABELS, "istio-ingressgateway-service-account",
                low_port_offset=8000)


def node_of(proxy: Proxy) -> object:
    from envoy.config.core.v3 import base_pb2

    return json_format.ParseDict(bootstrap(proxy, "127.0.0.1", 15010)["node"], base_pb2.Node())


def test_a_gateway_announces_itself_as_a_router_as_istio_names_it() -> None:
    assert GATEWAY.id == ("router~127.0.10.250~istio-ingressgateway.istio-system~"
                          "istio-system.svc.cluster.local")
    assert proxy_from_node(node_of(GATEWAY), MeshSnapshot.build(0, [])) == GATEWAY


def test_a_bad_port_offset_in_node_metadata_is_refused_naming_it() -> None:
    node = node_of(GATEWAY)
    node.metadata.fields["LOW_PORT_OFFSET"].string_value = "lots"  # type: ignore[attr-defined]
    with pytest.raises(UnknownProxy, match="LOW_PORT_OFFSET 'lots' is not a number"):
        proxy_from_node(node, MeshSnapshot.build(0, []))


def test_the_agent_runs_a_router_when_told() -> None:
    args = parser().parse_args(["--name", "gw", "--address", "127.0.0.9", "--app-address",
                                "127.0.0.9", "--workdir", "/tmp/x", "--proxy-type", "router",
                                "--low-port-offset", "8000"])
    assert (args.proxy_type, args.low_port_offset) == ("router", 8000)


def test_gateways_take_addresses_from_250_down_in_the_meshs_subnet() -> None:
    assert gateway_addresses(["127.0.20.3", "127.0.20.250"], 2) == ["127.0.20.249",
                                                                    "127.0.20.248"]
    assert gateway_addresses([], 1) == ["127.0.0.250"]


def test_routers_are_pushed_any_change() -> None:
    empty = MeshSnapshot.build(0, [])
    change = PushContext(empty, MeshSnapshot.build(1, []), frozenset(
        {ResourceKey("networking.istio.io", "VirtualService", "elsewhere", "x")}))
    sidecar = Proxy(ProxyType.SIDECAR, "a", "default", "127.0.10.1", "127.128.10.1")
    assert change.needs_push(GATEWAY)
    assert not change.needs_push(sidecar)


def test_a_running_gateway_keeps_its_pod_ip_when_another_gateway_is_added(
        tmp_path: Path) -> None:
    from heddle.api.loader import load_text
    from heddle.local.runtime import LocalMesh, LocalMeshConfig

    def snapshot(*names: str) -> MeshSnapshot:
        text = "".join(f"""---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: infra}}
spec:
  gatewayClassName: heddle
  listeners: [{{name: http, port: 80, protocol: HTTP}}]
""" for name in names)
        loaded = load_text(text, "gateways.yaml")
        assert loaded.errors == []
        return MeshSnapshot.build(1, loaded.resources)

    mesh = LocalMesh(LocalMeshConfig(tmp_path, tmp_path / "home", (), None, tmp_path / "ca"))
    mesh.gateways = mesh._gateways(snapshot("b"))
    before = {k: w.address for k, (w, _) in mesh.gateways.items()}
    after = {k: w.address for k, (w, _) in mesh._gateways(snapshot("a", "b")).items()}
    assert after["b-heddle.infra"] == before["b-heddle.infra"]
    assert after["a-heddle.infra"] not in before.values()
    assert len(set(after.values())) == len(after)
