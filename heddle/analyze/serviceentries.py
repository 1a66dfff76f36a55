"""ServiceEntry analyzers: TCP ports with no address to tell them apart (IST0134), and one
host and port declared with different protocols (IST0177)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

from heddle.analyze.analyzer import Analyzer, report
from heddle.analyze.context import ISTIO, AnalysisInput, spec
from heddle.analyze.hosts import EXPORT_ALL, EXPORT_LOCAL
from heddle.analyze.messages import (
    CONFLICTING_SERVICE_ENTRY_PROTOCOL,
    SERVICE_ENTRY_ADDRESSES_REQUIRED,
    Message,
)
from heddle.api.resource import Resource

SERVICE_ENTRY = (ISTIO, "ServiceEntry")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _addresses_allocated(world: AnalysisInput) -> bool:
    """Whether the mesh gives ServiceEntries addresses itself (DNS capture with auto
    allocation), so none need be written."""
    metadata = _dict(_dict(world.mesh.get("defaultConfig")).get("proxyMetadata"))
    if metadata.get("ISTIO_META_DNS_CAPTURE") != "true":
        return False
    return "true" in (metadata.get("ISTIO_META_DNS_AUTO_ALLOCATE"),
                      metadata.get("PILOT_ENABLE_IP_AUTOALLOCATE"))


def _check_addresses(world: AnalysisInput) -> Iterator[Message]:
    if _addresses_allocated(world):
        return
    for entry in world.of_kind(*SERVICE_ENTRY):
        body = spec(entry)
        status = _dict(entry.body.get("status"))
        if "addresses" in body or status.get("addresses"):
            continue
        for i, port in enumerate(body.get("ports") or []):
            protocol = str(_dict(port).get("protocol") or "")
            if protocol.upper() in ("", "TCP"):
                yield report(SERVICE_ENTRY_ADDRESSES_REQUIRED, entry,
                             "a ServiceEntry with a TCP port (or no protocol) needs addresses: "
                             "without one, every such ServiceEntry shares the port's listener "
                             "and traffic may reach the wrong one",
                             "set spec.addresses, or name the port's protocol (HTTP, TLS ...)",
                             ("spec", "ports", i))


def _scopes(body: Mapping[str, Any], namespace: str) -> set[str]:
    export_to = [str(e) for e in body.get("exportTo") or []]
    if not export_to or EXPORT_ALL in export_to:
        return {EXPORT_ALL}
    return {namespace if e == EXPORT_LOCAL else e for e in export_to}


def _check_protocols(world: AnalysisInput) -> Iterator[Message]:
    index: dict[tuple[str, str, int], list[tuple[str, Resource[Any]]]] = defaultdict(list)
    for entry in world.of_kind(*SERVICE_ENTRY):
        body = spec(entry)
        for scope in _scopes(body, entry.namespace):
            for host in body.get("hosts") or []:
                for port in body.get("ports") or []:
                    port = _dict(port)
                    key = (scope, str(host), int(port.get("number") or 0))
                    index[key].append((str(port.get("protocol") or ""), entry))
    reported: set[tuple[str, str]] = set()
    for (scope, host, number), entries in sorted(index.items()):
        if scope != EXPORT_ALL:
            entries = entries + index.get((EXPORT_ALL, host, number), [])
        protocols = sorted({protocol.upper() for protocol, _ in entries})
        if len(protocols) < 2:
            continue
        names = ", ".join(sorted({f"{e.namespace}/{e.name}" for _, e in entries}))
        for _, entry in entries:
            if (entry.namespace, entry.name) in reported:
                continue
            reported.add((entry.namespace, entry.name))
            yield report(CONFLICTING_SERVICE_ENTRY_PROTOCOL, entry,
                         f"the ServiceEntries {names} declare host {host!r} port {number} "
                         f"with different protocols ({', '.join(protocols)}): which one a "
                         "proxy uses is undefined",
                         "declare the port with one protocol in every ServiceEntry")


ANALYZERS = (
    Analyzer("serviceentry.Analyzer", "Checks the validity of ServiceEntry",
             frozenset({SERVICE_ENTRY, ("", "MeshConfig")}), _check_addresses),
    Analyzer("serviceentry.ConflictingServiceEntryProtocolAnalyzer",
             "Checks if multiple ServiceEntries define the same host and port with different "
             "protocols", frozenset({SERVICE_ENTRY}), _check_protocols),
)
