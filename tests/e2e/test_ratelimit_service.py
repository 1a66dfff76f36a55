"""The rate-limit service end to end: Envoy's RLS over gRPC (a grpc.aio client), with
counters in memory and in a real redis-server.

Shows: exactly N pass, then OVER_LIMIT with retry-after; two replicas on one Redis share
their counts; Redis stopped fails open (or closed) within the timeout and the service stays
up, and limiting resumes within 2 s of Redis returning; shadow mode never blocks and counts;
one Redis round trip per decision, counted by Redis itself; the config reloads on change
and a bad file keeps the last good one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import httpx
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from heddle.ratelimit.backends import Increment
from heddle.ratelimit.backends.redis import RedisCounters
from heddle.ratelimit.server import RateLimitOptions, RateLimitServer
from tests.e2e.redis_server import RedisServer, redis_server

__all__ = ["redis_server"]  # the fixture, used by name

OK, OVER_LIMIT = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT
LIMITS = """
domain: edge
descriptors:
  - key: client
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: shadow
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: route
    value: /api
    descriptors:
      - key: method
        rate_limit: {unit: hour, requests_per_unit: 1000}
"""


def request(*descriptors: list[tuple[str, str]]) -> rls_pb2.RateLimitRequest:
    return rls_pb2.RateLimitRequest(domain="edge", descriptors=[
        ratelimit_pb2.RateLimitDescriptor(entries=[
            ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries])
        for entries in descriptors])


@asynccontextmanager
async def service(config_dir: Path, **options: object
                  ) -> AsyncIterator[tuple[RateLimitServer, Callable[
                      [rls_pb2.RateLimitRequest], Awaitable[rls_pb2.RateLimitResponse]]]]:
    server = RateLimitServer(RateLimitOptions(config_dir, "127.0.0.1:0", **options))  # type: ignore[arg-type]
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = rls_pb2_grpc.RateLimitServiceStub(channel)
    try:
        yield server, lambda r: stub.ShouldRateLimit(r, timeout=5)
    finally:
        await channel.close()
        await server.stop()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "edge.yaml").write_text(LIMITS)
    return tmp_path


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> dict[str, object]:
    if request.param == "memory":
        return {}
    server: RedisServer = request.getfixturevalue("redis_server")
    return {"redis_url": server.url}


async def test_exactly_n_pass_then_over_limit_with_retry_after(
        config_dir: Path, backend: dict[str, object]) -> None:
    async with service(config_dir, **backend) as (_, should_rate_limit):
        answers = [await should_rate_limit(request([("client", "alice")])) for _ in range(7)]
        assert [a.overall_code for a in answers] == [OK] * 5 + [OVER_LIMIT] * 2
        assert [a.statuses[0].limit_remaining for a in answers[:5]] == [4, 3, 2, 1, 0]
        over = answers[5]
        status = over.statuses[0]
        assert status.code == OVER_LIMIT
        assert (status.current_limit.requests_per_unit, status.current_limit.unit) == (
            5, rls_pb2.RateLimitResponse.RateLimit.MINUTE)
        assert 0 < status.duration_until_reset.seconds <= 60
        [header] = over.response_headers_to_add
        assert header.key == "retry-after"
        assert int(header.value) == status.duration_until_reset.seconds
        assert not answers[0].response_headers_to_add
        # Another client has its own counter.
        assert (await should_rate_limit(request([("client", "bob")]))).overall_code == OK


async def test_two_replicas_sharing_one_redis_share_their_counts(
        config_dir: Path, redis_server: RedisServer) -> None:
    async with service(config_dir, redis_url=redis_server.url) as (_, first), \
            service(config_dir, redis_url=redis_server.url) as (_, second):
        codes = [(await (first if i % 2 else second)(request([("client", "carol")])))
                 .overall_code for i in range(8)]
        assert codes == [OK] * 5 + [OVER_LIMIT] * 3


async def test_one_redis_round_trip_per_decision_counted_by_redis(
        config_dir: Path, redis_server: RedisServer) -> None:
    decisions, per_decision = 40, 3
    async with service(config_dir, redis_url=redis_server.url) as (server, should_rate_limit):
        several = request(*([("route", "/api"), ("method", m)] for m in ("GET", "PUT", "POST")))
        await should_rate_limit(several)  # the connection is open before counting
        idle_before = int(redis_server.info("stats")["total_reads_processed"])
        idle_after = int(redis_server.info("stats")["total_reads_processed"])
        reads_per_info = idle_after - idle_before
        before = redis_server.info("commandstats")
        reads_before = int(redis_server.info("stats")["total_reads_processed"])
        for _ in range(decisions):
            assert len((await should_rate_limit(several)).statuses) == per_decision
        reads = int(redis_server.info("stats")["total_reads_processed"]) - reads_before
        after = redis_server.info("commandstats")

    def calls(stats: dict[str, str], command: str) -> int:
        return int(stats[f"cmdstat_{command}"].split(",")[0].removeprefix("calls="))

    assert calls(after, "incrby") - calls(before, "incrby") == decisions * per_decision
    assert calls(after, "expire") - calls(before, "expire") == decisions * per_decision
    # Redis read each decision's pipeline in one go: the reads between two INFOs, less what
    # two back-to-back INFOs cost (their own command and hang-up), are the decisions.
    assert reads - reads_per_info == decisions
    assert server.counters.round_trips == decisions + 1  # type: ignore[attr-defined]


async def test_redis_stopped_fails_open_within_the_timeout_and_resumes_within_2s(
        config_dir: Path, redis_server: RedisServer) -> None:
    timeout = 0.2
    async with service(config_dir, redis_url=redis_server.url, redis_timeout=timeout) as (
            server, should_rate_limit):
        assert (await should_rate_limit(request([("client", "erin")]))).overall_code == OK
        redis_server.stop()
        for _ in range(5):
            started = time.monotonic()
            answer = await should_rate_limit(request([("client", "erin")]))
            assert answer.overall_code == OK  # fail open
            assert time.monotonic() - started < timeout + 0.3
        assert server.metrics.value("ratelimit_service_should_rate_limit_error_total",
                                    err_type="redis_error") >= 1
        redis_server.start()  # the same port, empty (nothing saved)
        back = time.monotonic()
        while True:  # limiting again: five pass, the sixth is refused
            answer = await should_rate_limit(request([("client", "erin")]))
            if answer.overall_code == OVER_LIMIT:
                break
            assert time.monotonic() - back < 2.0, "limiting did not resume within 2 s"
            await asyncio.sleep(0.05)
        assert time.monotonic() - back < 2.0


async def test_redis_stopped_fails_closed_when_asked(config_dir: Path,
                                                     redis_server: RedisServer) -> None:
    async with service(config_dir, redis_url=redis_server.url, redis_timeout=0.2,
                       failure_mode_deny=True) as (_, should_rate_limit):
        redis_server.stop()
        answer = await should_rate_limit(request([("client", "frank")]))
        assert answer.overall_code == OVER_LIMIT
        # Shadow mode never blocks, even failing closed.
        shadow = await should_rate_limit(request([("shadow", "x")]))
        assert shadow.overall_code == OK


async def test_shadow_mode_never_blocks_and_is_counted_in_the_metrics(
        config_dir: Path, backend: dict[str, object]) -> None:
    async with service(config_dir, metrics_address="127.0.0.1:0", **backend) as (
            server, should_rate_limit):
        codes = [(await should_rate_limit(request([("shadow", "x")]))).overall_code
                 for _ in range(6)]
        assert codes == [OK] * 6
        async with httpx.AsyncClient() as client:
            scraped = (await client.get(f"http://127.0.0.1:{server.metrics_port}/metrics")).text
    assert 'ratelimit_service_rate_limit_shadow_mode_total{domain="edge",key="shadow"} 4.0' in (
        scraped)
    assert 'ratelimit_service_rate_limit_total_hits_total{domain="edge",key="shadow"} 6.0' in (
        scraped)


async def test_the_config_reloads_on_change_and_a_bad_file_keeps_the_last_good(
        config_dir: Path) -> None:
    async with service(config_dir) as (server, should_rate_limit):
        stop = asyncio.Event()
        watcher = asyncio.create_task(server.config.watch(stop, debounce_ms=20))
        try:
            await asyncio.sleep(0.2)  # the watch is set up
            (config_dir / "more.yaml").write_text(
                "domain: more\ndescriptors:\n  - key: k\n    rate_limit: "
                "{unit: second, requests_per_unit: 0}\n")
            await wait_for(lambda: "more" in server.config.current.domains)
            more = rls_pb2.RateLimitRequest(domain="more", descriptors=[
                ratelimit_pb2.RateLimitDescriptor(entries=[
                    ratelimit_pb2.RateLimitDescriptor.Entry(key="k", value="v")])])
            assert (await should_rate_limit(more)).overall_code == OVER_LIMIT
            (config_dir / "broken.yaml").write_text("domain: x\ndescriptors:\n  - value: v\n")
            await wait_for(lambda: server.config.last_error is not None)
            assert "broken.yaml:3:5: error: descriptor has empty key" in str(
                server.config.last_error)
            assert (await should_rate_limit(more)).overall_code == OVER_LIMIT  # kept
        finally:
            stop.set()
            await asyncio.wait_for(watcher, 5)


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time allowed"
        await asyncio.sleep(0.02)


async def test_an_empty_domain_is_an_invalid_argument(config_dir: Path) -> None:
    async with service(config_dir) as (_, should_rate_limit):
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await should_rate_limit(rls_pb2.RateLimitRequest(domain=""))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_keys_over_their_limit_skip_redis(config_dir: Path,
                                                redis_server: RedisServer) -> None:
    async with service(config_dir, redis_url=redis_server.url) as (server, should_rate_limit):
        for _ in range(10):
            await should_rate_limit(request([("client", "gina")]))
        # The 6th went over and was remembered; the 7th to 10th never reached Redis.
        assert server.counters.round_trips == 6  # type: ignore[attr-defined]
        assert redis_server.command("KEYS", "*").count("edge_client_gina_") == 1


async def test_a_burst_beyond_the_redis_pool_queues_and_still_counts(
        redis_server: RedisServer) -> None:
    """More decisions in flight than pooled connections wait for one (within the timeout):
    none fails open, and every hit is counted."""
    counters = RedisCounters(redis_server.url, timeout=2.0, max_connections=2)
    try:
        results = await asyncio.gather(*(counters.increment(
            [Increment("burst-key", 1, 60)]) for _ in range(40)))
    finally:
        await counters.close()
    assert sorted(r[0] for r in results) == list(range(1, 41))
    assert redis_server.command("GET", "burst-key").endswith("40")
