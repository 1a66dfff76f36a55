"""The global rate-limit service's cost per decision: ShouldRateLimit over gRPC against
`heddle ratelimit` in its own process, with counters in memory and in a real redis-server,
side by side in one run.

    python bench/ratelimit.py [--seconds 3] [--concurrency 32] [--latency-requests 2000]
        [--load-processes 1] [--workers N] [--baseline-root DIR]

For each setup (counters in memory; in Redis; in Redis with `--workers N` service
processes): decisions per second of the service's own CPU time (user + system seconds of
its processes, workers included, read from /proc: "per core"), the wall-clock rate the load
reached, p50 / p99 latency of a single caller (no queueing), and Redis round trips and
commands per decision as Redis itself counts them (INFO stats total_reads_processed and
total_commands_processed, less the INFO calls' own); and, apart, the decision itself
in-process (no gRPC), to show where the time goes. The load runs in processes of its own
(`--load-processes`), never in the service's. With `--baseline-root DIR` (another checkout,
e.g. `git archive` of an older commit) the same setups run against that checkout's
service too, in the same run, under "baseline". Prints JSON. Bounded: each phase runs
`seconds` or `latency-requests`, every wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
CONFIG = """
domain: bench
descriptors:
  - key: client
    rate_limit: {unit: hour, requests_per_unit: 4000000000}
"""
CLIENTS = 1000  # distinct counters the decisions spread over
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system seconds of `pid` and of its live children (the workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(cpu_seconds(int(child)) for child in children)


def redis_command(port: int, *words: str) -> str:
    payload = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(payload.encode())
        data = b""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            chunk = conn.recv(65536)
            data += chunk
            if not chunk or (data.startswith(b"$") and data.count(b"\r\n") >= 2
                             and data.endswith(b"\r\n")) or data.startswith(b"+"):
                break
    return data.decode()


def redis_stats(port: int) -> tuple[int, int]:
    """(total_reads_processed, total_commands_processed)."""
    found = {}
    for line in redis_command(port, "INFO", "stats").splitlines():
        name, _, value = line.partition(":")
        if name in ("total_reads_processed", "total_commands_processed"):
            found[name] = int(value)
    return found["total_reads_processed"], found["total_commands_processed"]


def start_redis() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis_command(port, "PING").startswith("+PONG"):
                return process, port
        except OSError:
            time.sleep(0.02)
    process.kill()
    raise RuntimeError("redis-server did not start")


def start_service(config_dir: Path, redis_url: str | None, root: Path = ROOT,
                  workers: int = 1, plain: Path | None = None,
                  ) -> tuple[subprocess.Popen[bytes], int]:
    """The service of `root`'s checkout; with `plain` (a folder of blockers, see
    `blockers`), without hiredis and uvloop even where they are installed."""
    port = free_port()
    command = [sys.executable, "-m", "heddle", "ratelimit", "--config-dir", str(config_dir),
               "--port", str(port)]
    if redis_url:  # a generous timeout: a decision that fails open is not a decision measured
        command += ["--redis", redis_url, "--redis-timeout", "2"]
    if workers != 1:
        command += ["--workers", str(workers)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(plain), str(root)] if plain else [str(root)]))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    return process, port


def request(i: int) -> rls_pb2.RateLimitRequest:
    return rls_pb2.RateLimitRequest(domain="bench", descriptors=[
        ratelimit_pb2.RateLimitDescriptor(entries=[
            ratelimit_pb2.RateLimitDescriptor.Entry(key="client", value=f"c{i % CLIENTS}")])])


async def load(port: int, seconds: float, concurrency: int, offset: int,
               go: asyncio.Future[None] | None = None,
               when_warm: Callable[[], Awaitable[None]] | None = None) -> int:
    """`concurrency` callers for `seconds` (once `go` is set): how many decisions."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 15)
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        requests = [request(i) for i in range(CLIENTS)]
        for _ in range(3):  # warm: code paths, and every connection to Redis opened
            await asyncio.gather(*(stub.ShouldRateLimit(r, timeout=5)
                                   for r in requests[offset:offset + concurrency]))
        if when_warm is not None:
            waiting = asyncio.create_task(when_warm())
        if go is not None:
            await asyncio.wait_for(go, 60)
            await waiting
        done = 0
        deadline = time.monotonic() + seconds

        async def caller(start: int) -> None:
            nonlocal done
            i = start
            while time.monotonic() < deadline:
                await stub.ShouldRateLimit(requests[i % CLIENTS], timeout=5)
                done += 1
                i += concurrency

        await asyncio.wait_for(asyncio.gather(*(caller(offset + c) for c in range(concurrency))),
                               seconds + 30)
        return done


