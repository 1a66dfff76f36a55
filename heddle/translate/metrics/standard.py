"""Istio's standard metrics: their names, kinds and label sets, as Istio's proxy emits them
(the expectations of istio/proxy's telemetry tests). Envoy's spelling of them and the
buckets: model/metric_names.py."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from heddle.model.metric_names import STAT_PREFIX

PEER_FIELDS = ("workload", "canonical_service", "canonical_revision", "workload_namespace",
               "principal", "app", "version", "cluster")
SOURCE_LABELS = tuple(f"source_{f}" for f in PEER_FIELDS)
DESTINATION_LABELS = (
    "destination_workload", "destination_workload_namespace", "destination_principal",
    "destination_app", "destination_version", "destination_service",
    "destination_canonical_service", "destination_canonical_revision",
    "destination_service_name", "destination_service_namespace", "destination_cluster")
PEER_LABELS = ("reporter", *SOURCE_LABELS, *DESTINATION_LABELS)
# HTTP and gRPC requests; TCP connections lack the response's labels; gRPC message counts
# carry the peers only.
HTTP_LABELS = (*PEER_LABELS, "request_protocol", "response_code", "grpc_response_status",
               "response_flags", "connection_security_policy")
TCP_LABELS = (*PEER_LABELS, "request_protocol", "response_flags", "connection_security_policy")
MESSAGE_LABELS = PEER_LABELS


class Kind(StrEnum):
    COUNTER = "COUNTER"
    DISTRIBUTION = "DISTRIBUTION"


class Traffic(StrEnum):
    HTTP = "HTTP"  # every request, HTTP or gRPC
    GRPC = "GRPC"  # gRPC requests only
    TCP = "TCP"


@dataclass(frozen=True)
class StandardMetric:
    name: str  # Istio's, as Prometheus shows it
    kind: Kind
    traffic: Traffic
    value: str  # an Envoy formatter (a number), or "" to count 1
    labels: tuple[str, ...]
    unit: str = ""  # a histogram's: Milliseconds, Bytes
    at_open: bool = False  # counted when a connection opens, not when it closes

    @property
    def stat_name(self) -> str:
        """The stats logger's name for it (Envoy adds STAT_PREFIX and a dot)."""
        return self.name.removeprefix(STAT_PREFIX + "_")


_GRPC_STATS = "envoy.filters.http.grpc_stats"

REQUESTS_TOTAL = StandardMetric("istio_requests_total", Kind.COUNTER, Traffic.HTTP, "",
                                HTTP_LABELS)
STANDARD_METRICS: tuple[StandardMetric, ...] = (
    REQUESTS_TOTAL,
    StandardMetric("istio_request_duration_milliseconds", Kind.DISTRIBUTION, Traffic.HTTP,
                   "%DURATION%", HTTP_LABELS, unit="Milliseconds"),
    # Headers and body, as Istio's request.total_size / response.total_size count them.
    StandardMetric("istio_request_bytes", Kind.DISTRIBUTION, Traffic.HTTP,
                   "%DOWNSTREAM_WIRE_BYTES_RECEIVED%", HTTP_LABELS, unit="Bytes"),
    StandardMetric("istio_response_bytes", Kind.DISTRIBUTION, Traffic.HTTP,
                   "%DOWNSTREAM_WIRE_BYTES_SENT%", HTTP_LABELS, unit="Bytes"),
    StandardMetric("istio_request_messages_total", Kind.COUNTER, Traffic.GRPC,
                   f"%FILTER_STATE({_GRPC_STATS}:FIELD:request_message_count)%",
                   MESSAGE_LABELS),
    StandardMetric("istio_response_messages_total", Kind.COUNTER, Traffic.GRPC,
                   f"%FILTER_STATE({_GRPC_STATS}:FIELD:response_message_count)%",
                   MESSAGE_LABELS),
    # Sent: toward the client (the response's bytes); received: from it.
    StandardMetric("istio_tcp_sent_bytes_total", Kind.COUNTER, Traffic.TCP, "%BYTES_SENT%",
                   TCP_LABELS),
    StandardMetric("istio_tcp_received_bytes_total", Kind.COUNTER, Traffic.TCP,
                   "%BYTES_RECEIVED%", TCP_LABELS),
    StandardMetric("istio_tcp_connections_opened_total", Kind.COUNTER, Traffic.TCP, "",
                   TCP_LABELS, at_open=True),
    StandardMetric("istio_tcp_connections_closed_total", Kind.COUNTER, Traffic.TCP, "",
                   TCP_LABELS),
)
