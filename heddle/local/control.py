"""A running local mesh seen from outside (the CLI): is each workload ready, and if not
why, which processes belong to it, and stopping them all.

Light on purpose (the standard library and the mesh's state only): `heddle status` and
`heddle down` run this on every call.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from heddle.local.state import MeshState, WorkloadState, pid_alive
from heddle.model import ports


def http_request(method: str, host: str, port: int, path: str, body: bytes = b"",
                 headers: dict[str, str] | None = None,
                 timeout: float = 2.0) -> tuple[int, bytes]:
    """One HTTP/1.1 exchange on a fresh connection (closed after it); the status and the
    body. OSError when nothing answers or the answer is not HTTP.

    By hand, not http.client: that loads the email package and ssl, a fifth of what a
    quick `heddle get` may take, for two requests to loopback servers."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close",
             f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        received = bytearray()
        while chunk := sock.recv(65536):
            received += chunk
            if _complete(received):
                break
    head, separator, rest = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if not separator or len(parts) < 2 or not parts[0].startswith("HTTP/") or not (
            parts[1].isdigit()):
        raise OSError(f"not an HTTP answer from {host}:{port}")
    fields = {k.strip().lower(): v.strip() for k, _, v in
              (line.partition(":") for line in header_lines)}
    if fields.get("transfer-encoding", "").lower() == "chunked":
        rest = _unchunked(rest)
    elif fields.get("content-length", "").isdigit():
        rest = rest[:int(fields["content-length"])]
    return int(parts[1]), rest


_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _complete(received: bytearray) -> bool:
    """Whether a response with a Content-Length is all in (else: read until closed)."""
    end = received.find(b"\r\n\r\n")
    length = _LENGTH.search(received, 0, end) if end >= 0 else None
    return length is not None and len(received) - end - 4 >= int(length.group(1))


def _unchunked(data: bytes) -> bytes:
    out: list[bytes] = []
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            return b"".join(out)
        out.append(data[:size])
        data = data[size + 2:]


