"""`heddle dashboard`: where the running mesh's dashboard is, opened in a browser if asked
(as `istioctl dashboard` opens one)."""

from __future__ import annotations

import argparse
import webbrowser

from heddle.cli.common import CliError, Commands, command, echo, require_state
from heddle.local import control


def register(commands: Commands) -> None:
    parser = command(commands, "dashboard", dashboard,
                     "Print the URL of the running mesh's dashboard: the live service graph, "
                     "proxies' sync state, configuration problems, what applies to a workload.")
    parser.add_argument("--open", action="store_true",
                        help="Also open it in the default web browser.")


def dashboard(args: argparse.Namespace) -> None:
    state = require_state()
    url = f"http://127.0.0.1:{state.debug_port}/dashboard/"
    try:
        code, _ = control.http_get("127.0.0.1", state.debug_port, "/dashboard/", timeout=5.0)
    except OSError:
        code = 0
    if code != 200:
        raise CliError(f"the control plane is not answering on 127.0.0.1:{state.debug_port} "
                       f"(see `heddle status`); start the mesh with `heddle up`")
    echo(url)
    if args.open and not webbrowser.open(url):
        raise CliError(f"no web browser could be started here; open {url} yourself")
