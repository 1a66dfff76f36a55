"""The consistency check of a proxy's resources: what would make Envoy wait forever or
reject the set. The xDS server refuses to publish a set that fails it; EnvoyFilter patches
are held to it before they are kept."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf import any_pb2
from google.protobuf.message import Message

from heddle.translate.sidecar import CLUSTER, ENDPOINT, LISTENER, ROUTE


def route_names(listener: Message) -> set[str]:
    """The RDS names a listener's HTTP connection managers refer to."""
    found: set[str] = set()
    for chain in [*getattr(listener, "filter_chains", []),
                  *([listener.default_filter_chain]  # type: ignore[attr-defined]
                    if listener.HasField("default_filter_chain") else [])]:
        for network_filter in chain.filters:
            typed: any_pb2.Any = network_filter.typed_config
            if typed.type_url.endswith("HttpConnectionManager"):
                manager = hcm.HttpConnectionManager()
                typed.Unpack(manager)
                if manager.HasField("rds"):
                    found.add(manager.rds.route_config_name)
    return found


def inconsistencies(desired: Mapping[str, Mapping[str, object]],
                    listeners: Iterable[Message]) -> list[str]:
    """What would make Envoy wait forever or reject the set: EDS for a cluster CDS does not
    have, RDS no listener refers to."""
    problems = []
    clusters = set(desired.get(CLUSTER, {}))
    for name in sorted(set(desired.get(ENDPOINT, {})) - clusters):
        problems.append(f"endpoints for {name}, which is not a cluster")
    referenced = set().union(*(route_names(listener) for listener in listeners)) \
        if desired.get(LISTENER) else set()
    for name in sorted(set(desired.get(ROUTE, {})) - referenced):
        problems.append(f"route configuration {name}, which no listener refers to")
    return problems
