"""`heddle apply | delete | get | proxy-status | proxy-config`, shaped like kubectl/istioctl."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

from heddle.cli import configuration
from heddle.cli.common import (
    CliError,
    Commands,
    command,
    echo,
    mesh_home,
    output_option,
    print_structured,
    print_table,
    require_state,
)
from heddle.config.applied_layout import RESOURCES, SOURCE_ANNOTATION, applied_from
from heddle.local import control
from heddle.local.state import MeshState, WorkloadState
from heddle.model import ports

# Heavy modules (the API models) are imported by the verbs that need them, so that every
# `heddle` command starts fast.


def register(commands: Commands) -> None:
    apply_parser = command(commands, "apply", apply, "Validate the resources, then make them "
                           "the running mesh's (kept in its state, over its directory).")
    delete_parser = command(commands, "delete", delete, "Take the resources the files name out "
                            "of the running mesh (its directory's files are left as they are).")
    for parser in (apply_parser, delete_parser):
        parser.add_argument("-f", "--filename", dest="files", type=Path, action="append",
                            required=True, metavar="PATH",
                            help="YAML file or directory; repeatable.")
    get_parser = command(commands, "get", get, "List resources of a kind in the running mesh, "
                         "like `kubectl get`.")
    get_parser.add_argument("kind", help="Kind, e.g. virtualservice, VirtualService, vs.")
    get_parser.add_argument("name", nargs="?", default="", help="Only this resource.")
    get_parser.add_argument("-n", "--namespace", default="", help="Only this namespace.")
    output_option(get_parser)
    status_parser = command(
        commands, "proxy-status", proxy_status,
        "Per proxy and xDS type: SYNCED, STALE (sent, not acknowledged) or NACK (refused).",
        description="Per proxy and xDS type: SYNCED, STALE (sent, not acknowledged) or NACK "
                    "(refused); then the size of the proxy's configuration: its clusters and "
                    "all resources' bytes, and the identity its stream proved (mTLS) or "
                    "`plaintext`. A node with several streams has a row for each.")
    output_option(status_parser)
    config_parser = command(commands, "proxy-config", proxy_config, "Show what a workload's "
                            "Envoy holds, as `istioctl proxy-config` does.")
    config_parser.add_argument("what", choices=list(_DUMP_TYPES), metavar="SECTION",
                               help="listeners, routes, clusters, endpoints or bootstrap.")
    config_parser.add_argument("workload", help="Workload name (or name.namespace).")
    output_option(config_parser)


def _debug_json(state: MeshState, path: str) -> Any:
    """A GET on the control plane's debug API."""
    try:
        code, body = control.http_get("127.0.0.1", state.debug_port, path, timeout=5.0)
        if code == 200:
            return json.loads(body)
    except (OSError, ValueError):
        pass
    raise CliError(f"the control plane is not answering on 127.0.0.1:{state.debug_port} (see "
                   f"`heddle status`); try again once it is back")


def _files(paths: list[Path]) -> list[dict[str, str]]:
    """Each YAML file named (directories: every YAML file under them) with its text, read
    with the loader's limits; the running control plane validates them."""
    from heddle.api.files import UnreadableConfig, read_config_text, yaml_files

    found = []
    for path in yaml_files(paths):
        try:
            text = read_config_text(path)
        except FileNotFoundError:
            raise CliError(f"{path}: no such file or directory") from None
        except (IsADirectoryError, NotADirectoryError):
            raise CliError(f"{path}: not a file") from None
        except UnreadableConfig as err:
            raise CliError(str(err.diagnostic)) from None
        found.append({"name": str(path.resolve()), "text": text})
    if not found:
        raise CliError(f"no YAML files in {', '.join(str(p) for p in paths)}")
    return found


def _change(args: argparse.Namespace, verb: str) -> int:
    """Send the files to the running mesh's control plane, which validates them and
    changes the mesh's applied state; print what it did."""
    state = require_state()
    files = _files(args.files)
    try:
        token = (mesh_home() / "api-token").read_text().strip()
    except OSError as err:
        raise CliError(f"cannot read the mesh's API token ({err.strerror}); restart the mesh "
                       "with this version of Heddle (`heddle down`, `heddle up`)") from None
    try:
        code, body = control.http_post(
            "127.0.0.1", state.debug_port, f"/heddle/{verb}", json.dumps({"files": files}),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=60.0)
        report = json.loads(body)
    except (OSError, ValueError):
        raise CliError(f"the control plane is not answering on 127.0.0.1:{state.debug_port} "
                       "(see `heddle status`); nothing was changed") from None
    if code != 200:
        raise CliError(f"the control plane refused the {verb}: {report.get('error', code)}")
    for line in report["problems"]:
        echo(line, err=True)
    for line in report["lines"]:
        echo(line)
    return 1 if report["failed"] else 0


