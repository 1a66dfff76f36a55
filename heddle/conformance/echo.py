"""The conformance backends' echo server, as the upstream `echo-basic` image answers: every
request is reflected as JSON (path with its query, host, method, protocol, headers by their
canonical names, and the pod's namespace, service and name from $NAMESPACE, $SERVICE_NAME and
$POD_NAME), `X-Echo-Set-Header: name:value,...` sets response headers, `?delay=1s` answers
late, and each request is logged as `Echoing back request made to PATH to client (ADDR)`, the
line the suite proves mirroring by. As echo-basic also: `/retry/...` simulates a flaky
backend (`echo_retry`), `/ws` upgrades to a WebSocket echo (`echo_ws`), and the h2c port
($H2C_PORT, 3001) speaks HTTP/2 with prior knowledge (`echo_h2c`, when `h2` is installed).

`python -m heddle.conformance.echo` listens on $HEDDLE_APP_ADDRESS (default 127.0.0.1) at
each port of $ECHO_PORTS (default 3000). Lean on purpose (asyncio and h11 only): one runs per
backend pod.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

import h11

from heddle.conformance import echo_h2c, echo_ws
from heddle.conformance.echo_retry import PREFIX as RETRY_PREFIX
from heddle.conformance.echo_retry import BadRequest, Fail, RetrySimulation

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
MAX_BODY = 1024 * 1024


def go_duration(text: str) -> float | None:
    """Seconds in a Go duration (`1s`, `500ms`, `1m30s`); None when it is not one."""
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _UNITS[u] for n, u in parts)


def canonical(name: str) -> str:
    """A header name as Go's net/http spells it (`x-echo-set-header` -> `X-Echo-Set-Header`)."""
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def reflect(method: str, target: str, headers: list[tuple[str, str]], http_version: str,
            env: dict[str, str]) -> dict[str, object]:
    """What the echo answers for a request: echo-basic's JSON body."""
    by_name: dict[str, list[str]] = {}
    host = ""
    for name, value in headers:
        if name.lower() == "host":
            host = value  # Go moves Host out of the headers
            continue
        by_name.setdefault(canonical(name), []).append(value)
    return {
        "path": target, "host": host, "method": method, "proto": f"HTTP/{http_version}",
        "headers": by_name, "namespace": env.get("NAMESPACE", ""),
        "ingress": env.get("INGRESS_NAME", ""), "service": env.get("SERVICE_NAME", ""),
        "pod": env.get("POD_NAME", ""), "httpPort": env.get("HTTP_PORT", ""),
    }


