"""The long-running processes `heddle up` starts: the control plane and each agent."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from pathlib import Path

import typer

from heddle.model.proxy import Proxy, ProxyType


def run_until_signalled(main: object) -> None:
    """Run `main(stop)` until SIGTERM or SIGINT sets `stop`."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)  # type: ignore[operator]

    asyncio.run(runner())


def _logging() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def control_plane(
    config_dir: Path = typer.Option(..., "--dir", help="The watched configuration directory."),  # noqa: B008
    xds_port: int = typer.Option(15010, help="Plaintext xDS port (loopback only)."),
    debug_port: int = typer.Option(15014, help="Debug API port (loopback)."),
    debounce_quiet: float = typer.Option(0.1, help="Push once changes pause this long (s)."),
    debounce_max: float = typer.Option(10.0, help="Push at the latest this long after a change."),
    ca_dir: Path | None = typer.Option(None, help="CA directory: serve the CA on --ca-port."),  # noqa: B008
    ca_port: int = typer.Option(15012, help="xDS + CA over mutual TLS (for agents)."),
    join_port: int = typer.Option(15013, help="The CA over TLS, for a first CSR with a "
                                              "join token."),
    cert_lifetime: float = typer.Option(86400.0, help="Workload certificate lifetime (s)."),
) -> None:
    """Run the control plane: watch DIR, serve xDS to every proxy."""
    import datetime

    from heddle.xds.control_plane import ControlPlane, ControlPlaneConfig

    _logging()
    plane = ControlPlane(ControlPlaneConfig(
        config_dir, f"127.0.0.1:{xds_port}", debug_port=debug_port,
        debounce_quiet=debounce_quiet, debounce_max=debounce_max, ca_dir=ca_dir,
        secure_address=f"127.0.0.1:{ca_port}", join_address=f"127.0.0.1:{join_port}",
        cert_lifetime=datetime.timedelta(seconds=cert_lifetime)))
    run_until_signalled(plane.run)


def agent(
    name: str = typer.Option(..., help="Workload name."),
    namespace: str = typer.Option("default"),
    address: str = typer.Option(..., help="The workload's pod IP; its sidecar listens here."),
    app_address: str = typer.Option(..., help="Where the application listens."),
    labels: str = typer.Option("{}", help="Workload labels as a JSON object."),
    service_account: str = typer.Option("default"),
    workload_group: str = typer.Option("", help="Join as an instance of this WorkloadGroup."),
    xds_host: str = typer.Option("127.0.0.1"),
    xds_port: int = typer.Option(15010),
    workdir: Path = typer.Option(..., help="Where bootstrap and logs go."),  # noqa: B008
    cwd: Path | None = typer.Option(None, help="The application's working directory."),  # noqa: B008
    delta: bool = typer.Option(False, help="Use delta xDS."),
    hold_application: bool = typer.Option(True, help="Start the app once Envoy is ready."),
    ca_address: str = typer.Option("", help="Control plane xDS + CA over mutual TLS "
                                            "(host:port): with it, ADS goes there."),
    join_address: str = typer.Option("", help="Where the first CSR goes with the join token "
                                              "(host:port; default: the CA host, port 15013)."),
    root_cert: Path | None = typer.Option(None, help="The mesh root certificate (PEM)."),  # noqa: B008
    token_file: Path | None = typer.Option(None, help="File holding the join token."),  # noqa: B008
    cert_lifetime: float = typer.Option(0.0, help="Ask for certificates this long (s)."),
    command: list[str] = typer.Argument(None, help="The application command (after --)."),  # noqa: B008
) -> None:
    """Run one workload's sidecar: Envoy, its readiness, and the application."""
    from heddle.agent.agent import Agent, AgentConfig

    _logging()
    proxy = Proxy(ProxyType.SIDECAR, name, namespace, address, app_address,
                  tuple(sorted(json.loads(labels).items())), service_account, workload_group)
    words = [w for i, w in enumerate(command or []) if not (i == 0 and w == "--")]
    config = AgentConfig(
        proxy, xds_host, xds_port, workdir, " ".join(words), cwd, delta, hold_application,
        ca_address=ca_address,
        join_address=join_address or (f"{ca_address.rsplit(':', 1)[0]}:15013"
                                      if ca_address else ""),
        root_cert=root_cert.read_bytes() if root_cert else b"",
        token=token_file.read_text().strip() if token_file else "",
        cert_lifetime=cert_lifetime)
    run_until_signalled(Agent(config).run)
