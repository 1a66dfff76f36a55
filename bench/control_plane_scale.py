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
import contextlib
import importlib.util
import inspect
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
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
    from heddle.testing.ads_client import AdsClient, StreamEnded
except ImportError:  # measuring a tree without the kit: load it from beside this file
    _path = Path(__file__).resolve().parents[1] / "heddle" / "testing" / "ads_client.py"
    _spec = importlib.util.spec_from_file_location("ads_client", _path)
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    AdsClient = _module.AdsClient
    StreamEnded = getattr(_module, "StreamEnded", RuntimeError)

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


def _address(j: int) -> str:
    return f"10.{j // 62500 % 250}.{j // 250 % 250}.{j % 250 + 1}"


def workload_doc(j: int, services: int) -> str:
    i = j % services
    return (f"apiVersion: {NET}/v1\nkind: WorkloadEntry\n"
            f"metadata: {{name: w-{j}, namespace: ns-{i // PER_NAMESPACE}}}\n"
            f"spec: {{address: {_address(j)}, "
            f"labels: {{app: svc-{i}, instance: w-{j}}}}}\n")


class Mesh:
    """The configuration as the control plane holds it: the documents' resources by key.
    A change re-parses only the documents it edits (as the directory source re-reads only
    the file that changed) and builds the next snapshot."""

    def __init__(self, documents: dict[str, str]) -> None:
        start = time.perf_counter()
        result = load_text("---\n".join(documents.values()), "mesh.yaml")
        assert result.errors == [], result.errors[:3]
        self.load_seconds = time.perf_counter() - start
        self.resources = {r.key: r for r in result.resources}
        self.version = 1
        self.snapshot = MeshSnapshot.build(self.version, self.resources.values())

    def edit(self, documents: dict[str, str]) -> None:
        result = load_text("---\n".join(documents.values()), "edit.yaml")
        assert result.errors == [], result.errors[:3]
        self.resources.update({r.key: r for r in result.resources})
        self.version += 1
        self.snapshot = MeshSnapshot.build(self.version, self.resources.values())


def _node(j: int, services: int) -> base_pb2.Node:
    i = j % services
    ns = f"ns-{i // PER_NAMESPACE}"
    address = _address(j)
    node = base_pb2.Node(id=f"sidecar~{address}~w-{j}.{ns}~{ns}.svc.cluster.local")
    node.metadata.update({"LABELS": {"app": f"svc-{i}", "instance": f"w-{j}"}})
    return node


def real_envoy_docs(subnet: str, count: int) -> dict[str, str]:
    """Two workloads whose sidecars are real Envoys, on loopback pod IPs: one of svc-0 in
    ns-0 and one of svc-20 in ns-1 (so both see a namespace's own VirtualServices)."""
    return {f"real{k}": (
        f"apiVersion: {NET}/v1\nkind: WorkloadEntry\n"
        f"metadata: {{name: envoy-{k}, namespace: ns-{k}}}\n"
        f"spec: {{address: {subnet}{k + 1}, labels: {{app: svc-{k * PER_NAMESPACE}}}}}\n")
        for k in range(count)}


class RealEnvoys:
    """Real Envoys that take the same configuration as the simulated proxies: what they
    ACK or NACK says whether it is valid, at this scale."""

    def __init__(self, subnet: str, port: int, workdir: Path, count: int) -> None:
        from heddle.model.proxy import Proxy, ProxyType

        self.subnet, self.port, self.workdir = subnet, port, workdir
        self.proxies = [Proxy(ProxyType.SIDECAR, f"envoy-{k}", f"ns-{k}", f"{subnet}{k + 1}",
                              f"{subnet}{k + 101}", (("app", f"svc-{k * PER_NAMESPACE}"),),
                              "default") for k in range(count)]
        self._stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        from heddle.agent.bootstrap import bootstrap
        from heddle.testing.envoy import EnvoyHarness
        from heddle.testing.identity import serve_identity

        for proxy in self.proxies:
            sds, socket = await serve_identity(self.workdir, proxy.namespace, "default")
            self._stack.push_async_callback(sds.stop, None)
            harness = EnvoyHarness(
                bootstrap(proxy, "127.0.0.1", self.port, delta=True, sds_socket=str(socket)),
                self.workdir / proxy.name, ready_timeout=600, concurrency=1)
            await self._stack.enter_async_context(harness)

    async def settled(self, xds: XdsServer) -> dict[str, Any]:
        """Once each has answered the last of it: what each type's state is."""
        from heddle.testing.waiting import eventually
        from heddle.xds.status import SyncState

        def answered(proxy_id: str) -> bool:
            status = xds.status_of(proxy_id)
            return status is not None and len(status.types) == 4 and all(
                s.state in (SyncState.SYNCED, SyncState.NACK) for s in status.types.values())

        for proxy in self.proxies:
            await eventually(lambda p=proxy: answered(p.id), 300, f"{proxy.id} answered")
        found: dict[str, Any] = {}
        for proxy in self.proxies:
            status = xds.status_of(proxy.id)
            found[proxy.id] = ({t.rsplit(".", 1)[-1]: str(s.state) + (
                f": {s.nack_message}" if s.nack_message else "")
                for t, s in sorted(status.types.items())} if status else "not connected")
        return found

    async def stop(self) -> None:
        await self._stack.aclose()


