"""`envoy.service.rate_limit_quota.v3.RateLimitQuotaService/StreamRateLimitQuotas` over
grpc.aio: one stream per proxy's filter, one lessee per stream.

Every usage report is answered at once with an action per bucket it names: the bucket's
lease for this proxy (a token bucket, or DENY_ALL when its share is no token; ALLOW_ALL for
a bucket no limit applies to, or a shadow rule's), valid `assignment_ttl` seconds. A
proxy's demand on a bucket is what it saw (passed and refused) over the time since its
previous report on it, as this service measures it (Envoy reports whole seconds). The first
report of a bucket comes as the proxy meets it, so the first assignment follows the first
request by one round trip.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc
from envoy.service.rate_limit_quota.v3 import rlqs_pb2, rlqs_pb2_grpc
from envoy.type.v3 import ratelimit_strategy_pb2

from heddle.ratelimit.model import RateLimitConfig
from heddle.ratelimit.quota.leases import Leases
from heddle.ratelimit.quota.limits import BucketLimit, bucket_key, limit_of
from heddle.ratelimit.quota.policy import FLOOR, Lease, lease_for

log = logging.getLogger(__name__)

REPORTING_INTERVAL = 5.0  # what Envoy 1.40 reports at, whatever reporting_interval says
ASSIGNMENT_TTL = 15  # three reports: a late one or two does not drop a proxy's lease
BlanketRule = ratelimit_strategy_pb2.RateLimitStrategy.BlanketRule


@dataclass
class QuotaStats:
    """What the service did: its work is these messages, not requests."""

    streams: int = 0
    reports: int = 0  # usage-report messages received
    responses: int = 0  # assignment messages sent
    bucket_reports: int = 0  # bucket usages those reports carried
    allowed: int = 0  # requests proxies reported passing, and refusing
    denied: int = 0


@dataclass
class _Held:
    """A bucket as one stream holds it: when it last reported it, what it was given."""

    reported_at: float
    lease: Lease | None = None


@dataclass
class _Stream:
    lessee: str
    held: dict[str, _Held] = field(default_factory=dict)


class RateLimitQuotaService(rlqs_pb2_grpc.RateLimitQuotaServiceServicer):  # type: ignore[misc]
    def __init__(self, leases: Leases, config: Callable[[], RateLimitConfig], *,
                 floor: float = FLOOR, assignment_ttl: int = ASSIGNMENT_TTL,
                 reporting_interval: float = REPORTING_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.leases = leases
        self.config = config
        self.floor = floor
        self.assignment_ttl = assignment_ttl
        self.reporting_interval = reporting_interval
        self.clock = clock
        self.stats = QuotaStats()
        self._replica = uuid.uuid4().hex[:8]  # lessees of several replicas never collide
        self._ids = itertools.count(1)

    async def StreamRateLimitQuotas(
            self, request_iterator: AsyncIterator[rlqs_pb2.RateLimitQuotaUsageReports],
            context: grpc.aio.ServicerContext[object, object],
    ) -> AsyncIterator[rlqs_pb2.RateLimitQuotaResponse]:
        stream = _Stream(f"{self._replica}-{next(self._ids)}")
        self.stats.streams += 1
        try:
            async for reports in request_iterator:
                answer = await self.answer(stream, reports)
                self.stats.responses += 1
                yield answer
        finally:
            try:
                await self.leases.leave(stream.lessee, list(stream.held))
            except Exception as err:  # its entries expire by themselves
                log.info("quota leases of %s not released: %s", stream.lessee, err)

    async def answer(self, stream: _Stream, reports: rlqs_pb2.RateLimitQuotaUsageReports,
                     ) -> rlqs_pb2.RateLimitQuotaResponse:
        self.stats.reports += 1
        now = self.clock()
        config = self.config()
        holdings: dict[str, tuple[float, int]] = {}
        buckets: list[tuple[str, rlqs_pb2.BucketId, BucketLimit | None]] = []
        for usage in reports.bucket_quota_usages:
            bucket = dict(usage.bucket_id.bucket)
            key = bucket_key(reports.domain, bucket)
            seen = usage.num_requests_allowed + usage.num_requests_denied
            self.stats.bucket_reports += 1
            self.stats.allowed += usage.num_requests_allowed
            self.stats.denied += usage.num_requests_denied
            held = stream.held.get(key)
            elapsed = (now - held.reported_at) if held is not None else self.reporting_interval
            if held is None:
                held = stream.held[key] = _Held(now)
            held.reported_at = now
            limit = limit_of(config, reports.domain, bucket)
            buckets.append((key, usage.bucket_id, limit))
            if limit is not None and not (limit.unlimited or limit.shadow):
                holdings[key] = (seen / max(elapsed, 0.001),
                                 held.lease.tokens if held.lease is not None else 0)
        holders = (await self.leases.report(stream.lessee, holdings, self.assignment_ttl)
                   if holdings else {})
        given: dict[str, tuple[float, int]] = {}
        response = rlqs_pb2.RateLimitQuotaResponse()
        for key, bucket_id, limit in buckets:
            action = response.bucket_action.add()
            action.bucket_id.CopyFrom(bucket_id)
            assignment = action.quota_assignment_action
            assignment.assignment_time_to_live.seconds = self.assignment_ttl
            if key not in holders or limit is None:
                assignment.rate_limit_strategy.blanket_rule = BlanketRule.ALLOW_ALL
                continue
            held = stream.held[key]
            held.lease = lease_for(stream.lessee, limit.requests, limit.window_seconds,
                                   holders[key], held.lease, self.floor)
            given[key] = (holdings[key][0], held.lease.tokens)
            _strategy(held.lease, assignment.rate_limit_strategy)
        if given:
            await self.leases.hold(stream.lessee, given, self.assignment_ttl)
        return response


def _strategy(lease: Lease, strategy: ratelimit_strategy_pb2.RateLimitStrategy) -> None:
    if lease.denies:
        strategy.blanket_rule = BlanketRule.DENY_ALL
        return
    bucket = strategy.token_bucket
    bucket.max_tokens = lease.capacity
    bucket.tokens_per_fill.value = lease.tokens
    bucket.fill_interval.seconds = lease.window_seconds
