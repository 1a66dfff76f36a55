"""`heddle describe` and `heddle explain`: asked of the running control plane's debug API
(which holds the snapshot), or, with `-f`, of files loaded here. Light: without `-f` a
verb imports no translation, only the page renderer and the log reader."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from heddle.cli.common import CliError, Commands, command, echo, mesh_home, require_state
from heddle.explain.endpoint_state import host_states
from heddle.explain.endpoint_state import summary as endpoint_summary
from heddle.explain.log_lines import last_failure
from heddle.explain.page import render
from heddle.local import control
from heddle.model import ports

# Flags after which the hosts' health in the caller's Envoy tells the rest of the story.
_UPSTREAM_FLAGS = {"UH", "UF", "URX", "UO", "UC", "UR"}


def register(commands: Commands) -> None:
    describe_parser = command(
        commands, "describe", describe,
        "Everything that applies to a workload or service, on one page, like `istioctl x "
        "describe pod`.")
    describe_parser.add_argument("name", help="Workload or service (name, or name.namespace).")
    explain_parser = command(
        commands, "explain", explain,
        "Why a request failed, in plain words: the last failure in a workload's access log, "
        "or a request you describe.",
        description="Why a request failed. `heddle explain W --last-failure`: the last failed "
                    "request in W's access log. `heddle explain W --host H [--path P ...]`: "
                    "what happens to a request W sends to H. With `--source S`: a request S "
                    "sends to W (the host defaults to W's service).")
    explain_parser.add_argument("workload", help="Workload (name, or name.namespace).")
    explain_parser.add_argument("--last-failure", action="store_true",
                                help="Explain the last failed request in its access log.")
    explain_parser.add_argument("--method", default="GET")
    explain_parser.add_argument("--host", default="", help="The host the request is for.")
    explain_parser.add_argument("--port", type=int, default=0,
                                help="Its port (default: the service's first port).")
    explain_parser.add_argument("--path", default="/")
    explain_parser.add_argument("-H", "--header", action="append", default=[],
                                metavar="'NAME: VALUE'", help="A request header; repeatable.")
    explain_parser.add_argument("--source", default="",
                                help="The workload sending it (then WORKLOAD receives it).")
    for parser in (describe_parser, explain_parser):
        parser.add_argument("-n", "--namespace", default="default")
        parser.add_argument("-f", "--filename", dest="files", type=Path, action="append",
                            default=[], metavar="PATH",
                            help="Read the configuration from these files or directories "
                                 "instead of the running mesh; repeatable.")
        parser.add_argument("-o", "--output", default="", choices=("", "json"),
                            metavar="FORMAT", help="json: the page as JSON.")


def _offline(files: list[Path]) -> Any:
    """A snapshot of the files (validated: a file with errors is refused, naming them)."""
    from heddle.api.loader import load_paths, yaml_files
    from heddle.model.snapshot import MeshSnapshot

    missing = [str(p) for p in files if not p.exists()]
    if missing:
        raise CliError(f"{', '.join(missing)}: no such file or directory")
    result = load_paths(yaml_files(files))
    if result.errors:
        raise CliError("the configuration has errors (fix them first):\n" + "\n".join(
            str(d) for d in result.errors))
    return MeshSnapshot.build(0, result.resources)


def _answer(code: int, body: bytes, port: int) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        raise CliError(f"the control plane on 127.0.0.1:{port} answered {code} without "
                       "JSON; is it this version of Heddle?") from None
    if code != 200:
        raise CliError(str(value.get("error", code)))
    return dict(value)


def _show(page: dict[str, Any], output: str) -> None:
    if output == "json":
        echo(json.dumps(page, indent=2))
    else:
        echo(render(page).rstrip("\n"))


def describe(args: argparse.Namespace) -> None:
    if args.files:
        from heddle.explain.api import describe_answer

        code, page = describe_answer(_offline(args.files), args.name, args.namespace)
        if code != 200:
            raise CliError(str(page["error"]))
    else:
        from urllib.parse import urlencode

        state = require_state()
        query = urlencode({"name": args.name, "namespace": args.namespace})
        try:
            code, body = control.http_get("127.0.0.1", state.debug_port,
                                          f"/debug/describe?{query}", timeout=30.0)
        except OSError:
            raise CliError(f"the control plane is not answering on 127.0.0.1:"
                           f"{state.debug_port} (see `heddle status`)") from None
        page = _answer(code, body, state.debug_port)
    _show(page, args.output)


def _with_endpoint_state(page: dict[str, Any], question: dict[str, Any]) -> None:
    """For an upstream failure of a running mesh's workload: what its Envoy knows of the
    cluster's hosts now (an outlier-ejected host shows only there)."""
    facts = page.get("facts", {})
    if not _UPSTREAM_FLAGS & set(facts.get("flags", [])):
        return
    entry = question.get("entry", {})
    clusters = [*facts.get("clusters", []),
                *([entry["upstream_cluster"]] if entry.get("upstream_cluster", "-") != "-"
                  else [])]
    workload = require_state().workload(f"{question['workload']}.{question['namespace']}")
    if not clusters or workload is None:
        return
    try:
        code, body = control.http_get(workload.address, ports.ADMIN,
                                      "/clusters?format=json", timeout=5.0)
        dump = json.loads(body) if code == 200 else {}
    except (OSError, ValueError):
        return
    lines = []
    for cluster in dict.fromkeys(clusters):
        states = host_states(dump, cluster)
        lines += [f"{cluster} {address}: {state}" for address, state in states]
        verdict = endpoint_summary(cluster, states)
        if verdict:  # it replaces a verdict that only restated the flags
            earlier = "" if facts.get("from_flags_only") else page.get("summary", "")
            page["summary"] = "; ".join(p for p in (earlier, verdict) if p)
    page.setdefault("sections", []).append(
        {"title": f"Endpoint state in {workload.name}'s Envoy now", "lines": lines})


