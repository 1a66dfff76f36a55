"""WorkloadGroup instances: registered while connected, out of endpoints while unhealthy."""

from __future__ import annotations

from heddle.registry.model import Workload
from heddle.xds.membership import Membership

VM = Workload("default", "backend-pool-1", "127.0.20.1", (("app", "backend"),))


async def test_join_and_leave_change_the_version_and_notify() -> None:
    notified: list[int] = []
    members = Membership(on_change=lambda: notified.append(1))
    members.join("proxy-1", VM)
    assert members.healthy() == [VM] and members.version == 1
    members.leave("proxy-1")
    members.leave("proxy-1")  # leaving twice is not a change
    assert members.healthy() == [] and members.version == 2 and len(notified) == 2


async def test_failing_probes_remove_the_instance_until_it_answers_again() -> None:
    answers = {VM.address: True}

    async def probe(workload: Workload) -> bool:
        return answers[workload.address]

    members = Membership()
    members.join("proxy-1", VM, period=1, failure_threshold=2)
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
