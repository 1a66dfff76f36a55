"""Helpers for end-to-end tests: unique loopback addresses, the hello mesh, a running xDS."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from heddle.agent.agent import sds_socket_for
from heddle.agent.certificates import WorkloadCertificate
from heddle.agent.sds import SdsServer, serve_sds
from heddle.api.loader import load_text
from heddle.ca.authority import CertificateAuthority, make_csr, new_key
from heddle.ca.identity import Identity
from heddle.config.store import ConfigStore

ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count(1)


def unique_subnet() -> str:
    """A /24 in 127.0.0.0/8 no other test of this run uses: `127.A.B.`."""
    n = next(_counter)
    return f"127.{100 + os.getpid() % 100}.{n % 250}."


def hello_text(subnet: str) -> str:
    text = (ROOT / "examples" / "hello" / "mesh.yaml").read_text()
    return text.replace("127.0.10.", subnet)


def hello_store(subnet: str) -> ConfigStore:
    store = ConfigStore()
    result = load_text(hello_text(subnet), "hello.yaml")
    assert result.errors == []
    store.put("hello.yaml", result)
    return store


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float,
                     what: str) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


async def serve_identity(tmp: Path, namespace: str, service_account: str,
                         ) -> tuple[grpc.aio.Server, Path]:
    """An SDS socket serving a workload certificate from a throwaway CA, as an agent would."""
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
