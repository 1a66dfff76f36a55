"""Restarting an exited process as kubelet restarts a container with `restartPolicy:
Always`: the wait doubles from the first delay up to a cap and starts again after a long
run, and every exit is logged with its exit code or signal. Run on a FakeClock."""

from __future__ import annotations

import asyncio
import logging
import signal

import pytest

from heddle.supervise import KUBELET_BACKOFF, Backoff, describe_exit, keep_running
from heddle.testing.clock import FakeClock


def test_kubelets_back_off_doubles_from_10s_to_5_minutes_and_resets_after_10() -> None:
    waits: list[float] = []
    delay = None
    for _ in range(8):
        delay = KUBELET_BACKOFF.next(delay, ran=1.0)
        waits.append(delay)
    assert waits == [10, 20, 40, 80, 160, 300, 300, 300]
    assert KUBELET_BACKOFF.next(300, ran=600) == 10  # ran 10 minutes: forgiven


def test_an_exit_is_described_by_its_code_or_its_signal() -> None:
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-signal.SIGKILL) == "killed by signal 9 (SIGKILL)"
    assert describe_exit(-200) == "killed by signal 200"  # no name for it


class FakeProcess:
    """What keep_running sees of a process: its pid, `wait()`, and its returncode."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._exited = asyncio.Event()

    def exit(self, returncode: int) -> None:
        self.returncode = returncode
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        assert self.returncode is not None
        return self.returncode


async def test_an_exited_process_is_restarted_after_each_back_off_and_its_exit_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    started: list[tuple[float, FakeProcess]] = []

    async def start() -> asyncio.subprocess.Process:
        process = FakeProcess(100 + len(started))
        started.append((clock.now(), process))
        return process  # type: ignore[return-value]

    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="heddle.supervise")
    keeper = asyncio.create_task(keep_running(
        start, stop, "application", backoff=Backoff(initial=2, cap=5, reset_after=60),
        clock=clock))
    await clock.advance(0)
    started[-1][1].exit(-signal.SIGKILL)
    await clock.advance(1.9)
    assert len(started) == 1  # still backing off
    await clock.advance(0.1)
    assert [t for t, _ in started] == [0, 2]
    started[-1][1].exit(3)
    await clock.advance(4)
    assert len(started) == 3 and started[-1][0] == 6  # waited twice as long: 4 s
    await clock.advance(100)  # runs longer than reset_after
    started[-1][1].exit(1)
    await clock.advance(2)
    assert len(started) == 4 and started[-1][0] == 108  # the first delay again
    stop.set()
    await asyncio.wait_for(keeper, 1)
    assert len(started) == 4  # no restart once stopped
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == ("application (pid 100) exited: killed by signal 9 (SIGKILL) "
                           "after 0.0s; restarting in 2.0s (restart 1)")
    assert "exit code 3 after 0.0s; restarting in 4.0s (restart 2)" in messages[1]
    assert "exit code 1 after 100.0s; restarting in 2.0s (restart 3)" in messages[2]
