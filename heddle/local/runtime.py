"""The local mesh supervisor: the control plane and one agent (+ Envoy + app) per workload.

Every WorkloadEntry whose address is a loopback address runs here, as its own process tree.
The supervisor watches the directory too, so workloads added or removed there start or stop,
and it restarts the control plane if it dies: proxies keep serving meanwhile and resync
when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from heddle.ca.authority import CertificateAuthority
from heddle.ca.tokens import TokenIssuer
from heddle.config.directory import DirectorySource
from heddle.config.store import ConfigStore
from heddle.local.state import MeshState, WorkloadState
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.from_config import workload_from_group
from heddle.registry.model import Workload
from heddle.supervise import keep_running

log = logging.getLogger(__name__)

COMMAND_ANNOTATION = "heddle.dev/command"
# On a WorkloadGroup: start one instance per address listed; each joins the group itself.
ADDRESSES_ANNOTATION = "heddle.dev/addresses"


@dataclass(frozen=True)
class LocalMeshConfig:
    """What the supervisor itself needs: where the control plane is for the agents, and
    how to start it. heddle.app builds this from the control plane's options (which reach
    the control plane whole, through `control_plane_command`), so it never copies them."""

    config_dir: Path
    home: Path
    control_plane_command: tuple[str, ...]
    ca_dir: Path  # the control plane's CA: the root agents trust and the join-token key
    xds_port: int = 15010
    debug_port: int = 15014
    delta: bool = False
    ca_port: int = 15012  # xDS + CA over mutual TLS: the agents' Envoys and renewals
    cert_lifetime: float = 86400.0
    join_port: int = 15013  # the CA over TLS: each agent's first CSR, with its join token


def app_address(pod_ip: str) -> str:
    """Where the application listens: 127.(A+128).B.C for pod IP 127.A.B.C (A < 127), so
    every pod IP has its own, and two meshes on one machine never share one. Only its own
    sidecar sends there; everyone else reaches the pod IP, where the sidecar listens. Pod IPs
    from 127.127.0.0 up share 127.255.B.C."""
    octets = [int(o) for o in pod_ip.split(".")]
    if octets[1] < 127:
        return f"127.{octets[1] + 128}.{octets[2]}.{octets[3]}"
    return f"127.255.{octets[2]}.{octets[3]}"


def is_local(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback and address.startswith("127.")
    except ValueError:
        return False


def heddle_command() -> list[str]:
    return [sys.executable, "-m", "heddle"]


def agent_command() -> list[str]:
    """The agent's lean entry point (no CLI framework): one runs beside every Envoy."""
    return [sys.executable, "-m", "heddle.agent"]


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
        self.control_plane: asyncio.subprocess.Process | None = None
        self.agents: dict[str, tuple[asyncio.subprocess.Process, WorkloadState]] = {}
        self.state = MeshState(str(config.config_dir.resolve()), os.getpid(), config.xds_port,
                               config.debug_port, ca_port=config.ca_port,
                               join_port=config.join_port)
        self.ca_dir = config.ca_dir
        # The root is made before anything starts; agents trust it to reach the CA.
        CertificateAuthority.load_or_create(self.ca_dir)
        self.tokens = TokenIssuer.load_or_create(self.ca_dir)

    def _log(self, name: str) -> int:
        path = self.config.home / "logs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    async def _start_control_plane(self) -> asyncio.subprocess.Process:
        out = self._log("control-plane.log")
        self.control_plane = await asyncio.create_subprocess_exec(
            *self.config.control_plane_command, stdout=out, stderr=out,
            start_new_session=True)
        os.close(out)
        self.state.control_plane_pid = self.control_plane.pid
        self.state.save(self.config.home)
        return self.control_plane

    def _wanted(self) -> dict[str, tuple[Workload, str, str]]:
        """(workload, command, WorkloadGroup it joins) for everything that runs here."""
        snapshot = MeshSnapshot.of(self.store)
        wanted: dict[str, tuple[Workload, str, str]] = {}
        for workload in snapshot.registry.workloads:
            entry = snapshot.get("networking.istio.io", "WorkloadEntry", workload.namespace,
                                 workload.name)
            if entry is None or not is_local(workload.address):
                continue
            command = entry.metadata.annotations.get(COMMAND_ANNOTATION, "")
            wanted[f"{workload.name}.{workload.namespace}"] = (workload, command, "")
        for group in snapshot.of_kind("networking.istio.io", "WorkloadGroup"):
            annotations = group.metadata.annotations
            addresses = [a.strip() for a in annotations.get(ADDRESSES_ANNOTATION, "").split(",")]
            for i, address in enumerate(a for a in addresses if is_local(a)):
                instance = workload_from_group(group, f"{group.name}-{i + 1}", address)
                wanted[f"{instance.name}.{instance.namespace}"] = (
                    instance, annotations.get(COMMAND_ANNOTATION, ""), group.name)
        return wanted

    async def _start_agent(self, key: str, workload: Workload, command: str,
                           group: str) -> None:
        workdir = self.config.home / "workloads" / key
        workdir.mkdir(parents=True, exist_ok=True)
        state = WorkloadState(
            name=workload.name, namespace=workload.namespace, address=workload.address,
            app_address=app_address(workload.address), agent_pid=0, workdir=str(workdir),
            labels=workload.label_map, service_account=workload.service_account,
            command=command)
        args = [*agent_command(), "--name", workload.name,
                "--namespace", workload.namespace, "--address", workload.address,
                "--app-address", state.app_address, "--labels", json.dumps(state.labels),
                "--service-account", workload.service_account,
                "--xds-port", str(self.config.xds_port), "--workdir", str(workdir),
                "--cwd", str(self.config.config_dir)]
        if group:
            args += ["--workload-group", group]
        token_file = workdir / "join-token"
        token_file.touch(mode=0o600)
        token_file.write_text(self.tokens.create(workload.namespace, workload.service_account))
        args += ["--ca-address", f"127.0.0.1:{self.config.ca_port}",
                 "--join-address", f"127.0.0.1:{self.config.join_port}",
                 "--root-cert", str(self.ca_dir / "root-cert.pem"),
                 "--token-file", str(token_file),
                 "--cert-lifetime", str(self.config.cert_lifetime)]
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
        log.info("started %s at %s (agent pid %d)", key, workload.address, process.pid)

    async def reconcile(self) -> None:
        """Start agents for new local workloads, stop those whose entry is gone or changed."""
        wanted = self._wanted()
        for key in list(self.agents):
            process, state = self.agents[key]
            spec = wanted.get(key)
            changed = spec is None or (spec[0].address, spec[1], spec[0].label_map) != (
                state.address, state.command, state.labels)
            if changed or process.returncode is not None:
                await _terminate(process)
                del self.agents[key]
        for key, (workload, command, group) in sorted(wanted.items()):
            if key not in self.agents:
                await self._start_agent(key, workload, command, group)
        self.state.workloads = {k: s for k, (_, s) in self.agents.items()}
        self.state.save(self.config.home)

    async def _reconcile_logged(self) -> None:
        """Reconcile; a failure is logged and retried at the next change or tick, so the
        supervisor outlives anything one edit can cause."""
        try:
            await self.reconcile()
        except Exception:
            log.exception("starting or stopping workloads failed; trying again shortly")

    async def run(self, stop: asyncio.Event) -> None:
        self.config.home.mkdir(parents=True, exist_ok=True)
        await self.source.load()
        self.state.save(self.config.home)
        control_plane = asyncio.create_task(
            keep_running(self._start_control_plane, stop, "control plane", max_backoff=5.0))
        events = self.store.subscribe()
        watcher = asyncio.create_task(self.source.watch(stop))
        try:
            await self.reconcile()
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
            await asyncio.gather(*(_terminate(p) for p, _ in self.agents.values()))
            self.agents.clear()
            await control_plane
            if self.control_plane is not None:
                await _terminate(self.control_plane)
            await watcher
            (self.config.home / "state.json").unlink(missing_ok=True)
