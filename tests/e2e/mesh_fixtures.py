"""Helpers for end-to-end tests: unique loopback addresses, the hello mesh, a running xDS."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from heddle.api.loader import load_text
from heddle.config.store import ConfigStore

ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count(1)


def unique_subnet() -> str:
    """A /24 in 127.0.0.0/8 no other test of this run uses: `127.A.B.`."""
    n = next(_counter)
    return f"127.{100 + os.getpid() % 100}.{n % 250}."


def hello_text(subnet: str) -> str:
    text = (ROOT / "examples" / "hello" / "mesh.yaml").read_text()
    return text.replace("127.0.10.", subnet)


def hello_store(subnet: str) -> ConfigStore:
    store = ConfigStore()
    result = load_text(hello_text(subnet), "hello.yaml")
    assert result.errors == []
    store.put("hello.yaml", result)
    return store


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float,
                     what: str) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")
