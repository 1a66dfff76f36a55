"""Entry point wiring the sub-commands together."""

from __future__ import annotations

import typer

from heddle import __version__
from heddle.cli.validate import validate

app = typer.Typer(
    name="heddle",
    help="A service mesh that speaks Istio's configuration language and drives Envoy.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("validate")(validate)


@app.command("version")
def version() -> None:
    """Print Heddle's version."""
    typer.echo(f"heddle {__version__}")


def main() -> None:
    app()
