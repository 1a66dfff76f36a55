"""A proxy's Telemetry `metrics` (resolved with Istio's precedence by heddle.model.telemetry)
as the overrides the standard metrics' translation reads: which metrics each side reports,
and which of their labels are replaced or removed.

Istio reports its standard metrics through a `prometheus` provider: a side whose providers
in scope include none (Telemetry naming only another provider, or `defaultProviders.metrics`
empty) reports nothing, as a side the Telemetry disables.
"""

from __future__ import annotations

from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.model.telemetry import MetricSpec, metrics
from heddle.translate.metrics.overrides import (
    ALL_METRICS,
    MetricOverride,
    MetricOverrides,
    TagOperation,
    TagOverride,
)

# Istio's MetricSelector.IstioMetric -> the metric's name.
ISTIO_METRICS = {
    "ALL_METRICS": ALL_METRICS,
    "REQUEST_COUNT": "istio_requests_total",
    "REQUEST_DURATION": "istio_request_duration_milliseconds",
    "REQUEST_SIZE": "istio_request_bytes",
    "RESPONSE_SIZE": "istio_response_bytes",
    "TCP_OPENED_CONNECTIONS": "istio_tcp_connections_opened_total",
    "TCP_CLOSED_CONNECTIONS": "istio_tcp_connections_closed_total",
    "TCP_SENT_BYTES": "istio_tcp_sent_bytes_total",
    "TCP_RECEIVED_BYTES": "istio_tcp_received_bytes_total",
    "GRPC_REQUEST_MESSAGES": "istio_request_messages_total",
    "GRPC_RESPONSE_MESSAGES": "istio_response_messages_total",
}
SOURCE, DESTINATION = "source", "destination"


def _side(spec: MetricSpec | None, reporter: str) -> list[MetricOverride]:
    if spec is None:  # no prometheus provider in scope: nothing is reported
        return [MetricOverride(ALL_METRICS, reporter, disabled=True)]
    found = [MetricOverride(ALL_METRICS, reporter, disabled=True)] if spec.disabled else []
    for override in spec.overrides:
        # A custom metric's name (`customMetric`) is one Heddle does not define: nothing to
        # override.
        name = ISTIO_METRICS.get(override.name)
        if name is None:
            continue
        tags = tuple(
            (tag.name, TagOverride(TagOperation.REMOVE) if tag.remove
             else TagOverride(TagOperation.UPSERT, f"%CEL({tag.value})%"))
            for tag in override.tags)
        found.append(MetricOverride(name, reporter, disabled=override.disabled, tags=tags))
    return found


def metric_overrides(snapshot: MeshSnapshot, proxy: Proxy) -> MetricOverrides:
    """Both sides' overrides for `proxy`, from the prometheus-type providers in scope."""
    def resolve() -> MetricOverrides:
        configs = [config for name, config in metrics(snapshot, proxy).items()
                   if "prometheus" in (snapshot.mesh_config.provider(name) or {})]
        client = configs[0].client if configs else None
        server = configs[0].server if configs else None
        return MetricOverrides((*_side(client, SOURCE), *_side(server, DESTINATION)))

    return snapshot.memo(("metric_overrides", proxy.namespace, proxy.labels), resolve)
