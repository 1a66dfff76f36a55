"""The echo's WebSocket endpoint (`/ws`, on the HTTP port, as echo-basic's): the RFC 6455
handshake answer and an echo of every text and binary frame back to the client, until it
closes. Written on asyncio streams, so the h11 echo hands a connection over after its
`101 Switching Protocols`; no WebSocket library is loaded by the backends.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
from collections.abc import Sequence

PATH = "/ws"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
MAX_FRAME = 1024 * 1024
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(client_key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(client_key.strip().encode() + _GUID).digest()).decode()


def wants_upgrade(headers: Sequence[tuple[str, str]]) -> str | None:
    """The client's Sec-WebSocket-Key when the request asks for a WebSocket upgrade."""
    found = {name.lower(): value for name, value in headers}
    upgrade = found.get("upgrade", "").lower() == "websocket"
    connection = "upgrade" in (t.strip() for t in found.get("connection", "").lower().split(","))
    key = found.get("sec-websocket-key", "")
    return key if upgrade and connection and key else None


def encode_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """A server frame: never masked."""
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([size])
    elif size < 1 << 16:
        head += bytes([126]) + struct.pack("!H", size)
    else:
        head += bytes([127]) + struct.pack("!Q", size)
    return head + payload


class _Input:
    """The connection's bytes: those h11 read past the handshake first."""

    def __init__(self, reader: asyncio.StreamReader, buffered: bytes) -> None:
        self.reader, self.buffered = reader, buffered

    async def read(self, count: int) -> bytes:
        taken, self.buffered = self.buffered[:count], self.buffered[count:]
        if len(taken) < count:
            taken += await self.reader.readexactly(count - len(taken))
        return taken


async def read_frame(source: _Input) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload); ValueError for a frame over MAX_FRAME."""
    first, second = await source.read(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await source.read(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await source.read(8))
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    mask = await source.read(4) if second & 0x80 else b""
    payload = await source.read(size)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bool(first & 0x80), first & 0x0F, payload


async def echo_frames(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      buffered: bytes = b"") -> None:
    """Echo data frames as they came (fragments too), answer pings, and return once the
    client closes (after answering its close) or the connection ends."""
    source = _Input(reader, buffered)
    try:
        while True:
            fin, opcode, payload = await read_frame(source)
            if opcode == CLOSE:
                writer.write(encode_frame(CLOSE, payload[:2]))
                await writer.drain()
                return
            if opcode == PING:
                writer.write(encode_frame(PONG, payload))
            elif opcode in (CONTINUATION, TEXT, BINARY):
                writer.write(encode_frame(opcode, payload, fin))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        return
