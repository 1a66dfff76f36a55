"""The one composition root: a frozen MeshOptions -> every part of the control plane, wired.

`heddle control-plane` (by hand, or started by `heddle up`'s supervisor with the options as
one JSON file) and the tests all build the control plane here, so an option is added in one
place: a field of MeshOptions. Nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import yaml
from aiohttp import web

from heddle.agent.http import HttpError, fetch
from heddle.api.diagnostics import Diagnostic
from heddle.ca.authority import CertificateAuthority
from heddle.ca.service import CertificateService
from heddle.ca.tokens import TokenIssuer
from heddle.clock import Clock, LoopClock
from heddle.config.applied import AppliedConfig, AppliedSource
from heddle.config.directory import DirectorySource
from heddle.config.events import ChangeType, StoreEvent
from heddle.config.problems import ConfigProblems
from heddle.config.source import ConfigSource
from heddle.config.store import ConfigStore
from heddle.dashboard.app import dashboard_app
from heddle.heap import settle
from heddle.local.narration import EVENTS_LOGGER
from heddle.local.prometheus import PrometheusOptions
from heddle.local.runtime import LocalMesh, LocalMeshConfig, heddle_command
from heddle.model.mesh_config import MeshConfig
from heddle.model.proxy import ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.membership import Membership
from heddle.registry.model import Workload
from heddle.translate import ports
from heddle.xds.agent_ports import start_agent_ports
from heddle.xds.debounce import Debouncer
from heddle.xds.debug import debug_app
from heddle.xds.generator import CachedSidecarGenerator, GatewayGenerator
from heddle.xds.metrics import ControlPlaneMetrics
from heddle.xds.push import PushRequest

if TYPE_CHECKING:
    from heddle.ratelimit.server import RateLimitServer
from heddle.xds.server import Generator, XdsServer, start_grpc

log = logging.getLogger(__name__)
# What a person running the mesh wants to read: configuration changes, their problems and
# their fixes, pushes. Foreground `heddle up` shows these lines of the control-plane log.
events_log = logging.getLogger(EVENTS_LOGGER)

OPTIONS_FILE = "control-plane.json"  # in the mesh home: what the supervisor starts it with


@dataclass(frozen=True)
class MeshOptions:
    """Every option of the control plane."""

    config_dir: Path
    xds_address: str = "127.0.0.1:15010"  # plaintext xDS, loopback only
    debug_host: str = "127.0.0.1"
    debug_port: int = 15014
    debounce_quiet: float = 0.1  # push once changes pause this long (s)
    debounce_max: float = 10.0  # push at the latest this long after the first change (s)
    ca_dir: Path | None = None  # where the root (or plugged-in CA) and the token key live
    secure_address: str = "127.0.0.1:15012"  # xDS + CA over mutual TLS
    join_address: str = "127.0.0.1:15013"  # the CA (first CSR, join token) over TLS
    cert_lifetime: float = 86400.0  # the longest workload certificate issued (s)
    # What `heddle apply`/`delete` changed, layered over config_dir, and the secret the
    # CLI presents to change it through the debug port (none: no apply API).
    applied_dir: Path | None = None
    api_token_file: Path | None = None
    # The global rate-limit service, run beside xDS: where proxies ask it, where the control
    # plane writes its configuration (envoyproxy/ratelimit's YAML; none: not run), and the
    # Redis its counters live in (none: in memory, one replica).
    rate_limit_address: str = "127.0.0.1:15016"
    rate_limit_dir: Path | None = None
    rate_limit_redis: str | None = None
    # More replicas of the service (host:port, comma-separated), run by someone else on the
    # same configuration and Redis: proxies spread their questions over all of them.
    rate_limit_replicas: str = ""

    @property
    def xds_port(self) -> int:
        return port_of(self.xds_address)

    @property
    def secure_port(self) -> int:
        return port_of(self.secure_address)

    @property
    def join_port(self) -> int:
        return port_of(self.join_address)

    def to_json(self) -> str:
        return json.dumps({f.name: _plain(getattr(self, f.name))
                           for f in dataclasses.fields(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "options") -> MeshOptions:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object of control-plane options")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"{source}: unknown option(s) {', '.join(unknown)}; "
                             f"known: {', '.join(fields)}")
        values: dict[str, Any] = {}
        for name, value in data.items():
            is_path = "Path" in str(fields[name].type)
            values[name] = Path(value) if is_path and value is not None else value
        return cls(**values)

    @classmethod
    def read(cls, path: Path) -> MeshOptions:
        return cls.from_json(path.read_text(), str(path))

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n")
        return path


def _plain(value: object) -> object:
    return str(value) if isinstance(value, Path) else value


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


async def probe_readiness(workload: Workload) -> bool:
    """A registered instance (or a watched WorkloadEntry) is healthy while its agent reports
    ready on the health port. The agent's own lean HTTP: probes run twice a second per
    watched workload, and an httpx client costs more to make than the probe."""
    url = f"http://{workload.address}:{ports.HEALTH}/healthz/ready"
    try:
        return (await fetch(url, timeout=1.0)).status_code == 200
    except HttpError:
        return False


def proxy_generators() -> dict[ProxyType, Generator]:
    """One generator per proxy type: sidecars through the shared caches, routers
    (gateways) from their Gateways, their problems told in the people's log."""
    return {ProxyType.SIDECAR: CachedSidecarGenerator(),
            ProxyType.ROUTER: GatewayGenerator(events_log)}


