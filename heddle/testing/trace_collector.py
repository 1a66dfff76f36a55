"""Span collectors for tests: an OpenTelemetry collector (OTLP gRPC `TraceService`, a
`grpc.aio` server built on `opentelemetry-proto`) and a Zipkin v2 JSON receiver, each on a
loopback port of its own thread, keeping every span it is sent as a `ReceivedSpan`.

    with otlp_collector() as collector:           # port: collector.port
        ...                                       # traffic through proxies tracing to it
        spans = collector.wait_for_spans(4, 60)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from heddle.testing.waiting import wait_for

# OTLP's span kinds by number, in Zipkin's words.
_KINDS = {trace_pb2.Span.SPAN_KIND_SERVER: "SERVER", trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT",
          trace_pb2.Span.SPAN_KIND_INTERNAL: "INTERNAL",
          trace_pb2.Span.SPAN_KIND_PRODUCER: "PRODUCER",
          trace_pb2.Span.SPAN_KIND_CONSUMER: "CONSUMER"}


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as a collector received it; ids in lowercase hex ("" for no parent)."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: str  # SERVER, CLIENT, ...
    service: str  # the reporter's service.name (OTLP) or localEndpoint.serviceName (Zipkin)
    tags: Mapping[str, str] = field(default_factory=dict)


class _Spans:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []

    def add(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self._spans.extend(spans)

    def all(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()


class Collector:
    """What a running collector has received."""

    def __init__(self, port: int, spans: _Spans) -> None:
        self.port = port
        self._spans = spans

    @property
    def spans(self) -> list[ReceivedSpan]:
        return self._spans.all()

    def clear(self) -> None:
        self._spans.clear()

    def wait_for_spans(self, count: int, timeout: float) -> list[ReceivedSpan]:
        """At least `count` spans (all of them once there are), within `timeout` seconds."""
        wait_for(lambda: len(self.spans) >= count, timeout, f"{count} spans at the collector "
                 f"(has {len(self.spans)})")
        return self.spans


def _value(value: common_pb2.AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


def otlp_spans(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    found = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        # xds-protos ships an older copy of the OTLP protos at the same paths as
        # opentelemetry-proto, and the one pip installed last is what loads: the two name
        # field 2 differently (scope_spans, instrumentation_library_spans) but encode it alike.
        scopes: Any = getattr(resource_spans, "scope_spans", None) or getattr(
            resource_spans, "instrumentation_library_spans", ())
        for scope in scopes:
            for span in scope.spans:
                found.append(ReceivedSpan(
                    span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                    span.name, _KINDS.get(span.kind, "UNSPECIFIED"),
                    resource.get("service.name", ""),
                    {a.key: _value(a.value) for a in span.attributes}))
    return found


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, spans: _Spans) -> None:
        self._spans = spans

    async def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,
                     context: grpc.aio.ServicerContext[Any, Any],
                     ) -> trace_service_pb2.ExportTraceServiceResponse:
        self._spans.add(otlp_spans(request))
        return trace_service_pb2.ExportTraceServiceResponse()


@contextlib.contextmanager
def otlp_collector(host: str = "127.0.0.1") -> Iterator[Collector]:
    """An OTLP gRPC collector on `host`, on a port of its own, for the block's duration."""
    spans = _Spans()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop: asyncio.Event | None = None
    port = 0
    failure: list[BaseException] = []

    async def serve() -> None:
        nonlocal stop, port
        stop = asyncio.Event()
        server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
            _TraceService(spans), server)
        port = server.add_insecure_port(f"{host}:0")
        await server.start()
        started.set()
        await stop.wait()
        await server.stop(grace=1)

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as err:  # told to the test below, not lost in the thread
            failure.append(err)
            started.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="otlp-collector", daemon=True)
    thread.start()
    if not started.wait(30) or failure:
        raise RuntimeError(f"the OTLP collector did not start: {failure}")
    try:
        yield Collector(port, spans)
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def zipkin_spans(body: list[dict[str, Any]]) -> list[ReceivedSpan]:
    return [ReceivedSpan(str(s.get("traceId", "")), str(s.get("id", "")),
                         str(s.get("parentId", "")), str(s.get("name", "")),
                         str(s.get("kind", "")),
                         str((s.get("localEndpoint") or {}).get("serviceName", "")),
                         {str(k): str(v) for k, v in (s.get("tags") or {}).items()})
            for s in body]


@contextlib.contextmanager
def zipkin_collector(host: str = "127.0.0.1") -> Iterator[Collector]:
    """A Zipkin receiver (POST /api/v2/spans, JSON) on `host`, for the block's duration."""
    spans = _Spans()

    class Handler(BaseHTTPRequestHandler):
        def body(self) -> bytes:
            """The request's body, as sent: Envoy's Zipkin reporter sends it chunked."""
            if self.headers.get("transfer-encoding", "").lower() != "chunked":
                return self.rfile.read(int(self.headers.get("content-length") or 0))
            data = b""
            for _ in range(100_000):  # bounded: a chunk per batch of spans at most
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()  # the CRLF after the last, empty chunk
                    break
                data += self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk
            return data

        def do_POST(self) -> None:
            try:
                spans.add(zipkin_spans(json.loads(self.body())))
                self.send_response(202)
            except (ValueError, AttributeError):
                self.send_response(400)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="zipkin-collector",
                              daemon=True)
    thread.start()
    try:
        yield Collector(int(server.server_address[1]), spans)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)
