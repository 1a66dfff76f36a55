"""`heddle apply | delete | get | proxy-status | proxy-config`, shaped like kubectl/istioctl."""

from __future__ import annotations

import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from heddle.cli.mesh import require_state, running_state
from heddle.local.state import WorkloadState
from heddle.model import ports

if TYPE_CHECKING:
    from rich.table import Table

# Heavy modules (API models, httpx, rich) are imported by the commands that need them, so that
# every `heddle` command starts fast.


def _print_table(table: Table) -> None:
    from rich.console import Console

    Console(width=200).print(table)
OUTPUT_HELP = "Output format: json or yaml (default: a table)."


def _print_structured(value: Any, output: str) -> None:
    from ruamel.yaml import YAML

    if output == "json":
        sys.stdout.write(json.dumps(value, indent=2) + "\n")
    else:
        yaml = YAML()
        yaml.default_flow_style = False
        out = io.StringIO()
        yaml.dump(value, out)
        sys.stdout.write(out.getvalue())


def _check_output(output: str) -> None:
    if output not in ("", "json", "yaml"):
        typer.echo(f"error: unknown output format {output!r}: use json or yaml", err=True)
        raise typer.Exit(2)


def _config_dir(config_dir: Path | None) -> Path:
    if config_dir is not None:
        return config_dir
    state = running_state()
    if state is None:
        typer.echo("error: no mesh is running; name the directory with --dir", err=True)
        raise typer.Exit(1)
    return Path(state.config_dir)


def _load_valid(files: list[Path]) -> list[Any]:
    from heddle.api.diagnostics import Severity
    from heddle.api.loader import load_paths

    result = load_paths(files)
    for diagnostic in result.diagnostics:
        if diagnostic.severity is not Severity.INFO:
            typer.echo(str(diagnostic), err=True)
    if result.errors:
        typer.echo("error: nothing was applied; fix the errors above", err=True)
        raise typer.Exit(1)
    return result.resources


def apply(
    files: list[Path] = typer.Option(..., "--filename", "-f", help="YAML file or directory."),  # noqa: B008
    config_dir: Path | None = typer.Option(None, "--dir", help="Mesh directory (default: the running mesh's)."),  # noqa: B008, E501
) -> None:
    """Validate, then write the resources into the mesh's watched directory."""
    from heddle.config.edit import apply_resources

    target = _config_dir(config_dir)
    for line in apply_resources(target, _load_valid(files)):
        typer.echo(line)


def delete(
    files: list[Path] = typer.Option(..., "--filename", "-f", help="YAML file or directory."),  # noqa: B008
    config_dir: Path | None = typer.Option(None, "--dir", help="Mesh directory (default: the running mesh's)."),  # noqa: B008, E501
) -> None:
    """Remove the resources named in the files from the mesh's directory."""
    from heddle.config.edit import delete_resources

    target = _config_dir(config_dir)
    keys = [r.key for r in _load_valid(files)]
    for line in delete_resources(target, keys):
        typer.echo(line)


