"""Helpers for end-to-end tests: the example meshes (in process, or run by `heddle up`), a
workload identity served over SDS, steady traffic through a running mesh. Loopback
addresses, waiting and the Envoy harness are the testing kit's (`heddle.testing`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from heddle.api.loader import load_text
from heddle.config.store import ConfigStore
from heddle.local.state import MeshState, pid_alive
from heddle.testing.loopback import free_port, unique_subnet

ROOT = Path(__file__).resolve().parents[2]

# The loopback /24 each example's mesh.yaml puts its workloads in.
EXAMPLE_SUBNETS = {"hello": "127.0.10.", "bookinfo": "127.0.20.", "nginx-cutover": "127.0.30."}


def hello_text(subnet: str, example: str = "hello") -> str:
    """An example's mesh.yaml with its workloads moved to `subnet`."""
    text = (ROOT / "examples" / example / "mesh.yaml").read_text()
    return text.replace(EXAMPLE_SUBNETS[example], subnet)


def hello_store(subnet: str) -> ConfigStore:
    store = ConfigStore()
    result = load_text(hello_text(subnet), "hello.yaml")
    assert result.errors == []
    store.put("hello.yaml", result)
    return store


HEDDLE = str(Path(sys.executable).with_name("heddle"))
# examples/hello's workloads as `heddle status` lists them, with the default ingress gateway.
HELLO_WORKLOADS = {"client", "frontend", "backend-1", "backend-2", "echo",
                   "istio-ingressgateway"}


def status_workloads(status: str) -> dict[str, str]:
    """Workload -> its pod IP, from the table `heddle status` prints after its first line."""
    found = {}
    for line in status.splitlines()[2:]:
        if not line.strip() or line.split()[0] in ("configuration:", "gateways:"):
            break  # the sections after the table
        found[line.split()[0]] = line.split()[2]
    return found


@dataclass
class LocalMesh:
    config_dir: Path
    home: Path
    subnet: str

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "HEDDLE_HOME": str(self.home)}

    def heddle(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([HEDDLE, *args], env=self.env, capture_output=True, text=True,
                             timeout=120)
        if check:
            assert out.returncode == 0, f"heddle {' '.join(args)}: {out.stdout}{out.stderr}"
        return out

    def state(self) -> MeshState:
        state = MeshState.load(self.home / "mesh")
        assert state is not None
        return state

    def envoy_log(self, workload: str) -> str:
        return (self.home / "mesh" / "workloads" / f"{workload}.default" / "envoy.log").read_text()

    def envoy_pid(self, workload: str) -> int:
        path = self.home / "mesh" / "workloads" / f"{workload}.default" / "envoy.pid"
        return int(path.read_text())

    def get(self, url: str, timeout: float = 5.0) -> tuple[int, dict[str, object]]:
        """A request from the client workload, sent through the client's sidecar."""
        proxy = f"http://{self.subnet}1:15001"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy}))
        try:
            with opener.open(url, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, {}


def processes_of(home: Path) -> list[int]:
    """Every process on this machine whose environment names HEDDLE_HOME=home: a mesh's
    supervisor, control plane, agents, Envoys and applications all inherit it."""
    wanted = f"HEDDLE_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def mesh_copy(base: Path, example: str = "hello", subnet: str | None = None) -> tuple[Path, str]:
    """A copy of examples/EXAMPLE under `base`, its workloads moved to `subnet` (default: a
    unique one)."""
    config_dir = base / example
    shutil.copytree(ROOT / "examples" / example, config_dir)
    subnet = subnet or unique_subnet()
    (config_dir / "mesh.yaml").write_text(hello_text(subnet, example))
    return config_dir, subnet


def port_args() -> list[str]:
    """`heddle up` flags giving the control plane ports no one else uses."""
    ports: list[int] = []
    while len(ports) < 5:  # a port just freed may be handed out again: take five apart
        port = free_port()
        if port not in ports:
            ports.append(port)
    xds, debug, ca, join, rate_limits = ports
    return ["--xds-port", str(xds), "--debug-port", str(debug), "--ca-port", str(ca),
            "--join-port", str(join), "--ratelimit-port", str(rate_limits)]


@contextlib.contextmanager
def running_mesh(base: Path, *up_args: str, example: str = "hello",
                 target: str = "", extra: dict[str, str] | None = None) -> Iterator[LocalMesh]:
    """`heddle up` on a copy of examples/EXAMPLE (or on the file or folder `target` in it)
    with its own addresses and ports, and the files `extra` names added to it (`SUBNET.` in
    them is the mesh's loopback /24; a name may be in a new folder); on exit, `heddle down`,
    then check that no process it started is left."""
    config_dir, subnet = mesh_copy(base, example)
    for name, text in (extra or {}).items():
        (config_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (config_dir / name).write_text(text.replace("SUBNET.", subnet))
    running = LocalMesh(config_dir, base / "home", subnet)
    try:
        running.heddle("up", str(config_dir / target), "--detach", *port_args(), *up_args)
    except BaseException:
        running.heddle("down", check=False)  # a mesh that came up halfway leaves nothing
        raise
    state = running.state()
    pids = [state.supervisor_pid, state.control_plane_pid,
            *(w.agent_pid for w in state.workloads.values())]
    try:
        yield running
    finally:
        out = running.heddle("down", check=False)
        envoys = [p for p in (running.home / "mesh" / "workloads").glob("*/envoy.pid")]
        pids += [int(p.read_text()) for p in envoys]
    assert out.returncode == 0, out.stderr
    assert [p for p in pids if pid_alive(p)] == [], "processes left behind by heddle down"
    assert processes_of(running.home) == [], "processes left behind by heddle down"

@contextlib.contextmanager
def steady_traffic(mesh: LocalMesh, url: str = "http://frontend:8080/",
                   seconds: float = 60, limit: int = 5000) -> Iterator[list[int]]:
    """Requests from the client workload, one after another (every ~10 ms), while the block
    runs; yields the list their statuses are appended to (-1: the connection failed)."""
    results: list[int] = []
    stop = threading.Event()

    def send() -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline and len(results) < limit:
            try:
                results.append(mesh.get(url)[0])
            except OSError:
                results.append(-1)
            time.sleep(0.01)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        yield results
    finally:
        stop.set()
        sender.join()
