"""What each reporter knows of a call, as Envoy formatters for the stats loggers' labels.

Values the control plane knows when it translates (the proxy's own labels) are literals;
values only the data plane knows (the endpoint picked, the peer's certificate, the headers
or SAN the peer presented) are formatters, through CEL where Istio's "unknown" must stand
in for a missing value (a plain formatter would give "").
"""

from __future__ import annotations

from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Service
from heddle.translate.metrics.exchange import TCP_PEER_FIELDS, tcp_peer_label
from heddle.translate.metrics.peer import (
    CLUSTER_ID,
    METADATA_NAMESPACE,
    UNKNOWN,
    PeerLabels,
    service_name,
)

Labels = dict[str, str]

_HOST = f"xds.upstream_host_metadata.filter_metadata.{METADATA_NAMESPACE}"
_CLUSTER = f"xds.cluster_metadata.filter_metadata.{METADATA_NAMESPACE}"


def literal(value: str) -> str:
    return value.replace("%", "%%")


def _or_unknown(expression: str, fallback: str = f"'{UNKNOWN}'") -> str:
    """`expression` (a CEL field selection) where it exists, else `fallback`."""
    return f"%CEL(has({expression}) ? {expression} : {fallback})%"


def _own(prefix: str, peer: PeerLabels) -> Labels:
    return {f"{prefix}_{field}": literal(value) for field, value in peer.fields().items()}


def _response(security: str) -> Labels:
    return {"response_code": "%RESPONSE_CODE%", "response_flags": "%RESPONSE_FLAGS%",
            "connection_security_policy": security}


def client_labels(proxy: Proxy, tcp: bool = False) -> Labels:
    """A sidecar's outbound side, or a gateway (reporter "source"): the destination is the
    endpoint Envoy picked (its EDS metadata) and the cluster's service (CDS metadata); the
    principals are the certificates of the upstream connection, when it is mutual TLS.
    Without a known service, HTTP names the host the client asked for, as Istio does."""
    host = f"(has(request.host) ? request.host : '{UNKNOWN}')" if not tcp else f"'{UNKNOWN}'"
    labels = {
        "reporter": "source", **_own("source", PeerLabels.of_proxy(proxy)),
        "source_principal": _or_unknown("upstream.uri_san_local_certificate"),
        "destination_principal": _or_unknown("upstream.uri_san_peer_certificate"),
        **{f"destination_{field}": _or_unknown(f"{_HOST}.{field}")
           for field in ("workload", "workload_namespace", "app", "version",
                         "canonical_service", "canonical_revision", "cluster")},
        "destination_service": _or_unknown(f"{_CLUSTER}.service", host),
        "destination_service_name": _or_unknown(f"{_CLUSTER}.service_name", host),
        "destination_service_namespace": _or_unknown(f"{_CLUSTER}.service_namespace"),
        # Istio's client side does not say: it cannot see the server's policy.
        **_response(literal(UNKNOWN)),
    }
    return labels


def _server_side(proxy: Proxy, service: Service | None, mtls: bool) -> Labels:
    own = PeerLabels.of_proxy(proxy)
    return {
        "reporter": "destination", **_own("destination", own),
        "destination_principal": literal(own.principal if mtls else UNKNOWN),
        "destination_service": literal(service.hostname if service else UNKNOWN),
        "destination_service_name": literal(service_name(service) if service else UNKNOWN),
        "destination_service_namespace": literal(service.namespace if service else UNKNOWN),
        **_response("mutual_tls" if mtls else "none"),
    }


def _unknown_source() -> Labels:
    return {f"source_{field}": literal(UNKNOWN) for field in (
        "workload", "workload_namespace", "app", "version", "canonical_service",
        "canonical_revision", "cluster", "principal")}


def server_http_labels(proxy: Proxy, service: Service | None, mtls: bool) -> Labels:
    """An inbound HTTP chain (reporter "destination"). Over mutual TLS the source is what
    the client's sidecar sent (read into dynamic metadata by exchange.py's filter) and the
    certificate it presented; over plaintext nothing a client says about itself is taken."""
    labels = {**_server_side(proxy, service, mtls), **_unknown_source()}
    if mtls:
        labels.update({f"source_{field}": f"%DYNAMIC_METADATA({METADATA_NAMESPACE}:{field})%"
                       for field in PeerLabels.of_proxy(proxy).fields()})
        labels["source_principal"] = "%DOWNSTREAM_PEER_URI_SAN%"
    return labels


def server_tcp_labels(snapshot: MeshSnapshot, proxy: Proxy, service: Service | None,
                      mtls: bool) -> Labels:
    """An inbound TCP chain: over mutual TLS the source is the workload the control plane
    knows by the client certificate's SAN (see exchange.tcp_peer_label)."""
    labels = {**_server_side(proxy, service, mtls), **_unknown_source()}
    if mtls:
        for field in TCP_PEER_FIELDS:
            labels[f"source_{field}"] = tcp_peer_label(snapshot, field)
        labels["source_cluster"] = literal(CLUSTER_ID)
        labels["source_principal"] = "%DOWNSTREAM_PEER_URI_SAN%"
    return labels
