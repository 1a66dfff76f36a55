"""The control plane process: a watched directory store, the xDS server and the debug API,
wired together. One explicit object owns them all; nothing is created at import time."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

import grpc
from aiohttp import web

from heddle.config.directory import DirectorySource
from heddle.config.events import StoreEvent
from heddle.config.store import ConfigStore
from heddle.model.snapshot import MeshSnapshot
from heddle.xds.debounce import Debouncer
from heddle.xds.debug import debug_app
from heddle.xds.server import XdsServer, start_grpc

log = logging.getLogger(__name__)


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
        self.xds = XdsServer(self.snapshot)
        self.debouncer = Debouncer(self.xds.push_all, config.debounce_quiet, config.debounce_max)
        self._grpc: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None

    def snapshot(self) -> MeshSnapshot:
        """The snapshot at the store's version, built once per version."""
        if self._snapshot.version != self.store.version:
            self._snapshot = MeshSnapshot.of(self.store)
        return self._snapshot

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
        try:
            await stop.wait()
        finally:
            forwarder.cancel()
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