def load_process_main(port: int, seconds: float, concurrency: int, offset: int) -> None:
    """A load process: warm, print "ready", wait for a line on stdin, load, print the count."""

    async def main() -> int:
        go: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def when_warm() -> None:
            print("ready", flush=True)
            await asyncio.to_thread(sys.stdin.readline)
            go.set_result(None)

        return await load(port, seconds, concurrency, offset, go, when_warm)

    print(json.dumps({"done": asyncio.run(main())}), flush=True)


def loaded(port: int, seconds: float, concurrency: int, processes: int, pid: int,
           redis_port: int | None) -> dict[str, Any]:
    """`processes` load processes at once; the service's CPU and Redis's counts over them."""
    script = str(Path(__file__).resolve())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    loads = [subprocess.Popen([sys.executable, script, "--load-port", str(port), "--seconds",
                               str(seconds), "--concurrency", str(concurrency),
                               "--load-offset", str(i * concurrency)], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for i in range(processes)]
    try:
        for process in loads:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("a load process did not start")
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        redis_before = redis_stats(redis_port) if redis_port else (0, 0)
        for process in loads:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        done = 0
        for process in loads:
            out, _ = process.communicate(timeout=seconds + 60)
            done += json.loads(out.strip().splitlines()[-1])["done"]
        wall = time.monotonic() - wall_before
        cpu = cpu_seconds(pid) - cpu_before
    finally:
        for process in loads:
            if process.poll() is None:
                process.kill()
    result: dict[str, Any] = {
        "decisions": done,
        "decisions_per_cpu_second": round(done / cpu) if cpu else None,
        "decisions_per_wall_second": round(done / wall),
        "service_cpu_seconds": round(cpu, 2),
        "service_cores_busy": round(cpu / wall, 2),
        "redis_round_trips_per_decision": None, "redis_commands_per_decision": None}
    if redis_port:
        first = redis_stats(redis_port)
        second = redis_stats(redis_port)  # what one INFO adds, to take off
        info = (second[0] - first[0], second[1] - first[1])
        after = redis_stats(redis_port)
        reads = after[0] - redis_before[0] - 3 * info[0]
        commands = after[1] - redis_before[1] - 3 * info[1]
        result["redis_round_trips_per_decision"] = round(reads / done, 3)
        result["redis_commands_per_decision"] = round(commands / done, 3)
    return result


async def latency(port: int, requests: int) -> dict[str, float]:
    """One caller at a time, so each figure is the service's, not a queue's."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 15)
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        messages = [request(i) for i in range(CLIENTS)]
        for message in messages[:50]:
            await stub.ShouldRateLimit(message, timeout=5)
        latencies = []
        for i in range(requests):
            started = time.perf_counter()
            await stub.ShouldRateLimit(messages[i % CLIENTS], timeout=5)
            latencies.append(time.perf_counter() - started)
    latencies.sort()
    return {"p50_ms": round(1000 * latencies[len(latencies) // 2], 3),
            "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 3)}


async def in_process(redis_url: str | None, decisions: int) -> dict[str, Any]:
    """The decision itself (match, count, answer as the proto), without gRPC: what the
    service's Python costs beside what grpc.aio costs."""
    from heddle.ratelimit.backends.memory import MemoryCounters
    from heddle.ratelimit.backends.redis import RedisCounters
    from heddle.ratelimit.config import load_texts
    from heddle.ratelimit.limiter import DescriptorRequest, Limiter
    from heddle.ratelimit.metrics import RateLimitMetrics
    from heddle.ratelimit.service import response

    config = load_texts([("bench.yaml", CONFIG)])
    counters = RedisCounters(redis_url, 1.0) if redis_url else MemoryCounters()
    limiter = Limiter(counters, RateLimitMetrics(), lambda: config)
    descriptors = [[DescriptorRequest((("client", f"c{i}"),))] for i in range(CLIENTS)]
    for i in range(100):
        await limiter.decide("bench", descriptors[i])
    cpu, started = time.process_time(), time.perf_counter()
    for i in range(decisions):
        response(await limiter.decide("bench", descriptors[i % CLIENTS]))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - started
    await counters.close()
    return {"decisions_per_cpu_second": round(decisions / cpu) if cpu else None,
            "mean_latency_ms": round(1000 * wall / decisions, 3)}


def blockers(folder: Path) -> Path:
    """A folder whose `hiredis` and `uvloop` fail to import: first on a path, the service
    runs as it would without the `fast` extra."""
    path = folder / "plain"
    path.mkdir()
    for name in ("hiredis", "uvloop"):
        (path / f"{name}.py").write_text(f"raise ImportError('{name} blocked by the bench')\n")
    return path


def setups(workers: int, baseline: bool) -> list[tuple[str, bool, int, bool]]:
    """(name, counts in Redis, service processes, without the fast extra)."""
    if baseline:  # as it was: no extras
        return [("memory", False, 1, True), ("redis", True, 1, True)]
    found = [("memory", False, 1, False), ("memory_plain", False, 1, True),
             ("redis", True, 1, False), ("redis_plain", True, 1, True)]
    if workers > 1:
        found.append((f"redis_{workers}_workers", True, workers, False))
    return found


def measure_root(root: Path, config_dir: Path, redis_port: int, seconds: float,
                 concurrency: int, latency_requests: int, processes: int, workers: int,
                 in_process_decisions: int, plain: Path, baseline: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, remote, count, without_extras in setups(workers, baseline):
        url = f"redis://127.0.0.1:{redis_port}" if remote else None
        blocked = plain if without_extras else None
        service, port = start_service(config_dir, url, root, count, blocked)
        try:
            _wait_serving(port, 20)
            figures = loaded(port, seconds, concurrency, processes, service.pid,
                             redis_port if remote else None)
            figures.update(asyncio.run(latency(port, latency_requests)))
        finally:
            service.terminate()
            service.wait(15)
        if count == 1:
            figures["in_process"] = _in_process_in(root, url, in_process_decisions, blocked)
        results[name] = figures
    return results


def _wait_serving(port: int, timeout: float) -> None:
    async def ready() -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), timeout)

    asyncio.run(ready())


