"""The agent's workload certificate: its own key, a CSR to the CA, renewal at half-life.

The private key is generated here and never leaves the agent's process.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from heddle.ca.authority import make_csr, new_key, utcnow
from heddle.ca.identity import CONTROL_PLANE_NAMES, Identity
from heddle.ca.service import FULL_METHOD, decode, encode

log = logging.getLogger(__name__)
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class WorkloadCertificate:
    cert_chain_pem: bytes
    key_pem: bytes
    root_pem: bytes
    not_before: datetime.datetime
    not_after: datetime.datetime
    received: datetime.datetime = EPOCH  # when the agent got it

    def renew_at(self, jitter: float = 0.1) -> datetime.datetime:
        """Half-way through the lifetime, give or take `jitter` of it, as Istio renews. The
        CA backdates not_before a little for clock skew, so count from when it was received
        if that is later."""
        start = max(self.not_before, self.received)
        lifetime = self.not_after - start
        return start + lifetime * (0.5 + random.uniform(-jitter, jitter))


class CertificateClient:
    """Asks the CA for certificates, trusting `root_pem`: the first with the join token over
    TLS at `join_address`, renewals with the current certificate over mutual TLS at
    `address` (as Istio renews), so a renewal needs no token that may have expired."""

    def __init__(self, address: str, root_pem: bytes, token: str, join_address: str = "",
                 server_name: str = CONTROL_PLANE_NAMES[0],
                 clock: Callable[[], datetime.datetime] = utcnow) -> None:
        self.address = address
        self.join_address = join_address or address
        self.root_pem = root_pem
        self.token = token
        self.server_name = server_name
        self.clock = clock

    def _channel(self, current: WorkloadCertificate | None) -> tuple[grpc.aio.Channel,
                                                                      tuple[tuple[str, str], ...]]:
        """Where to ask and with what: the current certificate while it is valid, else the
        join token."""
        options = [("grpc.ssl_target_name_override", self.server_name)]
        if current is not None and current.not_after > self.clock():
            credentials = grpc.ssl_channel_credentials(
                self.root_pem, private_key=current.key_pem,
                certificate_chain=current.cert_chain_pem)
            return grpc.aio.secure_channel(self.address, credentials, options), ()
        credentials = grpc.ssl_channel_credentials(root_certificates=self.root_pem)
        return (grpc.aio.secure_channel(self.join_address, credentials, options),
                (("authorization", f"Bearer {self.token}"),))

    async def request(self, identity: Identity, lifetime: datetime.timedelta | None = None,
                      current: WorkloadCertificate | None = None) -> WorkloadCertificate:
        key = new_key()
        csr = make_csr(key, identity)
        channel, metadata = self._channel(current)
        async with channel:
            call = channel.unary_unary(FULL_METHOD, request_serializer=encode,
                                       response_deserializer=decode)
            reply = await call(
                {"csr": csr.decode(),
                 "ttl_seconds": lifetime.total_seconds() if lifetime else 0},
                metadata=metadata, timeout=10)
        chain = reply["cert_chain"].encode()
        leaf = x509.load_pem_x509_certificate(chain)
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return WorkloadCertificate(chain, key_pem, reply["root"].encode(),
                                   leaf.not_valid_before_utc, leaf.not_valid_after_utc, utcnow())


class CertificateRotator:
    """Keeps a current certificate and replaces it before it expires, telling listeners."""

    def __init__(self, client: CertificateClient, identity: Identity,
                 lifetime: datetime.timedelta | None = None,
                 clock: Callable[[], datetime.datetime] = utcnow) -> None:
        self.client = client
        self.identity = identity
        self.lifetime = lifetime
        self.clock = clock
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

    async def run(self, stop: asyncio.Event) -> None:
        """Renew at about half-life; retry quickly while the CA is unreachable."""
        while not stop.is_set():
            assert self.current is not None
            wait = (self.current.renew_at() - self.clock()).total_seconds()
            try:
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.05))
                return
            except TimeoutError:
                pass
            try:
                await self.refresh()
                log.info("rotated the workload certificate (until %s)",
                         self.current.not_after.isoformat())
            except grpc.aio.AioRpcError as err:
                log.warning("certificate renewal failed (%s); retrying", err.details())
                await asyncio.sleep(0.5)
