"""The agent beside each workload: keeps its Envoy running, serves readiness, and starts the
application once the sidecar is ready, with its outbound traffic routed through it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import signal
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from heddle.agent import http
from heddle.agent.bootstrap import bootstrap
from heddle.agent.certificates import (
    CertificateRequestFailed,
    CertificateRotator,
    WorkloadCertificate,
)
from heddle.agent.csr_helper import HelperCertificateClient
from heddle.agent.environment import application_env
from heddle.agent.envoy_process import EnvoyProcess
from heddle.agent.sds import SdsServer, serve_sds
from heddle.ca.identity import Identity
from heddle.clock import Clock, LoopClock
from heddle.model import ports
from heddle.model.proxy import Proxy

if TYPE_CHECKING:
    import grpc

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
    # The control plane's mutual-TLS endpoint (xDS + CA, 15012): with it the agent has a
    # workload certificate, Envoy's ADS goes there with it (not to xds_host:xds_port) and
    # renewals too. Empty: no certificate, ADS in plaintext to xds_host:xds_port.
    ca_address: str = ""
    join_address: str = ""  # where the first CSR goes with the join token (TLS, 15013)
    root_cert: bytes = b""  # the mesh root, to trust the control plane
    token: str = ""  # the join token bound to this workload's namespace and service account
    cert_lifetime: float = 0.0  # seconds; 0: the CA's default


def sds_socket_for(workdir: Path) -> Path:
    """A short path for the SDS socket (Unix socket paths are limited to ~100 bytes), named
    by a 64-bit checksum of the workdir: a name, not a secret, so no hashlib (loading OpenSSL
    for it would cost every agent 3.7 MB)."""
    path = str(workdir.resolve()).encode()
    digest = f"{zlib.crc32(path):08x}{zlib.adler32(path):08x}"
    return Path(tempfile.gettempdir()) / f"heddle-sds-{digest}.sock"


class Agent:
    """`clock`: what its deciding waits are measured on (the wait for the CA, for Envoy to
    be ready, for certificate renewals)."""

    def __init__(self, config: AgentConfig, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or LoopClock()
        proxy = config.proxy
        self.sds_socket = sds_socket_for(config.workdir) if config.ca_address else None
        if self.sds_socket is not None:
            host, port = config.ca_address.rsplit(":", 1)
            xds = bootstrap(proxy, host.strip("[]"), int(port), delta=config.delta,
                            sds_socket=str(self.sds_socket), xds_mtls=True)
        else:
            xds = bootstrap(proxy, config.xds_host, config.xds_port, delta=config.delta)
        self.envoy = EnvoyProcess(xds, config.workdir, log_level="warning", clock=self.clock)
        self.app: asyncio.subprocess.Process | None = None
        self.envoy_ready = asyncio.Event()
        self.rotator: CertificateRotator | None = None
        self._rotation: asyncio.Task[None] | None = None

    async def _start_identity(self, stop: asyncio.Event) -> grpc.aio.Server | None:
        """Get the first certificate (waiting for the CA if it is not up yet), serve it to
        Envoy over SDS, and keep it fresh."""
        if self.sds_socket is None:
            return None
        config = self.config
        client = HelperCertificateClient(config.ca_address, config.root_cert, config.token,
                                         config.join_address)
        lifetime = (datetime.timedelta(seconds=config.cert_lifetime)
                    if config.cert_lifetime else None)
        identity = Identity(config.proxy.namespace, config.proxy.service_account)
        self.rotator = CertificateRotator(client, identity, lifetime, clock=self.clock)
        sds = SdsServer()
        loop = asyncio.get_running_loop()
        updates: set[asyncio.Task[None]] = set()

        def push(cert: WorkloadCertificate) -> None:
            task = loop.create_task(sds.update(cert))
            updates.add(task)  # keep a reference until it ran
            task.add_done_callback(updates.discard)

        self.rotator.on_rotate(push)
        try:
            await self.rotator.first()
        except CertificateRequestFailed as err:
            raise RuntimeError(f"no workload certificate: {err.details}") from err
        server = await serve_sds(sds, self.sds_socket)
        self._rotation = loop.create_task(self.rotator.run(stop))
        log.info("serving the certificate for %s over SDS", identity)
        return server

    async def _health(self, method: str, target: str) -> tuple[int, str]:
        if target.partition("?")[0] != "/healthz/ready":
            return 404, "not found"
        if method not in ("GET", "HEAD"):
            return 405, "method not allowed"
        app_up = not self.config.command or (self.app is not None
                                             and self.app.returncode is None)
        if self.envoy_ready.is_set() and app_up:
            return 200, "ready"
        return 503, "not ready"

    async def _start_health(self) -> asyncio.Server:
        return await http.serve(self._health, self.config.proxy.address, ports.HEALTH)

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
        sds_server = await self._start_identity(stop)
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
            health.close()
            await health.wait_closed()
            if sds_server is not None:
                await sds_server.stop(grace=None)