@dataclass(frozen=True)
class CertificateParts:
    authority: CertificateAuthority
    tokens: TokenIssuer
    service: CertificateService


class ControlPlane:
    """The config sources, the store, WorkloadGroup membership, the CA, the xDS server and
    the debug API, built from `options`; `run` serves until `stop`."""

    def __init__(self, options: MeshOptions, clock: Clock | None = None,
                 sources: list[ConfigSource] | None = None,
                 generators: dict[ProxyType, Generator] | None = None) -> None:
        self.options = options
        self.clock: Clock = clock or LoopClock()
        self.store = ConfigStore()
        self.applied = (AppliedConfig(AppliedSource(options.applied_dir, self.store))
                        if options.applied_dir is not None else None)
        self.sources: list[ConfigSource] = (
            sources if sources is not None else [
                DirectorySource(options.config_dir, self.store),
                *([self.applied.source] if self.applied else [])])
        self._snapshot = MeshSnapshot.build(0, [])
        self._snapshot_key = (0, 0)
        self.membership = Membership(on_change=self._membership_changed, clock=self.clock)
        self.generators = generators if generators is not None else proxy_generators()
        self.metrics = ControlPlaneMetrics()
        self.xds = XdsServer(self.snapshot, self.generators, membership=self.membership,
                             metrics=self.metrics)
        self._first_change: float | None = None  # since the last push (convergence time)
        self.debouncer = Debouncer(self._push, options.debounce_quiet,
                                   options.debounce_max, clock=self.clock)
        self.certificates = self._certificates(options.ca_dir) if options.ca_dir else None
        self._grpc: grpc.aio.Server | None = None
        self._secure: grpc.aio.Server | None = None
        self._runner: web.AppRunner | None = None
        self._rate_limit_server: RateLimitServer | None = None

    def _certificates(self, ca_dir: Path) -> CertificateParts:
        authority = CertificateAuthority.load_or_create(ca_dir)
        tokens = TokenIssuer.load_or_create(ca_dir)
        service = CertificateService(
            authority, tokens,
            max_lifetime=datetime.timedelta(seconds=self.options.cert_lifetime),
            counted=self.metrics.csr)
        return CertificateParts(authority, tokens, service)

    def snapshot(self) -> MeshSnapshot:
        """Configuration plus the healthy registered workloads, built once per change of
        either; its version counts those changes."""
        key = (self.store.version, self.membership.version)
        if key != self._snapshot_key:
            self._snapshot_key = key
            mesh_config = dataclasses.replace(
                MeshConfig.from_objects(self.store.unmanaged()),
                rate_limit_service=",".join(filter(None, [
                    self.options.rate_limit_address, self.options.rate_limit_replicas])))
            if mesh_config.diagnostics != self._snapshot.mesh_config.diagnostics:
                for diagnostic in mesh_config.diagnostics:
                    log.error("%s", diagnostic)
            self._snapshot = MeshSnapshot.build(
                self._snapshot.version + 1, self.store.resources(), self.membership.healthy(),
                mesh_config, self.membership.unready())
            settle()  # the snapshot lives until the next change
        return self._snapshot

    def diagnostics(self) -> list[Diagnostic]:
        """Every problem in force: each file's, the duplicates, the applied state's
        overrides, the mesh config's, and Gateway API routes whose Istio form is invalid."""
        snapshot = self.snapshot()
        return (self.store.diagnostics() + self.store.overrides()
                + list(snapshot.mesh_config.diagnostics)
                + list(snapshot.gateway_api.diagnostics))

    def problems(self) -> ConfigProblems:
        """The same problems by file, with the files fixed lately."""
        snapshot = self.snapshot()
        return self.store.problems().including(
            [*snapshot.mesh_config.diagnostics, *snapshot.gateway_api.diagnostics])

    async def _push(self, request: PushRequest) -> None:
        try:
            self._write_rate_limits()
        except OSError as err:  # a full disk must not stop the pushes
            log.error("cannot write the rate-limit service's configuration: %s", err)
        changed, self._first_change = self._first_change, None
        before = self.xds.pushed_proxies
        await self.xds.push_all(request)
        if changed is not None:
            self.metrics.convergence.observe(self.clock.now() - changed)
        total = len(self.xds.proxies())
        if total:
            events_log.info("pushed to %d of %d proxies (the others do not depend on it)"
                            if self.xds.pushed_proxies - before < total else
                            "pushed to %d of %d proxies", self.xds.pushed_proxies - before,
                            total)

    def _write_rate_limits(self) -> None:
        """The global rules, as the rate-limit service reads them (it reloads on change);
        written before proxies learn of a rule, so a new bucket is known when first asked."""
        directory = self.options.rate_limit_dir
        if directory is None:
            return
        from heddle.translate.rate_limits import policies, service_config

        text = yaml.safe_dump(service_config(policies(self.snapshot())), sort_keys=False)
        path = directory / "heddle.yaml"
        if path.exists() and path.read_text() == text:
            return
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        if self._rate_limit_server is not None:  # this process's own: no need to watch
            self._rate_limit_server.config.reload()

    def _changed(self, reason: str) -> None:
        self.metrics.triggered(reason)
        if self._first_change is None:
            self._first_change = self.clock.now()

    def _membership_changed(self) -> None:
        self._changed("endpoint")
        self.debouncer.trigger()

    async def run(self, stop: asyncio.Event) -> None:
        options = self.options
        loaded = [event for source in self.sources for event in await source.load()]
        for event in loaded:
            _log_problems(event)
        problems = self.store.problems()
        events_log.info("configuration: %d resources from %s; %d error(s), %d warning(s)",
                        len(self.store.resources()), options.config_dir,
                        sum(f.errors for f in problems.files),
                        sum(f.warnings for f in problems.files))
        self._grpc, port = await start_grpc(self.xds, options.xds_address)
        if self.certificates is not None:
            listening = await start_agent_ports(
                self.xds, self.certificates.authority, self.certificates.service,
                options.secure_address, options.join_address)
            self._secure = listening.server
        app = debug_app(self.xds, self.snapshot, self.diagnostics, self.problems)
        app.add_subapp("/dashboard/", dashboard_app(self.xds, self.snapshot, self.problems))
        if self.applied is not None and options.api_token_file is not None:
            add_apply_api(app, self.applied, options.api_token_file.read_text().strip())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, options.debug_host, options.debug_port).start()
        log.info("xDS on port %d (plaintext), debug on %s:%d", port, options.debug_host,
                 options.debug_port)
        if self._secure is not None:
            log.info("xDS + CA on %s (mutual TLS), CA for join tokens on %s (TLS)",
                     options.secure_address, options.join_address)
        rate_limits = await self._start_rate_limits()
        events = self.store.subscribe()
        self.debouncer.start()
        watchers = [asyncio.create_task(source.watch(stop)) for source in self.sources]
        forwarder = asyncio.create_task(self._forward(events))
        health = asyncio.create_task(self.membership.run_health_checks(probe_readiness, stop))
        try:
            await stop.wait()
        finally:
            forwarder.cancel()
            await health
            await self.debouncer.stop()
            await asyncio.gather(*watchers)
            await asyncio.gather(self._grpc.stop(grace=1), *(
                [self._secure.stop(grace=1)] if self._secure is not None else []))
            self.xds.close()
            await self._runner.cleanup()
            if rate_limits is not None:
                await rate_limits.stop()

    async def _start_rate_limits(self) -> RateLimitServer | None:
        """The rate-limit service in this process, on its configuration as it stands."""
        options = self.options
        if options.rate_limit_dir is None:
            return None
        from heddle.ratelimit.server import RateLimitOptions, RateLimitServer

        self._write_rate_limits()
        server = RateLimitServer(RateLimitOptions(
            options.rate_limit_dir, options.rate_limit_address, options.rate_limit_redis))
        try:
            await server.start()
        except OSError as err:  # the port is taken: proxies fail open, the mesh runs on
            log.error("rate-limit service not started on %s: %s; global limits let every "
                      "request through until it runs (give --ratelimit-port)",
                      options.rate_limit_address, err)
            return None
        self._rate_limit_server = server
        return server

    async def _forward(self, events: asyncio.Queue[StoreEvent]) -> None:
        """Log what changed and the problems that came and went; push (debounced) when
        resources changed."""
        while True:
            event = await events.get()
            _log_problems(event)
            if event.changes:
                _log_changes(event)
                self._changed("config")
                for change in event.changes:
                    self.metrics.config_event(change.key.kind, _EVENTS[change.type])
                self.debouncer.trigger(change.key for change in event.changes)


