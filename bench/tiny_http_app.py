"""The application behind every pair in bench/telemetry_cost.py: an HTTP/1.1 server on
asyncio's transport layer that answers every request `200 ok` on a kept-alive connection.
It parses no more than it must (the end of the head, a Content-Length), so at a thousand
requests a second it takes a few percent of a core and leaves the CPU to the proxies.

    HEDDLE_APP_ADDRESS=127.0.0.1 BENCH_APP_PORT=8080 python bench/tiny_http_app.py

Standard library only: `heddle up` runs it as a workload's command, with whatever Python.
"""

from __future__ import annotations

import asyncio
import os

RESPONSE = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nok\n"
MAX_HEAD = 65536  # a client that sends more without ending its head is not a benchmark's


class Answer(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = 0
            if (at := head.find(b"\r\ncontent-length:")) >= 0:
                length = int(head[at + 17:].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return  # the body is still on its way
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(RESPONSE)
        if len(self.buffer) > MAX_HEAD:
            self.transport.close()


async def serve(address: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Answer, address, port, backlog=1024)
    print(f"tiny app listening on {address}:{port}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(os.environ.get("HEDDLE_APP_ADDRESS", "127.0.0.1"),
                      int(os.environ.get("BENCH_APP_PORT", "8080"))))
