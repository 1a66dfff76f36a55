"""The control plane freezes what outlives a unit of work (heddle.heap), which is only safe
while loading, building and pushing configuration leave no cyclic garbage behind: frozen
cycles would never be freed. These tests hold that."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from heddle.api.loader import load_text_cooperatively
from heddle.api.resource import ResourceKey
from heddle.testing.ads_client import AdsClient
from heddle.translate.listeners import OUTBOUND_ROUTE
from heddle.translate.sidecar import CLUSTER, LISTENER, ROUTE
from heddle.xds.push import PushRequest
from heddle.xds.server import XdsServer, start_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from control_plane_scale import NET, Mesh, _node, service_docs, workload_doc


@pytest.fixture
def collector_watching() -> Iterator[None]:
    """The collector sees everything, frozen or not, and runs only when asked."""
    gc.unfreeze()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def cyclic_garbage() -> int:
    gc.unfreeze()
    return gc.collect()


async def test_loading_a_file_leaves_no_cyclic_garbage(collector_watching: None) -> None:
    text = "---\n".join(d for i in range(60) for d in service_docs(i))
    await load_text_cooperatively(text, "warm-up.yaml")
    cyclic_garbage()
    for _ in range(3):
        result = await load_text_cooperatively(text, "mesh.yaml")
        assert result.errors == []
        del result
    assert cyclic_garbage() == 0


async def test_pushing_changes_to_connected_proxies_leaves_no_cyclic_garbage(
        collector_watching: None) -> None:
    services, proxies = 40, 8
    documents = {f"s{i}-{k}": d for i in range(services) for k, d in enumerate(service_docs(i))}
    documents.update({f"w{j}": workload_doc(j, services) for j in range(proxies)})
    mesh = Mesh(documents)
    xds = XdsServer(lambda: mesh.snapshot)
    server, port = await start_grpc(xds, "127.0.0.1:0")
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    clients = [AdsClient(channel, _node(j, services), True, True) for j in range(proxies)]

    async def change(round_: int) -> None:
        before = [c.responses for c in clients]
        mesh.edit({"vs": service_docs(0, timeout=f"{round_ + 1}s")[2]})
        await xds.push_all(PushRequest.of([ResourceKey(NET, "VirtualService", "ns-0", "svc-0")]))
        mesh.edit({"we": workload_doc(proxies + round_, services)})
        await xds.push_all(PushRequest.of(
            [ResourceKey(NET, "WorkloadEntry", "ns-0", f"w-{proxies + round_}")]))
        for client, had in zip(clients, before, strict=True):
            await client.wait_for(lambda c=client, n=had: c.responses > n)  # its new routes

    try:
        for client in clients:
            client.start()
            client.subscribe(CLUSTER)
            client.subscribe(LISTENER)
            client.subscribe(ROUTE, [OUTBOUND_ROUTE])
        for client in clients:
            await client.wait_for(lambda c=client: c.responses >= 3)
        await change(0)  # warm-up: first uses fill caches and import-time structures
        cyclic_garbage()
        for round_ in range(1, 6):
            await change(round_)
        assert cyclic_garbage() == 0
    finally:
        for client in clients:
            await client.close()
        await channel.close()
        await server.stop(None)
        xds.close()
