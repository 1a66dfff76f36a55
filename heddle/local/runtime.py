"""The local mesh supervisor: the control plane and one agent (+ Envoy + app) per workload.

Every WorkloadEntry whose address is a loopback address runs here, as its own process tree.
The supervisor watches the directory too, so workloads added or removed there start or stop,
and it restarts the control plane if it dies: proxies keep serving meanwhile and resync
when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from heddle.ca.authority import CertificateAuthority
from heddle.ca.tokens import TokenIssuer
from heddle.config.applied import AppliedSource
from heddle.config.directory import DirectorySource
from heddle.config.store import ConfigStore
from heddle.local import claims
from heddle.local.narration import Readiness, follow
from heddle.local.prometheus import PrometheusAddon, PrometheusOptions
from heddle.local.state import MeshState, WorkloadState
from heddle.local.workloads import (
    ADDRESSES_ANNOTATION,
    COMMAND_ANNOTATION,
    app_address,
    gateway_addresses,
    group_addresses,
    is_local,
    low_port_offset,
)
from heddle.model.gateways import gateway_workloads
from heddle.model.scrape import SCRAPE_ANNOTATIONS, app_metrics_of
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.from_config import workload_from_group
from heddle.registry.model import Workload
from heddle.supervise import keep_running

log = logging.getLogger(__name__)

__all__ = ["ADDRESSES_ANNOTATION", "COMMAND_ANNOTATION", "LocalMesh", "LocalMeshConfig",
           "agent_command", "app_address", "heddle_command", "is_local"]

@dataclass(frozen=True)
class LocalMeshConfig:
    """What the supervisor itself needs: where the control plane is for the agents, and
    how to start it. heddle.app builds this from the control plane's options (which reach
    the control plane whole, through `control_plane_command`), so it never copies them."""

    config_dir: Path
    home: Path
    control_plane_command: tuple[str, ...]
    applied_dir: Path | None  # what `heddle apply`/`delete` changed, over config_dir
    ca_dir: Path  # the control plane's CA: the root agents trust and the join-token key
    xds_port: int = 15010
    debug_port: int = 15014
    delta: bool = False
    ca_port: int = 15012  # xDS + CA over mutual TLS: the agents' Envoys and renewals
    cert_lifetime: float = 86400.0
    join_port: int = 15013  # the CA over TLS: each agent's first CSR, with its join token
    # Foreground `heddle up`: say when workloads are ready and show the control plane's
    # lines for people (config changes, problems, pushes) as they are logged.
    narrate: bool = False
    restart_delay: float = 10.0  # before an application's first restart (s), then doubling
    log_max_bytes: int = 10 * 1024 * 1024  # each workload's logs rotate past this size
    prometheus: PrometheusOptions | None = None  # `--prometheus`: run the add-on


def heddle_command() -> list[str]:
    return [sys.executable, "-m", "heddle"]


def agent_command() -> list[str]:
    """The agent's lean entry point (no CLI framework): one runs beside every Envoy."""
    return [sys.executable, "-m", "heddle.agent"]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


async def _terminate(process: asyncio.subprocess.Process, timeout: float = 15) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


