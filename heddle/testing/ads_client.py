"""An in-process ADS client over a real grpc.aio channel: what an Envoy would ask and hold.

    async with AdsClient.connect(target, node, delta=True) as client:
        client.subscribe(CLUSTER)                 # wildcard
        response = await client.receive()
        client.ack(response)                      # or client.nack(response, "why")

With `auto_ack=True` every response is applied and ACKed as it arrives (what the benchmark's
thousand simulated proxies do); `held` is what the client holds, by type and name.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2
from google.rpc import status_pb2

Response = Any  # a DiscoveryResponse or a DeltaDiscoveryResponse


class StreamEnded(RuntimeError):
    pass


class AdsClient:
    def __init__(self, channel: grpc.aio.Channel, node: base_pb2.Node, delta: bool = True,
                 auto_ack: bool = False) -> None:
        self.node, self.delta, self.auto_ack = node, delta, auto_ack
        self._stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        self._outbox: asyncio.Queue[Any] = asyncio.Queue()
        self.inbox: asyncio.Queue[Response] = asyncio.Queue()
        self.held: dict[str, dict[str, any_pb2.Any]] = {}
        self.versions: dict[str, str] = {}  # SotW: the version last ACKed, by type
        self.responses = 0
        self.bytes_received = 0
        self.changed = asyncio.Event()  # set on every response applied
        self.last_response_at = 0.0  # time.perf_counter() of the latest response
        self._first = True
        self._reader: asyncio.Task[None] | None = None
        self._call: Any = None

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, target: str, node: base_pb2.Node, delta: bool = True,
                      auto_ack: bool = False) -> AsyncIterator[AdsClient]:
        async with grpc.aio.insecure_channel(target) as channel:
            client = cls(channel, node, delta, auto_ack)
            client.start()
            try:
                yield client
            finally:
                await client.close()

    def start(self) -> None:
        method = (self._stub.DeltaAggregatedResources if self.delta
                  else self._stub.StreamAggregatedResources)
        self._call = method(self._requests())
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        self._outbox.put_nowait(None)
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
                await self._reader

    async def _requests(self) -> AsyncIterator[Any]:
        while (request := await self._outbox.get()) is not None:
            yield request

    async def _read(self) -> None:
        try:
            await self._apply_each()
        finally:
            self.changed.set()  # wake waiters: the stream is over

    async def _apply_each(self) -> None:
        async for response in self._call:
            self.responses += 1
            self.last_response_at = time.perf_counter()
            self.bytes_received += response.ByteSize()
            if self.auto_ack:
                self.ack(response)
            else:
                self.inbox.put_nowait(response)

    def _send(self, request: Any) -> None:
        if self._first:
            request.node.CopyFrom(self.node)
            self._first = False
        self._outbox.put_nowait(request)

    def subscribe(self, type_url: str, names: list[str] | None = None) -> None:
        """Ask for `type_url`: `names`, or every resource (wildcard) when None."""
        if self.delta:
            self._send(discovery_pb2.DeltaDiscoveryRequest(
                type_url=type_url, resource_names_subscribe=names or []))
        else:
            self._send(discovery_pb2.DiscoveryRequest(type_url=type_url,
                                                      resource_names=names or []))

    async def receive(self, timeout: float = 5.0) -> Response:
        return await asyncio.wait_for(self.inbox.get(), timeout)

    async def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until `condition()` holds, checked after each response applied; StreamEnded if
        the stream ends first (the server closed it, or gRPC cancelled it)."""
        async with asyncio.timeout(timeout):
            while not condition():
                if self._reader is not None and self._reader.done():
                    raise StreamEnded(f"{self.node.id}: the stream ended: "
                                      f"{self._end_reason()}")
                self.changed.clear()
                await self.changed.wait()

    @property
    def ended(self) -> bool:
        """The stream is over (closed, or ended by the server or gRPC)."""
        return self._reader is not None and self._reader.done()

    def _end_reason(self) -> str:
        assert self._reader is not None
        if self._reader.cancelled():
            return "closed by this client"
        error = self._reader.exception()
        return repr(error) if error is not None else "the server finished it"

    def pending(self) -> list[Response]:
        """Responses received and not yet taken (an empty list: the server sent nothing)."""
        found = []
        while not self.inbox.empty():
            found.append(self.inbox.get_nowait())
        return found

    def _apply(self, response: Response) -> None:
        held = self.held.setdefault(response.type_url, {})
        if isinstance(response, discovery_pb2.DeltaDiscoveryResponse):
            for resource in response.resources:
                held[resource.name] = resource.resource
            for name in response.removed_resources:
                held.pop(name, None)
        else:
            held.clear()
            for body in response.resources:
                held[_name_of(body)] = body
            self.versions[response.type_url] = response.version_info
        self.changed.set()

    def ack(self, response: Response) -> None:
        self._apply(response)
        if self.delta:
            self._send(discovery_pb2.DeltaDiscoveryRequest(
                type_url=response.type_url, response_nonce=response.nonce))
        else:
            names = list(self.held.get(response.type_url, {})) \
                if response.type_url.endswith(("ClusterLoadAssignment", "RouteConfiguration")) \
                else []
            self._send(discovery_pb2.DiscoveryRequest(
                type_url=response.type_url, response_nonce=response.nonce,
                version_info=response.version_info, resource_names=names))

    def nack(self, response: Response, message: str) -> None:
        error = status_pb2.Status(message=message, code=3)
        if self.delta:
            self._send(discovery_pb2.DeltaDiscoveryRequest(
                type_url=response.type_url, response_nonce=response.nonce, error_detail=error))
        else:
            self._send(discovery_pb2.DiscoveryRequest(
                type_url=response.type_url, response_nonce=response.nonce,
                version_info=self.versions.get(response.type_url, ""), error_detail=error))


def _name_of(body: any_pb2.Any) -> str:
    """A SotW resource's name: Listener/Cluster/RouteConfiguration `name`, EDS
    `cluster_name`."""
    from google.protobuf import symbol_database

    message = symbol_database.Default().GetSymbol(body.type_url.rsplit("/", 1)[-1])()
    body.Unpack(message)
    return str(getattr(message, "name", "") or getattr(message, "cluster_name", ""))
