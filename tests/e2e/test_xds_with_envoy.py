"""The xDS server drives a real Envoy over SotW and delta ADS: sync, updates, NACK."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2

from heddle.agent.bootstrap import bootstrap
from heddle.api.loader import LoadResult, load_text
from heddle.config.store import ConfigStore
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.envoy import EnvoyHarness, RunningEnvoy
from heddle.testing.identity import serve_identity
from heddle.testing.loopback import unique_subnet
from heddle.testing.waiting import eventually
from heddle.translate.sidecar import CLUSTER, ProxyResources, sidecar_resources
from heddle.xds.server import XdsServer, start_grpc
from heddle.xds.status import ProxyStatus, SyncState

from .mesh_fixtures import hello_store

BACKEND_3 = """\
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: backend-3}
spec:
  address: SUBNET5
  labels: {app: backend, version: v1}
  serviceAccount: backend
"""


@dataclass
class Mesh:
    store: ConfigStore
    xds: XdsServer
    envoy: RunningEnvoy
    proxy: Proxy
    subnet: str
    broken: list[bool]


async def start_mesh(tmp_path: Path, delta: bool) -> AsyncIterator[Mesh]:
    subnet = unique_subnet()
    store = hello_store(subnet)
    broken = [False]

    def generate(snapshot: MeshSnapshot, proxy: Proxy) -> ProxyResources:
        resources = sidecar_resources(snapshot, proxy)
        if broken[0]:  # a cluster Envoy must refuse: a static endpoint that is not an IP
            bad = cluster_pb2.Cluster(name="outbound|1||bad", type=cluster_pb2.Cluster.STATIC)
            bad.load_assignment.cluster_name = bad.name
            socket = bad.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address
            socket.socket_address.address, socket.socket_address.port_value = "not-an-ip", 1
            resources.by_type[CLUSTER][bad.name] = bad
        return resources

    xds = XdsServer(lambda: MeshSnapshot.of(store), generate)
    grpc_server, port = await start_grpc(xds, "127.0.0.1:0")
    proxy = Proxy(ProxyType.SIDECAR, "frontend", "default", f"{subnet}2", f"{subnet}102",
                  (("app", "frontend"), ("version", "v1")), "frontend")
    sds_server, sds_socket = await serve_identity(tmp_path, "default", "frontend")
    try:
        async with EnvoyHarness(bootstrap(proxy, "127.0.0.1", port, delta=delta,
                                          sds_socket=str(sds_socket)),
                                tmp_path / "envoy") as envoy:
            yield Mesh(store, xds, envoy, proxy, subnet, broken)
    finally:
        await grpc_server.stop(grace=None)
        await sds_server.stop(grace=None)


@pytest.fixture(params=[False, True], ids=["sotw", "delta"])
async def mesh(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Mesh]:
    async for running in start_mesh(tmp_path, delta=request.param):
        yield running


def status(mesh: Mesh) -> ProxyStatus:
    found = mesh.xds.status_of(mesh.proxy.id)
    assert found is not None, f"no stream for {mesh.proxy.id}"
    return found


def all_synced(mesh: Mesh) -> bool:
    found = mesh.xds.status_of(mesh.proxy.id)
    return found is not None and len(found.types) == 4 and all(
        t.state is SyncState.SYNCED for t in found.types.values())


async def test_envoy_receives_listeners_routes_clusters_and_endpoints(mesh: Mesh) -> None:
    await eventually(lambda: all_synced(mesh), 10, "every type SYNCED")
    dump = json.dumps(await mesh.envoy.config_dump(include_eds=True))
    assert "virtualOutbound" in dump
    assert "outbound|9090|v2|backend.default.svc.cluster.local" in dump
    assert f"{mesh.subnet}2_8080" in dump
    hosts = await mesh.envoy.cluster_hosts("outbound|9090||backend.default.svc.cluster.local")
    assert hosts == {f"{mesh.subnet}3:9090", f"{mesh.subnet}4:9090"}


async def test_a_new_workload_entry_reaches_envoy_without_restart(mesh: Mesh) -> None:
    await eventually(lambda: all_synced(mesh), 10, "initial sync")
    text = BACKEND_3.replace("SUBNET", mesh.subnet)
    mesh.store.put("backend-3.yaml", load_text(text, "backend-3.yaml"))
    await mesh.xds.push_all()
    cluster = "outbound|9090||backend.default.svc.cluster.local"
    expected = {f"{mesh.subnet}{n}:9090" for n in (3, 4, 5)}

    async def has_three() -> bool:
        return await mesh.envoy.cluster_hosts(cluster) == expected

    await eventually(has_three, 2.0, "the new backend endpoint in Envoy")
    assert mesh.envoy.running  # the Envoy started first, never restarted


async def test_deleting_a_service_removes_its_routes_and_clusters(mesh: Mesh) -> None:
    await eventually(lambda: all_synced(mesh), 10, "initial sync")
    remaining = [r for r in mesh.store.resources()
                 if not (r.kind == "ServiceEntry" and r.name == "backend")]
    mesh.store.put("hello.yaml", LoadResult(resources=remaining))
    await mesh.xds.push_all()

    async def backend_gone() -> bool:
        dump = json.dumps(await mesh.envoy.config_dump(include_eds=True))
        return "backend.default.svc.cluster.local" not in dump

    await eventually(backend_gone, 5, "backend routes and clusters removed")


async def test_a_changed_cluster_gets_its_endpoints_at_once_and_becomes_active(
        mesh: Mesh) -> None:
    """A DestinationRule that changes existing EDS clusters makes Envoy warm new ones; they
    need their endpoints again (unchanged) or they wait for Envoy's 15 s init timeout."""
    await eventually(lambda: all_synced(mesh), 10, "initial sync")
    policy = ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
              "metadata: {name: backend-lb}\nspec:\n  host: backend.default.svc.cluster.local\n"
              "  trafficPolicy: {loadBalancer: {simple: RANDOM}}\n")
    mesh.store.put("backend-lb.yaml", load_text(policy, "backend-lb.yaml"))
    await mesh.xds.push_all()

    async def random_and_warm() -> bool:
        dump = await mesh.envoy.config_dump(include_eds=True)
        clusters = next(c for c in dump["configs"]
                        if c["@type"].endswith("ClustersConfigDump"))
        active = [c["cluster"] for c in clusters.get("dynamic_active_clusters", [])
                  if c["cluster"]["name"] == "outbound|9090||backend.default.svc.cluster.local"]
        return (not clusters.get("dynamic_warming_clusters")
                and bool(active) and active[0].get("lb_policy") == "RANDOM")

    await eventually(random_and_warm, 5, "the changed cluster active (not warming)")
    hosts = await mesh.envoy.cluster_hosts("outbound|9090||backend.default.svc.cluster.local")
    assert hosts == {f"{mesh.subnet}3:9090", f"{mesh.subnet}4:9090"}


async def test_a_rejected_resource_is_nacked_and_envoy_keeps_serving(mesh: Mesh) -> None:
    await eventually(lambda: all_synced(mesh), 10, "initial sync")
    mesh.broken[0] = True
    await mesh.xds.push_all()
    proxy_status = status(mesh)

    async def nacked() -> bool:
        return proxy_status.of(CLUSTER).state is SyncState.NACK

    await eventually(nacked, 5, "the cluster update NACKed")
    assert "not-an-ip" in proxy_status.of(CLUSTER).nack_message
    dump = json.dumps(await mesh.envoy.config_dump(include_eds=True))
    assert "outbound|1||bad" not in dump
    assert "outbound|9090||backend.default.svc.cluster.local" in dump
    mesh.broken[0] = False
    await mesh.xds.push_all()
    await eventually(lambda: all_synced(mesh), 5, "SYNCED again once fixed")
