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
from heddle.ratelimit.quota.policy import Lease, lease_for, leases, shares, tokens
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
    # Shared: a fifth of its tokens at once (a change refills a bucket: a small burst).
    split = leases(100, 1, {"a": 90.0, "b": 10.0})
    assert split == {"a": Lease(90, 1, 18), "b": Lease(10, 1, 2)}
    assert (split["a"].capacity, split["b"].capacity) == (18, 2)
    # Alone: the whole limit at once, as a fixed window passes it (its lease never changes).
    assert leases(100, 1, {"a": 5.0}) == {"a": Lease(100, 1)}
    assert leases(100, 1, {"a": 5.0})["a"].capacity == 100
    assert leases(1, 60, {"a": 9.0, "b": 1.0})["b"].denies


def test_a_lease_close_to_the_fair_one_stays_within_what_the_others_leave() -> None:
    held = Lease(40, 1, 8)
    assert held.keeps(Lease(45, 1, 9))  # unchanged: Envoy keeps the bucket's tokens
    assert held.keeps(Lease(37, 1, 8))  # a little smaller: not worth a burst either
    assert not held.keeps(Lease(60, 1, 12))
    assert not held.keeps(Lease(30, 1, 6))
    assert not held.keeps(Lease(37, 1, 8), cap=39)  # the others hold the rest: shrink


def test_the_leases_held_never_sum_past_the_limit_while_demand_shifts() -> None:
    # a holds 60 of 100; b's demand grew to 3x a's: b gets what a leaves, not its fair 75.
    holders = {"a": (10.0, 60), "b": (30.0, 40)}
    assert lease_for("b", 100, 1, holders, Lease(40, 1, 8)) == Lease(40, 1, 8)
    # a reports next and shrinks to its fair 25; then b grows into the room.
    assert lease_for("a", 100, 1, holders, Lease(60, 1, 12)) == Lease(25, 1, 5)
    holders["a"] = (10.0, 25)
    assert lease_for("b", 100, 1, holders, Lease(40, 1, 8)) == Lease(75, 1, 15)
    # A joining proxy gets a little past the cap (5 % of the limit), not nothing.
    joined = lease_for("c", 100, 1, {"a": (10.0, 25), "b": (30.0, 75), "c": (20.0, 0)}, None)
    assert joined.tokens == 5  # its fair share (33) waits for a and b to report


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
    """The lease's tokens per window (its refill; max_tokens is its burst)."""
    [action] = response.bucket_action
    strategy = action.quota_assignment_action.rate_limit_strategy
    assert action.quota_assignment_action.assignment_time_to_live.seconds > 0
    if not strategy.HasField("token_bucket"):
        return 0
    bucket = strategy.token_bucket
    assert 0 < bucket.max_tokens <= bucket.tokens_per_fill.value
    return int(bucket.tokens_per_fill.value)


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
    # b joined while a held everything: its first lease was 5 (a little past the cap); a's
    # new share (95, b's demand then its first request's) fits beside it; b's fair 10 does
    # not fit beside a's 95 yet, so it keeps 5: the leases held never pass the limit.
    assert (busy, quiet) == (95, 5)
    now[0] = 10.0
    assert tokens_of(asyncio.run(service.answer(a, report(450)))) == 90  # room for b's 10
    assert tokens_of(asyncio.run(service.answer(b, report(50)))) == 10
    assert service.stats.reports == 6 and service.stats.denied == 50


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
        return (await leases_.report("c", {key: (1.0, 0)}, 15))[key]

    assert sorted(asyncio.run(run())) == ["b", "c"]
