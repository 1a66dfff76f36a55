"""The agent's HTTP: its readiness endpoint and its calls to Envoy's admin API."""

from __future__ import annotations

import asyncio

import pytest

from heddle.agent import http


async def test_a_request_gets_the_handlers_status_and_body() -> None:
    seen: list[tuple[str, str]] = []

    async def handler(method: str, target: str) -> tuple[int, str]:
        seen.append((method, target))
        return (200, "ready") if target == "/healthz/ready" else (404, "not found")

    server = await http.serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        ok = await http.fetch(f"http://127.0.0.1:{port}/healthz/ready")
        missing = await http.fetch(f"http://127.0.0.1:{port}/nope?x=1", method="POST")
        head = await http.fetch(f"http://127.0.0.1:{port}/healthz/ready", method="HEAD")
    finally:
        server.close()
        await server.wait_closed()
    assert (ok.status_code, ok.text) == (200, "ready")
    assert (missing.status_code, missing.text) == (404, "not found")
    assert (head.status_code, head.text) == (200, "")
    assert seen == [("GET", "/healthz/ready"), ("POST", "/nope?x=1"), ("HEAD", "/healthz/ready")]


async def test_a_large_response_body_arrives_whole() -> None:
    async def handler(method: str, target: str) -> tuple[int, str]:
        return 200, "x" * 1_000_000

    server = await http.serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        response = await http.fetch(f"http://127.0.0.1:{port}/config_dump")
    finally:
        server.close()
        await server.wait_closed()
    assert len(response.text) == 1_000_000


async def test_nothing_listening_is_an_http_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(http.HttpError):
        await http.fetch(f"http://127.0.0.1:{port}/ready", timeout=2)


async def test_a_silent_server_times_out_as_an_http_error() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(http.HttpError):
            await http.fetch(f"http://127.0.0.1:{port}/ready", timeout=0.2)
    finally:
        server.close()
