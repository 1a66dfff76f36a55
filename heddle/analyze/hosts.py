"""Hostnames as Istio's analyzers read them: short names made FQDNs, wildcard overlap, and
which ServiceEntry or Service a host names, as seen from a namespace (exportTo)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CLUSTER_DOMAIN = "svc.cluster.local"
EXPORT_ALL = "*"
EXPORT_LOCAL = "."
_FQDN = re.compile(r"^(.+)\.(.+)\.svc\.cluster\.local$")


def to_fqdn(namespace: str, host: str) -> str:
    """`reviews` in `default` is `reviews.default.svc.cluster.local`; a dotted or wildcard
    host is taken as written."""
    if host.startswith("*") or "." in host:
        return host
    return f"{host}.{namespace}.{CLUSTER_DOMAIN}"


def service_name(default_namespace: str, host: str) -> tuple[str, str]:
    """(namespace, name) of the Kubernetes service a host names; a host that is not a
    cluster FQDN is its own name in `default_namespace`."""
    found = _FQDN.match(host)
    if found:
        return found.group(2), found.group(1)
    return default_namespace, host


def host_matches(a: str, b: str) -> bool:
    """Whether two hosts, either possibly a `*` wildcard, can name the same host."""
    if a.startswith("*") and b.startswith("*"):
        shorter, longer = sorted((a[1:], b[1:]), key=len)
        return longer.endswith(shorter)
    if a.startswith("*"):
        return b.endswith(a[1:])
    if b.startswith("*"):
        return a.endswith(b[1:])
    return a == b


def hosts_for_namespace(hosts: Iterable[str], namespace: str) -> list[str]:
    """Gateway server hosts (`ns/host`) that a VirtualService in `namespace` may bind."""
    found = []
    for entry in hosts:
        if "/" in entry:
            scope, _, entry = entry.partition("/")
            if scope not in (namespace, EXPORT_ALL):
                continue
        found.append(entry)
    return found


@dataclass(frozen=True)
class HostEntry:
    """A host some ServiceEntry or Service declares: its ports and workload selector."""

    ports: tuple[tuple[int, str, str], ...]  # (number, name, protocol)
    selector: Mapping[str, str]


def _ports(items: Any, number_key: str) -> tuple[tuple[int, str, str], ...]:
    return tuple((int(p.get(number_key) or 0), str(p.get("name") or ""),
                  str(p.get("protocol") or "")) for p in items or [] if isinstance(p, dict))


class ServiceHosts:
    """Every host a ServiceEntry or Kubernetes Service declares, keyed by the namespace scope
    it is visible in (`*` for all) and its FQDN."""

    def __init__(self, service_entries: Iterable[tuple[str, Mapping[str, Any]]],
                 services: Iterable[tuple[str, str, Mapping[str, Any], Mapping[str, str]]],
                 ) -> None:
        self._by_scope: dict[tuple[str, str], HostEntry] = {}
        for namespace, spec in service_entries:
            entry = HostEntry(_ports(spec.get("ports"), "number"),
                              dict((spec.get("workloadSelector") or {}).get("labels") or {}))
            export_to = list(spec.get("exportTo") or [])
            for host in spec.get("hosts") or []:
                for scope in _scopes(export_to, namespace):
                    self._by_scope[(scope, to_fqdn(namespace, str(host)))] = entry
        for namespace, name, spec, notes in services:
            entry = HostEntry(_ports(spec.get("ports"), "port"),
                              dict(spec.get("selector") or {}))
            anno = notes.get("networking.istio.io/exportTo", "")
            export_to = [s.strip() for s in anno.split(",")] if anno else []
            for scope in _scopes(export_to, namespace):
                self._by_scope[(scope, to_fqdn(namespace, name))] = entry

    def find(self, source_namespace: str, export_to: Iterable[str], host: str,
             ) -> HostEntry | None:
        """The entry a resource in `source_namespace` (exported to `export_to`) reaches by
        `host`: an exact FQDN visible to it, else a wildcard entry covering it."""
        fqdn = to_fqdn(source_namespace, host)
        if (EXPORT_ALL, fqdn) in self._by_scope:
            return self._by_scope[(EXPORT_ALL, fqdn)]
        scopes = [source_namespace if e == EXPORT_LOCAL else e for e in export_to] or [
            source_namespace]
        for scope in scopes:
            if (scope, fqdn) in self._by_scope:
                return self._by_scope[(scope, fqdn)]
        bare = host.removeprefix("*")
        for (scope, declared), entry in sorted(self._by_scope.items()):
            if declared.startswith("*") and scope in (EXPORT_ALL, source_namespace) and (
                    bare.endswith(declared[1:])):
                return entry
        return None


def _scopes(export_to: list[str], namespace: str) -> list[str]:
    if not export_to or EXPORT_ALL in export_to:
        return [EXPORT_ALL]
    return sorted({namespace if e == EXPORT_LOCAL else e for e in export_to})
