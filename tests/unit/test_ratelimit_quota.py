"""Quota leasing: a bucket's limit splits among the proxies that report it, by their demand,
into token buckets that together never pass more than the limit; the RLQS servicer answers
each report with the reporting proxy's share, in memory or through state another replica
shares."""

from __future__ import annotations

import asyncio

import yaml
from envoy.service.rate_limit_quota.v3 import rlqs_pb2

from heddle.ratelimit.config import load_texts
from heddle.ratelimit.quota.leases import MemoryLeases
from heddle.ratelimit.quota.limits import BucketLimit, bucket_key, limit_of
from heddle.ratelimit.quota.policy import Lease, leases, shares, tokens
from heddle.ratelimit.quota.service import RateLimitQuotaService, _Stream

CONFIG = load_texts([("heddle.yaml", yaml.safe_dump({"domain": "heddle", "descriptors": [
    {"key": "heddle.rule", "value": "default/api/global/0", "descriptors": [
        {"key": "heddle.place", "descriptors": [
            {"key": "c0", "rate_limit": {"unit": "SECOND", "requests_per_unit": 100}}]}]},
    {"key": "heddle.rule", "value": "default/api/global/1", "shadow_mode": True,
     "rate_limit": {"unit": "MINUTE", "requests_per_unit": 5}},
]}))])
BUCKET = {"heddle.rule": "default/api/global/0", "heddle.place": "default/api/r0", "c0": "al"}


def test_shares_follow_demand_and_an_idle_proxy_keeps_a_floor() -> None:
    assert shares({"a": 30.0, "b": 10.0}) == {"a": 0.75, "b": 0.25}
    idle = shares({"a": 100.0, "b": 0.0})
    assert 0.04 < idle["b"] < 0.06 and abs(sum(idle.values()) - 1) < 1e-9
    assert shares({"a": 0.0, "b": 0.0}) == {"a": 0.5, "b": 0.5}  # nothing known yet


def test_tokens_sum_to_the_limit_exactly() -> None:
    split = tokens(10, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert sum(split.values()) == 10 and sorted(split.values()) == [3, 3, 4]
    assert tokens(1, {"a": 0.5, "b": 0.5}) == {"a": 1, "b": 0}  # ties by name, alike everywhere


def test_a_lease_is_a_token_bucket_of_its_tokens_per_window_or_a_refusal() -> None:
    split = leases(100, 1, {"a": 90.0, "b": 10.0})
    assert split == {"a": Lease(90, 1), "b": Lease(10, 1)}
    assert leases(1, 60, {"a": 9.0, "b": 1.0})["b"].denies


def test_a_lease_stays_when_it_would_grow_a_little_and_shrinks_at_once() -> None:
    held = Lease(40, 1)
    assert held.keeps(Lease(45, 1))  # unchanged: Envoy keeps the bucket's tokens
    assert not held.keeps(Lease(60, 1))
    assert not held.keeps(Lease(39, 1))  # never more than the split allows


def test_a_bucket_takes_its_rules_limit_from_the_domain_config() -> None:
    assert limit_of(CONFIG, "heddle", BUCKET) == BucketLimit(100, 1)
    shadow = limit_of(CONFIG, "heddle", {"heddle.rule": "default/api/global/1"})
    assert shadow == BucketLimit(5, 60, shadow=True)
    assert limit_of(CONFIG, "heddle", {"heddle.rule": "nope"}) is None
    assert limit_of(CONFIG, "other", BUCKET) is None
    assert bucket_key("heddle", {"b": "2", "a": "1"}) == bucket_key("heddle", {"a": "1", "b": "2"})


def report(allowed: int, denied: int = 0, bucket: dict[str, str] = BUCKET,
           ) -> rlqs_pb2.RateLimitQuotaUsageReports:
    reports = rlqs_pb2.RateLimitQuotaUsageReports(domain="heddle")
    usage = reports.bucket_quota_usages.add(num_requests_allowed=allowed,
                                            num_requests_denied=denied)
    usage.bucket_id.bucket.update(bucket)
    return reports


def tokens_of(response: rlqs_pb2.RateLimitQuotaResponse) -> int:
    [action] = response.bucket_action
    strategy = action.quota_assignment_action.rate_limit_strategy
    assert action.quota_assignment_action.assignment_time_to_live.seconds > 0
    return strategy.token_bucket.max_tokens if strategy.HasField("token_bucket") else 0


def test_two_proxies_split_a_limit_by_what_each_reports() -> None:
    now = [0.0]
    service = RateLimitQuotaService(MemoryLeases(lambda: now[0]), lambda: CONFIG,
                                    clock=lambda: now[0])
    a, b = _Stream("a"), _Stream("b")

    async def run() -> tuple[int, int, int]:
        alone = tokens_of(await service.answer(a, report(1)))  # the first proxy: everything
        await service.answer(b, report(1))
        now[0] = 5.0
        busy = tokens_of(await service.answer(a, report(400, 50)))  # 90 rps seen
        quiet = tokens_of(await service.answer(b, report(50)))  # 10 rps
        return alone, busy, quiet

    alone, busy, quiet = asyncio.run(run())
    assert alone == 100
    # a's share was computed while b's demand was its first request's: for one reporting
    # interval the leases (95 + 10) pass more than the limit, until a reports again.
    assert (busy, quiet) == (95, 10)
    now[0] = 10.0
    assert tokens_of(asyncio.run(service.answer(a, report(450)))) == 90
    assert service.stats.reports == 5 and service.stats.denied == 50


def test_a_bucket_without_a_limit_or_a_shadow_rule_is_allowed_all() -> None:
    service = RateLimitQuotaService(MemoryLeases(), lambda: CONFIG)
    for bucket in ({"heddle.rule": "unknown"}, {"heddle.rule": "default/api/global/1"}):
        [action] = asyncio.run(service.answer(_Stream("a"), report(3, bucket=bucket))
                               ).bucket_action
        assert action.quota_assignment_action.rate_limit_strategy.blanket_rule == 0  # ALLOW_ALL


def test_a_proxy_that_leaves_gives_its_share_back() -> None:
    leases_ = MemoryLeases()
    service = RateLimitQuotaService(leases_, lambda: CONFIG)
    key = bucket_key("heddle", BUCKET)

    async def run() -> dict[str, float]:
        await service.answer(_Stream("a"), report(1))
        await leases_.leave("b", [key])  # never held: nothing happens
        await service.answer(_Stream("b"), report(1))
        await leases_.leave("a", [key])
        return (await leases_.report("c", {key: 1.0}, 15))[key]

    assert sorted(asyncio.run(run())) == ["b", "c"]
