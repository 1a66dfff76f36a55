"""How a server's sidecar learns its client, with stock Envoy (no metadata exchange filter).

HTTP: the client's sidecar adds its labels as request headers (`PEER_HEADERS`); the server's
sidecar moves them into dynamic metadata and removes them, so the application never sees
them; only a mutual-TLS chain's stats loggers read that metadata (sides.py), so a plaintext
client cannot name itself, and a header a client sends is overwritten by its own sidecar.

TCP: no headers. The control plane knows which workloads hold each SPIFFE identity; per
label, a shadow RBAC rule per value lists the principals having it, and the rule that
matches the client certificate is recorded in dynamic metadata (never enforced). A
principal whose workloads disagree on a label (several versions sharing a service account)
is in no rule for it: that label is "unknown".
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.header_mutation.v3 import header_mutation_pb2
from envoy.extensions.filters.http.header_to_metadata.v3 import header_to_metadata_pb2 as h2m
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as network_rbac_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf.message import Message

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
_TCP_PREFIX = "heddle_peer_"


def tcp_peer_key(field: str) -> str:
    """The dynamic metadata key (namespace envoy.filters.network.rbac) naming the rule
    that matched: the client's value of `field`."""
    return f"{_TCP_PREFIX}{field}_shadow_effective_policy_id"


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


def _values_by_principal(snapshot: MeshSnapshot, field: str) -> dict[str, str]:
    """principal -> its workloads' value of `field`, for principals whose workloads agree."""
    seen: dict[str, set[str]] = {}
    for workload in snapshot.registry.workloads:
        peer = PeerLabels.of_workload(workload)
        seen.setdefault(peer.principal, set()).add(peer.fields()[field])
    return {principal: next(iter(values)) for principal, values in seen.items()
            if len(values) == 1}


def tcp_peer_filters(snapshot: MeshSnapshot) -> list[tuple[str, Message]]:
    """Network RBAC filters with shadow rules only, one per label of TCP_PEER_FIELDS."""
    def compute() -> list[tuple[str, Message]]:
        found: list[tuple[str, Message]] = []
        for field in TCP_PEER_FIELDS:
            by_value: dict[str, list[str]] = {}
            for principal, value in sorted(_values_by_principal(snapshot, field).items()):
                by_value.setdefault(value, []).append(principal)
            if not by_value:
                continue
            rules = rbac_pb2.RBAC(action=rbac_pb2.RBAC.ALLOW)
            for value, principals in sorted(by_value.items()):
                policy = rules.policies[value]
                policy.permissions.add(any=True)
                for principal in principals:
                    policy.principals.add(authenticated=rbac_pb2.Principal.Authenticated(
                        principal_name=string_pb2.StringMatcher(exact=principal)))
            found.append((f"envoy.filters.network.rbac.peer_{field}", network_rbac_pb2.RBAC(
                stat_prefix=f"peer_{field}_", shadow_rules=rules,
                shadow_rules_stat_prefix=f"{_TCP_PREFIX}{field}_")))
        return found
    return snapshot.memo("tcp_peer_filters", compute)