def get(
    kind: str = typer.Argument(..., help="Kind, e.g. virtualservice, VirtualService, gateways."),
    name: str = typer.Argument("", help="Only this resource."),
    namespace: str = typer.Option("", "--namespace", "-n", help="Only this namespace."),
    output: str = typer.Option("", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """List resources of a kind in the running mesh, like `kubectl get`."""
    from heddle.api.kinds import kinds_named

    _check_output(output)
    infos = kinds_named(kind) or kinds_named(kind.lower().removesuffix("s"))
    if not infos:
        typer.echo(f"error: unknown kind {kind!r}", err=True)
        raise typer.Exit(1)
    import httpx
    from rich.table import Table

    state = require_state()
    found = httpx.get(f"{state.debug_url}/debug/resources", timeout=5).json()["resources"]
    wanted = {(i.group, i.kind) for i in infos}
    items = [r for r in found
             if (r["key"]["group"], r["key"]["kind"]) in wanted
             and (not name or r["key"]["name"] == name)
             and (not namespace or r["key"]["namespace"] == namespace)]
    if name and not items:
        typer.echo(f"error: {kind} {name!r} not found", err=True)
        raise typer.Exit(1)
    if output:
        objects = [r["object"] for r in items]
        value = objects[0] if name and len(objects) == 1 else {
            "apiVersion": "v1", "kind": "List", "items": objects}
        _print_structured(value, output)
        return
    table = Table("NAMESPACE", "NAME", "KIND", "SOURCE", box=None)
    for r in items:
        table.add_row(r["key"]["namespace"], r["key"]["name"], r["key"]["kind"], r["source"])
    _print_table(table)


def proxy_status(
    output: str = typer.Option("", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Per proxy and xDS type: SYNCED, STALE (sent, not acknowledged) or NACK (refused);
    then the size of the proxy's configuration: its clusters and all resources' bytes, and
    the identity its stream proved (mTLS) or `plaintext`. A node with several streams has
    a row for each."""
    import httpx
    from rich.table import Table

    state = require_state()
    statuses = httpx.get(f"{state.debug_url}/debug/syncz", timeout=5).json()
    if output:
        _print_structured(statuses, output)
        return
    table = Table("NAME", "STREAM", "PROTOCOL", "CDS", "LDS", "EDS", "RDS", "CLUSTERS",
                  "CONFIG", "IDENTITY", box=None)
    nacks = []
    streams = Counter(status["proxy"] for status in statuses)
    for status in sorted(statuses, key=_stream_order):
        name = status["proxy"].split("~")[2]
        cells = []
        for short in ("Cluster", "Listener", "ClusterLoadAssignment", "RouteConfiguration"):
            entry = status["types"].get(short, {})
            cells.append(entry.get("state", "NOT SENT"))
            if entry.get("nack"):
                nacks.append(f"{name} {short}: {entry['nack']}")
        if not status["connected"]:
            cells = ["DISCONNECTED"] * 4
        config = status.get("config", {})
        clusters = config.get("Cluster", {}).get("resources", 0)
        size = sum(entry["bytes"] for entry in config.values())
        identity = str(status.get("identity", ""))
        table.add_row(name, _stream_number(status), status["protocol"], *cells, str(clusters),
                      f"{size / 1024:.1f} KiB",
                      identity.removeprefix("spiffe://") if identity else "plaintext")
    _print_table(table)
    for line in nacks:
        typer.echo(f"NACK {line}")
    for proxy, count in sorted(streams.items()):
        if count > 1:
            typer.echo(f"note: {proxy.split('~')[2]} has {count} streams; each is served")


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
    import httpx

    url = f"http://{workload.address}:{ports.ADMIN}/config_dump?include_eds"
    dump = httpx.get(url, timeout=5).json()
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


def _table(what: str, items: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    if what == "clusters":
        table = Table("SERVICE FQDN", "PORT", "SUBSET", "DIRECTION", "TYPE", box=None)
        for c in items:
            parts = c["name"].split("|")
            if len(parts) == 4:
                direction, port, subset, fqdn = parts
                table.add_row(fqdn or "-", port, subset or "-", direction, c.get("type", ""))
            else:
                table.add_row(c["name"], "-", "-", "-", c.get("type", ""))
        return table
    if what == "listeners":
        table = Table("NAME", "ADDRESS", "PORT", box=None)
        for item in items:
            socket = item["address"]["socket_address"]
            table.add_row(item["name"], socket["address"], str(socket["port_value"]))
        return table
    if what == "routes":
        table = Table("NAME", "VIRTUAL SERVICE HOST", "DOMAINS", "ROUTES", box=None)
        for config in items:
            for host in config.get("virtual_hosts", []):
                table.add_row(config["name"], host["name"], ", ".join(host["domains"][:3]),
                              str(len(host.get("routes", []))))
        return table
    table = Table("ENDPOINT", "CLUSTER", box=None)
    for assignment in items:
        for group in assignment.get("endpoints", []):
            for lb in group.get("lb_endpoints", []):
                socket = lb["endpoint"]["address"]["socket_address"]
                table.add_row(f"{socket['address']}:{socket['port_value']}",
                              assignment["cluster_name"])
    return table


def proxy_config(
    what: str = typer.Argument(..., help="listeners, routes, clusters, endpoints or bootstrap."),
    workload: str = typer.Argument(..., help="Workload name (or name.namespace)."),
    output: str = typer.Option("", "--output", "-o", help=OUTPUT_HELP),
) -> None:
    """Show what a workload's Envoy holds, as `istioctl proxy-config` does."""
    _check_output(output)
    if what not in _DUMP_TYPES:
        typer.echo(f"error: unknown section {what!r}: use " + ", ".join(_DUMP_TYPES), err=True)
        raise typer.Exit(2)
    found = require_state().workload(workload)
    if found is None:
        typer.echo(f"error: no workload {workload!r}", err=True)
        raise typer.Exit(1)
    items = _envoy_dump(found, what)
    if output or what == "bootstrap":
        _print_structured(items[0] if what == "bootstrap" else items, output or "yaml")
        return
    _print_table(_table(what, items))
