"""The control plane at scale: N services, M proxies (each a distinct workload), simulated
in-process delta-xDS clients that ACK, over a real gRPC channel.

    python bench/control_plane_scale.py [--services 1000] [--proxies 1000]

Prints JSON: document load time; the time until all M proxies hold their initial config;
for one changed VirtualService, one changed DestinationRule, one new service and one new
endpoint, the time until every proxy that was sent something has it (p50/p99/max), how
many were pushed, and the bytes sent; the worst event-loop stall; CPU seconds and peak RSS
of this process (control plane and simulated clients together). Services are 20 to a
namespace; VirtualServices and DestinationRules are exported to their own namespace only.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import json
import multiprocessing
import resource
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from envoy.config.core.v3 import base_pb2

from heddle.api.loader import load_text
from heddle.api.resource import ResourceKey
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.listeners import OUTBOUND_ROUTE
from heddle.translate.sidecar import CLUSTER, ENDPOINT, LISTENER, ROUTE
from heddle.xds.server import XdsServer, start_grpc

try:
    from heddle.testing.ads_client import AdsClient
except ImportError:  # measuring a tree without the kit: load it from beside this file
    _path = Path(__file__).resolve().parents[1] / "heddle" / "testing" / "ads_client.py"
    _spec = importlib.util.spec_from_file_location("ads_client", _path)
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    AdsClient = _module.AdsClient

PER_NAMESPACE = 20
NET = "networking.istio.io"


def service_docs(i: int, timeout: str = "5s", max_connections: int = 100) -> list[str]:
    ns, name = f"ns-{i // PER_NAMESPACE}", f"svc-{i}"
    return [
        f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n"
        f"spec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 8080}}]\n",
        f"apiVersion: {NET}/v1\nkind: DestinationRule\n"
        f"metadata: {{name: {name}, namespace: {ns}}}\n"
        f"spec:\n  host: {name}\n  exportTo: ['.']\n"
        f"  trafficPolicy: {{connectionPool: {{tcp: {{maxConnections: {max_connections}}}}}}}\n"
        f"  subsets: [{{name: v1, labels: {{app: {name}}}}}]\n",
        f"apiVersion: {NET}/v1\nkind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: {ns}}}\n"
        f"spec:\n  hosts: [{name}]\n  exportTo: ['.']\n"
        f"  http: [{{timeout: {timeout}, "
        f"route: [{{destination: {{host: {name}, subset: v1}}}}]}}]\n",
    ]


def workload_doc(j: int, services: int) -> str:
    i = j % services
    return (f"apiVersion: {NET}/v1\nkind: WorkloadEntry\n"
            f"metadata: {{name: w-{j}, namespace: ns-{i // PER_NAMESPACE}}}\n"
            f"spec: {{address: 10.{j // 65536 % 256}.{j // 256 % 256}.{j % 256 + 1}, "
            f"labels: {{app: svc-{i}, instance: w-{j}}}}}\n")


class Mesh:
    def __init__(self, documents: dict[str, str]) -> None:
        self.documents = documents
        self.version = 0
        self.snapshot = MeshSnapshot.build(0, [])
        self.load_seconds = 0.0

    def rebuild(self) -> None:
        start = time.perf_counter()
        result = load_text("---\n".join(self.documents.values()), "mesh.yaml")
        assert result.errors == [], result.errors[:3]
        self.load_seconds = time.perf_counter() - start
        self.version += 1
        self.snapshot = MeshSnapshot.build(self.version, result.resources)


def _node(j: int, services: int) -> base_pb2.Node:
    i = j % services
    ns = f"ns-{i // PER_NAMESPACE}"
    address = f"10.{j // 65536 % 256}.{j // 256 % 256}.{j % 256 + 1}"
    node = base_pb2.Node(id=f"sidecar~{address}~w-{j}.{ns}~{ns}.svc.cluster.local")
    node.metadata.update({"LABELS": {"app": f"svc-{i}", "instance": f"w-{j}"}})
    return node


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 4),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 4),
            "max": round(ordered[-1], 4)}


class LagProbe:
    """The worst lateness of a 5 ms timer: how long the event loop was kept busy."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - start - 0.005)

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.create_task(self._run())

    def stop(self) -> float:
        if self._task is not None:
            self._task.cancel()
        return round(self.worst, 4)


CLIENT_STREAMS_PER_CHANNEL = 10  # as one Envoy per connection would, roughly: gRPC cancels
# streams of a channel that carries a hundred big ones behind a busy loop


