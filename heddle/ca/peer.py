"""Who is calling over gRPC: the SPIFFE identity of the peer's verified client certificate.

gRPC core verifies the client's chain against the mesh root during the handshake (the mTLS
port requires a certificate) and puts the leaf's single SPIFFE URI SAN in the call's auth
context, as Istio's ClientCertAuthenticator reads it from the verified chain.
"""

from __future__ import annotations

from typing import Any

import grpc

from heddle.ca.identity import Identity


class Unauthenticated(Exception):
    """A TLS caller without a verified workload certificate."""


def over_tls(context: grpc.aio.ServicerContext[Any, Any]) -> bool:
    auth = context.auth_context() or {}
    return auth.get("transport_security_type") == [b"ssl"]


def peer_identity(context: grpc.aio.ServicerContext[Any, Any]) -> Identity | None:
    """The caller's identity from its certificate; None over plaintext (the loopback-only
    port, unauthenticated as Istio's 15010 is). Unauthenticated for a TLS caller that
    presented no certificate, or one without exactly one SPIFFE id."""
    auth = context.auth_context() or {}
    if not over_tls(context):
        return None
    ids = list(auth.get("peer_spiffe_id") or ())
    if not ids:
        if auth.get("x509_pem_cert"):
            raise Unauthenticated("the client certificate has no single SPIFFE id")
        raise Unauthenticated("no client certificate: ADS needs the workload certificate "
                              "(mutual TLS, the secure port)")
    try:
        return Identity.parse(ids[0].decode())
    except ValueError as err:
        raise Unauthenticated(str(err)) from err


def peer_address(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    return str(context.peer() or "unknown peer")