def apply(args: argparse.Namespace) -> int:
    return _change(args, "apply")


def delete(args: argparse.Namespace) -> int:
    return _change(args, "delete")


def source_of(entry: dict[str, Any]) -> str:
    """Where a resource in force comes from: FILE:LINE in the watched directory, or
    `applied (from FILE:LINE)` for one `heddle apply` put in the mesh's state."""
    source = str(entry.get("source", ""))
    parts = source.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return source
    file, line = Path(parts[0]), parts[1]
    if file.parent == (mesh_home() / "applied" / RESOURCES).resolve():
        origin = applied_from(file)
        return f"applied (from {origin.rsplit(':', 1)[0]})" if origin else "applied"
    return f"{file}:{line}"


def get(args: argparse.Namespace) -> None:
    from heddle.api.kinds import kinds_named

    kind: str = args.kind
    infos = kinds_named(kind) or kinds_named(kind.lower().removesuffix("s"))
    if not infos:
        raise CliError(f"unknown kind {kind!r}")
    state = require_state()
    found = _debug_json(state, "/debug/resources")["resources"]
    wanted = {(i.group, i.kind) for i in infos}
    items = [r for r in found
             if (r["key"]["group"], r["key"]["kind"]) in wanted
             and (not args.name or r["key"]["name"] == args.name)
             and (not args.namespace or r["key"]["namespace"] == args.namespace)]
    if args.name and not items:
        raise CliError(f"{kind} {args.name!r} not found")
    if args.output:
        objects = [_with_source(r) for r in items]
        value = objects[0] if args.name and len(objects) == 1 else {
            "apiVersion": "v1", "kind": "List", "items": objects}
        print_structured(value, args.output)
        _note_rejected(items)
        return
    print_table(["NAMESPACE", "NAME", "KIND", "SOURCE"],
                [[r["key"]["namespace"], r["key"]["name"], r["key"]["kind"],
                  source_of(r) + (" (last edit rejected)" if r.get("rejected") else "")]
                 for r in items])
    _note_rejected(items)


def _note_rejected(items: list[dict[str, Any]]) -> None:
    """On stderr, as kubectl's warnings: a line for each file whose last edit was refused,
    naming its first error."""
    rejected = {str(r["source"]).rsplit(":", 2)[0]: str(r["rejected"])
                for r in items if r.get("rejected")}
    for file, error in sorted(rejected.items()):
        echo(configuration.rejected_note(file, error), err=True)


def _with_source(entry: dict[str, Any]) -> dict[str, Any]:
    """The object, its metadata annotated with where it comes from (`heddle apply` drops
    the annotation again, so the output can be applied as it is)."""
    body = dict(entry["object"])
    meta = dict(body.get("metadata") or {})
    meta["annotations"] = {**(meta.get("annotations") or {}), SOURCE_ANNOTATION: source_of(entry)}
    body["metadata"] = meta
    return body


def proxy_status(args: argparse.Namespace) -> None:
    statuses = _debug_json(require_state(), "/debug/syncz")
    if args.output:
        print_structured(statuses, args.output)
        return
    rows = []
    nacks = []
    streams = Counter(status["proxy"] for status in statuses)
    for status in sorted(statuses, key=_stream_order):
        name = status["proxy"].split("~")[2]
        cells = []
        for short, column in _XDS_COLUMNS.items():
            entry = status["types"].get(short, {})
            cells.append(entry.get("state", "NOT SENT"))
            if entry.get("nack") and status["connected"]:
                nacks.append(f"{name} {_stream_number(status)} {column} version "
                             f"{entry.get('sent', '?')}: {entry['nack']}")
        if not status["connected"]:
            cells = ["DISCONNECTED"] * 4
        config = status.get("config", {})
        clusters = config.get("Cluster", {}).get("resources", 0)
        size = sum(entry["bytes"] for entry in config.values())
        identity = str(status.get("identity", ""))
        rows.append([name, _stream_number(status), status["protocol"], *cells, str(clusters),
                     f"{size / 1024:.1f} KiB",
                     identity.removeprefix("spiffe://") if identity else "plaintext"])
    print_table(["NAME", "STREAM", "PROTOCOL", "CDS", "LDS", "EDS", "RDS", "CLUSTERS",
                 "CONFIG", "IDENTITY"], rows)
    for line in nacks:  # Envoy's own reason, as its NACK said it; it keeps its last good config
        echo(f"NACK {line}")
    for proxy, count in sorted(streams.items()):
        if count > 1:
            echo(f"note: {proxy.split('~')[2]} has {count} streams; each is served")


