"""A real redis-server for tests: its own instance on a free loopback port, nothing saved,
stopped (and restartable on the same port, to show an outage) by the test."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if self.command("PING") == "+PONG":
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout}s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
            self.process = None

    def command(self, *words: str) -> str:
        """One command over a plain socket (RESP), its reply's text: the tests' own view
        of the server, independent of the client under test."""
        payload = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as conn:
            conn.sendall(payload.encode())
            data = b""
            while True:
                chunk = conn.recv(65536)
                data += chunk
                if not chunk or _complete(data):
                    break
        return data.decode().strip()

    def info(self, section: str) -> dict[str, str]:
        text = self.command("INFO", section)
        return dict(line.split(":", 1) for line in text.splitlines()
                    if ":" in line and not line.startswith(("#", "$")))


def _complete(data: bytes) -> bool:
    if data.startswith(b"$"):  # a bulk string: its length, then that many bytes
        header, _, rest = data.partition(b"\r\n")
        return len(rest) >= int(header[1:]) + 2
    return data.endswith(b"\r\n")


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None and not shutil.which("/usr/bin/redis-server"):
        pytest.fail("redis-server is not installed (scripts/test.sh installs it: "
                    "apt-get install redis-server)")
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
