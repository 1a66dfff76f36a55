"""At most so many responses are built and not yet written; a slot not given back returns
by itself, so a proxy that stops reading cannot hold one."""

from __future__ import annotations

import asyncio

from heddle.xds.throttle import SendThrottle


async def test_a_slot_waits_for_one_given_back() -> None:
    throttle = SendThrottle(at_once=2, held_at_most=60)
    first, second = await throttle.slot(), await throttle.slot()
    third = asyncio.create_task(throttle.slot())
    await asyncio.sleep(0.01)
    assert not third.done() and throttle.in_use == 2
    first()
    first()  # giving back twice gives back once
    give_back = await asyncio.wait_for(third, 1)
    assert throttle.in_use == 2
    second()
    give_back()
    assert throttle.in_use == 0


async def test_a_slot_held_too_long_is_given_back() -> None:
    throttle = SendThrottle(at_once=1, held_at_most=0.05)
    kept = await throttle.slot()
    later = await asyncio.wait_for(throttle.slot(), 1)  # the first came back on its own
    kept()  # late: changes nothing
    assert throttle.in_use == 1
    later()
    assert throttle.in_use == 0
