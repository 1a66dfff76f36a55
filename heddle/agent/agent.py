"""The agent beside each workload: keeps its Envoy running, serves readiness, and starts the
application once the sidecar is ready, with its outbound traffic routed through it."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import os
import signal
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
from heddle.agent.http import HttpError
from heddle.agent.logrotate import FILES, MAX_BYTES, keep_rotated
from heddle.agent.merged_metrics import merged_metrics_handler
from heddle.agent.sds import SdsServer, serve_sds
from heddle.ca.identity import Identity
from heddle.clock import Clock, LoopClock
from heddle.model import ports
from heddle.model.proxy import Proxy
from heddle.model.scrape import AppMetrics
from heddle.model.sockets import sds_socket_for
from heddle.supervise import KUBELET_BACKOFF, Backoff, keep_running

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
    # The application restarts as a container with `restartPolicy: Always`: kubelet's
    # back-off (10 s doubling to 5 min, reset after 10 min running), from `restart_delay`.
    restart_delay: float = KUBELET_BACKOFF.initial
    # app.log, envoy.log (with the access logs) and agent.log rotate past this size.
    log_max_bytes: int = MAX_BYTES
    log_files: int = FILES
    # The application's own metrics, merged into the proxy's on 15020 (prometheus.io/*).
    app_metrics: AppMetrics | None = None

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.restart_delay, max(KUBELET_BACKOFF.cap, self.restart_delay),
                       KUBELET_BACKOFF.reset_after)


__all__ = ["Agent", "AgentConfig", "sds_socket_for"]

INBOUND_REFRESH = 5.0  # how long the application's ports, read from Envoy, are trusted (s)


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
                            sds_socket=str(self.sds_socket), xds_mtls=True,
                            health_checks=True)
        else:
            xds = bootstrap(proxy, config.xds_host, config.xds_port, delta=config.delta,
                            health_checks=True)
        self.envoy = EnvoyProcess(xds, config.workdir, log_level="warning", clock=self.clock)
        self.app: asyncio.subprocess.Process | None = None
        self.envoy_ready = asyncio.Event()
        self.rotator: CertificateRotator | None = None
        self._rotation: asyncio.Task[None] | None = None
        # Where the application serves, as Envoy's inbound clusters send there, and when
        # that was read: (monotonic time, addresses).
        self._inbound: tuple[float, list[tuple[str, int] | str]] | None = None

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
        if not self.envoy_ready.is_set():
            return 503, "not ready: the sidecar has no configuration yet"
        if self.config.command:
            if self.app is None or self.app.returncode is not None:
                return 503, "not ready: the application is not running"
            if not await self._app_serving():
                return 503, "not ready: the application does not accept connections yet"
        return 200, "ready"

    async def _inbound_targets(self) -> list[tuple[str, int] | str]:
        """Where Envoy's inbound clusters hand requests to the application (host, port) or
        a Unix socket path, read from its admin API at most every INBOUND_REFRESH seconds;
        those last read when Envoy does not answer."""
        now = self.clock.now()
        if self._inbound is not None and now - self._inbound[0] < INBOUND_REFRESH:
            return self._inbound[1]
        try:
            text = (await self.envoy.admin(
                "/config_dump?resource=dynamic_active_clusters&name_regex=%5Einbound")).text
            dump = json.loads(text)
        except (HttpError, ValueError):
            return self._inbound[1] if self._inbound is not None else []
        targets: list[tuple[str, int] | str] = []
        for entry in dump.get("configs", []):
            assignment = entry.get("cluster", {}).get("load_assignment", {})
            for group in assignment.get("endpoints", []):
                for lb in group.get("lb_endpoints", []):
                    address = lb.get("endpoint", {}).get("address", {})
                    if "pipe" in address:
                        targets.append(str(address["pipe"]["path"]))
                    elif "socket_address" in address:
                        sa = address["socket_address"]
                        targets.append((str(sa["address"]), int(sa.get("port_value", 0))))
        self._inbound = (now, targets)
        return targets

    async def _app_serving(self) -> bool:
        """The application accepts connections wherever its sidecar sends requests (a
        tcpSocket readiness probe on each of its ports, as kubelet would run it)."""
        for target in await self._inbound_targets():
            try:
                if isinstance(target, str):
                    opening = asyncio.open_unix_connection(target)
                else:
                    opening = asyncio.open_connection(*target)
                _, writer = await asyncio.wait_for(opening, timeout=0.5)
            except (OSError, TimeoutError):
                return False
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return True

    async def _start_health(self) -> asyncio.Server:
        return await http.serve(self._health, self.config.proxy.address, ports.HEALTH)

    async def _envoy_stats(self, path: str) -> str:
        answer = await self.envoy.admin(path)
        if answer.status_code != 200:
            raise HttpError(f"Envoy's admin API answered {answer.status_code} for {path}")
        return answer.text

    async def _start_metrics(self) -> asyncio.Server:
        return await http.serve(merged_metrics_handler(self._envoy_stats, self.config.app_metrics),
                                self.config.proxy.address, ports.MERGED_METRICS)

    async def _start_app(self) -> asyncio.subprocess.Process:
        if self.app is not None:  # what the last one left in its group goes with it
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.app.pid, signal.SIGKILL)
        env = application_env(self.config.proxy)
        # The workload's own folder (its logs beside it), for what the app writes: an
        # NGINX's generated configuration and temp files, say.
        env["HEDDLE_WORKLOAD_DIR"] = str(self.config.workdir.resolve())
        env.update(self.config.extra_env)
        out = (self.config.workdir / "app.log").open("ab")
        self.app = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", self.config.command, env=env, cwd=self.config.cwd,
            stdout=out, stderr=out, start_new_session=True)
        out.close()
        (self.config.workdir / "app.pid").write_text(f"{self.app.pid}\n")
        log.info("started application (pid %d): %s", self.app.pid, self.config.command)
        return self.app

    async def _keep_app_running(self, stop: asyncio.Event) -> None:
        """Start the application and restart it whenever it exits, backing off as kubelet
        does, until `stop`; each exit is logged with its exit code or signal."""
        await keep_running(self._start_app, stop, "application", backoff=self.config.backoff,
                           clock=self.clock)

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

    def _logs(self) -> list[Path]:
        workdir = self.config.workdir
        return [workdir / "app.log", self.envoy.log_path, workdir / "agent.log"]

    async def run(self, stop: asyncio.Event) -> None:
        config = self.config
        config.workdir.mkdir(parents=True, exist_ok=True)
        rotation = asyncio.create_task(keep_rotated(
            self._logs(), stop, self.clock, config.log_max_bytes, config.log_files))
        sds_server: grpc.aio.Server | None = None
        health: asyncio.Server | None = None
        metrics: asyncio.Server | None = None
        envoy_stop = asyncio.Event()
        app_stop = asyncio.Event()
        supervisor: asyncio.Task[None] | None = None
        app_keeper: asyncio.Task[None] | None = None
        try:
            sds_server = await self._start_identity(stop)
            health = await self._start_health()
            metrics = await self._start_metrics()
            supervisor = asyncio.create_task(self.envoy.supervise(envoy_stop))
            if config.hold_application:
                while not self.envoy.running:
                    await asyncio.sleep(0.02)
                await self.envoy.wait_ready(timeout=120)
            self.envoy_ready.set()
            if config.command:
                app_keeper = asyncio.create_task(self._keep_app_running(app_stop))
            if not config.hold_application:
                await self.envoy.wait_ready(timeout=120)
            await stop.wait()
        finally:
            log.info("stopping: draining Envoy, then the application")
            await self.envoy.drain()
            app_stop.set()
            if app_keeper is not None:
                await app_keeper
            await self._stop_app()
            envoy_stop.set()
            if supervisor is not None:
                await supervisor
            await self.envoy.stop()
            for server in (health, metrics):
                if server is not None:
                    server.close()
                    await server.wait_closed()
            if sds_server is not None:
                await sds_server.stop(grace=None)
            if self.sds_socket is not None:
                self.sds_socket.unlink(missing_ok=True)
            stop.set()
            await rotation
