"""The agent's waits are on its Clock: the wait for the CA at start-up, certificate
renewals and the wait for Envoy to be ready run here on a FakeClock, with no real time
passing."""

from __future__ import annotations

import asyncio
import datetime
import random
from pathlib import Path

import pytest

from heddle.agent.bootstrap import bootstrap
from heddle.agent.certificates import (
    FIRST_RETRY,
    FIRST_TIMEOUT,
    CertificateRequestFailed,
    CertificateRotator,
    WorkloadCertificate,
)
from heddle.agent.envoy_process import EnvoyProcess
from heddle.agent.http import HttpResponse
from heddle.ca.identity import Identity
from heddle.model.proxy import Proxy, ProxyType
from heddle.testing.clock import FakeClock

FRONTEND = Identity("default", "frontend")


class FakeCa:
    """A CertificateSource that fails with `failures` (one per request, in order) and then
    issues certificates valid for `lifetime` seconds of the clock's wall time."""

    def __init__(self, clock: FakeClock, failures: list[str] | None = None,
                 lifetime: float = 100.0) -> None:
        self.clock = clock
        self.failures = failures
        self.lifetime = lifetime
        self.asked: list[float] = []  # the clock's time of each request

    async def request(self, identity: Identity, lifetime: datetime.timedelta | None = None,
                      current: WorkloadCertificate | None = None) -> WorkloadCertificate:
        self.asked.append(self.clock.now())
        if self.failures is None:
            raise CertificateRequestFailed("UNAVAILABLE", "connection refused")
        if self.failures:
            raise CertificateRequestFailed(self.failures.pop(0), "no")
        now = self.clock.wall()
        return WorkloadCertificate(b"chain", b"key", b"root", now,
                                   now + datetime.timedelta(seconds=self.lifetime), now)


async def test_the_wait_for_the_ca_gives_up_after_its_deadline() -> None:
    clock = FakeClock()
    ca = FakeCa(clock)  # never reachable
    first = asyncio.create_task(CertificateRotator(ca, FRONTEND, clock=clock).first())
    await clock.advance(FIRST_TIMEOUT - 0.1)
    assert not first.done()
    assert len(ca.asked) == round((FIRST_TIMEOUT - 0.1) / FIRST_RETRY)  # every 0.2 s
    await clock.advance(1)
    assert first.done()
    with pytest.raises(CertificateRequestFailed, match="UNAVAILABLE"):
        await first
    assert FIRST_TIMEOUT - 1e-6 <= ca.asked[-1] < FIRST_TIMEOUT + FIRST_RETRY + 1e-6
    assert clock.sleepers == 0


async def test_a_ca_that_comes_up_within_the_deadline_gives_the_first_certificate() -> None:
    clock = FakeClock()
    ca = FakeCa(clock, failures=["UNAVAILABLE"] * 3)
    rotator = CertificateRotator(ca, FRONTEND, clock=clock)
    first = asyncio.create_task(rotator.first())
    await clock.advance(3 * FIRST_RETRY + 0.01)
    assert first.done() and (await first) is rotator.current
    assert ca.asked == pytest.approx([0, FIRST_RETRY, 2 * FIRST_RETRY, 3 * FIRST_RETRY])


async def test_a_refusal_is_not_asked_again() -> None:
    clock = FakeClock()
    ca = FakeCa(clock, failures=["PERMISSION_DENIED"])
    with pytest.raises(CertificateRequestFailed, match="PERMISSION_DENIED"):
        await CertificateRotator(ca, FRONTEND, clock=clock).first()
    assert ca.asked == [0]


async def test_renewal_waits_for_half_life_on_the_clock_and_retries_a_failure() -> None:
    clock = FakeClock()
    ca = FakeCa(clock, failures=[], lifetime=100)
    rotator = CertificateRotator(ca, FRONTEND, clock=clock, rng=random.Random(7))
    await rotator.first()
    stop = asyncio.Event()
    running = asyncio.create_task(rotator.run(stop))
    await clock.advance(39)  # renewal is at 50 s, give or take 10
    assert rotator.rotations == 1
    await clock.advance(22)
    assert rotator.rotations == 2 and 40 <= ca.asked[-1] <= 60
    ca.failures = ["UNAVAILABLE"]  # the next renewal fails once, and is asked again 0.5 s on
    await clock.advance(61)
    assert rotator.rotations == 3
    assert 0.5 <= ca.asked[-1] - ca.asked[-2] <= 0.6
    stop.set()
    await asyncio.wait_for(running, 1)
    assert clock.sleepers == 0


class InitializingEnvoy(EnvoyProcess):
    """An Envoy that is running and whose admin API says INITIALIZING for ever (no process,
    no sockets: only the clock decides when waiting stops)."""

    def __init__(self, clock: FakeClock) -> None:
        proxy = Proxy(ProxyType.SIDECAR, "frontend", "default", "127.0.0.1", "127.0.0.1")
        super().__init__(bootstrap(proxy, "127.0.0.1", 1), Path("/nonexistent"), clock=clock)
        self.asked = 0

    @property
    def running(self) -> bool:
        return True

    async def admin(self, path: str, method: str = "GET") -> HttpResponse:
        self.asked += 1
        return HttpResponse(503, "INITIALIZING")


async def test_waiting_for_envoy_to_be_ready_gives_up_after_its_deadline() -> None:
    clock = FakeClock()
    envoy = InitializingEnvoy(clock)
    ready = asyncio.create_task(envoy.wait_ready(timeout=30))
    await clock.advance(29.9)
    assert not ready.done() and envoy.asked > 100
    await clock.advance(0.2)
    with pytest.raises(TimeoutError, match="envoy not ready after 30"):
        await ready