_XDS_COLUMNS = {"Cluster": "CDS", "Listener": "LDS", "ClusterLoadAssignment": "EDS",
                "RouteConfiguration": "RDS"}


def _stream_number(status: dict[str, Any]) -> str:
    """`#N` from the connection id `NODE_ID-N`."""
    number = str(status.get("connection", "")).rsplit("-", 1)[-1]
    return f"#{number}" if number.isdigit() else ""


def _stream_order(status: dict[str, Any]) -> tuple[str, int]:
    number = _stream_number(status).lstrip("#")
    return status["proxy"], int(number) if number else 0


_DUMP_TYPES = {
    "listeners": "ListenersConfigDump",
    "routes": "RoutesConfigDump",
    "clusters": "ClustersConfigDump",
    "endpoints": "EndpointsConfigDump",
    "bootstrap": "BootstrapConfigDump",
}


def _envoy_dump(workload: WorkloadState, what: str) -> list[dict[str, Any]]:
    """What the proxy itself holds, read from its Envoy admin API, as istioctl does."""
    try:
        code, body = control.http_get(workload.address, ports.ADMIN,
                                      "/config_dump?include_eds", timeout=5.0)
        dump = json.loads(body) if code == 200 else None
    except (OSError, ValueError):
        dump = None
    if not isinstance(dump, dict):
        raise CliError(f"{workload.name}'s Envoy is not answering on "
                       f"{workload.address}:{ports.ADMIN} (see `heddle status`)")
    section: dict[str, Any] = next(
        (c for c in dump["configs"] if c["@type"].rsplit(".", 1)[-1] == _DUMP_TYPES[what]), {})
    if what == "bootstrap":
        return [section.get("bootstrap", {})]
    if what == "listeners":
        return [d["active_state"]["listener"] for d in section.get("dynamic_listeners", [])
                if "active_state" in d]
    if what == "routes":
        return [d["route_config"] for d in section.get("dynamic_route_configs", [])]
    if what == "clusters":
        return [*(d["cluster"] for d in section.get("static_clusters", [])),
                *(d["cluster"] for d in section.get("dynamic_active_clusters", []))]
    return [d["endpoint_config"] for d in section.get("dynamic_endpoint_configs", [])]


def _table(what: str, items: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    if what == "clusters":
        rows = []
        for c in items:
            parts = c["name"].split("|")
            if len(parts) == 4:
                direction, port, subset, fqdn = parts
                rows.append([fqdn or "-", port, subset or "-", direction, c.get("type", "")])
            else:
                rows.append([c["name"], "-", "-", "-", c.get("type", "")])
        return ["SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE"], rows
    if what == "listeners":
        rows = []
        for item in items:
            socket = item["address"]["socket_address"]
            rows.append([item["name"], socket["address"], str(socket["port_value"])])
        return ["NAME", "ADDRESS", "PORT"], rows
    if what == "routes":
        rows = [[config["name"], host["name"], ", ".join(host["domains"][:3]),
                 str(len(host.get("routes", [])))]
                for config in items for host in config.get("virtual_hosts", [])]
        return ["NAME", "VIRTUAL SERVICE HOST", "DOMAINS", "ROUTES"], rows
    rows = []
    for assignment in items:
        for group in assignment.get("endpoints", []):
            for lb in group.get("lb_endpoints", []):
                socket = lb["endpoint"]["address"]["socket_address"]
                rows.append([f"{socket['address']}:{socket['port_value']}",
                             assignment["cluster_name"]])
    return ["ENDPOINT", "CLUSTER"], rows


def proxy_config(args: argparse.Namespace) -> None:
    what: str = args.what
    found = require_state().workload(args.workload)
    if found is None:
        raise CliError(f"no workload {args.workload!r}")
    items = _envoy_dump(found, what)
    if args.output or what == "bootstrap":
        print_structured(items[0] if what == "bootstrap" else items, args.output or "yaml")
        return
    print_table(*_table(what, items))
