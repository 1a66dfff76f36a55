"""The conformance echo's modes beyond reflecting a request, as echo-basic has them: the
retry simulation, the WebSocket echo and the h2c port, each exercised over a real socket
with an independent client (httpx, aiohttp)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest

from heddle.conformance import echo, echo_h2c, echo_ws
from heddle.conformance.echo_retry import BadRequest, Fail, RetrySimulation

ENV = {"NAMESPACE": "ns", "POD_NAME": "infra-backend-v1-0", "SERVICE_NAME": "infra-backend-v1"}


def _free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture
async def ports() -> AsyncIterator[tuple[int, int]]:
    """An echo serving an HTTP port and an h2c port."""
    http_port, h2c_port = _free_ports(2)
    task = asyncio.create_task(echo.serve("127.0.0.1", [http_port, h2c_port],
                                          {**ENV, "H2C_PORT": str(h2c_port)}))
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", http_port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.02)
    yield http_port, h2c_port
    task.cancel()


def test_failures_are_counted_per_request_id_until_succeed_after() -> None:
    sim = RetrySimulation(echo.go_duration)
    query = {"uuid": ["a"], "succeedAfter": ["2"], "responseCode": ["503"]}
    assert sim.attempt(query) == Fail(503)
    assert sim.attempt({**query, "uuid": ["b"]}) == Fail(503)  # another id counts apart
    assert sim.attempt(query) == Fail(503)
    assert sim.attempt(query) is None  # the third attempt is echoed
    assert sim.attempt(query) is None


def test_without_a_response_code_an_attempt_resets_and_may_wait_first() -> None:
    sim = RetrySimulation(echo.go_duration)
    assert sim.attempt({"uuid": ["a"], "succeedAfter": ["1"], "delayRetry": ["300ms"]}) == \
        Fail(None, 0.3)
    assert sim.attempt({"uuid": ["b"], "succeedAfter": ["1"], "delayRetry": ["soon"]}) == \
        Fail(500)


def test_a_retry_request_needs_an_id_and_succeed_after() -> None:
    sim = RetrySimulation(echo.go_duration)
    assert sim.attempt({"succeedAfter": ["1"]}) == BadRequest("uuid is required")
    assert sim.attempt({"uuid": ["a"], "succeedAfter": ["x"]}) == \
        BadRequest("succeedAfter is required")


def test_only_the_newest_ids_are_remembered() -> None:
    sim = RetrySimulation(echo.go_duration, max_ids=2)
    for name in ("a", "b", "c"):
        assert sim.attempt({"uuid": [name], "succeedAfter": ["1"], "responseCode": ["500"]})
    assert sim.attempt({"uuid": ["a"], "succeedAfter": ["1"], "responseCode": ["500"]}) == \
        Fail(500)  # forgotten: counted again from nothing


async def test_the_retry_path_fails_with_the_code_then_echoes(ports: tuple[int, int]) -> None:
    base = f"http://127.0.0.1:{ports[0]}/retry/x?responseCode=500&succeedAfter=1"
    url = f"{base}&uuid={uuid.uuid4()}"
    async with httpx.AsyncClient(trust_env=False) as client:
        assert (await client.get(url)).status_code == 500
        second = await client.get(url)
    assert second.status_code == 200
    assert second.json()["pod"] == "infra-backend-v1-0"


async def test_a_connection_error_attempt_resets_the_connection(
        ports: tuple[int, int]) -> None:
    url = f"http://127.0.0.1:{ports[0]}/retry/x?succeedAfter=1&uuid={uuid.uuid4()}"
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(httpx.TransportError):
            await client.get(url)
        assert (await client.get(url)).status_code == 200


def test_the_handshake_accepts_the_rfc_example_key() -> None:
    assert echo_ws.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert echo_ws.wants_upgrade([("Upgrade", "websocket"), ("Connection", "keep-alive, Upgrade"),
                                  ("Sec-WebSocket-Key", "k")]) == "k"
    assert echo_ws.wants_upgrade([("Upgrade", "websocket"), ("Sec-WebSocket-Key", "k")]) is None


async def test_websocket_text_and_binary_frames_come_back(ports: tuple[int, int]) -> None:
    big = bytes(range(256)) * 300  # a 16-bit and then a 64-bit length
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"ws://127.0.0.1:{ports[0]}/ws", origin="ws://gateway/test") as ws:
        await ws.send_str("Websocket Support!")
        assert await ws.receive_str(timeout=5) == "Websocket Support!"
        await ws.send_bytes(bytes([1, 2, 3, 4, 5, 6, 7]))
        assert await ws.receive_bytes(timeout=5) == bytes([1, 2, 3, 4, 5, 6, 7])
        await ws.send_bytes(big)
        assert await ws.receive_bytes(timeout=5) == big
        await ws.close()
    assert ws.close_code == 1000


async def test_other_paths_are_echoed_even_when_asking_for_an_upgrade(
        ports: tuple[int, int]) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        got = await client.get(f"http://127.0.0.1:{ports[0]}/other", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "k"})
    assert got.status_code == 200 and got.json()["path"] == "/other"


@pytest.mark.skipif(not echo_h2c.available(), reason="h2 (the dev extra) is not installed")
async def test_the_h2c_port_answers_http2_with_prior_knowledge(ports: tuple[int, int]) -> None:
    async with httpx.AsyncClient(trust_env=False, http1=False, http2=True) as client:
        got = await client.get(f"http://127.0.0.1:{ports[1]}/path?q=1", headers={
            "X-Echo-Set-Header": "X-Back:yes", "X-Custom": "a"})
    assert got.http_version == "HTTP/2"
    assert got.status_code == 200 and got.headers["x-back"] == "yes"
    body = got.json()
    assert (body["proto"], body["path"], body["host"], body["method"]) == \
        ("HTTP/2.0", "/path?q=1", f"127.0.0.1:{ports[1]}", "GET")
    assert body["headers"]["X-Custom"] == ["a"]


@pytest.mark.skipif(not echo_h2c.available(), reason="h2 (the dev extra) is not installed")
async def test_http1_on_the_h2c_port_is_refused(ports: tuple[int, int]) -> None:
    async with httpx.AsyncClient(trust_env=False) as client:
        got = await client.get(f"http://127.0.0.1:{ports[1]}/")
    assert (got.status_code, got.content) == (400, b"Expected h2c request")
