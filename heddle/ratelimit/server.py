"""The running service: config watcher, counters, gRPC server and metrics endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from envoy.service.rate_limit_quota.v3 import rlqs_pb2_grpc
from envoy.service.ratelimit.v3 import rls_pb2_grpc

from heddle.ratelimit.backends import Counters
from heddle.ratelimit.backends.memory import MemoryCounters
from heddle.ratelimit.limiter import NEAR_LIMIT_RATIO, Limiter
from heddle.ratelimit.metrics import RateLimitMetrics
from heddle.ratelimit.near_cache import NearCache
from heddle.ratelimit.quota.leases import Leases, MemoryLeases
from heddle.ratelimit.quota.metrics import register_quota_metrics
from heddle.ratelimit.quota.service import RateLimitQuotaService
from heddle.ratelimit.reload import LiveConfig
from heddle.ratelimit.service import RateLimitService

log = logging.getLogger(__name__)

DEFAULT_PORT = 8081  # envoyproxy/ratelimit's gRPC port
DEFAULT_REDIS_TIMEOUT = 0.1


@dataclass(frozen=True)
class RateLimitOptions:
    config_dir: Path
    address: str = f"127.0.0.1:{DEFAULT_PORT}"  # port 0: any free port
    redis_url: str | None = None  # None: counters in memory (one replica)
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT
    failure_mode_deny: bool = False
    domain_failure_mode_deny: dict[str, bool] = field(default_factory=dict)
    metrics_address: str | None = None  # "127.0.0.1:PORT"; None: no endpoint
    merge_domains: bool = False
    near_cache: bool = True
    near_limit_ratio: float = NEAR_LIMIT_RATIO
    key_prefix: str = ""
    # Quota leasing (RLQS) on the same port, from the same config: proxies of a policy in
    # lease mode ask it for quota every reporting interval instead of asking per request.
    quota: bool = True


class RateLimitServer:
    def __init__(self, options: RateLimitOptions) -> None:
        self.options = options
        self.metrics = RateLimitMetrics()
        self.config = LiveConfig(options.config_dir, self.metrics, options.merge_domains)
        self.counters = self._counters()
        remote = options.redis_url is not None
        self.limiter = Limiter(
            self.counters, self.metrics, self.config.get,
            near_cache=NearCache() if options.near_cache and remote else None,
            near_limit_ratio=options.near_limit_ratio,
            failure_mode_deny=options.failure_mode_deny,
            domain_failure_mode_deny=options.domain_failure_mode_deny,
            key_prefix=options.key_prefix)
        self.quota: RateLimitQuotaService | None = None
        if options.quota:
            self.quota = RateLimitQuotaService(self._leases(), self.config.get)
            register_quota_metrics(self.metrics.registry, self.quota.stats)
        self.port = 0
        self.metrics_port = 0
        self._server: grpc.aio.Server | None = None
        self._metrics_server: Any = None

    def _counters(self) -> Counters:
        if self.options.redis_url is None:
            return MemoryCounters()
        from heddle.ratelimit.backends.redis import RedisCounters

        return RedisCounters(self.options.redis_url, self.options.redis_timeout,
                             on_round_trip=self.metrics.redis_latency.observe,
                             on_error=lambda _: self.metrics.redis_errors.inc())

    def _leases(self) -> Leases:
        if self.options.redis_url is None:
            return MemoryLeases()
        from heddle.ratelimit.quota.leases import RedisLeases

        return RedisLeases(self.options.redis_url, self.options.redis_timeout,
                           self.options.key_prefix)

    async def start(self) -> None:
        """Load the config (an invalid one is logged; the service answers with none until
        it is fixed), then listen for gRPC and metrics."""
        self.config.reload()
        await self.counters.warm()
        server = grpc.aio.server()
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(RateLimitService(self.limiter),
                                                             server)
        if self.quota is not None:
            rlqs_pb2_grpc.add_RateLimitQuotaServiceServicer_to_server(self.quota, server)
        self.port = server.add_insecure_port(self.options.address)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.options.address}")
        await server.start()
        self._server = server
        if self.options.metrics_address is not None:
            from prometheus_client import start_http_server

            host, _, port = self.options.metrics_address.rpartition(":")
            self._metrics_server, _ = start_http_server(int(port), host,
                                                        registry=self.metrics.registry)
            self.metrics_port = self._metrics_server.server_port
        log.info("rate-limit service on %s (counters: %s%s)%s",
                 self.options.address.rpartition(":")[0] + f":{self.port}", self.counters.name,
                 f" at {self.options.redis_url}" if self.options.redis_url else "",
                 f", metrics on :{self.metrics_port}/metrics" if self.metrics_port else "")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(grace=1.0)
            self._server = None
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        await self.counters.close()
        if self.quota is not None:
            await self.quota.leases.close()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, reloading the config as its directory changes."""
        await self.start()
        watcher = asyncio.create_task(self.config.watch(stop))
        try:
            await stop.wait()
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            await self.stop()
