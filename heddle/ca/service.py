"""The CA's gRPC endpoint: an agent sends a CSR with its join token and gets a certificate.

Messages are small JSON documents carried by a generic gRPC method (no proto to maintain):
request `{"csr": PEM, "ttl_seconds": N}`, response `{"cert_chain": PEM, "root": PEM}`.

The caller is whoever its client certificate says (a renewal over mTLS, as Istio renews with
the current certificate), else whoever its join token in the `authorization: Bearer ...`
metadata is bound to (the first certificate); as Istio's CA, the first authenticator that
succeeds decides.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from typing import Any

import grpc

from heddle.ca.authority import CertificateAuthority, SigningRefused
from heddle.ca.identity import Identity
from heddle.ca.peer import Unauthenticated, peer_address, peer_identity
from heddle.ca.tokens import InvalidToken, TokenIssuer

log = logging.getLogger(__name__)

SERVICE = "heddle.ca.v1.CertificateService"
METHOD = "CreateCertificate"
FULL_METHOD = f"/{SERVICE}/{METHOD}"


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def decode(data: bytes) -> dict[str, Any]:
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


class CertificateService:
    def __init__(self, ca: CertificateAuthority, tokens: TokenIssuer,
                 max_lifetime: datetime.timedelta = datetime.timedelta(hours=24),
                 counted: Callable[[bool], None] = lambda issued: None) -> None:
        """`counted(issued)`: told of every certificate request, and whether it was signed
        (the control plane's citadel_server_* metrics)."""
        self.ca = ca
        self.tokens = tokens
        self.max_lifetime = max_lifetime
        self.counted = counted

    def _caller(self, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Identity, str]:
        """Who asks, and what proved it ("client certificate" or "token")."""
        try:
            identity = peer_identity(context)
        except Unauthenticated:
            identity = None  # the join port asks for no certificate: try the token
        if identity is not None:
            return identity, "client certificate"
        metadata = dict(context.invocation_metadata() or ())
        header = str(metadata.get("authorization", ""))
        if not header.startswith("Bearer "):
            raise InvalidToken("no client certificate and no join token "
                               "(authorization: Bearer ...)")
        return self.tokens.verify(header.removeprefix("Bearer ")), "token"

    async def create_certificate(self, request: dict[str, Any],
                                 context: grpc.aio.ServicerContext[Any, Any]) -> dict[str, Any]:
        try:
            identity, proof = self._caller(context)
        except InvalidToken as err:
            log.warning("refused a certificate request from %s: %s", peer_address(context), err)
            self.counted(False)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(err))
            raise
        ttl = datetime.timedelta(seconds=float(request.get("ttl_seconds") or 0))
        lifetime = min(ttl, self.max_lifetime) if ttl.total_seconds() > 0 else self.max_lifetime
        try:
            signed = self.ca.sign(str(request.get("csr", "")).encode(), identity, lifetime)
        except (SigningRefused, ValueError) as err:
            log.warning("refused a certificate for a %s bound to %s: %s", proof, identity, err)
            self.counted(False)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(err))
            raise
        log.info("issued a certificate for %s (by %s) until %s", identity, proof,
                 signed.not_after.isoformat())
        self.counted(True)
        return {"cert_chain": signed.cert_chain_pem.decode(), "root": signed.root_pem.decode(),
                "not_after": signed.not_after.isoformat()}

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(SERVICE, {
            METHOD: grpc.unary_unary_rpc_method_handler(
                self.create_certificate, request_deserializer=decode, response_serializer=encode),
        })

