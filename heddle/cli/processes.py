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
    config_dir: Path | None = typer.Option(None, "--dir", help="The watched configuration "  # noqa: B008
                                           "directory."),
    options_file: Path | None = typer.Option(None, help="Every option as one JSON file "  # noqa: B008
                                             "(heddle.app.MeshOptions; `heddle up` writes "
                                             "one); the flags below are ignored then."),
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
    from heddle.app import ControlPlane, MeshOptions

    if options_file is not None:
        try:
            options = MeshOptions.read(options_file)
        except (OSError, ValueError, TypeError) as err:
            typer.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from err
    elif config_dir is None:
        typer.echo("error: give --dir DIR (or --options-file FILE)", err=True)
        raise typer.Exit(2)
    else:
        options = MeshOptions(
            config_dir, f"127.0.0.1:{xds_port}", debug_port=debug_port,
            debounce_quiet=debounce_quiet, debounce_max=debounce_max, ca_dir=ca_dir,
            secure_address=f"127.0.0.1:{ca_port}", join_address=f"127.0.0.1:{join_port}",
            cert_lifetime=cert_lifetime)
    _logging()
    run_until_signalled(ControlPlane(options).run)


def agent(ctx: typer.Context) -> None:
    """Run one workload's sidecar: Envoy, its readiness, and the application.

    The options are the lean entry point's (`python -m heddle.agent --help`), which is what
    the local runtime starts: one agent runs beside every Envoy, without this CLI."""
    from heddle.agent.main import main

    main(ctx.args)
