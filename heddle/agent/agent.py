"""The agent beside each workload: keeps its Envoy running, serves readiness, and starts the
application once the sidecar is ready, with its outbound traffic routed through it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from heddle.agent.bootstrap import bootstrap
from heddle.agent.environment import application_env
from heddle.agent.envoy_process import EnvoyProcess
from heddle.model.proxy import Proxy
from heddle.translate import ports

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentConfig:
    proxy: Proxy
    xds_host: str
    xds_port: int
    workdir: Path
    command: str = ""
    cwd: Path | None = None
    delta: bool = False
    hold_application: bool = True  # start the app only once Envoy is ready, as Istio does
    extra_env: dict[str, str] = field(default_factory=dict)


class Agent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        proxy = config.proxy
        self.envoy = EnvoyProcess(
            bootstrap(proxy, config.xds_host, config.xds_port, delta=config.delta),
            config.workdir, log_level="warning")
        self.app: asyncio.subprocess.Process | None = None
        self.envoy_ready = asyncio.Event()

    async def _health(self, _: web.Request) -> web.Response:
        app_up = not self.config.command or (self.app is not None
                                             and self.app.returncode is None)
        if self.envoy_ready.is_set() and app_up:
            return web.Response(text="ready")
        return web.Response(status=503, text="not ready")

    async def _start_health(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/healthz/ready", self._health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, self.config.proxy.address, ports.HEALTH).start()
        return runner

    async def _start_app(self) -> None:
        if not self.config.command:
            return
        env = application_env(self.config.proxy)
        env.update(self.config.extra_env)
        out = (self.config.workdir / "app.log").open("ab")
        self.app = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", self.config.command, env=env, cwd=self.config.cwd,
            stdout=out, stderr=out, start_new_session=True)
        out.close()
        log.info("started application (pid %d): %s", self.app.pid, self.config.command)

    async def _stop_app(self) -> None:
        if self.app is None or self.app.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.app.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(self.app.wait(), timeout=5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.app.pid, signal.SIGKILL)
            await self.app.wait()

    async def run(self, stop: asyncio.Event) -> None:
        self.config.workdir.mkdir(parents=True, exist_ok=True)
        health = await self._start_health()
        envoy_stop = asyncio.Event()
        supervisor = asyncio.create_task(self.envoy.supervise(envoy_stop))
        try:
            if self.config.hold_application:
                while not self.envoy.running:
                    await asyncio.sleep(0.02)
                await self.envoy.wait_ready(timeout=120)
            self.envoy_ready.set()
            await self._start_app()
            if not self.config.hold_application:
                await self.envoy.wait_ready(timeout=120)
            await stop.wait()
        finally:
            log.info("stopping: draining Envoy, then the application")
            await self.envoy.drain()
            await self._stop_app()
            envoy_stop.set()
            await supervisor
            await self.envoy.stop()
            await health.cleanup()