def _in_process_in(root: Path, url: str | None, decisions: int,
                   plain: Path | None) -> dict[str, Any]:
    """`in_process` with `root`'s heddle, in a process of its own."""
    code = ("import asyncio, json, sys; sys.path.insert(0, sys.argv[1]); import ratelimit; "
            "print(json.dumps(asyncio.run(ratelimit.in_process(sys.argv[2] or None, "
            "int(sys.argv[3])))))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), url or "",
                          str(decisions)], env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                              [str(plain), str(root)] if plain else [str(root)])),
                         capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(seconds: float = 3.0, concurrency: int = 32, latency_requests: int = 2000,
        processes: int = 1, workers: int = 0, baseline_root: Path | None = None,
        in_process_decisions: int = 5000) -> dict[str, Any]:
    """`workers` 0: as many as there are CPUs (no workers setup on one CPU)."""
    cpus = os.cpu_count() or 1
    workers = workers or cpus
    installed = [name for name in ("hiredis", "uvloop") if importlib.util.find_spec(name)]
    # "_plain" setups (and the baseline) run with neither, whatever is installed.
    results: dict[str, Any] = {"seconds": seconds, "concurrency": concurrency,
                               "load_processes": processes, "cpus": cpus,
                               "fast_extra_installed": installed}
    with tempfile.TemporaryDirectory() as folder:
        config_dir = Path(folder) / "config"
        config_dir.mkdir()
        (config_dir / "bench.yaml").write_text(CONFIG)
        plain = blockers(Path(folder))
        redis, redis_port = start_redis()
        try:
            roots = [("current", ROOT)]
            if baseline_root is not None:
                roots.insert(0, ("baseline", baseline_root))
            for label, root in roots:
                figures = measure_root(root, config_dir, redis_port, seconds, concurrency,
                                       latency_requests, processes,
                                       workers, in_process_decisions, plain,
                                       label == "baseline")
                if label == "current":
                    results.update(figures)
                else:
                    results[label] = figures
        finally:
            redis.terminate()
            redis.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-requests", type=int, default=2000)
    parser.add_argument("--load-processes", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0,
                        help="service processes of the workers setup (0: one per CPU)")
    parser.add_argument("--baseline-root", type=Path, default=None,
                        help="another checkout whose service runs the same setups too")
    parser.add_argument("--load-port", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--load-offset", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_port is not None:
        load_process_main(args.load_port, args.seconds, args.concurrency, args.load_offset)
        return
    print(json.dumps(run(args.seconds, args.concurrency, args.latency_requests,
                         args.load_processes, args.workers, args.baseline_root), indent=2))


if __name__ == "__main__":
    main()
