"""The control plane process: a watched directory store, the xDS server and the debug API,
wired together. One explicit object owns them all; nothing is created at import time."""

from __future__ import annotations

import asyncio
import datetime
import logging
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from aiohttp import web

from heddle.api.diagnostics import Diagnostic
from heddle.ca.authority import CertificateAuthority
from heddle.ca.service import CertificateService
from heddle.ca.tokens import TokenIssuer
from heddle.config.directory import DirectorySource
from heddle.config.events import StoreEvent
from heddle.config.store import ConfigStore
from heddle.model.mesh_config import MeshConfig
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Workload
from heddle.translate import ports
from heddle.xds.agent_ports import start_agent_ports
from heddle.xds.debounce import Debouncer
from heddle.xds.debug import debug_app
from heddle.xds.membership import Membership
from heddle.xds.server import XdsServer, start_grpc

log = logging.getLogger(__name__)


async def probe_readiness(workload: Workload) -> bool:
    """A registered instance is healthy while its agent reports ready on the health port."""
    url = f"http://{workload.address}:{ports.HEALTH}/healthz/ready"
    try:
        async with httpx.AsyncClient(timeout=1.0) as client:
            return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class ControlPlaneConfig:
    config_dir: Path
    xds_address: str = "127.0.0.1:15010"
    debug_host: str = "127.0.0.1"
    debug_port: int = 15014
    debounce_quiet: float = 0.1
    debounce_max: float = 10.0
    ca_dir: Path | None = None  # where the root (or plugged-in CA) and the token key live
    secure_address: str = "127.0.0.1:15012"  # xDS + CA over mutual TLS
    join_address: str = "127.0.0.1:15013"  # the CA (first CSR, join token) over TLS
    cert_lifetime: datetime.timedelta = datetime.timedelta(hours=24)


class ControlPlane:
    def __init__(self, config: ControlPlaneConfig) -> None:
        self.config = config
        self.store = ConfigStore()
        self.source = DirectorySource(config.config_dir, self.store)
        self._snapshot = MeshSnapshot.build(0, [])
        self._snapshot_key = (0, 0)
        self.membership = Membership(on_change=self._membership_changed)
        self.xds = XdsServer(self.snapshot, membership=self.membership)
        self.debouncer = Debouncer(self.xds.push_all, config.debounce_quiet, config.debounce_max)
        self._grpc: grpc.aio.Server | None = None
        self._secure: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None

    async def _start_secure(self, ca_dir: Path) -> grpc.aio.Server:
        """The agents' ports (heddle.xds.agent_ports): xDS + CA over mutual TLS, and the CA
        for join tokens over TLS."""
        ca = CertificateAuthority.load_or_create(ca_dir)
        tokens = TokenIssuer.load_or_create(ca_dir)
        service = CertificateService(ca, tokens, max_lifetime=self.config.cert_lifetime)
        listening = await start_agent_ports(self.xds, ca, service, self.config.secure_address,
                                            self.config.join_address)
        return listening.server

    def snapshot(self) -> MeshSnapshot:
        """Configuration plus the healthy registered workloads, built once per change of
        either; its version counts those changes."""
        key = (self.store.version, self.membership.version)
        if key != self._snapshot_key:
            self._snapshot_key = key
            mesh_config = MeshConfig.from_objects(self.store.unmanaged())
            if mesh_config.diagnostics != self._snapshot.mesh_config.diagnostics:
                for diagnostic in mesh_config.diagnostics:
                    log.error("%s", diagnostic)
            self._snapshot = MeshSnapshot.build(
                self._snapshot.version + 1, self.store.resources(), self.membership.healthy(),
                mesh_config)
        return self._snapshot

    def diagnostics(self) -> list[Diagnostic]:
        """Every problem in force: each file's, and the mesh config's."""
        return self.store.diagnostics() + list(self.snapshot().mesh_config.diagnostics)

    def _membership_changed(self) -> None:
        self.debouncer.trigger()

    async def run(self, stop: asyncio.Event) -> None:
        for event in self.source.load():
            for diagnostic in event.diagnostics:
                if diagnostic.is_error:
                    log.error("%s", diagnostic)
        self._grpc, port = await start_grpc(self.xds, self.config.xds_address)
        if self.config.ca_dir is not None:
            self._secure = await self._start_secure(self.config.ca_dir)
        app = debug_app(self.xds, self.snapshot, self.diagnostics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.debug_host, self.config.debug_port).start()
        log.info("xDS on port %d (plaintext), debug on %s:%d", port, self.config.debug_host,
                 self.config.debug_port)
        if self._secure is not None:
            log.info("xDS + CA on %s (mutual TLS), CA for join tokens on %s (TLS)",
                     self.config.secure_address, self.config.join_address)
        events = self.store.subscribe()
        self.debouncer.start()
        watcher = asyncio.create_task(self.source.watch(stop))
        forwarder = asyncio.create_task(self._forward(events))
        health = asyncio.create_task(self.membership.run_health_checks(probe_readiness, stop))
        try:
            await stop.wait()
        finally:
            forwarder.cancel()
            await health
            await self.debouncer.stop()
            await watcher
            await self._grpc.stop(grace=1)
            if self._secure is not None:
                await self._secure.stop(grace=1)
            await self._runner.cleanup()

    async def _forward(self, events: asyncio.Queue[StoreEvent]) -> None:
        """Log each file's new errors and push (debounced) when resources changed."""
        while True:
            event = await events.get()
            for diagnostic in event.diagnostics:
                if diagnostic.is_error:
                    log.error("%s", diagnostic)
            if event.changes:
                self.debouncer.trigger(change.key for change in event.changes)