def http_get(host: str, port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    return http_request("GET", host, port, path, timeout=timeout)


def http_post(host: str, port: int, path: str, body: str, headers: dict[str, str],
              timeout: float = 10.0) -> tuple[int, bytes]:
    return http_request("POST", host, port, path, body.encode(), headers, timeout)


def prometheus_ready(state: MeshState, timeout: float = 1.0) -> bool:
    """Whether the mesh runs no Prometheus add-on or it answers ready."""
    if not state.prometheus_port:
        return True
    try:
        return http_get("127.0.0.1", state.prometheus_port, "/-/ready", timeout)[0] == 200
    except OSError:
        return False


def workload_ready(workload: WorkloadState, timeout: float = 1.0) -> bool:
    """Its agent answers ready (Envoy has its configuration and the application runs) and
    the application accepts connections where its sidecar sends them."""
    try:
        status, _ = http_get(workload.address, ports.HEALTH, "/healthz/ready", timeout)
    except OSError:
        return False
    return status == 200 and all(_accepts(workload.app_address, p, timeout)
                                 for p in workload.app_ports) and all(
        _accepts_unix(path, timeout) for path in workload.app_sockets)


def _accepts(host: str, port: int, timeout: float) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return False
    return True


def _accepts_unix(path: str, timeout: float) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


_STARTED_APP = re.compile(r"started application \(pid (\d+)\)")
_ERROR_WORDS = re.compile(
    r"\b(ERROR|CRITICAL|FATAL)\b|error|exception|fatal|failed|cannot|can't|not found|"
    r"no such|denied|refused|address already in use", re.IGNORECASE)


def _lines(path: Path, start: int = 0, limit: int = 1024 * 1024) -> list[str]:
    try:
        with path.open("rb") as file:
            file.seek(start)
            return file.read(limit).decode(errors="replace").splitlines()
    except OSError:
        return []


def first_error(path: Path, start: int = 0) -> str | None:
    """The first line of a log from byte `start` on that reports a problem (for a
    traceback, the line naming the exception), or None."""
    lines = _lines(path, start)
    for i, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            return next((later for later in lines[i + 1:]
                         if later.strip() and not later.startswith((" ", "\t"))), line)
        if _ERROR_WORDS.search(line):
            return line.strip()
    return None


def app_pid(workload: WorkloadState) -> int | None:
    """The pid of the application its agent started last, if it started one."""
    log = Path(workload.workdir) / "agent.log"
    found = [m.group(1) for line in _lines(log, workload.agent_log_from)
             if (m := _STARTED_APP.search(line))]
    return int(found[-1]) if found else None


def workload_problem(workload: WorkloadState) -> str | None:
    """Why the workload cannot become ready without a change, or None while it may."""
    if workload.restarts:
        return f"its agent exited (status {workload.last_exit}) and was restarted"
    if not pid_alive(workload.agent_pid):
        return "its agent exited"
    pid = app_pid(workload)
    if workload.command and pid is not None and not pid_alive(pid):
        return f"its application exited ({workload.command})"
    return None


@dataclass(frozen=True)
class Failure:
    """A start that cannot succeed: what failed and the logs (from which byte) that say
    why."""

    what: str
    logs: tuple[tuple[Path, int], ...]

    def report(self) -> list[str]:
        lines = [self.what]
        for log, start in self.logs:
            lines.append(f"  {log}: {first_error(log, start) or 'no error logged'}")
        return lines


def workload_logs(workload: WorkloadState) -> tuple[tuple[Path, int], ...]:
    """Its app's log and its agent's, from where this start of them begins."""
    workdir = Path(workload.workdir)
    return ((workdir / "app.log", workload.app_log_from),
            (workdir / "agent.log", workload.agent_log_from))


def start_failure(home: Path, state: MeshState | None) -> Failure | None:
    """Why a mesh that is starting will not come up, or None while it may."""
    if state is None or not pid_alive(state.supervisor_pid):
        return Failure("the supervisor exited", ((home / "supervisor.log", 0),))
    if state.control_plane_starts > 1:
        return Failure("the control plane exited and is being restarted",
                       ((home / "logs" / "control-plane.log", state.control_plane_log_from),))
    if state.prometheus_starts > 1:
        return Failure("Prometheus exited and is being restarted",
                       ((home / "logs" / "prometheus.log", state.prometheus_log_from),))
    for key, why in sorted(state.refused.items()):
        return Failure(f"{key} was not started: {why}", ())
    for key in sorted(state.workloads):
        workload = state.workloads[key]
        problem = workload_problem(workload)
        if problem is not None:
            return Failure(f"{key} did not start: {problem}", workload_logs(workload))
    return None


def _pid_file(path: Path) -> int:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def workload_pids(workload: WorkloadState) -> list[int]:
    """Its agent, its Envoy and its application, as each was last started."""
    workdir = Path(workload.workdir)
    app = app_pid(workload) or _pid_file(workdir / "app.pid")
    return [p for p in (workload.agent_pid, _pid_file(workdir / "envoy.pid"), app) if p > 0]


def mesh_pids(state: MeshState) -> list[int]:
    """Every process the mesh's state names: supervisor, control plane, agents, their
    Envoys and applications."""
    pids = [state.supervisor_pid, state.control_plane_pid, state.prometheus_pid]
    for workload in state.workloads.values():
        pids += workload_pids(workload)
    return list(dict.fromkeys(p for p in pids if p > 0))


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """`sig` to the process group `pid` leads (each of the mesh's processes starts its own
    session), or to `pid` alone when it leads none (its number now names another
    process's member: never a group that is not the mesh's)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def _wait_gone(pids: list[int], deadline: float) -> list[int]:
    """Until none of `pids` runs or `deadline` (monotonic) passes; those still running."""
    alive = [p for p in pids if pid_alive(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in alive if pid_alive(p)]
    return alive


def _home_of(pid: int) -> str | None:
    """The HEDDLE_HOME in process `pid`'s environment ("" when it has none; None when it
    cannot be read)."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    found = [e[len(b"HEDDLE_HOME="):] for e in environ if e.startswith(b"HEDDLE_HOME=")]
    return os.fsdecode(found[-1]) if found else ""