class LocalMesh:
    def __init__(self, config: LocalMeshConfig) -> None:
        self.config = config
        self.store = ConfigStore()
        self.source = DirectorySource(config.config_dir, self.store)
        self.applied = (AppliedSource(config.applied_dir, self.store)
                        if config.applied_dir is not None else None)
        # Applications run from the configuration's folder (a file's own folder).
        self.app_cwd = config.config_dir if config.config_dir.is_dir() else (
            config.config_dir.parent)
        self.control_plane: asyncio.subprocess.Process | None = None
        self.prometheus_process: asyncio.subprocess.Process | None = None
        self.agents: dict[str, tuple[asyncio.subprocess.Process, WorkloadState]] = {}
        self.exits: dict[str, tuple[int, int | None]] = {}  # key -> (agent exits, last status)
        self.owner = str(config.home.resolve().parent)  # the HEDDLE_HOME, as claims name it
        self.refused: dict[str, str] = {}  # workload -> why not: another mesh holds its address
        self._claimed: claims.Claim | None = None
        self.state = MeshState(str(config.config_dir.resolve()), os.getpid(), config.xds_port,
                               config.debug_port, ca_port=config.ca_port,
                               join_port=config.join_port)
        self.ca_dir = config.ca_dir
        # The root is made before anything starts; agents trust it to reach the CA.
        CertificateAuthority.load_or_create(self.ca_dir)
        self.tokens = TokenIssuer.load_or_create(self.ca_dir)
        self.readiness = Readiness()
        self.gateways: dict[str, tuple[Workload, str]] = {}  # key -> (workload, source)
        self.annotations: dict[str, dict[str, str]] = {}  # key -> its entry's annotations
        self.low_port_offset = low_port_offset()
        self.prometheus = (PrometheusAddon(config.prometheus, config.home, config.debug_port)
                           if config.prometheus is not None else None)
        if config.prometheus is not None:
            self.state.prometheus_port = config.prometheus.port

    def _log(self, name: str) -> int:
        path = self.config.home / "logs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    async def _start_control_plane(self) -> asyncio.subprocess.Process:
        if not self.state.control_plane_starts:
            self.state.control_plane_log_from = _size(
                self.config.home / "logs" / "control-plane.log")
        out = self._log("control-plane.log")
        self.control_plane = await asyncio.create_subprocess_exec(
            *self.config.control_plane_command, stdout=out, stderr=out,
            start_new_session=True)
        os.close(out)
        self.state.control_plane_pid = self.control_plane.pid
        self.state.control_plane_starts += 1
        self.state.save(self.config.home)
        return self.control_plane

    def _gateways(self, snapshot: MeshSnapshot) -> dict[str, tuple[Workload, str]]:
        """The gateway proxies the configuration asks for (see model.gateways), each at a
        pod IP of its own, with what asked for it."""
        gateways = gateway_workloads(snapshot, tuple(self.store.unmanaged()))
        free = gateway_addresses([w.address for w in snapshot.registry.workloads],
                                 len(gateways) + len(self.gateways))
        # A gateway keeps its pod IP while it runs: one added (or removed) beside it does not
        # move it, which would restart it and drop its connections.
        kept = {g.key: self.gateways[g.key][0].address for g in gateways
                if g.key in self.gateways and self.gateways[g.key][0].address in free}
        pool = iter(a for a in free if a not in kept.values())
        found = {}
        for g in gateways:
            address = kept.get(g.key) or next(pool, None)
            if address is None:
                break  # the /24 is full
            found[g.key] = (Workload(g.namespace, g.name, address, g.labels,
                                     g.service_account), g.source)
        return found

    def _wanted(self) -> dict[str, tuple[Workload, str, str]]:
        """(workload, command, WorkloadGroup it joins) for everything that runs here;
        gateways (in `self.gateways`) have no command."""
        snapshot = MeshSnapshot.of(self.store)
        self.gateways = self._gateways(snapshot)
        wanted: dict[str, tuple[Workload, str, str]] = {
            key: (workload, "", "") for key, (workload, _) in self.gateways.items()}
        for workload in snapshot.registry.workloads:
            entry = snapshot.get("networking.istio.io", "WorkloadEntry", workload.namespace,
                                 workload.name)
            if entry is None or not is_local(workload.address):
                continue
            command = entry.metadata.annotations.get(COMMAND_ANNOTATION, "")
            wanted[f"{workload.name}.{workload.namespace}"] = (workload, command, "")
            self.annotations[f"{workload.name}.{workload.namespace}"] = dict(
                entry.metadata.annotations)
        for group in snapshot.of_kind("networking.istio.io", "WorkloadGroup"):
            annotations = group.metadata.annotations
            for i, address in enumerate(group_addresses(dict(annotations))):
                instance = workload_from_group(group, f"{group.name}-{i + 1}", address)
                wanted[f"{instance.name}.{instance.namespace}"] = (
                    instance, annotations.get(COMMAND_ANNOTATION, ""), group.name)
                self.annotations[f"{instance.name}.{instance.namespace}"] = dict(annotations)
        return wanted

    async def _start_agent(self, key: str, workload: Workload, command: str,
                           group: str) -> None:
        workdir = self.config.home / "workloads" / key
        workdir.mkdir(parents=True, exist_ok=True)
        state = WorkloadState(
            name=workload.name, namespace=workload.namespace, address=workload.address,
            app_address=app_address(workload.address), agent_pid=0, workdir=str(workdir),
            labels=workload.label_map, service_account=workload.service_account,
            command=command, restarts=self.exits.get(key, (0, None))[0],
            last_exit=self.exits.get(key, (0, None))[1],
            agent_log_from=_size(workdir / "agent.log"), app_log_from=_size(workdir / "app.log"))
        state.prometheus = dict(SCRAPE_ANNOTATIONS)
        gateway = self.gateways.get(key)
        if gateway is not None:
            state.app_address, state.proxy_type, state.source = (
                workload.address, "router", gateway[1])
        args = [*agent_command(), "--name", workload.name,
                "--namespace", workload.namespace, "--address", workload.address,
                "--app-address", state.app_address, "--labels", json.dumps(state.labels),
                "--service-account", workload.service_account,
                "--xds-port", str(self.config.xds_port), "--workdir", str(workdir),
                "--cwd", str(self.app_cwd)]
        if group:
            args += ["--workload-group", group]
        # The application's own metrics, merged into the sidecar's on 15020, as Istio's
        # agent reads the pod's prometheus.io/* annotations.
        app_metrics = app_metrics_of(self.annotations.get(key, {}), state.app_address)
        if app_metrics is not None and gateway is None:
            args += ["--app-metrics-port", str(app_metrics.port),
                     "--app-metrics-path", app_metrics.path]
        if gateway is not None:
            args += ["--proxy-type", "router", "--low-port-offset", str(self.low_port_offset)]
        token_file = workdir / "join-token"
        token_file.touch(mode=0o600)
        token_file.write_text(self.tokens.create(workload.namespace, workload.service_account))
        args += ["--ca-address", f"127.0.0.1:{self.config.ca_port}",
                 "--join-address", f"127.0.0.1:{self.config.join_port}",
                 "--root-cert", str(self.ca_dir / "root-cert.pem"),
                 "--token-file", str(token_file),
                 "--cert-lifetime", str(self.config.cert_lifetime),
                 "--restart-delay", str(self.config.restart_delay),
                 "--log-max-bytes", str(self.config.log_max_bytes)]
        if self.config.delta:
            args.append("--delta")
        if command:
            args += ["--", command]
        out = os.open(workdir / "agent.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        process = await asyncio.create_subprocess_exec(*args, stdout=out, stderr=out,
                                                       start_new_session=True)
        os.close(out)
        state.agent_pid = process.pid
        self.agents[key] = (process, state)
        self.readiness.started(key, state)
        log.info("started %s at %s (agent pid %d)", key, workload.address, process.pid)

    async def reconcile(self) -> None:
        """Start agents for new local workloads, stop those whose entry is gone or changed."""
        wanted = self._wanted()
        for key in list(self.agents):
            process, state = self.agents[key]
            spec = wanted.get(key)
            changed = spec is None or (spec[0].address, spec[1], spec[0].label_map) != (
                state.address, state.command, state.labels)
            if process.returncode is not None:
                count = self.exits.get(key, (0, None))[0]
                self.exits[key] = (count + 1, process.returncode)
                log.warning("the agent of %s exited with %s; starting it again", key,
                            process.returncode)
            if changed or process.returncode is not None:
                if changed:
                    log.info("stopping %s (%s)", key, "its entry is gone" if spec is None
                             else "its entry changed")
                await _terminate(process)
                del self.agents[key]
                self.readiness.forget(key)
            if changed:
                self.exits.pop(key, None)
        others = {a: c for c in claims.read_all() if c.home != self.owner for a in c.addresses}
        fresh: list[str] = []
        for key, (workload, command, group) in sorted(wanted.items()):
            if key in self.agents:
                continue
            holder = others.get(workload.address)
            if holder is not None:
                why = f"its address {workload.address} is a pod IP of {holder.describe()}"
                if key not in self.refused:
                    log.error("not starting %s: %s", key, why)
                self.refused[key] = why
                continue
            self.refused.pop(key, None)
            await self._start_agent(key, workload, command, group)
            fresh.append(key)
        self._app_ports(fresh)
        self._gateway_listeners()
        self.refused = {k: why for k, why in self.refused.items() if k in wanted}
        self.state.workloads = {k: s for k, (_, s) in self.agents.items()}
        if self.prometheus is not None:
            self.prometheus.update_targets(self.state.workloads.values())
        self.state.refused = dict(sorted(self.refused.items()))
        self.state.started = True
        self.state.save(self.config.home)
        self._claim()

    def _app_ports(self, keys: list[str]) -> None:
        """Where each application just started serves its services' ports, as its sidecar
        forwards to it: `heddle up` calls it ready once it accepts connections there. Done
        once its agent runs, so that loading translation does not delay any start."""
        if not keys:
            return
        try:
            from heddle.model.proxy import Proxy, ProxyType
            from heddle.translate.listeners import inbound_ports

            snapshot = MeshSnapshot.of(self.store)
            for key in keys:
                state = self.agents[key][1]
                proxy = Proxy(ProxyType.SIDECAR, state.name, state.namespace, state.address,
                              state.app_address, tuple(sorted(state.labels.items())),
                              state.service_account)
                for port in inbound_ports(snapshot, proxy) if state.command else []:
                    if port.app_socket:
                        state.app_sockets.append(port.app_socket)
                    else:
                        state.app_ports.append(port.app_port)
        except Exception:  # readiness then rests on the agent's word alone
            log.exception("finding the applications' ports failed")

    def _gateway_listeners(self) -> None:
        """Each gateway's server ports as URLs, for `heddle status` (again at every change:
        Gateways come and go while it runs)."""
        gateways = [s for key, (_, s) in self.agents.items() if key in self.gateways]
        if not gateways:
            return
        try:
            from heddle.model.proxy import Proxy, ProxyType
            from heddle.translate.gateway import gateway_listeners

            snapshot = MeshSnapshot.of(self.store)
            for state in gateways:
                proxy = Proxy(ProxyType.ROUTER, state.name, state.namespace, state.address,
                              state.address, tuple(sorted(state.labels.items())),
                              state.service_account, low_port_offset=self.low_port_offset)
                state.listeners = [
                    listener.url + (f" (port {listener.number} + {self.low_port_offset}: "
                                    "not root)" if listener.port != listener.number else "")
                    for listener in gateway_listeners(snapshot, proxy)]
        except Exception:  # status then shows no listeners
            log.exception("finding the gateways' listeners failed")

    def _claim(self) -> None:
        """Record what this mesh holds, for a second `heddle up` to be refused by."""
        claim = claims.Claim(
            self.owner, self.state.config_dir, os.getpid(),
            (self.config.xds_port, self.config.ca_port, self.config.join_port,
             self.config.debug_port,
             *((self.config.prometheus.port,) if self.config.prometheus else ())),
            tuple(sorted({s.address for _, s in self.agents.values()})))
        if claim != self._claimed:
            with claims.locked():
                claims.save(claim)
            self._claimed = claim

    async def _control_plane_serving(self, stop: asyncio.Event, timeout: float = 60.0) -> None:
        """Until the control plane answers on its debug port (the last it opens), so that
        agents start once their CA is there: started earlier, each would retry its first
        certificate (a helper process per try), slowing the control plane's own start.
        After `timeout`, agents start anyway (they wait for the CA themselves)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not stop.is_set() and loop.time() < deadline:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.config.debug_port)
            except OSError:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        if not stop.is_set():
            log.warning("the control plane is not serving after %.0fs; starting the workloads "
                        "anyway", timeout)

    async def _stop_control_plane(self, keeper: asyncio.Task[None]) -> None:
        await keeper  # returns once `stop` is set: no restart from here on
        if self.control_plane is not None:
            await _terminate(self.control_plane)

    def _run_prometheus(self, stop: asyncio.Event) -> asyncio.Task[None] | None:
        """Start the Prometheus add-on (if asked for) and keep it running until `stop`."""
        addon = self.prometheus
        if addon is None:
            return None
        addon.write_config()
        self.state.prometheus_log_from = _size(addon.log)

        async def start() -> asyncio.subprocess.Process:
            self.prometheus_process = await addon.start()
            self.state.prometheus_pid = self.prometheus_process.pid
            self.state.prometheus_starts += 1
            self.state.save(self.config.home)
            return self.prometheus_process

        if self.config.narrate:
            log.info("Prometheus at %s, scraping the control plane and every proxy (its log: "
                     "%s)", addon.options.url, addon.log)
        return asyncio.create_task(keep_running(start, stop, "Prometheus", max_backoff=5.0))

    async def _stop_prometheus(self, keeper: asyncio.Task[None]) -> None:
        await keeper
        if self.prometheus_process is not None:
            await _terminate(self.prometheus_process)
        if self.prometheus is not None:
            self.prometheus.remove_files()

    async def _reconcile_logged(self) -> None:
        """Reconcile; a failure is logged and retried at the next change or tick, so the
        supervisor outlives anything one edit can cause."""
        try:
            await self.reconcile()
        except Exception:
            log.exception("starting or stopping workloads failed; trying again shortly")

    async def run(self, stop: asyncio.Event) -> None:
        self.state.supervisor_pid = os.getpid()  # `heddle up --detach` forks to run this
        self.config.home.mkdir(parents=True, exist_ok=True)
        await self.source.load()
        if self.applied is not None:
            await self.applied.load()
        self.state.save(self.config.home)
        control_plane = asyncio.create_task(
            keep_running(self._start_control_plane, stop, "control plane", max_backoff=5.0))
        prometheus = self._run_prometheus(stop)
        events = self.store.subscribe()
        watchers = [asyncio.create_task(self.source.watch(stop))]
        if self.applied is not None:
            watchers.append(asyncio.create_task(self.applied.watch(stop)))
        if self.config.narrate:
            log.info("mesh from %s: starting the control plane (xDS 127.0.0.1:%d, debug "
                     "127.0.0.1:%d)", self.config.config_dir, self.config.xds_port,
                     self.config.debug_port)
            watchers += [
                asyncio.create_task(follow(self.config.home / "logs" / "control-plane.log",
                                           lambda: self.state.control_plane_log_from, stop)),
                asyncio.create_task(self.readiness.watch(
                    lambda: {k: s for k, (_, s) in self.agents.items()}, stop))]
        try:
            await self._control_plane_serving(stop)
            if self.config.narrate and not stop.is_set():
                log.info("control plane serving")
            await self._reconcile_logged()
            while not stop.is_set():
                getter = asyncio.create_task(events.get())
                stopper = asyncio.create_task(stop.wait())
                await asyncio.wait({getter, stopper}, timeout=1.0,
                                   return_when=asyncio.FIRST_COMPLETED)
                getter.cancel()
                stopper.cancel()
                while not events.empty():
                    events.get_nowait()
                if not stop.is_set():
                    await self._reconcile_logged()
        finally:
            stop.set()
            log.info("stopping %d workload(s) and the control plane", len(self.agents))
            # Workloads and the control plane stop side by side: the proxies need no
            # configuration while they drain.
            await asyncio.gather(*(_terminate(p) for p, _ in self.agents.values()),
                                 self._stop_control_plane(control_plane),
                                 *([self._stop_prometheus(prometheus)] if prometheus else []))
            self.agents.clear()
            await asyncio.gather(*watchers)
            (self.config.home / "state.json").unlink(missing_ok=True)
            claims.release(self.owner, os.getpid())
            log.info("mesh stopped")
