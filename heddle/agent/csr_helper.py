"""The agent's certificate requests, each in a short-lived helper process.

Generating a key and a CSR needs `cryptography`, and calling the CA needs gRPC's TLS client;
loaded once, both would stay in the agent for good (about 14 MB of its RSS) for a call made
every twelve hours. So the agent starts `python -m heddle.agent.csr_helper`, writes what to
ask for on its stdin (the join token and the current key travel only through the pipe, never
through argv or a file), and reads the certificate, with its new key, from its stdout.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import sys
from typing import Any

from heddle.agent.certificates import CertificateRequestFailed, WorkloadCertificate, utcnow
from heddle.ca.identity import CONTROL_PLANE_NAMES, Identity

HELPER_TIMEOUT = 30.0  # seconds; the CA call itself times out after 10
HELPER = ("-m", "heddle.agent.csr_helper")  # run by this Python


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _certificate_json(cert: WorkloadCertificate) -> dict[str, Any]:
    return {"cert_chain": _b64(cert.cert_chain_pem), "key": _b64(cert.key_pem),
            "root": _b64(cert.root_pem), "not_before": cert.not_before.isoformat(),
            "not_after": cert.not_after.isoformat()}


def _certificate_of(data: dict[str, Any]) -> WorkloadCertificate:
    return WorkloadCertificate(
        base64.b64decode(data["cert_chain"]), base64.b64decode(data["key"]),
        base64.b64decode(data["root"]), datetime.datetime.fromisoformat(data["not_before"]),
        datetime.datetime.fromisoformat(data["not_after"]), utcnow())


class HelperCertificateClient:
    """A CertificateSource that asks the CA from a helper process (see the module's doc);
    the same arguments as `heddle.agent.ca_client.CertificateClient`."""

    def __init__(self, address: str, root_pem: bytes, token: str, join_address: str = "",
                 server_name: str = CONTROL_PLANE_NAMES[0],
                 timeout: float = HELPER_TIMEOUT,
                 helper: tuple[str, ...] = HELPER) -> None:
        self.address = address
        self.join_address = join_address or address
        self.root_pem = root_pem
        self.token = token
        self.server_name = server_name
        self.timeout = timeout
        self.helper = helper  # the helper's arguments to this Python (a seam for tests)

    def _ask(self, identity: Identity, lifetime: datetime.timedelta | None,
             current: WorkloadCertificate | None) -> bytes:
        return json.dumps({
            "address": self.address, "join_address": self.join_address,
            "root": _b64(self.root_pem), "token": self.token,
            "server_name": self.server_name,
            "identity": [identity.namespace, identity.service_account, identity.trust_domain],
            "ttl_seconds": lifetime.total_seconds() if lifetime else 0,
            "current": _certificate_json(current) if current is not None else None,
        }).encode()

    async def request(self, identity: Identity, lifetime: datetime.timedelta | None = None,
                      current: WorkloadCertificate | None = None) -> WorkloadCertificate:
        process = await asyncio.create_subprocess_exec(
            sys.executable, *self.helper, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(
                process.communicate(self._ask(identity, lifetime, current)), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise CertificateRequestFailed(
                "DEADLINE_EXCEEDED", f"no answer within {self.timeout:g}s") from None
        try:
            reply = json.loads(out)
        except ValueError:
            tail = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise CertificateRequestFailed(
                "UNKNOWN", f"certificate helper exited with {process.returncode}: "
                           f"{tail[0]}") from None
        if "error" in reply:
            raise CertificateRequestFailed(reply["error"]["code"], reply["error"]["details"])
        return _certificate_of(reply)


async def _serve(ask: dict[str, Any]) -> dict[str, Any]:
    import grpc

    from heddle.agent.ca_client import CertificateClient

    client = CertificateClient(ask["address"], base64.b64decode(ask["root"]), ask["token"],
                               ask["join_address"], ask["server_name"])
    namespace, service_account, trust_domain = ask["identity"]
    ttl = float(ask["ttl_seconds"])
    current = _certificate_of(ask["current"]) if ask["current"] else None
    try:
        cert = await client.request(Identity(namespace, service_account, trust_domain),
                                    datetime.timedelta(seconds=ttl) if ttl else None, current)
    except grpc.aio.AioRpcError as err:
        return {"error": {"code": err.code().name, "details": err.details() or ""}}
    return _certificate_json(cert)


def main() -> None:
    reply = asyncio.run(_serve(json.loads(sys.stdin.buffer.read())))
    sys.stdout.write(json.dumps(reply))


if __name__ == "__main__":
    main()
