"""Pushes reach only the proxies that depend on what changed (in-process ADS clients over a
real gRPC channel)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from envoy.config.core.v3 import base_pb2

from heddle.api.loader import load_text
from heddle.api.resource import ResourceKey
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.ads_client import AdsClient
from heddle.testing.waiting import eventually
from heddle.translate.listeners import OUTBOUND_ROUTE
from heddle.translate.sidecar import CLUSTER, LISTENER, ROUTE
from heddle.xds.push import PushRequest
from heddle.xds.server import XdsServer, start_grpc


def _namespace(ns: str, timeout: str = "1s") -> str:
    return f"""apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: web, namespace: {ns}}}
spec:
  hosts: [web.{ns}.svc.cluster.local]
  exportTo: ["."]
  ports: [{{number: 8080, name: http, protocol: HTTP}}]
  workloadSelector: {{labels: {{app: web}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: web-0, namespace: {ns}}}
spec: {{address: 10.{ord(ns[0])}.0.1, labels: {{app: web}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: web, namespace: {ns}}}
spec:
  hosts: [web.{ns}.svc.cluster.local]
  exportTo: ["."]
  http: [{{timeout: {timeout}, route: [{{destination: {{host: web.{ns}.svc.cluster.local}}}}]}}]
"""


class Mesh:
    def __init__(self) -> None:
        self.version = 0
        self.snapshot = MeshSnapshot.build(0, [])

    def set(self, text: str) -> None:
        result = load_text(text, "mesh.yaml")
        assert result.errors == []
        self.version += 1
        self.snapshot = MeshSnapshot.build(self.version, result.resources)


def _node(ns: str) -> base_pb2.Node:
    node = base_pb2.Node(id=f"sidecar~10.{ord(ns[0])}.0.9~client.{ns}~{ns}.svc.cluster.local")
    node.metadata.update({"LABELS": {"app": "client"}})
    return node


@pytest.fixture(params=[True, False], ids=["delta", "sotw"])
def delta(request: pytest.FixtureRequest) -> Iterator[bool]:
    yield bool(request.param)


async def test_a_change_in_one_namespace_pushes_only_its_dependents(delta: bool) -> None:
    mesh = Mesh()
    mesh.set(_namespace("a") + "---\n" + _namespace("b"))
    xds = XdsServer(lambda: mesh.snapshot)
    server, port = await start_grpc(xds, "127.0.0.1:0")
    try:
        async with AdsClient.connect(f"127.0.0.1:{port}", _node("a"), delta, True) as a, \
                AdsClient.connect(f"127.0.0.1:{port}", _node("b"), delta, True) as b:
            for client in (a, b):
                for type_url in (CLUSTER, LISTENER):
                    client.subscribe(type_url)
                client.subscribe(ROUTE, [OUTBOUND_ROUTE])
            for client in (a, b):
                await client.wait_for(lambda c=client: ROUTE in c.held)  # type: ignore[misc]
            a_responses = a.responses
            a_nonces = {t: xds.status_of(_node("a").id).of(t).sent_nonce  # type: ignore[union-attr]
                        for t in (CLUSTER, LISTENER, ROUTE)}
            b_route = b.held[ROUTE][OUTBOUND_ROUTE]
            mesh.set(_namespace("a") + "---\n" + _namespace("b", timeout="7s"))
            before = xds.pushed_proxies
            await xds.push_all(PushRequest.of(
                [ResourceKey("networking.istio.io", "VirtualService", "b", "web")]))
            assert xds.pushed_proxies - before == 1  # b only: a was never recomputed
            await b.wait_for(lambda: b.held[ROUTE][OUTBOUND_ROUTE] != b_route)
            await asyncio.sleep(0)
            assert a.responses == a_responses
            assert {t: xds.status_of(_node("a").id).of(t).sent_nonce  # type: ignore[union-attr]
                    for t in (CLUSTER, LISTENER, ROUTE)} == a_nonces
    finally:
        await server.stop(None)


async def test_an_unrelated_change_sends_a_proxy_nothing(delta: bool) -> None:
    mesh = Mesh()
    mesh.set(_namespace("a"))
    xds = XdsServer(lambda: mesh.snapshot)
    server, port = await start_grpc(xds, "127.0.0.1:0")
    try:
        async with AdsClient.connect(f"127.0.0.1:{port}", _node("a"), delta, True) as a:
            a.subscribe(CLUSTER)
            a.subscribe(LISTENER)
            a.subscribe(ROUTE, [OUTBOUND_ROUTE])
            await a.wait_for(lambda: ROUTE in a.held)
            responses = a.responses
            # Another namespace's services, rules and policies, none exported to or selecting a.
            policy = """---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: c}
spec: {action: DENY, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: c}
spec: {selector: {matchLabels: {app: web}}, mtls: {mode: DISABLE}}
"""
            mesh.set(_namespace("a") + "---\n" + _namespace("c") + policy)
            before = xds.pushed_proxies
            await xds.push_all(PushRequest.of(
                r.key for r in mesh.snapshot.resources() if r.namespace == "c"))
            assert xds.pushed_proxies == before
            # A full push recomputes it, and its content versions send nothing either.
            await xds.push_all()
            assert xds.pushed_proxies == before + 1
            await asyncio.sleep(0)
            assert a.responses == responses
    finally:
        await server.stop(None)


async def test_statuses_of_gone_proxies_are_bounded_oldest_forgotten_first() -> None:
    from heddle.xds import server as xds_server

    xds = xds_server.XdsServer(lambda: MeshSnapshot.build(0, []))
    try:
        for i in range(xds_server.MAX_DISCONNECTED + 50):
            node = base_pb2.Node(id=f"sidecar~10.0.0.1~w-{i}.a~a.svc.cluster.local")
            xds._close(await xds._open(node, True, None, "127.0.0.1:1"))
        again = await xds._open(base_pb2.Node(id="sidecar~10.0.0.1~w-60.a~a.svc.cluster.local"),
                                True, None, "127.0.0.1:1")
    finally:
        xds.close()
    gone = [s for s in xds.statuses.values() if not s.connected]
    assert len(gone) == xds_server.MAX_DISCONNECTED - 1  # w-60 connected again: its is dropped
    ids = {s.proxy_id for s in xds.statuses.values()}
    assert "sidecar~10.0.0.1~w-0.a~a.svc.cluster.local" not in ids
    assert f"sidecar~10.0.0.1~w-{xds_server.MAX_DISCONNECTED + 49}.a~a.svc.cluster.local" in ids
    assert xds.status_of(again.proxy.id) is again.status and again.status.connected


async def test_a_second_server_on_a_port_in_use_fails_instead_of_sharing_it() -> None:
    first, port = await start_grpc(XdsServer(lambda: MeshSnapshot.build(0, [])), "127.0.0.1:0")
    try:
        with pytest.raises(RuntimeError):
            await start_grpc(XdsServer(lambda: MeshSnapshot.build(0, [])),
                             f"127.0.0.1:{port}")
    finally:
        await first.stop(None)


async def test_a_rejected_response_is_counted_by_type_in_istiods_metric(delta: bool) -> None:
    mesh = Mesh()
    mesh.set(_namespace("a"))
    xds = XdsServer(lambda: mesh.snapshot)
    server, port = await start_grpc(xds, "127.0.0.1:0")
    try:
        async with AdsClient.connect(f"127.0.0.1:{port}", _node("a"), delta) as a:
            a.subscribe(CLUSTER)
            response = await asyncio.wait_for(a.inbox.get(), 10)
            a.nack(response, "cluster refused")
            status = xds.status_of(_node("a").id)
            assert status is not None
            await eventually(lambda: bool(status.of(CLUSTER).nack_message), 5,
                             "the NACK recorded")
        counters = xds.metrics.counters
        assert counters.value("pilot_total_xds_rejects", (("type", "cds"),)) == 1
        assert counters.value("pilot_xds_pushes", (("type", "cds"),)) == 1
        assert "pilot_total_xds_rejects{type=\"cds\"} 1.0" in xds.metrics.exposition().decode()
    finally:
        await server.stop(None)