# pilot_k8s_cfg_events' event label, as istiod names them.
_EVENTS = {ChangeType.ADDED: "add", ChangeType.UPDATED: "update", ChangeType.DELETED: "delete"}


def _log_problems(event: StoreEvent) -> None:
    """A refused edit, each problem once (when it appears), and each file fixed."""
    errors = [d for d in event.diagnostics if d.is_error]
    if errors:
        events_log.error("%s: not applied (%d error(s)); its last good version stays in force",
                         event.source, len(errors))
    for problem in event.problems.appeared:
        (events_log.error if problem.is_error else events_log.warning)("%s", problem)
    for fixed in event.problems.fixed:
        if fixed.removed:
            events_log.info("%s: removed, and its %d problem(s) with it", fixed.file,
                            len(fixed.was))
        else:
            events_log.info("%s: fixed (%d problem(s) gone); its current version is in force",
                            fixed.file, len(fixed.was))


def _log_changes(event: StoreEvent, most: int = 5) -> None:
    names = [f"{change.key.ref} {change.type}" for change in event.changes]
    if len(names) > most:
        names = [*names[:most], f"and {len(names) - most} more"]
    events_log.info("%s: %s", event.source, ", ".join(names))


MAX_APPLY_BYTES = 16 * 1024 * 1024  # what one `heddle apply` may send (4 MiB a file)


