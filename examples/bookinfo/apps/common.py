"""What every bookinfo app shares: a JSON/HTML server on port 9080, calls through the sidecar."""

from __future__ import annotations

import http.client
import json
import os
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PORT = 9080
VERSION = os.environ.get("VERSION", "v1")
# The headers upstream bookinfo passes on from each request to the calls it makes: the user
# (what bookinfo's routing rules match on), the request id and the tracing context.
PROPAGATED = (
    "end-user", "user-agent", "cookie", "x-request-id", "traceparent", "tracestate",
    "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "b3",
    "x-ot-span-context", "x-cloud-trace-context", "grpc-trace-bin", "sw8",
)

# path -> (handler headers -> (status, content type, body))
Routes = dict[str, Callable[[BaseHTTPRequestHandler], tuple[int, str, bytes]]]


def forwarded(request: BaseHTTPRequestHandler) -> dict[str, str]:
    return {h: v for h in PROPAGATED if (v := request.headers.get(h))}


# The sidecar's outbound HTTP proxy, which the agent names in $http_proxy.
PROXY = urllib.parse.urlsplit(os.environ.get("http_proxy", "http://127.0.0.1:15001"))
_connections = threading.local()


def call(url: str, headers: dict[str, str], timeout: float) -> tuple[int, Any]:
    """GET `url` through the sidecar, as a proxy request on a kept-alive connection per
    thread; (status, JSON body or None), status 0 when no answer came within `timeout`."""
    for attempt in range(2):
        connection: http.client.HTTPConnection | None = getattr(_connections, "proxy", None)
        reused = connection is not None
        if connection is None:
            connection = http.client.HTTPConnection(PROXY.hostname or "127.0.0.1",
                                                    PROXY.port or 80)
        connection.timeout = timeout
        if connection.sock is not None:
            connection.sock.settimeout(timeout)
        try:
            connection.request("GET", url, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            connection.close()
            _connections.proxy = None
            if reused and attempt == 0:
                continue  # the sidecar had closed the idle connection: once more, afresh
            return 0, None
        except (OSError, http.client.HTTPException):  # a timeout above all
            connection.close()
            _connections.proxy = None
            return 0, None
        _connections.proxy = connection
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, None
    return 0, None


def json_reply(status: int, body: object) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(body).encode()


def serve(name: str, routes: Routes) -> None:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive towards the sidecar

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            handler = routes.get(path) or next(
                (h for prefix, h in routes.items() if prefix.endswith("/") and
                 path.startswith(prefix)), None)
            status, content_type, body = (
                handler(self) if handler else json_reply(404, {"error": "not found"}))
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            print(f"{self.address_string()} {fmt % args}", flush=True)

    ThreadingHTTPServer.request_queue_size = 128
    ThreadingHTTPServer.daemon_threads = True
    address = os.environ.get("HEDDLE_APP_ADDRESS", "127.0.0.1")
    print(f"{name} {VERSION} listening on {address}:{PORT}", flush=True)
    ThreadingHTTPServer((address, PORT), Handler).serve_forever()
