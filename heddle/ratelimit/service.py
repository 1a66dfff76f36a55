"""`envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit` over grpc.aio."""

from __future__ import annotations

from collections.abc import Sequence

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
        return response(await self.limiter.decide(request.domain, descriptors), descriptors)


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


# What the proxy's access log reads (dynamic metadata of its ratelimit filter): the
# descriptor that limited the request, or that would have in shadow mode.
LIMITED_BY = "limited_by"
SHADOW_LIMITED_BY = "shadow_limited_by"


def _describe(request: DescriptorRequest) -> str:
    return ",".join(f"{key}={value}" if value else key for key, value in request.entries)


def response(decision: Decision, requests: Sequence[DescriptorRequest] = (),
             ) -> rls_pb2.RateLimitResponse:
    """The answer; `requests` (in the order of `decision.descriptors`) name in its dynamic
    metadata the first descriptor that limited the request, and the first in shadow mode."""
    answer = rls_pb2.RateLimitResponse(
        overall_code=OVER_LIMIT if decision.over_limit else OK,
        statuses=[_status(d) for d in decision.descriptors])
    if decision.over_limit:
        answer.response_headers_to_add.append(
            base_pb2.HeaderValue(key="retry-after", value=str(decision.retry_after)))
    named = list(zip(decision.descriptors, requests, strict=False))
    limited = next((r for d, r in named if d.over_limit), None)
    shadowed = next((r for d, r in named if d.shadow), None)
    if limited is not None:
        answer.dynamic_metadata.fields[LIMITED_BY].string_value = _describe(limited)
    if shadowed is not None:
        answer.dynamic_metadata.fields[SHADOW_LIMITED_BY].string_value = _describe(shadowed)
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
