"""The `heddle` command: every verb, parsed with argparse.

No CLI framework: the verbs that read local state (`get`, `status`, `apply`, `delete`) must
answer in a few tenths of a second, and a framework that validates its options with
pydantic costs more than that before a verb starts. Bad input is one `error: ...` line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from heddle import __version__
from heddle.cli import (
    analyze,
    convert,
    dashboard,
    explain,
    inspect,
    mesh,
    processes,
    token,
    validate,
)
from heddle.cli.common import CliError, Parser, command, echo


def _version(_: object) -> None:
    echo(f"heddle {__version__}")


def _conformance_help(_: object) -> None:  # `main` hands `conformance` over before parsing
    from heddle.conformance.cli import main as conformance

    conformance(["--help"])


def parser() -> Parser:
    top = Parser(prog="heddle", allow_abbrev=False,
                 description="A service mesh that speaks Istio's configuration language and "
                             "drives Envoy.")
    commands = top.add_subparsers(metavar="COMMAND", parser_class=Parser)
    validate.register(commands)
    analyze.register(commands)
    convert.register(commands)
    mesh.register(commands)
    inspect.register(commands)
    explain.register(commands)
    dashboard.register(commands)
    token.register(commands)
    processes.register(commands)
    command(commands, "conformance", _conformance_help,
            "Run the Gateway API conformance scenarios against a local mesh (`heddle "
            "conformance --help`).")
    command(commands, "version", _version, "Print Heddle's version.")
    return top


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["agent"]:  # the agent's own options, parsed by its lean entry point
        processes.agent(args[1:])
        return
    if args[:1] == ["conformance"]:  # a dev tool with its own options, loaded only here
        from heddle.conformance.cli import main as conformance

        conformance(args[1:])
        return
    top = parser()
    if not args:
        top.print_help()
        raise SystemExit(2)
    parsed = top.parse_args(args)
    try:
        code = parsed.run(parsed)
    except CliError as err:
        sys.stderr.write(f"error: {err}\n")
        raise SystemExit(err.code) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:  # `heddle get vs -o yaml | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    raise SystemExit(code or 0)
