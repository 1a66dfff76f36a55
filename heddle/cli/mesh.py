"""`heddle up | down | status | logs | exec`: running a whole mesh on this machine."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer

from heddle.agent.environment import application_env
from heddle.local.state import MeshState, WorkloadState, heddle_home, pid_alive
from heddle.model import ports
from heddle.model.proxy import Proxy, ProxyType

# Heavy modules (pydantic models, grpc, aiohttp, rich) are imported inside the commands
# that use them, so that quick commands such as `heddle exec` start fast.


def mesh_home() -> Path:
    return heddle_home() / "mesh"


def running_state() -> MeshState | None:
    state = MeshState.load(mesh_home())
    return state if state and pid_alive(state.supervisor_pid) else None


def require_state() -> MeshState:
    state = running_state()
    if state is None:
        typer.echo("error: no mesh is running (start one with `heddle up DIR`)", err=True)
        raise typer.Exit(1)
    return state


def workload_ready(workload: WorkloadState) -> bool:
    import httpx

    url = f"http://{workload.address}:{ports.HEALTH}/healthz/ready"
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until_ready(timeout: float) -> MeshState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = MeshState.load(mesh_home())
        if state and state.workloads and all(workload_ready(w)
                                             for w in state.workloads.values()):
            return state
        if state and not pid_alive(state.supervisor_pid):
            break
        time.sleep(0.2)
    typer.echo(f"error: the mesh was not ready within {timeout:.0f}s; see "
               f"{mesh_home() / 'logs'} and `heddle status`", err=True)
    raise typer.Exit(1)


def up(
    config_dir: Path = typer.Argument(..., help="Directory of mesh YAML."),  # noqa: B008
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background."),
    delta: bool = typer.Option(False, help="Proxies use delta xDS instead of SotW."),
    xds_port: int = typer.Option(15010, help="Control plane xDS port (loopback)."),
    debug_port: int = typer.Option(15014, help="Control plane debug port (loopback)."),
    timeout: float = typer.Option(90.0, help="With --detach: how long to wait for readiness."),
    debounce_quiet: float = typer.Option(0.1, help="Push once changes pause this long (s)."),
    debounce_max: float = typer.Option(10.0, help="Push at the latest this long after a change."),
    ca_port: int = typer.Option(15012, help="Control plane xDS + CA over mutual TLS."),
    cert_lifetime: float = typer.Option(86400.0, help="Workload certificate lifetime (s)."),
    join_port: int = typer.Option(15013, help="Control plane CA over TLS, for the first "
                                              "CSR with a join token."),
    options_file: Path | None = typer.Option(None, hidden=True, help="The control plane's "  # noqa: B008
                                             "options as one JSON file (how --detach passes "
                                             "them on); the flags above are ignored then."),
) -> None:
    """Start the control plane and every workload DIR declares, each with its sidecar."""
    from heddle.api.diagnostics import Severity
    from heddle.api.loader import load_paths
    from heddle.app import MeshOptions, local_mesh
    from heddle.cli.processes import run_until_signalled
    from heddle.local.runtime import heddle_command

    if running_state():
        typer.echo("error: a mesh is already running; stop it with `heddle down`", err=True)
        raise typer.Exit(1)
    result = load_paths([config_dir])
    for diagnostic in result.diagnostics:
        if diagnostic.severity is not Severity.INFO:
            typer.echo(str(diagnostic), err=True)
    if result.errors:
        typer.echo(f"error: {config_dir} has errors; fix them before starting", err=True)
        raise typer.Exit(1)
    home = mesh_home()
    if options_file is not None:
        options = MeshOptions.read(options_file)
    else:
        options = MeshOptions(
            config_dir, f"127.0.0.1:{xds_port}", debug_port=debug_port,
            debounce_quiet=debounce_quiet, debounce_max=debounce_max,
            secure_address=f"127.0.0.1:{ca_port}", join_address=f"127.0.0.1:{join_port}",
            cert_lifetime=cert_lifetime)
    if detach:
        home.mkdir(parents=True, exist_ok=True)
        (home / "state.json").unlink(missing_ok=True)
        written = options.write(home / "up-options.json")
        args = [*heddle_command(), "up", str(config_dir), "--options-file", str(written),
                *(["--delta"] if delta else [])]
        with (home / "supervisor.log").open("ab") as out:
            subprocess.Popen(args, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        state = _wait_until_ready(timeout)
        typer.echo(f"mesh up: {len(state.workloads)} workloads from {state.config_dir}")
        return
    run_until_signalled(local_mesh(options, home, delta).run)


def down(timeout: float = typer.Option(30.0, help="How long to wait for a clean stop.")) -> None:
    """Stop the running mesh: drain and stop every workload, then the control plane."""
    state = MeshState.load(mesh_home())
    if state is None:
        typer.echo("no mesh is running")
        return
    pids = [state.supervisor_pid, state.control_plane_pid,
            *(w.agent_pid for w in state.workloads.values())]
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.supervisor_pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:  # whatever did not stop in time
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    (mesh_home() / "state.json").unlink(missing_ok=True)
    typer.echo("mesh down")


def _sync_summary(state: MeshState) -> dict[str, str]:
    import httpx

    try:
        statuses = httpx.get(f"{state.debug_url}/debug/syncz", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return {}
    summary = {}
    # A node id may have several streams: a connected one wins, else the newest (syncz
    # lists them oldest first).
    for status in sorted(statuses, key=lambda s: bool(s["connected"])):
        states = {t["state"] for t in status["types"].values()}
        text = "SYNCED" if states == {"SYNCED"} else ",".join(sorted(states))
        summary[status["proxy"]] = text if status["connected"] else "DISCONNECTED"
    return summary


def proxy_of(workload: WorkloadState) -> Proxy:
    return Proxy(ProxyType.SIDECAR, workload.name, workload.namespace, workload.address,
                 workload.app_address, tuple(sorted(workload.labels.items())),
                 workload.service_account)


def status() -> None:
    """Workloads, their addresses, readiness and proxy sync state."""
    from rich.console import Console
    from rich.table import Table

    state = require_state()
    sync = _sync_summary(state)
    table = Table("WORKLOAD", "NAMESPACE", "POD IP", "APP ADDRESS", "READY", "PROXY")
    for key in sorted(state.workloads):
        workload = state.workloads[key]
        proxy = proxy_of(workload)
        table.add_row(workload.name, workload.namespace, workload.address,
                      workload.app_address, "yes" if workload_ready(workload) else "no",
                      sync.get(proxy.id, "NOT CONNECTED"))
    typer.echo(f"mesh from {state.config_dir}; control plane pid {state.control_plane_pid}, "
               f"xDS 127.0.0.1:{state.xds_port} (plaintext) and 127.0.0.1:{state.ca_port} "
               f"(mutual TLS), debug 127.0.0.1:{state.debug_port}")
    Console(width=200).print(table)


def _workload(name: str) -> WorkloadState:
    workload = require_state().workload(name)
    if workload is None:
        known = ", ".join(sorted(require_state().workloads)) or "none"
        typer.echo(f"error: no workload {name!r} (running: {known})", err=True)
        raise typer.Exit(1)
    return workload


def logs(
    workload: str = typer.Argument(..., help="Workload name (or name.namespace)."),
    proxy: bool = typer.Option(False, "--proxy", help="Envoy's log (with access logs)."),
    agent: bool = typer.Option(False, "--agent", help="The agent's log."),
) -> None:
    """Print a workload's application log (or its sidecar's)."""
    found = _workload(workload)
    name = "envoy.log" if proxy else "agent.log" if agent else "app.log"
    path = Path(found.workdir) / name
    if not path.exists():
        typer.echo(f"error: {path} does not exist yet", err=True)
        raise typer.Exit(1)
    sys.stdout.write(path.read_text(errors="replace"))


def exec_in(
    workload: str = typer.Argument(..., help="Workload name (or name.namespace)."),
    command: list[str] = typer.Argument(..., help="The command, after --."),  # noqa: B008
) -> None:
    """Run a command as if inside the workload: its outbound traffic goes via its sidecar."""
    env = application_env(proxy_of(_workload(workload)))
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        typer.echo("error: give a command after --", err=True)
        raise typer.Exit(2)
    try:
        os.execvpe(command[0], command, env)
    except FileNotFoundError:
        typer.echo(f"error: command not found: {command[0]}", err=True)
        raise typer.Exit(127) from None
