"""The control plane process: a watched directory store, the xDS server and the debug API,
wired together. One explicit object owns them all; nothing is created at import time."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from aiohttp import web

from heddle.config.directory import DirectorySource
from heddle.config.events import StoreEvent
from heddle.config.store import ConfigStore
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Workload
from heddle.translate import ports
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
        self._runner: web.AppRunner | None = None

    def snapshot(self) -> MeshSnapshot:
        """Configuration plus the healthy registered workloads, built once per change of
        either; its version counts those changes."""
        key = (self.store.version, self.membership.version)
        if key != self._snapshot_key:
            self._snapshot_key = key
            self._snapshot = MeshSnapshot.build(self._snapshot.version + 1,
                                                self.store.resources(),
                                                self.membership.healthy())
        return self._snapshot

    def _membership_changed(self) -> None:
        self.debouncer.trigger()

    async def run(self, stop: asyncio.Event) -> None:
        for event in self.source.load():
            for diagnostic in event.diagnostics:
                if diagnostic.is_error:
                    log.error("%s", diagnostic)
        self._grpc, port = await start_grpc(self.xds, self.config.xds_address)
        app = debug_app(self.xds, self.snapshot, self.store.diagnostics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.debug_host, self.config.debug_port).start()
        log.info("xDS on port %d, debug on %s:%d", port, self.config.debug_host,
                 self.config.debug_port)
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
            await self._runner.cleanup()

    async def _forward(self, events: asyncio.Queue[StoreEvent]) -> None:
        """Log each file's new errors and push (debounced) when resources changed."""
        while True:
            event = await events.get()
            for diagnostic in event.diagnostics:
                if diagnostic.is_error:
                    log.error("%s", diagnostic)
            if event.changes:
                self.debouncer.trigger()
