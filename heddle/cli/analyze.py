"""`heddle analyze`: Istio's analyzers (IST codes) over files, or over the running mesh's
configuration, as `istioctl analyze` runs them; the exit code gates CI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from heddle.cli.common import CliError, Commands, command, echo, print_structured, require_state

if TYPE_CHECKING:
    from heddle.analyze.messages import Message
    from heddle.api.diagnostics import Diagnostic
    from heddle.api.resource import Resource, UnmanagedObject

LEVELS = ("Error", "Warning", "Info")


def register(commands: Commands) -> None:
    parser = command(
        commands, "analyze", analyze,
        "Find configuration problems with Istio's analyzers (IST codes); exit 1 when any "
        "is at or above --failure-threshold.",
        description="Find configuration problems across resources, reported with Istio's "
                    "message codes (IST0101 ...), levels and resource names, plus file:line. "
                    "Reads the files given with -f, or the running mesh's configuration when "
                    "none is given.")
    parser.add_argument("-f", "--filename", dest="files", type=Path, action="append",
                        default=[], metavar="PATH",
                        help="A YAML file or a directory of them; repeatable.")
    parser.add_argument("-A", "--all-namespaces", action="store_true",
                        help="Report on every namespace (default: only --namespace).")
    parser.add_argument("-n", "--namespace", default="default",
                        help="The namespace to report on (default: default).")
    parser.add_argument("-o", "--output", default="", choices=("", "json", "yaml"),
                        metavar="FORMAT", help="json or yaml, as istioctl's (default: lines).")
    parser.add_argument("--failure-threshold", default="Error", choices=LEVELS,
                        help="The lowest level that fails the run (default: Error).")
    parser.add_argument("--output-threshold", default="Info", choices=LEVELS,
                        help="The lowest level shown (default: Info).")


def analyze(args: argparse.Namespace) -> int:
    from heddle.analyze.messages import Level
    from heddle.analyze.positions import locate
    from heddle.analyze.run import analysis_input, schema_messages
    from heddle.analyze.run import analyze as run_analyzers

    if args.files:
        resources, unmanaged, diagnostics, rejected = _from_files(args.files)
    else:
        resources, unmanaged, diagnostics, rejected = _from_mesh(), [], [], []
    world = analysis_input(resources, unmanaged, rejected=rejected)
    found = [*schema_messages(diagnostics), *locate(run_analyzers(world))]
    if not args.all_namespaces:
        found = [m for m in found if m.resource.namespace in ("", args.namespace)]
    shown = [m for m in found if m.level >= Level.parse(args.output_threshold)]
    _print(shown, args.output)
    if not shown and not args.output:
        scope = "all namespaces" if args.all_namespaces else f"namespace: {args.namespace}"
        echo(f"No validation issues found when analyzing {scope}.", err=True)
    threshold = Level.parse(args.failure_threshold)
    # As `heddle validate`: 1 for "found problems" (istioctl says 79; a gate needs non-zero).
    return 1 if any(m.level >= threshold for m in found) else 0


def _print(messages: list[Message], output: str) -> None:
    if output:
        print_structured([m.as_dict() for m in messages], output)
        return
    for message in messages:
        echo(str(message))


def _from_files(paths: list[Path]) -> tuple[list[Resource[Any]], list[UnmanagedObject],
                                             list[Diagnostic], list[Resource[Any]]]:
    """What the files hold: the resources, the objects Heddle keeps but does not use (Pods,
    the mesh config), the load's problems, and the resources validation refused."""
    from heddle.analyze.rejected import rejected_resources
    from heddle.api.loader import load_paths

    missing = [p for p in paths if not p.exists()]
    if missing:
        raise CliError(f"{missing[0]}: no such file or directory")
    loaded = load_paths(paths)
    return (loaded.resources, loaded.unmanaged, loaded.diagnostics,
            rejected_resources(paths, loaded))


def _from_mesh() -> list[Resource[Any]]:
    """The running mesh's resources in force, from the control plane's debug API."""
    from heddle.api.diagnostics import SourcePosition
    from heddle.api.loader import build_resource
    from heddle.local import control

    state = require_state()
    try:
        code, body = control.http_get("127.0.0.1", state.debug_port, "/debug/resources",
                                      timeout=5.0)
        entries = json.loads(body)["resources"] if code == 200 else None
    except (OSError, ValueError, KeyError):
        entries = None
    if entries is None:
        raise CliError(f"the control plane is not answering on 127.0.0.1:{state.debug_port} "
                       "(see `heddle status`); try again once it is back")
    from heddle.analyze.run import without_derived

    resources = []
    for entry in entries:
        obj = {k: v for k, v in dict(entry["object"]).items() if k != "status"}
        file, _, rest = str(entry.get("source") or "").rpartition(":")
        file, _, line = file.rpartition(":")
        source = (SourcePosition(file, int(line), int(rest))
                  if file and line.isdigit() and rest.isdigit() else None)
        resource, _ = build_resource(obj, source)
        if resource is not None:
            resources.append(resource)
    return without_derived(resources)