async def _serve_clients(conn: Connection, port: int, services: int, proxies: int) -> None:
    """The simulated proxies' process: start them, then answer the benchmark's questions."""
    import grpc

    loop = asyncio.get_running_loop()
    offset = time.monotonic() - time.perf_counter()  # the clients stamp with perf_counter
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}")
                for _ in range(max(1, proxies // CLIENT_STREAMS_PER_CHANNEL))]
    clients = [AdsClient(channels[j % len(channels)], _node(j, services), True, True)
               for j in range(proxies)]
    cpu0 = time.process_time()
    try:
        while True:
            command, argument = await loop.run_in_executor(None, conn.recv)
            if command == "sync":
                for client in clients:
                    client.start()
                    client.subscribe(CLUSTER)
                    client.subscribe(LISTENER)
                    client.subscribe(ROUTE, [OUTBOUND_ROUTE])
                for client in clients:
                    await client.wait_for(lambda c=client: CLUSTER in c.held, timeout=3600)
                    client.subscribe(ENDPOINT, sorted(client.held[CLUSTER]))
                for client in clients:
                    await client.wait_for(lambda c=client: ENDPOINT in c.held
                                          and ROUTE in c.held and LISTENER in c.held,
                                          timeout=3600)
                conn.send((max(c.last_response_at for c in clients) + offset,
                           sum(c.bytes_received for c in clients)))
            elif command == "counts":
                conn.send(([c.responses for c in clients],
                           sum(c.bytes_received for c in clients)))
            elif command == "await":  # {client index: responses it must have had}
                for j, want in argument.items():
                    await clients[j].wait_for(lambda c=clients[j], w=want: c.responses >= w,
                                              timeout=3600)
                conn.send(({j: clients[j].last_response_at + offset for j in argument},
                           sum(c.bytes_received for c in clients)))
            else:
                conn.send(round(time.process_time() - cpu0, 2))
                return
    finally:
        for client in clients:
            await client.close()
        for channel in channels:
            await channel.close()


def _clients_process(conn: Connection, port: int, services: int, proxies: int) -> None:
    asyncio.run(_serve_clients(conn, port, services, proxies))


class Clients:
    """The M simulated delta-xDS proxies, in a process of their own: the control plane's
    CPU and memory are then its own, as they would be in a mesh."""

    def __init__(self, port: int, services: int, proxies: int) -> None:
        self._conn, child = multiprocessing.get_context("spawn").Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_clients_process, args=(child, port, services, proxies), daemon=True)
        self._process.start()

    async def ask(self, command: str, argument: Any = None) -> Any:
        self._conn.send((command, argument))
        return await asyncio.get_running_loop().run_in_executor(None, self._conn.recv)

    async def stop(self) -> float:
        """The clients' CPU seconds."""
        try:
            return float(await self.ask("stop"))
        finally:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()


async def run(services: int, proxies: int) -> dict[str, Any]:
    documents = {f"s{i}-{k}": d for i in range(services)
                 for k, d in enumerate(service_docs(i))}
    documents.update({f"w{j}": workload_doc(j, services) for j in range(proxies)})
    mesh = Mesh(documents)
    mesh.rebuild()
    load_seconds = mesh.load_seconds
    xds = XdsServer(lambda: mesh.snapshot)
    server, port = await start_grpc(xds, "127.0.0.1:0")
    targeted = len(inspect.signature(xds.push_all).parameters) > 0
    index = {_node(j, services).id: j for j in range(proxies)}
    probe = LagProbe()
    cpu0 = time.process_time()
    out: dict[str, Any] = {"services": services, "proxies": proxies,
                           "document_load_seconds": round(load_seconds, 3),
                           "targeted_pushes": targeted}
    clients = Clients(port, services, proxies)
    try:
        probe.start()
        start = time.monotonic()
        synced_at, out["initial_bytes"] = await clients.ask("sync")
        out["initial_sync_seconds"] = round(synced_at - start, 3)
        out["initial_sync_worst_loop_stall_seconds"] = probe.stop()

        async def change(name: str, edit: dict[str, str], keys: list[ResourceKey]) -> None:
            before, sent_bytes = await clients.ask("counts")
            nonces = {s.connection_id: {t: st.nonce for t, st in s.types.items()}
                      for s in xds._streams.values()}
            probe.start()
            start = time.monotonic()
            mesh.documents.update(edit)
            mesh.rebuild()
            pushed_before = getattr(xds, "pushed_proxies", 0)
            if targeted:
                from heddle.xds.push import PushRequest
                await xds.push_all(PushRequest.of(keys))
            else:
                await xds.push_all()
            expected: dict[int, int] = {}
            for stream in xds._streams.values():
                old = nonces.get(stream.connection_id) or {}
                sent = sum(1 for t, st in stream.types.items() if st.nonce != old.get(t))
                if sent:
                    j = index[stream.proxy.id]
                    expected[j] = before[j] + sent
            arrived, received = await clients.ask("await", expected)
            out[name] = {
                "proxies_sent_config": len(expected),
                "proxies_recomputed": (getattr(xds, "pushed_proxies", 0) - pushed_before
                                       if targeted else proxies),
                "seconds_until_acked": _percentiles([t - start for t in arrived.values()]),
                "push_seconds": round(time.monotonic() - start, 3),
                "bytes_sent": received - sent_bytes,
                "worst_loop_stall_seconds": probe.stop(),
            }

        ns0 = f"ns-{0}"
        await change("virtual_service_changed",
                     {"s0-2": service_docs(0, timeout="9s")[2]},
                     [ResourceKey(NET, "VirtualService", ns0, "svc-0")])
        await change("destination_rule_changed",
                     {"s0-1": service_docs(0, max_connections=7)[1]},
                     [ResourceKey(NET, "DestinationRule", ns0, "svc-0")])
        new = services
        await change("service_added",
                     {f"s{new}-{k}": d for k, d in enumerate(service_docs(new)[:1])},
                     [ResourceKey("", "Service", f"ns-{new // PER_NAMESPACE}", f"svc-{new}")])
        await change("endpoint_added", {"wnew": workload_doc(proxies, services)},
                     [ResourceKey(NET, "WorkloadEntry", f"ns-{0}", f"w-{proxies}")])
        out["control_plane_cpu_seconds"] = round(time.process_time() - cpu0, 2)
        out["control_plane_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    finally:
        out["clients_cpu_seconds"] = await clients.stop()
        await server.stop(None)
        close = getattr(xds, "close", None)
        if close is not None:
            close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--proxies", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.services, args.proxies)), indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
