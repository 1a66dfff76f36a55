"""Bursts of changes become one push; a steady stream still pushes by the maximum delay.
Time is a FakeClock's: nothing here sleeps."""

from __future__ import annotations

from heddle.api.resource import ResourceKey
from heddle.testing.clock import FakeClock, settle
from heddle.xds.debounce import Debouncer
from heddle.xds.push import PushRequest


def recorder() -> tuple[list[PushRequest], Debouncer, FakeClock]:
    pushes: list[PushRequest] = []

    async def push(request: PushRequest) -> None:
        pushes.append(request)

    clock = FakeClock()
    return pushes, Debouncer(push, quiet=0.05, maximum=1.0, clock=clock), clock


async def test_a_burst_of_changes_is_pushed_once_after_the_quiet_period() -> None:
    pushes, debouncer, clock = recorder()
    debouncer.start()
    for _ in range(20):
        debouncer.trigger()
        await settle(2)
    await clock.advance(0.04)
    assert pushes == []  # not quiet long enough yet
    await clock.advance(0.02)
    assert len(pushes) == 1
    await clock.advance(10)
    await debouncer.stop()
    assert len(pushes) == 1


async def test_changes_that_never_pause_are_pushed_by_the_maximum_delay() -> None:
    pushes, debouncer, clock = recorder()
    debouncer.start()
    for _ in range(99):  # a change every 10 ms: never quiet for 50 ms
        debouncer.trigger()
        await clock.advance(0.01)
    assert len(pushes) == 0
    for _ in range(2):
        debouncer.trigger()
        await clock.advance(0.01)
    assert len(pushes) == 1 and clock.now() >= 1.0
    await debouncer.stop()


async def test_one_push_merges_what_every_trigger_named() -> None:
    pushes, debouncer, clock = recorder()
    debouncer.start()
    a = ResourceKey("networking.istio.io", "VirtualService", "default", "a")
    b = ResourceKey("networking.istio.io", "VirtualService", "default", "b")
    debouncer.trigger([a])
    await settle(2)
    debouncer.trigger([b])
    await clock.advance(0.1)
    assert pushes == [PushRequest.of([a, b])]
    await debouncer.stop()
