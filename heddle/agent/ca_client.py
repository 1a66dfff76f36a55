"""Asking the mesh CA for a workload certificate over gRPC: a new key, a CSR, the reply.

The private key is generated here and is never written anywhere. The agent runs this in its
short-lived helper process (`heddle.agent.csr_helper`), so that neither gRPC's client nor
`cryptography` stays loaded in the agent beside every workload.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from heddle.agent.certificates import WorkloadCertificate, utcnow
from heddle.ca.authority import make_csr, new_key
from heddle.ca.identity import CONTROL_PLANE_NAMES, Identity
from heddle.ca.service import FULL_METHOD, decode, encode


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
