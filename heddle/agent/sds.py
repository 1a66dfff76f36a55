"""The agent's SDS server on a Unix socket: Envoy gets its certificate and the trust bundle
from here, and a rotated certificate is pushed on the open stream (no Envoy restart)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc
from google.protobuf import any_pb2

from heddle.agent.certificates import WorkloadCertificate

log = logging.getLogger(__name__)

SECRET_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
WORKLOAD_SECRET = "default"  # Istio's names, which the translated config refers to
ROOT_SECRET = "ROOTCA"


def secrets_of(cert: WorkloadCertificate) -> dict[str, secret_pb2.Secret]:
    workload = secret_pb2.Secret(name=WORKLOAD_SECRET)
    workload.tls_certificate.certificate_chain.inline_bytes = cert.cert_chain_pem
    workload.tls_certificate.private_key.inline_bytes = cert.key_pem
    root = secret_pb2.Secret(name=ROOT_SECRET)
    root.validation_context.trusted_ca.inline_bytes = cert.root_pem
    return {WORKLOAD_SECRET: workload, ROOT_SECRET: root}


class SdsServer:
    """A SecretDiscoveryService servicer: SotW streams of the two secrets Envoy asks for."""

    def __init__(self) -> None:
        self._secrets: dict[str, secret_pb2.Secret] = {}
        self._version = ""
        self._changed = asyncio.Condition()
        self._nonces = itertools.count(1)
        self._versions = itertools.count(1)  # a new version for every certificate
        self.pushes = 0

    async def update(self, cert: WorkloadCertificate) -> None:
        async with self._changed:
            self._secrets = secrets_of(cert)
            self._version = str(next(self._versions))
            self._changed.notify_all()

    def _response(self, names: set[str]) -> discovery_pb2.DiscoveryResponse:
        resources = []
        for name in sorted(names or set(self._secrets)):
            if name in self._secrets:
                packed = any_pb2.Any()
                packed.Pack(self._secrets[name])
                resources.append(packed)
        self.pushes += 1
        return discovery_pb2.DiscoveryResponse(
            version_info=self._version, type_url=SECRET_TYPE, resources=resources,
            nonce=str(next(self._nonces)))

    async def StreamSecrets(
        self, requests: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        names: set[str] = set()
        sent = ""
        wanted = asyncio.Event()

        async def read() -> None:
            async for request in requests:
                if request.error_detail.message:
                    log.warning("Envoy rejected secrets: %s", request.error_detail.message)
                if set(request.resource_names) != names or not request.response_nonce:
                    names.clear()
                    names.update(request.resource_names)
                    wanted.set()
                    async with self._changed:
                        self._changed.notify_all()

        reader = asyncio.create_task(read())
        try:
            while not reader.done():
                async with self._changed:
                    await self._changed.wait_for(
                        lambda last=sent: reader.done() or wanted.is_set()  # type: ignore[misc]
                        or (bool(self._version) and self._version != last))
                if reader.done():
                    break
                if self._version:
                    wanted.clear()
                    sent = self._version
                    yield self._response(names)
        finally:
            reader.cancel()

    async def FetchSecrets(
        self, request: discovery_pb2.DiscoveryRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> discovery_pb2.DiscoveryResponse:
        return self._response(set(request.resource_names))


    async def DeltaSecrets(
        self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "use StreamSecrets")
        yield  # an async generator, as gRPC expects for a streaming method


async def serve_sds(server: SdsServer, socket_path: Path) -> grpc.aio.Server:
    with contextlib.suppress(FileNotFoundError):
        socket_path.unlink()
    grpc_server = grpc.aio.server()
    sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(server, grpc_server)
    grpc_server.add_insecure_port(f"unix:{socket_path}")
    await grpc_server.start()
    return grpc_server
