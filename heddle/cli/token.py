"""`heddle token create`: a join token bound to one namespace and service account."""

from __future__ import annotations

from pathlib import Path

import typer

from heddle.local.state import heddle_home

app = typer.Typer(help="Join tokens for agents.", no_args_is_help=True)


@app.command("create")
def create(
    namespace: str = typer.Option(..., "--namespace", "-n", help="The workload's namespace."),
    service_account: str = typer.Option(..., "--service-account", help="Its service account."),
    ttl: float = typer.Option(86400.0, help="Seconds the token stays valid."),
    ca_dir: Path | None = typer.Option(None, help="CA directory (default: the local mesh's)."),  # noqa: B008
) -> None:
    """Print a token; an agent using it can get certificates for this identity only."""
    import datetime

    from heddle.ca.tokens import TokenIssuer

    directory = ca_dir or heddle_home() / "mesh" / "ca"
    issuer = TokenIssuer.load_or_create(directory)
    typer.echo(issuer.create(namespace, service_account, datetime.timedelta(seconds=ttl)))