def _stream_id(stream: Any) -> str:
    """A stream's connection id (a tree before streams had one: its proxy's id)."""
    return str(getattr(stream, "connection_id", stream.proxy.id))


def _rss_mb() -> float:
    """This process's resident memory now (ru_maxrss gives only the peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def _trimmed_rss_mb() -> float:
    """Resident memory once the allocator has handed what is free back to the system
    (glibc keeps freed memory; this tells live data from a past peak)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return _rss_mb()


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {"p50": round(statistics.median(ordered), 4),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 4),
            "max": round(ordered[-1], 4)}


class LagProbe:
    """The worst lateness of a 5 ms timer: how long the event loop was kept busy. With
    `trace`, a watchdog thread prints where the loop's thread was whenever it is 250 ms late
    (to find what stalls it)."""

    def __init__(self, trace: bool = False) -> None:
        self.worst = 0.0
        self.trace = trace
        self._task: asyncio.Task[None] | None = None
        self._beat = time.perf_counter()

    async def _run(self) -> None:
        while True:
            start = self._beat = time.perf_counter()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, time.perf_counter() - start - 0.005)

    def _watch(self, loop_thread: int) -> None:
        import traceback

        reported = 0.0
        while self._task is not None and not self._task.done():
            time.sleep(0.05)
            late = time.perf_counter() - self._beat
            if late > 0.25 and self._beat != reported:
                reported = self._beat
                frame = sys._current_frames().get(loop_thread)
                stack = "".join(traceback.format_list(traceback.extract_stack(frame)[-8:])) \
                    if frame else "?"
                print(f"--- event loop {late:.2f}s late, at:\n{stack}", file=sys.stderr)

    def start(self) -> None:
        self.worst = 0.0
        self._task = asyncio.create_task(self._run())
        if self.trace:
            import threading

            threading.Thread(target=self._watch, args=(threading.get_ident(),),
                             daemon=True).start()

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
    restarts = [0]
    cpu0 = time.process_time()

    asked_endpoints: set[int] = set()  # clients that subscribed to their endpoints

    def ask_endpoints(j: int) -> None:
        if j not in asked_endpoints:  # once: a second ask before the ACK is sent it all again
            asked_endpoints.add(j)
            clients[j].subscribe(ENDPOINT, sorted(clients[j].held[CLUSTER]))

    def start(j: int) -> None:
        asked_endpoints.discard(j)
        client = clients[j]
        client.start()
        client.subscribe(CLUSTER)
        client.subscribe(LISTENER)
        client.subscribe(ROUTE, [OUTBOUND_ROUTE])

    async def synced(j: int) -> None:
        """Until client j holds a whole configuration. A stream gRPC ends under this load
        (it happens: CANCELLED, rarely) is opened again, as Envoy reconnects, and counted."""
        for _ in range(3):
            client = clients[j]
            try:
                await client.wait_for(lambda c=client: CLUSTER in c.held, timeout=3600)
                ask_endpoints(j)
                await client.wait_for(lambda c=client: ENDPOINT in c.held and ROUTE in c.held
                                      and LISTENER in c.held, timeout=3600)
                return
            except StreamEnded:
                restarts[0] += 1
                await client.close()
                clients[j] = AdsClient(channels[j % len(channels)], _node(j, services), True,
                                       True)
                start(j)
        raise RuntimeError(f"{clients[j].node.id}: its stream ended three times")

    async def answer(command: str, argument: Any) -> Any:
        if command == "sync":
            for j in range(proxies):
                start(j)
            for j in range(proxies):
                await clients[j].wait_for(lambda c=clients[j]: CLUSTER in c.held or
                                          c.ended, timeout=3600)
                if CLUSTER in clients[j].held:
                    ask_endpoints(j)
            for j in range(proxies):
                await synced(j)
            return (max(c.last_response_at for c in clients) + offset,
                    sum(c.bytes_received for c in clients))
        if command == "counts":
            return [c.responses for c in clients], sum(c.bytes_received for c in clients)
        if command == "await":  # {client index: responses it must have had}
            for j, want in argument.items():
                try:
                    await clients[j].wait_for(lambda c=clients[j], w=want: c.responses >= w,
                                              timeout=3600)
                except StreamEnded:  # opened again: it has the change once it is synced
                    await synced(j)
            return ({j: clients[j].last_response_at + offset for j in argument},
                    sum(c.bytes_received for c in clients))
        if command == "restarts":
            return restarts[0]
        return round(time.process_time() - cpu0, 2)

    try:
        while True:
            command, argument = await loop.run_in_executor(None, conn.recv)
            try:
                conn.send(("ok", await answer(command, argument)))
            except Exception as err:  # the benchmark must say why, not wait forever
                conn.send(("failed", f"{command}: {err}"))
                return
            if command == "stop":
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
        verdict, value = await asyncio.get_running_loop().run_in_executor(None, self._conn.recv)
        if verdict != "ok":
            raise RuntimeError(f"the simulated proxies failed: {value}")
        return value

    async def stop(self) -> float:
        """The clients' CPU seconds."""
        try:
            return float(await self.ask("stop"))
        except (EOFError, BrokenPipeError, RuntimeError):  # it failed and said why already
            return 0.0
        finally:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()


