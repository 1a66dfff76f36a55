"""What every verb shares: the argument parser, one-line errors, output, the mesh's state.

Light on purpose: `heddle get`, `status`, `apply` and `delete` start here, so nothing in
this module (nor in what the verbs import at module level) loads a framework, the API
models, gRPC or protobuf. Each verb imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

from heddle.local.state import MeshState, heddle_home, pid_alive

Run = Callable[[argparse.Namespace], int | None]


class CliError(Exception):
    """Bad input or a state the user can fix: printed as one `error: ...` line, no
    traceback, and the process exits with `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line naming the command and where help is."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("argument COMMAND: invalid choice:"):
            message = _unknown_command(message)
        sys.stderr.write(f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: None = None) -> argparse.Namespace:
        """As argparse's, but an unknown option is reported by the sub-command it was given
        to (argparse hands those up to the top parser)."""
        parsed, extras = self.parse_known_args(args)
        if extras:
            owner: Parser = getattr(parsed, "parser", self)
            owner.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed


def _unknown_command(message: str) -> str:
    """`invalid choice: 'frob' (choose from ...)` -> `unknown command 'frob'` (hidden
    commands stay hidden), with the nearest command if one is near."""
    import difflib

    given = message.split("'")[1] if "'" in message else ""
    near = difflib.get_close_matches(given, VISIBLE_COMMANDS, n=1)
    return f"unknown command {given!r}" + (f"; did you mean {near[0]!r}?" if near else "")


VISIBLE_COMMANDS: list[str] = []  # filled by `command`


# What `add_subparsers` returns (argparse keeps the class private).
Commands: TypeAlias = "argparse._SubParsersAction[Parser]"


def command(commands: Commands, name: str, run: Run, help: str | None, **kwargs: Any) -> Parser:
    """A sub-command; `help=None` hides it from `heddle --help`."""
    if help is not None:
        kwargs["help"] = help
        kwargs.setdefault("description", help)
        VISIBLE_COMMANDS.append(name)
    parser: Parser = commands.add_parser(name, allow_abbrev=False, **kwargs)
    parser.set_defaults(run=run, parser=parser)
    return parser


def echo(text: str = "", err: bool = False) -> None:
    (sys.stderr if err else sys.stdout).write(text + "\n")


OUTPUT_HELP = "Output format: json or yaml (default: a table)."


def output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", default="", choices=("", "json", "yaml"),
                        metavar="FORMAT", help=OUTPUT_HELP)


def print_structured(value: Any, output: str) -> None:
    if output == "json":
        sys.stdout.write(json.dumps(value, indent=2) + "\n")
        return
    from ruamel.yaml import YAML  # YAML 1.2 out, as the loader reads it back

    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096  # a long value (a path) stays on its line
    yaml.dump(value, sys.stdout)


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell, as kubectl prints them."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        sys.stdout.write("   ".join(cells).rstrip() + "\n")


def mesh_home() -> Path:
    return heddle_home() / "mesh"


def running_state() -> MeshState | None:
    state = MeshState.load(mesh_home())
    return state if state and pid_alive(state.supervisor_pid) else None


def require_state() -> MeshState:
    state = running_state()
    if state is None:
        raise CliError(f"no mesh is running in {mesh_home()} (start one with `heddle up DIR`; "
                       "HEDDLE_HOME chooses the mesh)")
    return state


def add_control_plane_flags(parser: argparse.ArgumentParser) -> None:
    """The control plane's ports and push pacing, shared by `up` and `control-plane`."""
    parser.add_argument("--xds-port", type=int, default=15010,
                        help="Plaintext xDS port (loopback only).")
    parser.add_argument("--debug-port", type=int, default=15014,
                        help="Debug API port (loopback).")
    parser.add_argument("--ca-port", type=int, default=15012,
                        help="xDS + CA over mutual TLS (for agents).")
    parser.add_argument("--join-port", type=int, default=15013,
                        help="The CA over TLS, for a first CSR with a join token.")
    parser.add_argument("--debounce-quiet", type=float, default=0.1,
                        help="Push once changes pause this long (s).")
    parser.add_argument("--debounce-max", type=float, default=10.0,
                        help="Push at the latest this long after a change (s).")
    parser.add_argument("--cert-lifetime", type=float, default=86400.0,
                        help="Workload certificate lifetime (s).")
    parser.add_argument("--ratelimit-port", type=int, default=15016,
                        help="The global rate-limit service's gRPC port (loopback).")
    parser.add_argument("--redis", dest="ratelimit_redis", default=None, metavar="URL",
                        help="Keep global rate-limit counters in this Redis "
                             "(redis://HOST:PORT/DB), shared by every replica; default: in "
                             "memory.")
    parser.add_argument("--ratelimit-replica", dest="ratelimit_replicas", action="append",
                        default=[], metavar="HOST:PORT",
                        help="Another replica of the rate-limit service (`heddle ratelimit` "
                             "on the same configuration and Redis); proxies ask them in turn.")
