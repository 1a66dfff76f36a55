"""The long-running processes `heddle up` starts: the control plane and each agent."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from heddle.agent.main import run_until_signalled

__all__ = ["agent", "control_plane", "run_until_signalled"]


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


def agent(ctx: typer.Context) -> None:
    """Run one workload's sidecar: Envoy, its readiness, and the application.

    The options are the lean entry point's (`python -m heddle.agent --help`), which is what
    the local runtime starts: one agent runs beside every Envoy, without this CLI."""
    from heddle.agent.main import main

    main(ctx.args)
