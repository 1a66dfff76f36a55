"""How a server's sidecar learns its client, with stock Envoy (no metadata exchange filter).

HTTP: the client's sidecar adds its labels as request headers (`PEER_HEADERS`); the server's
sidecar moves them into dynamic metadata and removes them, so the application never sees
them; only a mutual-TLS chain's stats loggers read that metadata (sides.py), so a plaintext
client cannot name itself, and a header a client sends is overwritten by its own sidecar.

TCP: no headers. The control plane knows which workloads hold each SPIFFE identity: each
source label is a CEL lookup of the client certificate's SAN in a map of what it knows. A
principal whose workloads disagree on a label (several versions sharing a service account)
is not in the map for it: that label is "unknown".
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.filters.http.header_to_metadata.v3 import header_to_metadata_pb2 as h2m
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)

from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.filters.context import http_filter
from heddle.translate.metrics.peer import (
    METADATA_NAMESPACE,
    PEER_HEADERS,
    UNKNOWN,
    PeerLabels,
)

HEADER_MUTATION = "envoy.filters.http.header_mutation"
HEADER_TO_METADATA = "envoy.filters.http.header_to_metadata"
TCP_PEER_FIELDS = ("workload", "workload_namespace", "app", "version", "canonical_service",
                   "canonical_revision")


def send_peer_headers(proxy: Proxy) -> hcm.HttpFilter:
    """On the outbound side: this workload's labels on every request, replacing any the
    application set."""
    mutation = header_mutation_pb2.HeaderMutation()
    for field, value in PeerLabels.of_proxy(proxy).fields().items():
        option = mutation.mutations.request_mutations.add().append
        option.header.key = PEER_HEADERS[field]
        option.header.value = value
        option.append_action = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    return http_filter(HEADER_MUTATION, mutation)


def read_peer_headers() -> hcm.HttpFilter:
    """On an inbound side: the client's labels into dynamic metadata ("unknown" where a
    header is missing), the headers removed before the application."""
    config = h2m.Config()
    for field, header in PEER_HEADERS.items():
        config.request_rules.add(
            header=header, remove=True,
            on_header_present=h2m.Config.KeyValuePair(
                metadata_namespace=METADATA_NAMESPACE, key=field, type=h2m.Config.STRING),
            on_header_missing=h2m.Config.KeyValuePair(
                metadata_namespace=METADATA_NAMESPACE, key=field, value=UNKNOWN,
                type=h2m.Config.STRING))
    return http_filter(HEADER_TO_METADATA, config)


def values_by_principal(snapshot: MeshSnapshot, field: str) -> dict[str, str]:
    """principal -> its workloads' value of `field`, for principals whose workloads agree."""
    def compute() -> dict[str, str]:
        seen: dict[str, set[str]] = {}
        for workload in snapshot.registry.workloads:
            peer = PeerLabels.of_workload(workload)
            seen.setdefault(peer.principal, set()).add(peer.fields()[field])
        return {principal: next(iter(values)) for principal, values in sorted(seen.items())
                if len(values) == 1}
    return snapshot.memo(("peer_values_by_principal", field), compute)


def tcp_peer_label(snapshot: MeshSnapshot, field: str) -> str:
    """A CEL formatter: the client's `field`, looked up by its certificate's SAN in what the
    control plane knows ("unknown" for a SAN it does not know, or knows ambiguously)."""
    entries = ", ".join(f"{_cel_string(p)}: {_cel_string(v)}"
                        for p, v in values_by_principal(snapshot, field).items())
    san = "connection.uri_san_peer_certificate"
    return (f"%CEL(has({san}) && {san} in {{{entries}}} ? {{{entries}}}[{san}] : "
            f"'{UNKNOWN}')%")


def _cel_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