def add_apply_api(app: web.Application, applied: AppliedConfig, token: str) -> None:
    """`POST /heddle/apply` and `/heddle/delete`: JSON `{"files": [{"name", "text"}]}`,
    answered with the Report; only for a caller presenting the mesh's token (the file
    under HEDDLE_HOME only its user can read)."""

    async def handle(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            return web.json_response({"error": "wrong or missing token"}, status=403)
        body = await request.content.read(MAX_APPLY_BYTES + 1)
        if len(body) > MAX_APPLY_BYTES:
            return web.json_response({"error": "more than 16 MiB at once"}, status=413)
        try:
            files = [(str(f["name"]), str(f["text"])) for f in json.loads(body)["files"]]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": 'expected {"files": [{"name", "text"}]}'},
                                     status=400)
        verb = applied.apply if request.path.endswith("/apply") else applied.delete
        return web.json_response((await verb(files)).to_json())

    app.router.add_post("/heddle/apply", handle)
    app.router.add_post("/heddle/delete", handle)


def api_token(path: Path) -> Path:
    """The mesh's API token file, made (readable by its user only) if missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
    return path


def local_mesh(options: MeshOptions, home: Path, delta: bool = False,
               narrate: bool = False, restart_delay: float = 10.0,
               log_max_bytes: int = 10 * 1024 * 1024,
               prometheus: PrometheusOptions | None = None) -> LocalMesh:
    """`heddle up`: the supervisor, which starts the control plane built from `options`
    (with the CA, the applied state and the API token in the mesh home) as its own
    process, reading them from one file. `narrate`: tell what happens (foreground);
    `restart_delay` and `log_max_bytes` reach every agent: the first wait before
    restarting an application, and where logs rotate. `prometheus`: run the add-on."""
    options = dataclasses.replace(options, ca_dir=home / "ca", applied_dir=home / "applied",
                                  rate_limit_dir=home / "ratelimit",
                                  api_token_file=api_token(home / "api-token"))
    options_file = options.write(home / OPTIONS_FILE)
    return LocalMesh(LocalMeshConfig(
        options.config_dir, home, applied_dir=home / "applied",
        xds_port=options.xds_port, debug_port=options.debug_port,
        delta=delta, ca_port=options.secure_port, cert_lifetime=options.cert_lifetime,
        join_port=options.join_port, ca_dir=home / "ca", narrate=narrate,
        restart_delay=restart_delay, log_max_bytes=log_max_bytes, prometheus=prometheus,
        control_plane_command=(*heddle_command(), "control-plane", "--options-file",
                               str(options_file))))
