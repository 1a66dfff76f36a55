"""A workload identity served as an agent serves it: an SDS socket with a certificate from
a throwaway CA, for an Envoy started by a test or a benchmark without an agent."""

from __future__ import annotations

from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from heddle.agent.certificates import WorkloadCertificate
from heddle.agent.sds import SdsServer, serve_sds
from heddle.ca.authority import CertificateAuthority, make_csr, new_key
from heddle.ca.identity import Identity
from heddle.model.sockets import sds_socket_for


async def serve_identity(tmp: Path, namespace: str, service_account: str,
                         ) -> tuple[grpc.aio.Server, Path]:
    """An SDS socket under `tmp` serving spiffe://cluster.local/ns/NAMESPACE/sa/ACCOUNT
    (the CA is made in `tmp/ca`, or reused); stop the returned server when done."""
    ca = CertificateAuthority.load_or_create(tmp / "ca")
    identity = Identity(namespace, service_account)
    key = new_key()
    signed = ca.sign(make_csr(key, identity), identity)
    leaf = x509.load_pem_x509_certificate(signed.cert_chain_pem)
    sds = SdsServer()
    await sds.update(WorkloadCertificate(
        signed.cert_chain_pem,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        signed.root_pem, leaf.not_valid_before_utc, leaf.not_valid_after_utc))
    socket_path = sds_socket_for(tmp / f"{namespace}-{service_account}")
    return await serve_sds(sds, socket_path), socket_path
