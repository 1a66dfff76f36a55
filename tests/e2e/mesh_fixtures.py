"""Helpers for end-to-end tests: unique loopback addresses, the hello mesh, a running xDS."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from heddle.agent.agent import sds_socket_for
from heddle.agent.certificates import WorkloadCertificate
from heddle.agent.sds import SdsServer, serve_sds
from heddle.api.loader import load_text
from heddle.ca.authority import CertificateAuthority, make_csr, new_key
from heddle.ca.identity import Identity
from heddle.config.store import ConfigStore
from heddle.local.state import MeshState, pid_alive

ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count(1)


def unique_subnet() -> str:
    """A /24 in 127.0.0.0/9 no other test of this run (nor, very likely, of a concurrent run)
    uses: `127.A.B.`; its applications listen in 127.(A+128).B.0/24."""
    n = next(_counter) + os.getpid() // 120
    return f"127.{1 + os.getpid() % 120}.{n % 250 + 1}."


# The loopback /24 each example's mesh.yaml puts its workloads in.
EXAMPLE_SUBNETS = {"hello": "127.0.10.", "bookinfo": "127.0.20."}


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


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float,
                     what: str) -> None:
    """Poll `check` until it holds; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


async def serve_identity(tmp: Path, namespace: str, service_account: str,
                         ) -> tuple[grpc.aio.Server, Path]:
    """An SDS socket serving a workload certificate from a throwaway CA, as an agent would."""
    ca = CertificateAuthority.load_or_create(tmp / "ca")
    identity = Identity(namespace, service_account)
    key = new_key()
    signed = ca.sign(make_csr(key, identity), identity)
    leaf = x509.load_pem_x509_certificate(signed.cert_chain_pem)
    sds = SdsServer()
    await sds.update(WorkloadCertificate(
        signed.cert_chain_pem,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        signed.root_pem, leaf.not_valid_before_utc, leaf.not_valid_after_utc))
    socket_path = sds_socket_for(tmp / f"{namespace}-{service_account}")
    return await serve_sds(sds, socket_path), socket_path


HEDDLE = str(Path(sys.executable).with_name("heddle"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def wait_for(check: object, timeout: float, what: str) -> float:
    """Poll `check()` until true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s: {what}")


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
    return ["--xds-port", str(free_port()), "--debug-port", str(free_port()),
            "--ca-port", str(free_port()), "--join-port", str(free_port())]


@contextlib.contextmanager
def running_mesh(base: Path, *up_args: str, example: str = "hello",
                 target: str = "") -> Iterator[LocalMesh]:
    """`heddle up` on a copy of examples/EXAMPLE (or on the file `target` in it) with its
    own addresses and ports; on exit, `heddle down`, then check that no process it started
    is left."""
    config_dir, subnet = mesh_copy(base, example)
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




def active_listeners(address: str) -> str:
    """The listeners an Envoy is serving with now (not warming or draining ones), as JSON."""
    url = f"http://{address}:15000/config_dump?resource=dynamic_listeners"
    with urllib.request.urlopen(url, timeout=5) as response:
        dump = json.loads(response.read())
    return json.dumps([c.get("active_state", {}) for c in dump.get("configs", [])])


def nothing_draining(address: str) -> bool:
    """No connection is still served by a replaced listener or filter chain: after a policy
    change, every request from now on meets the new configuration."""
    url = f"http://{address}:15000/stats?filter=^listener_manager.total_(filter_chains|listeners)_draining$"
    with urllib.request.urlopen(url, timeout=5) as response:
        lines = response.read().decode().split("\n")
    return all(line.rsplit(": ", 1)[-1] == "0" for line in lines if line.strip())


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
