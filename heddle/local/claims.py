"""What each running local mesh of this user holds: its control-plane ports and its
workloads' pod IPs, so that a second mesh that would share any of them is refused at once,
naming the first, instead of being started beside it and confused with it.

A mesh's claim is a small JSON file in a folder of this user's (mode 0700) under the
system's temporary directory, written by `heddle up` under a lock and removed by the
supervisor when it stops; a claim whose supervisor is gone counts for nothing. Addresses
and ports are also tried by binding them, which finds what holds them without a claim (an
older Heddle, another user, another program).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import tempfile
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from heddle.local.state import pid_alive
from heddle.model import ports

# The ports a workload's pod IP must have free: Envoy's admin and outbound, the agent's health.
POD_PORTS = (ports.ADMIN, ports.OUTBOUND, ports.HEALTH)


def claims_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"heddle-{os.getuid()}" / "meshes"


@dataclass(frozen=True)
class Claim:
    home: str  # the mesh's HEDDLE_HOME
    config: str  # what it runs (a directory or a file)
    pid: int  # its supervisor
    ports: tuple[int, ...]
    addresses: tuple[str, ...]

    def describe(self) -> str:
        return (f"the mesh running {self.config} (HEDDLE_HOME={self.home}, supervisor pid "
                f"{self.pid})")


def _file(home: str) -> Path:
    name = home.encode()
    return claims_dir() / f"{zlib.crc32(name):08x}{zlib.adler32(name):08x}.json"


class ClaimsUnavailable(Exception):
    """The claims cannot be read or written safely now; the message says why."""


@contextlib.contextmanager
def locked(timeout: float = 10.0) -> Iterator[None]:
    """Hold the claims lock, so that checking and claiming are one step against another
    `heddle up`; ClaimsUnavailable if it is not free within `timeout` seconds."""
    folder = claims_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for path in (folder.parent, folder):  # someone else's folder could hide or fake claims
        if path.lstat().st_uid != os.getuid() or path.is_symlink():
            raise ClaimsUnavailable(f"{path} is not this user's folder; remove it")
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ClaimsUnavailable(f"another `heddle up` holds {folder / '.lock'}; "
                                       "try again once it is done") from None
                time.sleep(0.02)
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)  # a forked child's copy must not keep it
        os.close(fd)


def read_all() -> list[Claim]:
    """Every claim whose supervisor is alive (stale ones are removed)."""
    found = []
    for path in sorted(claims_dir().glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            claim = Claim(str(raw["home"]), str(raw["config"]), int(raw["pid"]),
                          tuple(int(p) for p in raw["ports"]),
                          tuple(str(a) for a in raw["addresses"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if pid_alive(claim.pid):
            found.append(claim)
        else:
            path.unlink(missing_ok=True)
    return found


def save(claim: Claim) -> None:
    path = _file(claim.home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(claim)))
    tmp.replace(path)


def release(home: str, pid: int) -> None:
    """Remove `home`'s claim if `pid` holds it."""
    path = _file(home)
    with contextlib.suppress(OSError, ValueError, KeyError):
        if json.loads(path.read_text())["pid"] == pid:
            path.unlink()


def in_use(host: str, port: int) -> bool:
    """Whether something listens on host:port (binding it fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            return err.errno == errno.EADDRINUSE
    return False


HOW_TO_RUN_BESIDE = ("to run a second mesh beside it, give it other ports (--xds-port, "
                     "--ca-port, --join-port, --debug-port) and WorkloadEntry addresses in "
                     "another 127.x.y.0/24")


def port_clash(wanted: Mapping[str, int]) -> str | None:
    """Why the control-plane ports `wanted` (flag -> port) cannot be used, or None."""
    for claim in read_all():
        if claim.pid == os.getpid():
            continue
        for flag, port in wanted.items():
            if port in claim.ports:
                return (f"port {port} ({flag}) is used by {claim.describe()}; stop that one "
                        f"(`HEDDLE_HOME={claim.home} heddle down`) or, {HOW_TO_RUN_BESIDE}")
    for flag, port in wanted.items():
        if in_use("127.0.0.1", port):
            return (f"port {port} ({flag}) on 127.0.0.1 is in use by another program (not a "
                    f"running mesh of yours); choose another with {flag}")
    return None


def address_clash(addresses: Mapping[str, str]) -> str | None:
    """Why the pod IPs `addresses` (address -> workload) cannot be used, or None."""
    for claim in read_all():
        if claim.pid == os.getpid():
            continue
        for address, workload in sorted(addresses.items()):
            if address in claim.addresses:
                return (f"{workload}'s address {address} is a pod IP of {claim.describe()}; "
                        f"stop that one (`HEDDLE_HOME={claim.home} heddle down`) or, "
                        f"{HOW_TO_RUN_BESIDE}")
    for address, workload in sorted(addresses.items()):
        for port in POD_PORTS:
            if in_use(address, port):
                return (f"{address}:{port} ({workload}'s pod IP) is in use by another program "
                        f"(not a running mesh of yours); give {workload} another address")
    return None
