"""WorkloadGroup instances: registered while connected, in the endpoints only once their
probe passed and while it keeps passing, and never removed by another stream's close."""

from __future__ import annotations

import asyncio

from heddle.registry.membership import EntryKey, InstanceKey, Membership
from heddle.registry.model import Workload
from heddle.testing.clock import FakeClock

VM = Workload("default", "backend-pool-1", "127.0.20.1", (("app", "backend"),))
KEY = InstanceKey("default", "backend-pool", VM.address)


async def always(_: Workload) -> bool:
    return True


async def test_an_instance_joins_unhealthy_until_its_probe_first_passes() -> None:
    notified: list[int] = []
    members = Membership(on_change=lambda: notified.append(1))
    assert members.join("proxy-1", KEY, VM) is True
    assert members.healthy() == [] and notified == []  # nothing to push yet
    await members.check_due(always, now=0)
    assert members.healthy() == [VM] and members.version == 1 and len(notified) == 1


async def test_leaving_removes_the_instance_and_notifies_once() -> None:
    members = Membership()
    members.join("proxy-1", KEY, VM)
    await members.check_due(always, now=0)
    assert members.leave("proxy-1") is True
    assert members.leave("proxy-1") is False  # leaving twice is not a change
    assert members.healthy() == [] and members.version == 2


async def test_a_second_stream_neither_replaces_nor_removes_the_first_ones_instance() -> None:
    members = Membership()
    members.join("node-1", KEY, VM)
    await members.check_due(always, now=0)
    impostor = Workload("default", "other-name", VM.address, (("app", "evil"),))
    assert members.join("node-2", KEY, impostor) is False  # the same instance: no new one
    assert members.healthy() == [VM]  # still the first registration's workload
    assert members.leave("node-2") is False  # the first stream still holds it
    assert members.healthy() == [VM]
    assert members.leave("node-1") is True
    assert members.healthy() == []


async def test_failing_probes_remove_the_instance_until_it_answers_again() -> None:
    answers = {VM.address: True}

    async def probe(workload: Workload) -> bool:
        return answers[workload.address]

    members = Membership()
    members.join("proxy-1", KEY, VM, period=1, failure_threshold=2)
    await members.check_due(probe, now=0)
    answers[VM.address] = False
    await members.check_due(probe, now=1)
    assert members.healthy() == [VM]  # one failure is under the threshold
    await members.check_due(probe, now=1.5)  # not due yet: no probe, no change
    assert members.healthy() == [VM]
    await members.check_due(probe, now=2)
    assert members.healthy() == []
    answers[VM.address] = True
    await members.check_due(probe, now=3)
    assert members.healthy() == [VM]


async def test_an_instance_that_never_answers_never_gets_traffic() -> None:
    async def never(_: Workload) -> bool:
        return False

    members = Membership()
    members.join("proxy-1", KEY, VM, period=1)
    for now in range(5):
        await members.check_due(never, now=now)
    assert members.healthy() == [] and members.version == 0


async def test_health_checks_probe_once_per_period_of_the_clock() -> None:
    clock = FakeClock()
    probed: list[float] = []

    async def probe(_: Workload) -> bool:
        probed.append(clock.now())
        return True

    members = Membership(clock=clock)
    members.join("proxy-1", KEY, VM, period=5.0)
    stop = asyncio.Event()
    checks = asyncio.create_task(members.run_health_checks(probe, stop, tick=0.25))
    await clock.advance(0)
    assert probed == [0] and members.healthy() == [VM]
    await clock.advance(4.9)
    assert probed == [0]
    await clock.advance(0.2)
    assert len(probed) == 2
    stop.set()
    await clock.advance(1)
    await checks


# --- WorkloadEntries whose agent reports readiness ----------------------------------------

ENTRY = Workload("default", "backend-1", "127.0.20.3", (("app", "backend"),))
ENTRY_KEY = EntryKey("default", "backend-1")


async def test_a_watched_entry_counts_as_ready_until_a_probe_fails_once_it_has_passed() -> None:
    """A configured entry is in the endpoints before any probe (a restarted control plane
    takes no endpoint away while it learns health; a workload whose proxy connects before
    its application listens keeps its endpoint while it starts), and once its probe has
    passed it leaves them when the probe fails `failure_threshold` times in a row."""
    answers = {ENTRY.address: False}

    async def probe(workload: Workload) -> bool:
        return answers[workload.address]

    notified: list[int] = []
    members = Membership(on_change=lambda: notified.append(1))
    assert members.watch("backend-1-1", ENTRY_KEY, ENTRY, period=0.5, failure_threshold=2)
    assert members.unready() == frozenset() and notified == []
    for now in (0, 0.5, 1.0):  # still starting: never ready yet, so it stays
        await members.check_due(probe, now=now)
        assert members.unready() == frozenset() and notified == []
    answers[ENTRY.address] = True
    await members.check_due(probe, now=1.5)
    assert members.entries() == {ENTRY_KEY: True} and notified == []
    answers[ENTRY.address] = False
    await members.check_due(probe, now=2.0)
    assert members.unready() == frozenset()  # one failure is not enough
    await members.check_due(probe, now=2.5)
    assert members.unready() == {("default", "backend-1")} and len(notified) == 1
    assert members.healthy() == []  # an entry is never a registered instance
    answers[ENTRY.address] = True
    await members.check_due(probe, now=3.0)
    assert members.unready() == frozenset() and len(notified) == 2
    assert members.entries() == {ENTRY_KEY: True}


async def test_an_unready_entry_is_ready_again_once_its_last_stream_closes() -> None:
    answers = {ENTRY.address: True}

    async def probe(workload: Workload) -> bool:
        return answers[workload.address]

    members = Membership()
    members.watch("backend-1-1", ENTRY_KEY, ENTRY, failure_threshold=1)
    assert members.watch("backend-1-2", ENTRY_KEY, ENTRY, failure_threshold=1) is False
    await members.check_due(probe, now=0)
    answers[ENTRY.address] = False
    await members.check_due(probe, now=10)
    assert members.unready() == {("default", "backend-1")}
    assert members.leave("backend-1-1") is False  # another of its streams is open
    assert members.unready() == {("default", "backend-1")}
    version = members.version
    assert members.leave("backend-1-2") is True
    assert members.unready() == frozenset() and members.version == version + 1
