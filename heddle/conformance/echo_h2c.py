"""The echo's h2c port (echo-basic's H2C_PORT, 3001): HTTP/2 with prior knowledge on
plaintext, each request echoed as on the HTTP port (`proto` HTTP/2.0, `host` the
:authority). An HTTP/1.1 request there answers 400 `Expected h2c request`, as echo-basic
answers one that does not ask for h2c (the h2c upgrade itself is not offered: RFC 9113
deprecates it, and the suite does not test it).

Uses the `h2` library (hyper-h2, sans-IO); `available()` says whether it is installed.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
NOT_H2C = b"Expected h2c request"  # the answer (400) to HTTP/1.1 on the h2c port

Reflect = Callable[[str, str, list[tuple[str, str]], str], dict[str, object]]
ExtraHeaders = Callable[[list[tuple[str, str]]], list[tuple[str, str]]]
Delay = Callable[[str], float | None]


def available() -> bool:
    return importlib.util.find_spec("h2") is not None


def split_headers(raw: list[tuple[str, str]]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """HTTP/2 headers as (pseudo-headers, the rest with :authority as Host, as Go's server
    sees a request)."""
    pseudo = {n: v for n, v in raw if n.startswith(":")}
    rest = [(n, v) for n, v in raw if not n.startswith(":")]
    if ":authority" in pseudo and not any(n.lower() == "host" for n, _ in rest):
        rest.insert(0, ("host", pseudo[":authority"]))
    return pseudo, rest


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, preface: bytes,
                client: str, reflect: Reflect, extra_headers: ExtraHeaders,
                parse_duration: Delay) -> None:
    """One HTTP/2 connection whose first bytes (`preface`, the client's) were read."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions

    connection = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=False, header_encoding="latin-1"))
    connection.initiate_connection()
    requests: dict[int, list[tuple[str, str]]] = {}
    tasks: set[asyncio.Task[None]] = set()

    async def answer(stream_id: int, raw: list[tuple[str, str]]) -> None:
        pseudo, headers = split_headers(raw)
        target = pseudo.get(":path", "/")
        print(f"Echoing back request made to {target} to client ({client})", flush=True)
        delay = parse_qs(urlsplit(target).query).get("delay", [""])[0]
        seconds = parse_duration(delay) if delay else None
        if seconds:
            await asyncio.sleep(min(seconds, 60.0))
        body = json.dumps(reflect(pseudo.get(":method", "GET"), target, headers,
                                  "2.0")).encode()
        response = [(":status", "200"), ("content-type", "application/json"),
                    ("content-length", str(len(body))), ("x-content-type-options", "nosniff"),
                    *((n.lower(), v) for n, v in extra_headers(headers))]
        try:
            connection.send_headers(stream_id, response)
            size = connection.max_outbound_frame_size
            # An echo is a few KiB, within the stream's initial 64 KiB window.
            for start in range(0, len(body), size):
                connection.send_data(stream_id, body[start:start + size])
            connection.end_stream(stream_id)
            writer.write(connection.data_to_send())
            await writer.drain()
        except (ConnectionError, h2.exceptions.H2Error):
            return

    data = preface
    try:
        while data:
            for event in connection.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    requests[event.stream_id] = _text(event.headers)
                elif isinstance(event, h2.events.DataReceived):
                    connection.acknowledge_received_data(event.flow_controlled_length,
                                                         event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    task = asyncio.create_task(
                        answer(event.stream_id, requests.pop(event.stream_id, [])))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    data = b""
            writer.write(connection.data_to_send())
            await writer.drain()
            if data:
                data = await reader.read(65536)
    except (ConnectionError, h2.exceptions.ProtocolError):
        pass
    finally:
        for task in tasks:
            task.cancel()
        writer.close()


def _text(headers: Any) -> list[tuple[str, str]]:
    return [(_str(n), _str(v)) for n, v in headers or []]


def _str(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value

