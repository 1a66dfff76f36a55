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


@dataclass
class MeshState:
    config_dir: str
    supervisor_pid: int
    xds_port: int
    debug_port: int
    control_plane_pid: int = 0
    ca_port: int = 15012
    join_port: int = 15013
    workloads: dict[str, WorkloadState] = field(default_factory=dict)

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
        workloads = {k: WorkloadState(**v) for k, v in raw.pop("workloads", {}).items()}
        return cls(**raw, workloads=workloads)

    def workload(self, name: str) -> WorkloadState | None:
        """By `name` or `name.namespace`."""
        if name in self.workloads:
            return self.workloads[name]
        matches = [w for w in self.workloads.values() if w.name == name]
        return matches[0] if len(matches) == 1 else None


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
