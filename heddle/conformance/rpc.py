"""The runner's gRPC client, as the upstream's grpc.DefaultClient calls the gateway: plaintext
HTTP/2 to the gateway's address, the case's :authority, its metadata on the call, one of the
echo service's methods; a call that ends INTERNAL drops its connection, so the next dials
anew. Safe to use from the runner's threads (grpcio's channels are)."""

from __future__ import annotations

import threading
from typing import Any

import grpc

from heddle.conformance.compare import RpcCaptured
from heddle.conformance.grpcecho_proto import EchoRequest, EchoResponse, full_method
from heddle.conformance.scenarios import GRPC_CODES, Rpc

CODE_NAMES = {number: name for name, number in GRPC_CODES.items()}
# No proxy from the environment, and a gateway that was not listening yet is dialled again
# within a second (grpcio's default backoff grows to two minutes).
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.enable_http_proxy", 0), ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000))


def code_name(code: grpc.StatusCode) -> str:
    """A grpcio status code by Go's name (`UNIMPLEMENTED` -> `Unimplemented`)."""
    number = code.value[0]
    return CODE_NAMES.get(number, str(code.name))


def captured(response: Any) -> RpcCaptured:
    """An OK call's EchoResponse as what the runner compares."""
    assertions = response.assertions
    return RpcCaptured(
        code="OK", full_method=assertions.fully_qualified_method,
        namespace=assertions.context.namespace, pod=assertions.context.pod,
        authority=assertions.authority,
        headers=tuple((h.key, h.value) for h in assertions.headers))


class RpcSender:
    """One channel per gateway address and :authority, kept until closed (or a call ends
    INTERNAL)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._channels: dict[tuple[str, str], grpc.Channel] = {}

    def _channel(self, target: str, authority: str) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get((target, authority))
            if channel is None:
                options = list(CHANNEL_OPTIONS)
                if authority:
                    options.append(("grpc.default_authority", authority))
                channel = self._channels[(target, authority)] = grpc.insecure_channel(
                    target, options=options)
            return channel

    def _reset(self, target: str, authority: str) -> None:
        with self._lock:
            channel = self._channels.pop((target, authority), None)
        if channel is not None:
            channel.close()

    def send(self, rpc: Rpc, address: str, port: int,
             extra_metadata: tuple[tuple[str, str], ...] = ()) -> RpcCaptured:
        target = f"{address}:{port}"
        channel = self._channel(target, rpc.authority)
        call: grpc.UnaryUnaryMultiCallable[Any, Any] = channel.unary_unary(
            full_method(rpc.method), request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=EchoResponse.FromString)
        # gRPC metadata keys are lower case (Go's metadata.New folds them too)
        metadata = tuple((k.lower(), v) for k, v in (*rpc.metadata, *extra_metadata))
        try:
            response = call(EchoRequest(), metadata=metadata or None, timeout=self.timeout)
        except grpc.RpcError as err:
            code = err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN
            if code == grpc.StatusCode.INTERNAL:
                self._reset(target, rpc.authority)
            details = err.details() if isinstance(err, grpc.Call) else str(err)
            return RpcCaptured(code=code_name(code), details=str(details or ""))
        return captured(response)

    def close(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()