def group_members(groups: set[int]) -> list[int]:
    """Every running process in one of the process groups `groups` (from /proc) that has
    this process's HEDDLE_HOME: what the mesh's processes started and left behind (a
    certificate helper of a stopped agent), as their groups are the mesh's own (each of
    its processes leads a session), and every one of them inherits the mesh's home (so a
    group number reused by someone else's process is never taken for the mesh's)."""
    home = os.environ.get("HEDDLE_HOME", "")
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            if (len(fields) > 2 and fields[0] != "Z" and int(fields[2]) in groups
                    and _home_of(int(entry.name)) == home):
                found.append(int(entry.name))
    return found


GRACE = 3.0  # after a hung supervisor: how long its agents have to stop cleanly (s)
KILL_WAIT = 2.0  # after SIGKILL: how long until the kernel has taken them all (s)


def stop(home: Path, state: MeshState, timeout: float) -> list[int]:
    """Stop the mesh within `timeout` (its drain window) plus a few seconds, whatever state
    its supervisor is in; forget its state and claim, remove its agents' SDS sockets.
    Returns the processes that could not be stopped (none, unless another user's).

    The supervisor is asked first (SIGTERM: it drains and stops everything it started).
    When it is gone (killed) or goes before the window ends while some of what it started
    still runs, those are asked themselves: the agents drain their Envoys and stop their
    applications, the control plane stops. When the supervisor is hung past the window, it
    is killed and the rest get GRACE seconds. Whatever still runs then is killed, each by
    its process group, from the PIDs the state records (the latest state, so workloads
    started since `state` are included)."""
    start = time.monotonic()
    deadline = start + timeout
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.supervisor_pid, signal.SIGTERM)
    hung = bool(_wait_gone([state.supervisor_pid], deadline))
    latest = MeshState.load(home)
    states = [state, *([latest] if latest is not None else [])]
    pids = list(dict.fromkeys(p for s in states for p in mesh_pids(s)))
    # Each agent stops its own Envoy and application; those of a dead agent are asked.
    rest = [p for s in states for p in (s.control_plane_pid, s.prometheus_pid)]
    for workload in {w.workdir: w for s in states for w in s.workloads.values()}.values():
        own = workload_pids(workload)
        rest += own[:1] if pid_alive(workload.agent_pid) else own
    rest = [p for p in dict.fromkeys(rest) if p > 0 and pid_alive(p)]
    if hung:
        _signal_group(state.supervisor_pid, signal.SIGKILL)
        deadline = time.monotonic() + GRACE
    for pid in rest:
        _signal_group(pid, signal.SIGTERM)
    alive = _wait_gone(pids, deadline)
    for pid in alive:
        _signal_group(pid, signal.SIGKILL)
    # What the mesh's processes left in their groups, their leaders gone.
    leftovers = [p for p in group_members(set(pids)) if p not in alive and p != os.getpid()]
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    left = _wait_gone(alive + leftovers, time.monotonic() + KILL_WAIT)
    from heddle.model.sockets import sds_socket_for

    for workdir in {w.workdir for s in states for w in s.workloads.values()}:
        sds_socket_for(Path(workdir)).unlink(missing_ok=True)
    if any(s.prometheus_port for s in states):  # its metrics end with the mesh
        shutil.rmtree(home / "prometheus", ignore_errors=True)
    (home / "state.json").unlink(missing_ok=True)
    from heddle.local import claims

    claims.release(str(home.resolve().parent), state.supervisor_pid)
    return left
