"""The agent asks for certificates through a short-lived helper process: what it gets back,
and how the helper's failures reach the agent's retry logic."""

from __future__ import annotations

import datetime
import json

import pytest

from heddle.agent.certificates import CertificateRequestFailed, WorkloadCertificate
from heddle.agent.csr_helper import HelperCertificateClient, _certificate_json
from heddle.ca.identity import Identity

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
CERT = WorkloadCertificate(b"CHAIN\n", b"KEY\n", b"ROOT\n", T0, T0 + datetime.timedelta(hours=1))


def helper_printing(reply: object, exit_code: int = 0) -> tuple[str, ...]:
    """A stand-in helper that reads its stdin (to check it is JSON) and prints `reply`."""
    return ("-c", "import json, sys; json.loads(sys.stdin.read()); "
                  f"print({json.dumps(json.dumps(reply))}); sys.exit({exit_code})")


def client(helper: tuple[str, ...], timeout: float = 30.0) -> HelperCertificateClient:
    return HelperCertificateClient("127.0.0.1:1", b"ROOT", "token", helper=helper,
                                   timeout=timeout)


async def test_the_helpers_certificate_and_key_reach_the_agent() -> None:
    cert = await client(helper_printing(_certificate_json(CERT))).request(Identity("ns", "sa"))
    assert (cert.cert_chain_pem, cert.key_pem, cert.root_pem) == (b"CHAIN\n", b"KEY\n",
                                                                  b"ROOT\n")
    assert (cert.not_before, cert.not_after) == (CERT.not_before, CERT.not_after)
    assert cert.received > T0


def test_the_token_and_current_key_go_on_stdin_not_argv() -> None:
    ask = json.loads(client(("-c", "pass"))._ask(Identity("ns", "sa"),
                                                 datetime.timedelta(seconds=60), CERT))
    assert ask["token"] == "token" and ask["ttl_seconds"] == 60
    assert ask["identity"] == ["ns", "sa", "cluster.local"]
    assert ask["current"] == _certificate_json(CERT)


async def test_a_refusal_by_the_ca_is_final() -> None:
    reply = {"error": {"code": "PERMISSION_DENIED", "details": "token for sa x"}}
    with pytest.raises(CertificateRequestFailed) as failed:
        await client(helper_printing(reply)).request(Identity("ns", "y"))
    assert failed.value.refused and failed.value.details == "token for sa x"


async def test_an_unreachable_ca_is_worth_retrying() -> None:
    reply = {"error": {"code": "UNAVAILABLE", "details": "connection refused"}}
    with pytest.raises(CertificateRequestFailed) as failed:
        await client(helper_printing(reply)).request(Identity("ns", "sa"))
    assert not failed.value.refused


async def test_a_helper_that_crashes_says_why() -> None:
    helper = ("-c", "import sys; sys.stdin.read(); raise SystemExit('no grpc here')")
    with pytest.raises(CertificateRequestFailed) as failed:
        await client(helper).request(Identity("ns", "sa"))
    assert failed.value.code == "UNKNOWN" and "no grpc here" in failed.value.details


async def test_a_helper_that_hangs_is_killed() -> None:
    with pytest.raises(CertificateRequestFailed) as failed:
        await client(("-c", "import time; time.sleep(30)"), timeout=0.5).request(
            Identity("ns", "sa"))
    assert failed.value.code == "DEADLINE_EXCEEDED"
