"""`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` over grpc.aio."""

from __future__ import annotations

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from heddle.ratelimit.limiter import Decision, DescriptorDecision, DescriptorRequest, Limiter
from heddle.ratelimit.matching import Override
from heddle.ratelimit.units import Unit

OK = rls_pb2.RateLimitResponse.OK
OVER_LIMIT = rls_pb2.RateLimitResponse.OVER_LIMIT


class RateLimitService(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def ShouldRateLimit(self, request: rls_pb2.RateLimitRequest,
                              context: grpc.aio.ServicerContext[object, object]
                              ) -> rls_pb2.RateLimitResponse:
        if not request.domain:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "rate limit domain must not be empty")
        if not request.descriptors:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "rate limit descriptor list must not be empty")
        try:
            descriptors = [_descriptor(d, request.hits_addend) for d in request.descriptors]
        except ValueError as err:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        return response(await self.limiter.decide(request.domain, descriptors))


def _descriptor(descriptor: object, request_hits: int) -> DescriptorRequest:
    entries = tuple((e.key, e.value) for e in descriptor.entries)  # type: ignore[attr-defined]
    # A descriptor's own hits_addend (which may be 0: look without counting) wins; else the
    # request's, where 0 means unset and so 1.
    hits = (descriptor.hits_addend.value  # type: ignore[attr-defined]
            if descriptor.HasField("hits_addend")  # type: ignore[attr-defined]
            else max(1, request_hits))
    override = None
    if descriptor.HasField("limit"):  # type: ignore[attr-defined]
        limit = descriptor.limit  # type: ignore[attr-defined]
        if limit.unit not in Unit._value2member_map_:
            raise ValueError(f"descriptor limit override has no valid unit ({limit.unit})")
        override = Override(limit.requests_per_unit, Unit(limit.unit))
    return DescriptorRequest(entries, hits, override)


def response(decision: Decision) -> rls_pb2.RateLimitResponse:
    answer = rls_pb2.RateLimitResponse(
        overall_code=OVER_LIMIT if decision.over_limit else OK,
        statuses=[_status(d) for d in decision.descriptors])
    if decision.over_limit:
        answer.response_headers_to_add.append(
            base_pb2.HeaderValue(key="retry-after", value=str(decision.retry_after)))
    return answer


def _status(decision: DescriptorDecision) -> rls_pb2.RateLimitResponse.DescriptorStatus:
    status = rls_pb2.RateLimitResponse.DescriptorStatus(
        code=OVER_LIMIT if decision.over_limit else OK, limit_remaining=decision.remaining)
    limit = decision.limit
    if limit is not None and limit.unit is not None:
        status.current_limit.requests_per_unit = limit.requests_per_unit
        status.current_limit.unit = int(limit.unit)
        if limit.name:
            status.current_limit.name = limit.name
        status.duration_until_reset.seconds = decision.reset_seconds
    return status
