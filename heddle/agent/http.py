"""The little HTTP the agent speaks: its readiness endpoint, and calls to Envoy's admin API.

HTTP/1.1 framing by `h11` (sans-IO) over asyncio streams, one request per connection; an
HTTP framework or client (aiohttp, httpx) would cost the agent, which runs beside every
workload, more memory than all of its own code.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import h11

MAX_BODY = 64 * 1024 * 1024  # an Envoy config dump can be large; a probe never is


class HttpError(Exception):
    """The request could not be sent or its response not read."""


@dataclass(frozen=True)
class HttpResponse:
    status_code: int
    text: str


# (method, target) -> (status, body)
Handler = Callable[[str, str], Awaitable[tuple[int, str]]]


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> h11.Event:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event  # type: ignore[return-value]
        conn.receive_data(await reader.read(65536))


async def fetch(url: str, method: str = "GET", timeout: float = 5.0) -> HttpResponse:
    """One request to `http://HOST:PORT/PATH`; raises HttpError when it fails."""
    if not url.startswith("http://"):
        raise ValueError(f"only http:// URLs: {url}")
    authority, _, path = url.removeprefix("http://").partition("/")
    host, _, port = authority.rpartition(":")
    try:
        return await asyncio.wait_for(
            _fetch(host.strip("[]"), int(port), authority, method, "/" + path), timeout)
    except (OSError, TimeoutError, h11.ProtocolError) as err:
        raise HttpError(f"{method} {url}: {err or type(err).__name__}") from err


async def _fetch(host: str, port: int, authority: str, method: str,
                 target: str) -> HttpResponse:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        conn = h11.Connection(h11.CLIENT)
        writer.write(conn.send(h11.Request(
            method=method, target=target,
            headers=[("Host", authority), ("Connection", "close"), ("Content-Length", "0")])))
        writer.write(conn.send(h11.EndOfMessage()))
        await writer.drain()
        status = 0
        body = bytearray()
        while True:
            event = await _next_event(conn, reader)
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise h11.RemoteProtocolError("response body too large")
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        return HttpResponse(status, body.decode(errors="replace"))
    finally:
        writer.close()
        await writer.wait_closed()


async def serve(handler: Handler, host: str, port: int) -> asyncio.Server:
    """Answer each request with `handler(method, target)`, one request per connection."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        try:
            event = await asyncio.wait_for(_next_event(conn, reader), timeout=10)
            if not isinstance(event, h11.Request):
                return
            status, text = await handler(event.method.decode(), event.target.decode())
            body = b"" if event.method == b"HEAD" else text.encode()
            writer.write(conn.send(h11.Response(status_code=status, headers=[
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Content-Length", str(len(text.encode()))), ("Connection", "close")])))
            writer.write(conn.send(h11.Data(data=body)) if body else b"")
            writer.write(conn.send(h11.EndOfMessage()))
            await writer.drain()
        except (OSError, TimeoutError, h11.ProtocolError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    return await asyncio.start_server(on_connection, host, port)
