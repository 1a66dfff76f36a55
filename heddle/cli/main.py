"""Entry point wiring the sub-commands together."""

from __future__ import annotations

import typer

from heddle import __version__
from heddle.cli import inspect, mesh, processes, token
from heddle.cli.validate import validate

app = typer.Typer(
    name="heddle",
    help="A service mesh that speaks Istio's configuration language and drives Envoy.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("validate")(validate)
app.command("up")(mesh.up)
app.command("down")(mesh.down)
app.command("status")(mesh.status)
app.command("logs")(mesh.logs)
app.command("exec", context_settings={"allow_interspersed_args": False})(mesh.exec_in)
app.command("apply")(inspect.apply)
app.command("delete")(inspect.delete)
app.command("get")(inspect.get)
app.command("proxy-status")(inspect.proxy_status)
app.command("proxy-config")(inspect.proxy_config)
app.add_typer(token.app, name="token")
app.command("control-plane", hidden=True)(processes.control_plane)
app.command("agent", hidden=True, add_help_option=False, context_settings={
    "allow_extra_args": True, "ignore_unknown_options": True,
    "allow_interspersed_args": False})(processes.agent)


@app.command("version")
def version() -> None:
    """Print Heddle's version."""
    typer.echo(f"heddle {__version__}")


def main() -> None:
    app()
