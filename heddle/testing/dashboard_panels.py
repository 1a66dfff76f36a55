"""Which of Istio's dashboard panels should show data for a given view of a mesh, and why not
the others: read from each query's metric names and label matchers, against what traffic
the view's service or workload has (HTTP, TCP, calls out, plaintext callers).

A panel applies when Istio itself would show data for that traffic. It does not when it is
about something else (component versions, gRPC messages, WASM, ztunnel), about a protocol
the selected service does not speak, about a direction of traffic the workload has none of,
or when Istio's own metrics leave it empty (the client-side reporter labels
`connection_security_policy` "unknown", so a source-reported mTLS panel never has data).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HTTP_METRICS = ("istio_requests_total", "istio_request_duration_milliseconds",
                "istio_request_bytes", "istio_response_bytes")
TCP_METRICS = ("istio_tcp_sent_bytes_total", "istio_tcp_received_bytes_total",
               "istio_tcp_connections_opened_total", "istio_tcp_connections_closed_total")
GRPC_METRICS = ("istio_request_messages_total", "istio_response_messages_total")
_OTHER = {"istio_build": "component versions (istio_build), not traffic",
          "envoy_wasm": "WASM runtime stats: no WASM extensions here",
          "ztunnel": "ztunnel (ambient mode): sidecars only here",
          "container_": "cAdvisor container stats: Kubernetes nodes only"}


@dataclass(frozen=True)
class View:
    """A dashboard opened for one service or workload (or the whole mesh), and the traffic
    the test drives for it."""

    name: str
    protocols: frozenset[str]  # {"http", "tcp"}: what it serves or the mesh carries
    serves: bool = True  # it receives traffic (a client-only workload does not)
    calls_out: frozenset[str] = frozenset()  # protocols it calls other services with
    calls_outside_mesh: bool = False  # some calls go to destinations with no SPIFFE id
    plaintext_callers: bool = True  # some callers are outside the mesh (no mTLS)


def _reporters(expr: str) -> set[str]:
    """The reporters the query's matchers let through (both when it does not say)."""
    found: set[str] = set()
    for op, value in re.findall(r'reporter\s*(=~|=)\s*"([^"]*)"', expr):
        wanted = value.strip("()").split("|") if op == "=~" else [value]
        found |= {w for w in wanted if w}
    return found or {"source", "destination"}


def families(expr: str) -> set[str]:
    names = set(re.findall(r"\b(istio_[a-z_]+|envoy_wasm\w*|ztunnel\w*|container_\w+)", expr))
    kinds = set()
    for name in names:
        if name.startswith(HTTP_METRICS) or name.startswith("istio_request_duration_seconds"):
            kinds.add("http")
        elif name.startswith(TCP_METRICS):
            kinds.add("tcp")
        elif name.startswith(GRPC_METRICS):
            kinds.add("grpc")
        else:
            kinds.add(next((k for k in _OTHER if name.startswith(k)), name))
    return kinds


def why_not(written: str, expr: str, view: View) -> str | None:
    """None when the query should return data in `view`; else why not. `written` is the
    query as the dashboard has it, `expr` with its variables filled in."""
    kinds = families(expr)
    for kind, reason in _OTHER.items():
        if kind in kinds:
            return reason
    if "grpc" in kinds:
        return "gRPC messages (istio_request/response_messages_total): no gRPC streams here"
    # A legacy fallback (istio_request_duration_seconds) beside the live metric is no other
    # protocol: the family is the query's.
    family = "tcp" if kinds == {"tcp"} else "http"
    reporters = _reporters(expr)
    # The workload dashboard's outbound panels: what the selected workload calls.
    outgoing = re.search(r'source_workload\s*=~\s*"\$workload"', written) is not None
    if outgoing:
        if family not in view.calls_out:
            return f"{view.name} makes no outgoing {family.upper()} calls"
        if re.search(r'destination_principal\s*!~\s*"spiffe', expr) and (
                not view.calls_outside_mesh):
            return f"{view.name} calls only workloads in the mesh (all with SPIFFE ids)"
    else:
        if family not in view.protocols:
            return (f"a {family.upper()} panel; {view.name} carries "
                    f"{'/'.join(sorted(p.upper() for p in view.protocols))} only")
        if not view.serves and reporters != {"source"}:
            return f"{view.name} serves nothing: no traffic reaches it"
    if reporters == {"source"} and re.search(r'connection_security_policy\s*=\s*"mutual_tls"',
                                             expr):
        return ("source-reported and mTLS: Istio's client-side reporter labels "
                "connection_security_policy \"unknown\", so Istio leaves it empty too")
    if re.search(r'connection_security_policy\s*!=\s*"mutual_tls"', expr) and (
            "destination" in reporters and reporters != {"source"}) and (
            not view.plaintext_callers):
        return f"no caller of {view.name} is outside the mesh"
    return None