def _headers(values: list[str]) -> dict[str, str]:
    found = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise CliError(f"-H {value!r}: write a header as 'NAME: VALUE'")
        found[name.strip()] = text.strip()
    return found


def _question(args: argparse.Namespace) -> dict[str, Any]:
    name, _, namespace = args.workload.partition(".")
    namespace = namespace or args.namespace
    question: dict[str, Any] = {"workload": name, "namespace": namespace}
    if args.last_failure:
        log = mesh_home() / "workloads" / f"{name}.{namespace}" / "envoy.log"
        if not log.exists():
            raise CliError(f"no access log for {name}.{namespace} at {log} (is it a workload "
                           "of the running mesh? see `heddle status`)")
        entry = last_failure(log)
        if entry is None:
            raise CliError(f"no failed request in {log}")
        question["entry"] = entry
        return question
    if not args.host and not args.source:
        raise CliError("say which request: --last-failure, or --host HOST (and --path, "
                       "--method, -H, --source)")
    question["request"] = {"method": args.method, "host": args.host, "port": args.port,
                           "path": args.path, "headers": _headers(args.header)}
    if args.source:  # a request the source sends to the workload
        question["source"] = args.source
    return question


def explain(args: argparse.Namespace) -> None:
    question = _question(args)
    if args.files:
        from heddle.explain.api import explain_answer

        code, page = explain_answer(_offline(args.files), question)
        if code != 200:
            raise CliError(str(page["error"]))
    else:
        state = require_state()
        try:
            code, body = control.http_post(
                "127.0.0.1", state.debug_port, "/debug/explain", json.dumps(question),
                {"Content-Type": "application/json"}, timeout=60.0)
        except OSError:
            raise CliError(f"the control plane is not answering on 127.0.0.1:"
                           f"{state.debug_port} (see `heddle status`)") from None
        page = _answer(code, body, state.debug_port)
        if "entry" in question:
            _with_endpoint_state(page, question)
    _show(page, args.output)