async def run(services: int, proxies: int, real_envoys: int = 2,
              trace_stalls: bool = False) -> dict[str, Any]:
    documents = {f"s{i}-{k}": d for i in range(services)
                 for k, d in enumerate(service_docs(i))}
    documents.update({f"w{j}": workload_doc(j, services) for j in range(proxies)})
    subnet = f"127.{200 + os.getpid() % 50}.{os.getpid() // 50 % 250}."  # not unique_subnet's
    documents.update(real_envoy_docs(subnet, real_envoys))
    mesh = Mesh(documents)
    load_seconds = mesh.load_seconds
    xds = XdsServer(lambda: mesh.snapshot)
    server, port = await start_grpc(xds, "127.0.0.1:0")
    targeted = len(inspect.signature(xds.push_all).parameters) > 0
    index = {_node(j, services).id: j for j in range(proxies)}
    probe = LagProbe(trace_stalls)
    cpu0 = time.process_time()
    out: dict[str, Any] = {"services": services, "proxies": proxies,
                           "document_load_seconds": round(load_seconds, 3),
                           "targeted_pushes": targeted}
    clients = Clients(port, services, proxies)
    workdir = tempfile.TemporaryDirectory(prefix="heddle-scale-")
    envoys = RealEnvoys(subnet, port, Path(workdir.name), real_envoys)
    try:
        probe.start()
        start = time.monotonic()
        synced_at, out["initial_bytes"] = await clients.ask("sync")
        out["simulated_streams_reopened"] = await clients.ask("restarts")
        out["initial_sync_seconds"] = round(synced_at - start, 3)
        out["initial_sync_worst_loop_stall_seconds"] = probe.stop()
        out["control_plane_rss_after_sync_mb"] = _rss_mb()
        out["control_plane_rss_after_sync_trimmed_mb"] = _trimmed_rss_mb()
        if real_envoys:  # after the measured sync: they are the proof, not the load
            await envoys.start()

        async def change(name: str, edit: dict[str, str], keys: list[ResourceKey]) -> None:
            before, sent_bytes = await clients.ask("counts")
            nonces = {_stream_id(s): {t: st.nonce for t, st in s.types.items()}
                      for s in xds._streams.values()}
            probe.start()
            start = time.monotonic()
            mesh.edit(edit)
            pushed_before = getattr(xds, "pushed_proxies", 0)
            if targeted:
                from heddle.xds.push import PushRequest
                await xds.push_all(PushRequest.of(keys))
            else:
                await xds.push_all()
            expected: dict[int, int] = {}
            for stream in xds._streams.values():
                old = nonces.get(_stream_id(stream)) or {}
                sent = sum(1 for t, st in stream.types.items() if st.nonce != old.get(t))
                j = index.get(stream.proxy.id)
                if sent and j is not None:
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
        if real_envoys:
            out["real_envoys"] = await envoys.settled(xds)
        out["control_plane_cpu_seconds"] = round(time.process_time() - cpu0, 2)
        out["control_plane_peak_rss_mb"] = round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    finally:
        await envoys.stop()
        workdir.cleanup()
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
    parser.add_argument("--real-envoys", type=int, default=2, choices=range(3),
                        help="real Envoys beside the simulated proxies (0 for a tree "
                             "without heddle.testing)")
    parser.add_argument("--trace-stalls", action="store_true",
                        help="print where the event loop was whenever it ran 250 ms late")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.services, args.proxies, args.real_envoys,
                                     args.trace_stalls)),
                     indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
