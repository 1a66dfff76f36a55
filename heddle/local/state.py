"""What a running local mesh wrote down about itself, for `down`, `status`, `exec`, ..."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


def heddle_home() -> Path:
    """Where local meshes keep state: $HEDDLE_HOME, else ~/.heddle."""
    return Path(os.environ.get("HEDDLE_HOME") or Path.home() / ".heddle")


@dataclass
class WorkloadState:
    name: str
    namespace: str
    address: str
    app_address: str
    agent_pid: int
    workdir: str
    labels: dict[str, str] = field(default_factory=dict)
    service_account: str = "default"
    command: str = ""
    # Where the application serves its services' ports (it is ready once it accepts there).
    app_ports: list[int] = field(default_factory=list)
    app_sockets: list[str] = field(default_factory=list)
    restarts: int = 0  # times its agent exited and was started again
    # Where this agent's start begins in its logs (they keep earlier runs' lines).
    agent_log_from: int = 0
    app_log_from: int = 0
    last_exit: int | None = None  # the exit status of its last agent that exited
    proxy_type: str = "sidecar"  # or "router": a gateway
    # A gateway's server ports as URLs at its address, and what asked for it.
    listeners: list[str] = field(default_factory=list)
    source: str = ""
    # Where Prometheus scrapes it (POD_IP:15020/stats/prometheus): the prometheus.io/*
    # annotations Istio's injector writes on a pod.
    prometheus: dict[str, str] = field(default_factory=dict)


@dataclass
class MeshState:
    config_dir: str
    supervisor_pid: int
    xds_port: int
    debug_port: int
    control_plane_pid: int = 0
    ca_port: int = 15012
    join_port: int = 15013
    control_plane_starts: int = 0
    control_plane_log_from: int = 0  # where this mesh's lines begin in control-plane.log
    started: bool = False  # every workload the configuration declared has been started once
    workloads: dict[str, WorkloadState] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # workload -> why it was not started
    prometheus_port: int = 0  # `--prometheus`: where the add-on serves (0: not running one)
    prometheus_pid: int = 0
    prometheus_starts: int = 0
    prometheus_log_from: int = 0

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}" if self.prometheus_port else ""

    @property
    def debug_url(self) -> str:
        return f"http://127.0.0.1:{self.debug_port}"

    def save(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(home / "state.json")

    @classmethod
    def load(cls, home: Path) -> MeshState | None:
        try:
            raw = json.loads((home / "state.json").read_text())
        except (OSError, ValueError):
            return None
        try:
            workloads = {k: WorkloadState(**v) for k, v in raw.pop("workloads", {}).items()}
            return cls(**raw, workloads=workloads)
        except (TypeError, AttributeError):  # written by another version of Heddle
            return None

    def workload(self, name: str) -> WorkloadState | None:
        """By `name` or `name.namespace`."""
        if name in self.workloads:
            return self.workloads[name]
        matches = [w for w in self.workloads.values() if w.name == name]
        return matches[0] if len(matches) == 1 else None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, exited but not yet reaped, does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc here: kill(0) is all there is
    return stat.rpartition(")")[2].split()[:1] != ["Z"]
