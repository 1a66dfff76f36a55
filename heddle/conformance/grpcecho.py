"""The conformance backends' gRPC echo server, as the upstream `echo-basic` image answers when
its pod sets GRPC_ECHO_SERVER: `GrpcEcho/Echo` and `GrpcEcho/EchoTwo` reflect the call (its
full method, the request metadata, the :authority, and the pod's namespace, service and name
from $NAMESPACE, $SERVICE_NAME and $POD_NAME); `EchoThree` is left unimplemented on purpose,
so it answers UNIMPLEMENTED. Plaintext only (h2c), as the suite's GRPCRoutes reach it.

`python -m heddle.conformance.grpcecho` listens on $HEDDLE_APP_ADDRESS (default 127.0.0.1) at
each port of $ECHO_PORTS (default 3000), as `heddle.conformance.echo` does.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping, Sequence
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import message

from heddle.conformance.grpcecho_proto import (
    SERVICE,
    EchoRequest,
    EchoResponse,
    full_method,
)

IMPLEMENTED = ("Echo", "EchoTwo")


def _authority(context: grpc.ServicerContext) -> str:
    """The call's :authority. grpcio keeps it out of the invocation metadata and offers no
    accessor; its synchronous server holds it on the call's event (bytes), so it is read
    there, and left empty should a grpcio release move it."""
    details = getattr(getattr(context, "_rpc_event", None), "call_details", None)
    host = getattr(details, "host", b"")
    return host.decode("latin-1") if isinstance(host, bytes) else str(host or "")


def reflect(method: str, metadata: Sequence[tuple[str, str | bytes]], authority: str,
            env: Mapping[str, str]) -> message.Message:
    """What the echo answers for a call: an EchoResponse whose assertions say what it saw.
    Binary (`-bin`) metadata is reported as latin-1 text."""
    response = EchoResponse()
    assertions: Any = response.assertions  # type: ignore[attr-defined]
    assertions.fully_qualified_method = full_method(method)
    assertions.authority = authority
    if authority:
        assertions.headers.add(key=":authority", value=authority)
    for key, value in metadata:
        text = value.decode("latin-1") if isinstance(value, bytes) else value
        assertions.headers.add(key=key, value=text)
    context = assertions.context
    context.namespace = env.get("NAMESPACE", "")
    context.ingress = env.get("INGRESS_NAME", "")
    context.service_name = env.get("SERVICE_NAME", "")
    context.pod = env.get("POD_NAME", "")
    return response


def _handler(method: str,
             env: Mapping[str, str]) -> grpc.RpcMethodHandler[message.Message, message.Message]:
    def answer(request: message.Message, context: grpc.ServicerContext) -> message.Message:
        print(f"Received over plaintext: {method} from {context.peer()}", flush=True)
        return reflect(method, tuple(context.invocation_metadata()), _authority(context), env)

    return grpc.unary_unary_rpc_method_handler(
        answer, request_deserializer=EchoRequest.FromString,
        response_serializer=lambda m: m.SerializeToString())


def server(address: str, ports: Sequence[int], env: Mapping[str, str]) -> grpc.Server:
    """A started server; each port bound on `address`."""
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                      options=[("grpc.so_reuseport", 0)])
    srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        SERVICE,
        {m: _handler(m, env) for m in IMPLEMENTED}),))
    for port in ports:
        if srv.add_insecure_port(f"{address}:{port}") == 0:
            raise OSError(f"cannot listen on {address}:{port}")
    srv.start()
    return srv


def main() -> None:
    env = dict(os.environ)
    address = env.get("HEDDLE_APP_ADDRESS", "127.0.0.1")
    ports = [int(p) for p in env.get("ECHO_PORTS", "3000").split(",") if p.strip()]
    srv = server(address, ports, env)
    print(f"grpc echo serving on {address} ports {', '.join(map(str, ports))}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: srv.stop(0))
    try:
        srv.wait_for_termination()
    except KeyboardInterrupt:
        srv.stop(0)
        sys.exit(0)


if __name__ == "__main__":
    main()
