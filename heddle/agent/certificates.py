"""The agent's workload certificate and its renewal at half-life.

Light on purpose (no gRPC client, no `cryptography`): the agent runs beside every workload,
so the key, the CSR and the call to the CA happen in a short-lived helper process
(`heddle.agent.csr_helper`) and the long-lived agent only keeps the result.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from heddle.ca.identity import Identity
from heddle.clock import Clock, LoopClock, wait_event

log = logging.getLogger(__name__)
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
# gRPC status names after which asking again with the same credentials cannot succeed.
REFUSED = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED"})


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass(frozen=True)
class WorkloadCertificate:
    cert_chain_pem: bytes
    key_pem: bytes
    root_pem: bytes
    not_before: datetime.datetime
    not_after: datetime.datetime
    received: datetime.datetime = EPOCH  # when the agent got it

    def renew_at(self, rng: random.Random, jitter: float = 0.1) -> datetime.datetime:
        """Half-way through the lifetime, give or take `jitter` of it, as Istio renews. The
        CA backdates not_before a little for clock skew, so count from when it was received
        if that is later."""
        start = max(self.not_before, self.received)
        lifetime = self.not_after - start
        return start + lifetime * (0.5 + rng.uniform(-jitter, jitter))


class CertificateRequestFailed(Exception):
    """The CA did not issue a certificate; `code` is the gRPC status name
    (`UNAVAILABLE`, `PERMISSION_DENIED`, ...)."""

    def __init__(self, code: str, details: str) -> None:
        super().__init__(f"{code}: {details}")
        self.code = code
        self.details = details

    @property
    def refused(self) -> bool:
        """The CA said no (bad token, another identity): retrying will not help."""
        return self.code in REFUSED


class CertificateSource(Protocol):
    async def request(self, identity: Identity, lifetime: datetime.timedelta | None = None,
                      current: WorkloadCertificate | None = None) -> WorkloadCertificate:
        """A new certificate for `identity`, asked for with `current` while it is valid;
        raises CertificateRequestFailed."""
        ...


# Waiting for the CA at start-up: asked again every FIRST_RETRY seconds while it cannot be
# reached, for at most FIRST_TIMEOUT (a mesh starting up brings its control plane up too).
FIRST_TIMEOUT = 120.0
FIRST_RETRY = 0.2
RENEWAL_RETRY = 0.5  # after a failed renewal; the certificate in use is still valid


class CertificateRotator:
    """Keeps a current certificate and replaces it before it expires, telling listeners.
    Its waits are on `clock` (renewal times by its wall time, delays by its sleep)."""

    def __init__(self, client: CertificateSource, identity: Identity,
                 lifetime: datetime.timedelta | None = None,
                 clock: Clock | None = None,
                 rng: random.Random | None = None) -> None:
        self.client = client
        self.rng = rng or random.Random()
        self.identity = identity
        self.lifetime = lifetime
        self.clock: Clock = clock or LoopClock()
        self.current: WorkloadCertificate | None = None
        self.rotations = 0
        self._listeners: list[Callable[[WorkloadCertificate], None]] = []

    def on_rotate(self, listener: Callable[[WorkloadCertificate], None]) -> None:
        self._listeners.append(listener)

    async def refresh(self) -> WorkloadCertificate:
        cert = await self.client.request(self.identity, self.lifetime, self.current)
        self.current = cert
        self.rotations += 1
        for listener in self._listeners:
            listener(cert)
        return cert

    async def first(self, timeout: float = FIRST_TIMEOUT,
                    retry: float = FIRST_RETRY) -> WorkloadCertificate:
        """The first certificate, asked for again every `retry` seconds while the CA cannot
        give one, for at most `timeout` seconds; raises the last CertificateRequestFailed
        when the CA refused (asking again cannot help) or time ran out."""
        deadline = self.clock.now() + timeout
        told = False
        while True:
            try:
                return await self.refresh()
            except CertificateRequestFailed as err:
                if err.refused or self.clock.now() >= deadline:
                    raise
                if not told:
                    log.info("no certificate yet (%s); asking every %gs for up to %gs",
                             err, retry, timeout)
                    told = True
            await self.clock.sleep(retry)

    async def run(self, stop: asyncio.Event) -> None:
        """Renew at about half-life (the jittered time drawn once per certificate); retry
        every RENEWAL_RETRY seconds while the CA is unreachable."""
        renewing: WorkloadCertificate | None = None
        renew_at = EPOCH
        while not stop.is_set():
            assert self.current is not None
            if renewing is not self.current:
                renewing, renew_at = self.current, self.current.renew_at(self.rng)
            wait = (renew_at - self.clock.wall()).total_seconds()
            if await wait_event(self.clock, stop, max(wait, 0.05)):
                return
            try:
                await self.refresh()
                log.info("rotated the workload certificate (until %s)",
                         self.current.not_after.isoformat())
            except CertificateRequestFailed as err:
                log.warning("certificate renewal failed (%s); retrying", err)
                await self.clock.sleep(RENEWAL_RETRY)