def response_headers(request_headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The headers `X-Echo-Set-Header: name:value,name2:value2` asks for."""
    found = []
    for name, value in request_headers:
        if name.lower() != "x-echo-set-header":
            continue
        for item in value.split(","):
            key, sep, val = item.partition(":")
            if sep and key.strip():
                found.append((key.strip(), val.strip()))
    return found


def _client(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 env: dict[str, str], retries: RetrySimulation, initial: bytes = b"",
                 h2c_port: bool = False) -> None:
    connection = h11.Connection(h11.SERVER)
    if initial:  # (an empty one would tell h11 the client closed)
        connection.receive_data(initial)
    client = _client(writer)
    try:
        while True:
            request: h11.Request | None = None
            size = 0
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    data = await reader.read(65536)
                    connection.receive_data(data)
                    if not data and connection.their_state is not h11.DONE:
                        return
                    continue
                if isinstance(event, h11.Request):
                    request = event
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    if size > MAX_BODY:
                        return
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
            if request is None:
                return
            if h2c_port:
                await _send(connection, writer, 400, [], echo_h2c.NOT_H2C, "text/plain")
                return
            headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers]
            key = echo_ws.wants_upgrade(headers)
            if key is not None and request.target == echo_ws.PATH.encode():
                await _websocket(connection, reader, writer, key, client)
                return
            if request.target.startswith(RETRY_PREFIX.encode()):
                if not await _retry(connection, writer, request, env, client, retries):
                    return
            else:
                await _answer(connection, writer, request, env, client)
            if connection.our_state is h11.MUST_CLOSE or connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()
    except (h11.ProtocolError, ConnectionError):
        return
    finally:
        writer.close()


async def _answer(connection: h11.Connection, writer: asyncio.StreamWriter,
                  request: h11.Request, env: dict[str, str], client: str) -> None:
    target = request.target.decode("latin-1")
    headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in request.headers]
    print(f"Echoing back request made to {target} to client ({client})", flush=True)
    delay = parse_qs(urlsplit(target).query).get("delay", [""])[0]
    seconds = go_duration(delay) if delay else None
    if seconds:
        await asyncio.sleep(min(seconds, 60.0))
    body = json.dumps(reflect(request.method.decode(), target, headers,
                              request.http_version.decode(), env)).encode()
    extra = [(n.encode(), v.encode()) for n, v in response_headers(headers)]
    writer.write(connection.send(h11.Response(status_code=200, headers=[
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"), *extra])) or b"")
    writer.write(connection.send(h11.Data(data=body)) or b"")
    writer.write(connection.send(h11.EndOfMessage()) or b"")
    await writer.drain()


async def _send(connection: h11.Connection, writer: asyncio.StreamWriter, status: int,
                headers: list[tuple[bytes, bytes]], body: bytes,
                content_type: str = "application/json") -> None:
    writer.write(connection.send(h11.Response(status_code=status, headers=[
        (b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode()),
        *headers])) or b"")
    writer.write(connection.send(h11.Data(data=body)) or b"")
    writer.write(connection.send(h11.EndOfMessage()) or b"")
    await writer.drain()


async def _retry(connection: h11.Connection, writer: asyncio.StreamWriter,
                 request: h11.Request, env: dict[str, str], client: str,
                 retries: RetrySimulation) -> bool:
    """One attempt at `/retry/`; False when the connection was reset."""
    target = request.target.decode("latin-1")
    outcome = retries.attempt(parse_qs(urlsplit(target).query))
    if isinstance(outcome, BadRequest):
        await _send(connection, writer, 400, [], outcome.message.encode(), "text/plain")
    elif isinstance(outcome, Fail):
        if outcome.delay:
            await asyncio.sleep(outcome.delay)
        if outcome.status is None:
            _reset(writer)
            return False
        await _send(connection, writer, outcome.status, [], b"")
    else:
        await _answer(connection, writer, request, env, client)
    return True


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (linger 0), as echo-basic's connection-error attempts do."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _websocket(connection: h11.Connection, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, key: str, client: str) -> None:
    print(f"established websocket connection {client}", flush=True)
    writer.write(connection.send(h11.InformationalResponse(status_code=101, headers=[
        (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
        (b"sec-websocket-accept", echo_ws.accept_key(key).encode())])) or b"")
    await writer.drain()
    await echo_ws.echo_frames(reader, writer, connection.trailing_data[0])


async def _serve_h2c_port(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          env: dict[str, str], retries: RetrySimulation) -> None:
    """HTTP/2 when the client starts with its preface; otherwise HTTP/1.1 (answered 400)."""
    first = b""
    try:
        while len(first) < len(echo_h2c.PREFACE) and echo_h2c.PREFACE.startswith(first):
            chunk = await reader.read(len(echo_h2c.PREFACE) - len(first))
            if not chunk:
                break
            first += chunk
    except ConnectionError:
        writer.close()
        return
    if first == echo_h2c.PREFACE:
        await echo_h2c.serve(reader, writer, first, _client(writer),
                             lambda m, t, h, v: reflect(m, t, h, v, env), response_headers,
                             go_duration)
    else:
        await _serve(reader, writer, env, retries, first, h2c_port=True)


async def serve(address: str, ports: list[int], env: dict[str, str]) -> None:
    retries = RetrySimulation(go_duration)
    h2c = int(env.get("H2C_PORT") or 3001) if echo_h2c.available() else None

    def handler(port: int) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                       Awaitable[None]]:
        if port == h2c:
            return lambda r, w: _serve_h2c_port(r, w, env, retries)
        return lambda r, w: _serve(r, w, env, retries)

    servers = [await asyncio.start_server(handler(port), address, port) for port in ports]
    print(f"echo serving on {address} ports {', '.join(map(str, ports))}", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    env = dict(os.environ)
    address = env.get("HEDDLE_APP_ADDRESS", "127.0.0.1")
    ports = [int(p) for p in env.get("ECHO_PORTS", "3000").split(",") if p.strip()]
    try:
        asyncio.run(serve(address, ports, env))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
