"""The long-running processes `heddle up` starts: the control plane and each agent."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from heddle.cli.common import CliError, Commands, add_control_plane_flags, command


def configure_logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)


def register(commands: Commands) -> None:
    parser = command(commands, "control-plane", control_plane, None,
                     description="Run the control plane: watch DIR, serve xDS to every proxy.")
    parser.add_argument("--dir", dest="config_dir", type=Path, default=None,
                        help="The watched configuration directory.")
    parser.add_argument("--options-file", type=Path, default=None,
                        help="Every option as one JSON file (heddle.app.MeshOptions; `heddle "
                             "up` writes one); the flags below are ignored then.")
    parser.add_argument("--ca-dir", type=Path, default=None,
                        help="CA directory: serve the CA on --ca-port.")
    add_control_plane_flags(parser)
    # `heddle agent ...` is handed to the agent's own entry point before parsing (see
    # heddle.cli.main); this entry only lists it.
    command(commands, "agent", lambda _: None, None,
            description="Run one workload's sidecar (see `heddle agent --help`).")


def control_plane(args: argparse.Namespace) -> None:
    from heddle.agent.main import run_until_signalled
    from heddle.app import ControlPlane, MeshOptions

    if args.options_file is not None:
        try:
            options = MeshOptions.read(args.options_file)
        except (OSError, ValueError, TypeError) as err:
            raise CliError(str(err), 2) from err
    elif args.config_dir is None:
        raise CliError("give --dir DIR (or --options-file FILE)", 2)
    else:
        options = MeshOptions(
            args.config_dir, f"127.0.0.1:{args.xds_port}", debug_port=args.debug_port,
            debounce_quiet=args.debounce_quiet, debounce_max=args.debounce_max,
            ca_dir=args.ca_dir, secure_address=f"127.0.0.1:{args.ca_port}",
            join_address=f"127.0.0.1:{args.join_port}", cert_lifetime=args.cert_lifetime)
    configure_logging()
    run_until_signalled(ControlPlane(options).run)


def agent(argv: Sequence[str]) -> None:
    """Run one workload's sidecar: Envoy, its readiness, and the application.

    The options are the lean entry point's (`python -m heddle.agent --help`), which is what
    the local runtime starts: one agent runs beside every Envoy, without this CLI."""
    from heddle.agent.main import main

    main(argv)
