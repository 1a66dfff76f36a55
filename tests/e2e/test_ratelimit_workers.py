"""`heddle ratelimit --workers N`: N service processes on one port, counting in one Redis.

Shows: a limit of 5 per minute holds exactly across connections the kernel spread over the
workers (each connection a proxy); every worker answers; stopping the parent stops them all;
and workers without Redis are refused (each worker's memory would be a limit of its own)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import grpc
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from heddle.ratelimit.workers import refusal, worker_argv
from tests.e2e.redis_server import RedisServer, free_port, redis_server

__all__ = ["redis_server"]

ROOT = Path(__file__).resolve().parents[2]
OK, OVER_LIMIT = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT
LIMITS = """
domain: edge
descriptors:
  - key: client
    rate_limit: {unit: minute, requests_per_unit: 5}
"""


def start(config_dir: Path, *flags: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "heddle", "ratelimit", "--config-dir",
                             str(config_dir), *flags], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


async def ask_on_fresh_connections(port: int, count: int) -> list[int]:
    """Each request on a connection of its own, so the kernel spreads them over workers."""
    codes = []
    request = rls_pb2.RateLimitRequest(domain="edge", descriptors=[
        ratelimit_pb2.RateLimitDescriptor(entries=[
            ratelimit_pb2.RateLimitDescriptor.Entry(key="client", value="alice")])])
    for _ in range(count):
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 20)
            stub = rls_pb2_grpc.RateLimitServiceStub(channel)
            codes.append((await stub.ShouldRateLimit(request, timeout=10)).overall_code)
    return codes


def test_workers_share_one_limit_through_redis(tmp_path: Path,
                                                redis_server: RedisServer) -> None:
    (tmp_path / "edge.yaml").write_text(LIMITS)
    port = free_port()
    service = start(tmp_path, "--port", str(port), "--redis", redis_server.url,
                    "--redis-timeout", "2", "--workers", "2")
    try:
        codes = asyncio.run(ask_on_fresh_connections(port, 9))
        assert codes == [OK] * 5 + [OVER_LIMIT] * 4
        assert len(children(service.pid)) == 2
        workers = children(service.pid)
    finally:
        service.terminate()
        service.wait(30)
    assert service.returncode == 0
    for pid in workers:  # gone with their parent
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text()


def test_workers_without_redis_are_refused_naming_why(tmp_path: Path) -> None:
    (tmp_path / "edge.yaml").write_text(LIMITS)
    service = start(tmp_path, "--port", str(free_port()), "--workers", "2")
    _, err = service.communicate(timeout=60)
    assert service.returncode == 2
    assert b"--workers 2 needs --redis URL" in err
    assert refusal(2, None, 8081) is not None and refusal(1, None, 8081) is None
    assert "fixed --port" in (refusal(2, "redis://x", 0) or "")


def test_each_worker_has_its_own_metrics_port() -> None:
    assert worker_argv(["--port", "1"], 2, 9100) == ["--port", "1", "--metrics-port", "9102"]
    assert worker_argv(["--port", "1"], 2, None) == ["--port", "1"]
