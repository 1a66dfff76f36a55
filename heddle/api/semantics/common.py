"""Checks shared by several kinds: RE2 regexes, ports, hosts, percentages, CIDRs.

Durations are checked by the CRDs' own CEL rules (`duration(self) >= duration('1ms')`)."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import re2

from heddle.api.problems import FieldProblem, PathKey

_HOST_LABEL = re.compile(r"^([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?)$")


def check_regex(path: PathKey, pattern: Any) -> list[FieldProblem]:
    """Envoy compiles these with RE2, which lacks lookaround and backreferences."""
    if not isinstance(pattern, str):
        return []
    try:
        re2.compile(pattern)
    except Exception as err:
        detail = err.args[0].decode() if err.args and isinstance(err.args[0], bytes) else err
        return [FieldProblem(path, f"invalid RE2 regex {pattern!r}: {detail}",
                             "RE2 has no lookahead, lookbehind or backreferences")]
    return []


def check_port(path: PathKey, port: Any) -> list[FieldProblem]:
    if isinstance(port, int) and not 1 <= port <= 65535:
        return [FieldProblem(path, f"port {port} is out of range",
                             "use a port number from 1 to 65535")]
    return []


def check_percent(path: PathKey, value: Any) -> list[FieldProblem]:
    if isinstance(value, int | float) and not 0 <= value <= 100:
        return [FieldProblem(path, f"percentage {value} is out of range",
                             "use a value from 0 to 100")]
    return []


def check_cidr(path: PathKey, value: Any) -> list[FieldProblem]:
    if not isinstance(value, str):
        return []
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return [FieldProblem(path, f"invalid IP address or CIDR {value!r}",
                             "write an address like 10.0.0.1 or a range like 10.0.0.0/16")]
    return []


def check_fqdn_or_wildcard(path: PathKey, host: Any, allow_namespace: bool = False,
                           ) -> list[FieldProblem]:
    """Istio hosts: a DNS name, optionally with a leading `*.` wildcard, or `*`."""
    if not isinstance(host, str):
        return []
    name = host
    if allow_namespace and "/" in host:
        namespace, _, name = host.partition("/")
        if namespace not in {"*", ".", "~"} and not _HOST_LABEL.match(namespace):
            return [FieldProblem(path, f"invalid namespace {namespace!r} in host {host!r}",
                                 'write "NAMESPACE/HOST", "./HOST" or "*/HOST"')]
    if name == "*":
        return []
    if name.startswith("*."):
        name = name[2:]
    elif name.startswith("*"):
        name = name[1:]
    labels = name.rstrip(".").split(".")
    if not name or len(name) > 255 or not all(_HOST_LABEL.match(label) for label in labels):
        return [FieldProblem(path, f"invalid host {host!r}",
                             "write a DNS name such as reviews.default.svc.cluster.local, "
                             "optionally starting with '*.'")]
    return []


def items(value: Any) -> list[tuple[int, Any]]:
    return list(enumerate(value)) if isinstance(value, list) else []


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
