"""Decisions over fixed windows: exactly N pass in a window, the next window starts afresh,
hits_addend counts as many, near-limit and shadow-mode hits are counted as upstream counts
them, and a backend that cannot answer gives the failure mode's answer."""

from __future__ import annotations

from collections.abc import Sequence

from heddle.ratelimit.backends import BackendUnavailable, Increment
from heddle.ratelimit.backends.memory import MemoryCounters
from heddle.ratelimit.config import load_texts
from heddle.ratelimit.limiter import DescriptorRequest, Limiter
from heddle.ratelimit.metrics import RateLimitMetrics
from heddle.ratelimit.near_cache import NearCache

CONFIG = load_texts([("limits.yaml", """
domain: edge
descriptors:
  - key: client
    rate_limit: {unit: minute, requests_per_unit: 10}
  - key: shadow
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: quota
    quota_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: free
    rate_limit: {unlimited: true}
""")])
START = 1_800_000_000.0 - 1_800_000_000 % 60  # the start of a minute


class Wall:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def limiter(wall: Wall, **kwargs: object) -> Limiter:
    return Limiter(kwargs.pop("counters", MemoryCounters(wall)),  # type: ignore[arg-type]
                   RateLimitMetrics(), lambda: CONFIG, wall=wall, **kwargs)  # type: ignore[arg-type]


def client(name: str, hits: int = 1) -> DescriptorRequest:
    return DescriptorRequest((("client", name),), hits)


async def test_exactly_n_pass_then_over_limit_until_the_window_ends() -> None:
    wall = Wall()
    rl = limiter(wall)
    answers = [(await rl.decide("edge", [client("a")])) for _ in range(12)]
    assert [a.over_limit for a in answers] == [False] * 10 + [True] * 2
    assert [a.descriptors[0].remaining for a in answers[:10]] == list(range(9, -1, -1))
    assert answers[-1].retry_after == 60 and answers[-1].descriptors[0].reset_seconds == 60
    wall.now += 59
    assert (await rl.decide("edge", [client("a")])).retry_after == 1
    wall.now += 1  # the next minute: a new counter
    assert not (await rl.decide("edge", [client("a")])).over_limit


async def test_each_value_of_a_default_key_has_its_own_counter() -> None:
    rl = limiter(Wall())
    await rl.decide("edge", [client("a", hits=10)])
    assert (await rl.decide("edge", [client("a")])).over_limit
    assert not (await rl.decide("edge", [client("b")])).over_limit


async def test_hits_and_near_limit_are_counted_as_upstream() -> None:
    rl = limiter(Wall())
    stats = rl.metrics
    for _ in range(12):
        await rl.decide("edge", [client("a")])
    labels = {"domain": "edge", "key": "client"}
    value = stats.value
    assert value("ratelimit_service_rate_limit_total_hits_total", **labels) == 12
    assert value("ratelimit_service_rate_limit_within_limit_total", **labels) == 10
    assert value("ratelimit_service_rate_limit_near_limit_total", **labels) == 2  # 9th, 10th
    assert value("ratelimit_service_rate_limit_over_limit_total", **labels) == 2


async def test_a_hits_addend_past_the_limit_counts_only_the_excess_as_over() -> None:
    rl = limiter(Wall())
    assert (await rl.decide("edge", [client("a", hits=12)])).over_limit
    labels = {"domain": "edge", "key": "client"}
    assert rl.metrics.value("ratelimit_service_rate_limit_over_limit_total", **labels) == 2
    assert rl.metrics.value("ratelimit_service_rate_limit_near_limit_total", **labels) == 2


async def test_shadow_mode_never_blocks_and_counts_what_it_would_have() -> None:
    rl = limiter(Wall())
    shadow = DescriptorRequest((("shadow", "x"),))
    answers = [await rl.decide("edge", [shadow]) for _ in range(5)]
    assert not any(a.over_limit for a in answers)
    assert rl.metrics.value("ratelimit_service_rate_limit_shadow_mode_total",
                            domain="edge", key="shadow") == 3


async def test_quota_descriptors_limit_only_when_all_are_over() -> None:
    rl = limiter(Wall())
    quota = DescriptorRequest((("quota", "x"),))
    await rl.decide("edge", [quota])
    over = await rl.decide("edge", [quota, client("a")])
    assert over.descriptors[0].over_limit and not over.descriptors[1].over_limit
    assert over.over_limit  # the only quota descriptor is over


async def test_unlimited_and_unmatched_descriptors_answer_ok() -> None:
    rl = limiter(Wall())
    decision = await rl.decide("edge", [DescriptorRequest((("free", "x"),), 100),
                                        DescriptorRequest((("other", "x"),))])
    assert not decision.over_limit
    assert decision.descriptors[0].unlimited and decision.descriptors[0].remaining == 2**32 - 1
    assert decision.descriptors[1].limit is None


class Unreachable:
    name = "redis"

    def __init__(self) -> None:
        self.calls = 0

    async def increment(self, increments: Sequence[Increment]) -> list[int]:
        self.calls += 1
        raise BackendUnavailable("down")

    async def close(self) -> None:
        pass


async def test_unreachable_counters_fail_open_by_default_and_closed_per_domain() -> None:
    wall = Wall()
    open_ = limiter(wall, counters=Unreachable())
    assert not (await open_.decide("edge", [client("a")])).over_limit
    closed = limiter(wall, counters=Unreachable(), domain_failure_mode_deny={"edge": True})
    assert (await closed.decide("edge", [client("a")])).over_limit
    # Shadow mode never blocks, even failing closed.
    assert not (await closed.decide("edge", [DescriptorRequest((("shadow", "x"),))])).over_limit


async def test_keys_over_their_limit_are_answered_from_the_near_cache() -> None:
    wall = Wall()
    counters = MemoryCounters(wall)
    sent: list[int] = []
    original = counters.increment

    async def counting(increments: Sequence[Increment]) -> list[int]:
        sent.append(len(increments))
        return await original(increments)

    counters.increment = counting  # type: ignore[method-assign]
    rl = limiter(wall, counters=counters, near_cache=NearCache())
    for _ in range(11):
        await rl.decide("edge", [client("a")])
    assert (await rl.decide("edge", [client("a")])).over_limit
    assert sent[-1] == 0  # the 12th asked for nothing
    assert rl.metrics.value("ratelimit_service_rate_limit_over_limit_with_local_cache_total",
                            domain="edge", key="client") == 1
    wall.now += 60  # the window is over: so is the cached verdict
    assert not (await rl.decide("edge", [client("a")])).over_limit


def test_the_near_cache_is_bounded() -> None:
    cache = NearCache(max_keys=10)
    for i in range(25):
        cache.remember(f"k{i}", 100.0, 0.0)
    assert len(cache) <= 10
    assert cache.is_over_limit("k24", 1.0) and not cache.is_over_limit("k24", 100.0)
