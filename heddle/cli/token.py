"""`heddle token create`: a join token bound to one namespace and service account."""

from __future__ import annotations

import argparse
from pathlib import Path

from heddle.cli.common import Commands, Parser, command, echo
from heddle.local.state import heddle_home


def register(commands: Commands) -> None:
    group = command(commands, "token", lambda args: _no_verb(group),
                    "Join tokens for agents.")
    verbs = group.add_subparsers(metavar="VERB", parser_class=Parser)
    create_parser = command(verbs, "create", create,
                            "Print a token; an agent using it can get certificates for this "
                            "identity only.")
    create_parser.add_argument("-n", "--namespace", required=True,
                               help="The workload's namespace.")
    create_parser.add_argument("--service-account", required=True, help="Its service account.")
    create_parser.add_argument("--ttl", type=float, default=86400.0,
                               help="Seconds the token stays valid (default: 86400).")
    create_parser.add_argument("--ca-dir", type=Path, default=None,
                               help="CA directory (default: the local mesh's).")


def _no_verb(group: Parser) -> int:
    group.print_help()
    return 2


def create(args: argparse.Namespace) -> None:
    import datetime

    from heddle.ca.tokens import TokenIssuer

    directory = args.ca_dir or heddle_home() / "mesh" / "ca"
    issuer = TokenIssuer.load_or_create(directory)
    echo(issuer.create(args.namespace, args.service_account,
                       datetime.timedelta(seconds=args.ttl)))
