"""A decision: which limits a request's descriptors fall under, their counters, and the
answer, as envoyproxy/ratelimit's limiter gives it.

A count past `requests_per_unit` is OVER_LIMIT; past `near_limit_ratio` of it (0.8, as
upstream) the hits also count as near_limit. A shadow-mode limit is counted and reported as
if it limited, but answers OK. Quota-mode descriptors limit the request only when all of
them are over. When the counters cannot be reached, the domain's failure mode answers:
allow (OK) or deny (OVER_LIMIT); shadow-mode limits still never block.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from heddle.ratelimit.backends import BackendUnavailable, Counters, Increment
from heddle.ratelimit.matching import Entry, Match, Override, find_limit, limits_to_check
from heddle.ratelimit.metrics import RateLimitMetrics
from heddle.ratelimit.model import RateLimit, RateLimitConfig
from heddle.ratelimit.near_cache import NearCache
from heddle.ratelimit.windows import counter_key, seconds_until_reset

log = logging.getLogger(__name__)

NEAR_LIMIT_RATIO = 0.8


@dataclass(frozen=True)
class DescriptorRequest:
    entries: tuple[Entry, ...]
    hits: int = 1  # hits_addend: what this request adds to the counter (0: only look)
    override: Override | None = None


@dataclass(frozen=True)
class DescriptorDecision:
    over_limit: bool
    limit: RateLimit | None = None  # the limit that applied (current_limit)
    remaining: int = 0
    reset_seconds: int = 0  # until the window ends (duration_until_reset)
    unlimited: bool = False
    shadow: bool = False  # over a shadow-mode limit: answered OK, reported as would-limit


@dataclass(frozen=True)
class Decision:
    over_limit: bool
    descriptors: tuple[DescriptorDecision, ...]
    retry_after: int = 0  # seconds until every limit that refused resets; 0 when allowed


@dataclass(frozen=True)
class _Counted:
    index: int
    match: Match
    key: str
    hits: int
    reset_seconds: int
    from_near_cache: bool


class Limiter:
    def __init__(self, counters: Counters, metrics: RateLimitMetrics,
                 config: Callable[[], RateLimitConfig], *, near_cache: NearCache | None = None,
                 near_limit_ratio: float = NEAR_LIMIT_RATIO, failure_mode_deny: bool = False,
                 domain_failure_mode_deny: dict[str, bool] | None = None,
                 key_prefix: str = "", wall: Callable[[], float] = time.time) -> None:
        self.counters = counters
        self.metrics = metrics
        self.config = config
        self.near_cache = near_cache
        self.near_limit_ratio = near_limit_ratio
        self.failure_mode_deny = failure_mode_deny
        self.domain_failure_mode_deny = domain_failure_mode_deny or {}
        self.key_prefix = key_prefix
        self.wall = wall
        self._unavailable = False  # logged once a spell, not once a request

    async def decide(self, domain: str, descriptors: Sequence[DescriptorRequest]) -> Decision:
        config = self.config()
        if domain not in config.domains:
            self.metrics.domain_not_found.labels(domain).inc()
        applied = limits_to_check([find_limit(config, domain, d.entries, d.override)
                                   for d in descriptors])
        now = self.wall()
        second = int(now)
        counted: list[_Counted] = []
        increments: list[Increment] = []
        for index, match in enumerate(applied.matches):
            if match is None:
                continue
            unit = match.limit.unit
            assert unit is not None  # only unlimited limits have none, and they are not counted
            request = descriptors[index]
            key = counter_key(self.key_prefix, domain, request.entries, match.shared_values,
                              unit, second)
            self.metrics.descriptor(domain, match.stat_key).total_hits.inc(request.hits)
            cached = self.near_cache is not None and self.near_cache.is_over_limit(key, now)
            counted.append(_Counted(index, match, key, request.hits,
                                    seconds_until_reset(unit, second), cached))
            if not cached:
                increments.append(Increment(key, request.hits, unit.seconds))
        try:
            counts = iter(await self.counters.increment(increments))
        except BackendUnavailable as err:
            return self._unreachable(domain, applied.unlimited, counted, err)
        if self._unavailable:
            self._unavailable = False
            log.info("%s counters reachable again: limiting resumed", self.counters.name)
        statuses: list[DescriptorDecision] = [
            DescriptorDecision(False, remaining=2**32 - 1 if unlimited else 0,
                               unlimited=unlimited) for unlimited in applied.unlimited]
        for item in counted:
            after = None if item.from_near_cache else next(counts)
            statuses[item.index] = self._status(domain, item, after, now)
        return _overall(statuses)

    def _status(self, domain: str, item: _Counted, after: int | None,
                now: float) -> DescriptorDecision:
        limit, hits = item.match.limit, item.hits
        stats = self.metrics.descriptor(domain, item.match.stat_key)
        allowed = limit.requests_per_unit
        crossed = False  # this decision took the counter over: the one worth a log line
        if after is None:  # over its limit earlier in this window (near-cache)
            stats.over_limit.inc(hits)
            stats.over_limit_with_local_cache.inc(hits)
            over, over_hits = True, hits
        else:
            before = after - hits
            near = math.floor(allowed * self.near_limit_ratio)
            over = after > allowed
            if over:
                over_hits = hits if before >= allowed else after - allowed
                crossed = before < allowed
                stats.over_limit.inc(over_hits)
                if before < allowed:
                    stats.near_limit.inc(allowed - max(near, before))
                if self.near_cache is not None:
                    self.near_cache.remember(item.key, now + item.reset_seconds, now)
            else:
                if after > near:
                    stats.near_limit.inc(hits if before >= near else after - near)
                stats.within_limit.inc(hits)
        shadow = over and limit.shadow_mode
        if shadow:
            stats.shadow_mode.inc(over_hits)
            if crossed:  # once a window, not once a request
                log.info("shadow mode: %s went over its limit of %d per %s; answering OK "
                         "(would have limited for %ds)", item.match.stat_key, allowed,
                         _unit_name(limit), item.reset_seconds)
            over = False
        remaining = 0 if over or after is None else max(0, allowed - after)
        return DescriptorDecision(over, limit, remaining, item.reset_seconds, shadow=shadow)

    def _unreachable(self, domain: str, unlimited: Sequence[bool], counted: list[_Counted],
                     err: BackendUnavailable) -> Decision:
        deny = self.domain_failure_mode_deny.get(domain, self.failure_mode_deny)
        if not self._unavailable:
            self._unavailable = True
            log.warning("%s; failing %s until it answers", err,
                        "closed (OVER_LIMIT)" if deny else "open (OK)")
        statuses = [DescriptorDecision(False, remaining=2**32 - 1 if u else 0, unlimited=u)
                    for u in unlimited]
        for item in counted:
            limit = item.match.limit
            if item.from_near_cache:  # still known to be over: no need to ask
                statuses[item.index] = self._status(domain, item, None, self.wall())
                continue
            over = deny and not limit.shadow_mode
            statuses[item.index] = DescriptorDecision(
                over, limit, 0 if over else limit.requests_per_unit, item.reset_seconds)
        return _overall(statuses)


def _overall(statuses: list[DescriptorDecision]) -> Decision:
    quota = [s for s in statuses if s.limit is not None and s.limit.quota_mode]
    refused = [s for s in statuses if s.over_limit and not (s.limit and s.limit.quota_mode)]
    if quota and all(s.over_limit for s in quota):
        refused += quota
    if not refused:
        return Decision(False, tuple(statuses))
    return Decision(True, tuple(statuses), max(s.reset_seconds for s in refused))


def _unit_name(limit: RateLimit) -> str:
    return limit.unit.name.lower() if limit.unit else "unlimited"
