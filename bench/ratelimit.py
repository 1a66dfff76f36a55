"""The global rate-limit service's cost per decision: ShouldRateLimit over gRPC against
`heddle ratelimit` in its own process, with counters in memory and in a real redis-server,
side by side in one run.

    python bench/ratelimit.py [--seconds 3] [--concurrency 32] [--latency-requests 2000]

For each backend: decisions per second of the service's own CPU time (its process's user +
system seconds: "per core"), the wall-clock rate the client reached, p50 / p99 latency of a
single caller (no queueing), and Redis round trips per decision as Redis itself counts them
(INFO stats total_reads_processed, less the INFO calls' own); and, apart, the decision
itself in-process (no gRPC), to show where the time goes. Prints JSON. Bounded: each
phase runs `seconds` or `latency-requests`, every wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
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
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


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


def redis_reads(port: int) -> int:
    for line in redis_command(port, "INFO", "stats").splitlines():
        if line.startswith("total_reads_processed:"):
            return int(line.split(":")[1])
    raise RuntimeError("no total_reads_processed in INFO stats")


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


def start_service(config_dir: Path, redis_url: str | None) -> tuple[subprocess.Popen[bytes],
                                                                    int]:
    port = free_port()
    command = [sys.executable, "-m", "heddle", "ratelimit", "--config-dir", str(config_dir),
               "--port", str(port)]
    if redis_url:  # a generous timeout: a decision that fails open is not a decision measured
        command += ["--redis", redis_url, "--redis-timeout", "2"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    return process, port


def request(i: int) -> rls_pb2.RateLimitRequest:
    return rls_pb2.RateLimitRequest(domain="bench", descriptors=[
        ratelimit_pb2.RateLimitDescriptor(entries=[
            ratelimit_pb2.RateLimitDescriptor.Entry(key="client", value=f"c{i % CLIENTS}")])])


async def measure(port: int, pid: int, seconds: float, concurrency: int,
                  latency_requests: int, redis_port: int | None) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await asyncio.wait_for(channel.channel_ready(), 15)
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        requests = [request(i) for i in range(CLIENTS)]
        for _ in range(3):  # warm: code paths, and every connection to Redis opened
            await asyncio.gather(*(stub.ShouldRateLimit(r, timeout=5)
                                   for r in requests[:concurrency]))

        # Throughput: `concurrency` callers for `seconds`, against the service's CPU time.
        done = 0
        deadline = time.monotonic() + seconds

        async def caller(offset: int) -> None:
            nonlocal done
            i = offset
            while time.monotonic() < deadline:
                await stub.ShouldRateLimit(requests[i % CLIENTS], timeout=5)
                done += 1
                i += concurrency

        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        reads_before = redis_reads(redis_port) if redis_port else 0
        await asyncio.wait_for(asyncio.gather(*(caller(c) for c in range(concurrency))),
                               seconds + 30)
        wall = time.monotonic() - wall_before
        cpu = cpu_seconds(pid) - cpu_before
        round_trips = None
        if redis_port:
            info_cost = redis_reads(redis_port)
            info_cost = redis_reads(redis_port) - info_cost  # two INFOs back to back
            reads = redis_reads(redis_port) - reads_before - 2 * info_cost
            round_trips = round(reads / done, 3)

        # Latency: one caller at a time, so each figure is the service's, not a queue's.
        latencies = []
        for i in range(latency_requests):
            started = time.perf_counter()
            await stub.ShouldRateLimit(requests[i % CLIENTS], timeout=5)
            latencies.append(time.perf_counter() - started)
        latencies.sort()
    return {
        "decisions": done,
        "decisions_per_cpu_second": round(done / cpu) if cpu else None,
        "decisions_per_wall_second": round(done / wall),
        "service_cpu_seconds": round(cpu, 2),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 3),
        "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 3),
        "redis_round_trips_per_decision": round_trips,
    }


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


def run(seconds: float = 3.0, concurrency: int = 32,
        latency_requests: int = 2000) -> dict[str, Any]:
    results: dict[str, Any] = {"seconds": seconds, "concurrency": concurrency,
                               "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as folder:
        config_dir = Path(folder)
        (config_dir / "bench.yaml").write_text(CONFIG)
        redis, redis_port = start_redis()
        try:
            for backend, url in (("memory", None), ("redis", f"redis://127.0.0.1:{redis_port}")):
                service, port = start_service(config_dir, url)
                try:
                    results[backend] = asyncio.run(measure(
                        port, service.pid, seconds, concurrency, latency_requests,
                        redis_port if url else None))
                finally:
                    service.terminate()
                    service.wait(10)
                results[backend]["in_process"] = asyncio.run(in_process(url, 5000))
        finally:
            redis.terminate()
            redis.wait(10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-requests", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(run(args.seconds, args.concurrency, args.latency_requests), indent=2))


if __name__ == "__main__":
    main()
