"""Telemetry `metrics` reach the standard metrics: with Istio's precedence, a Telemetry
resource disables a metric on one side, retags one with a CEL value, or turns a workload's
metrics off; real Envoy accepts the result."""

from __future__ import annotations

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.access_loggers.stats.v3 import stats_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from test_telemetry_model import RATINGS, REVIEWS, snapshot, telemetry

from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.metrics.loggers import STATS_LOGGER
from heddle.translate.metrics.overrides import ALL_METRICS, MetricOverride, TagOperation
from heddle.translate.metrics.telemetry_overrides import metric_overrides
from heddle.translate.sidecar import sidecar_resources

# The services reviews and ratings serve, so that both have an inbound side.
SERVICES = """
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {selector: {app: reviews}, ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec: {selector: {app: ratings}, ports: [{name: http, port: 9080}]}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: default}
spec: {address: 127.0.10.3, labels: {app: reviews, version: v1}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: default}
spec: {address: 127.0.10.4, labels: {app: ratings}, serviceAccount: ratings}
---
"""
LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
HCM = "envoy.filters.network.http_connection_manager"


def counters_by_side(snap: MeshSnapshot, proxy: Proxy) -> dict[str, dict[str, set[str]]]:
    """'outbound' / 'inbound' -> counter or histogram name -> its label names."""
    found: dict[str, dict[str, set[str]]] = {"outbound": {}, "inbound": {}}
    for name, listener in sidecar_resources(snap, proxy).of(LISTENER).items():
        assert isinstance(listener, listener_pb2.Listener)
        side = "outbound" if name == "virtualOutbound" else "inbound"
        for chain in listener.filter_chains:
            for f in chain.filters:
                if f.name != HCM:
                    continue
                manager = hcm.HttpConnectionManager()
                f.typed_config.Unpack(manager)
                for log in manager.access_log:
                    if log.name != STATS_LOGGER:
                        continue
                    config = stats_pb2.Config()
                    log.typed_config.Unpack(config)
                    for stat in [*config.counters, *config.histograms]:
                        found[side].setdefault(stat.stat.name, set()).update(
                            t.name for t in stat.stat.tags)
    return found


def test_without_telemetry_both_sides_report_every_metric() -> None:
    overrides = metric_overrides(snapshot(), REVIEWS)
    assert not overrides.disabled("istio_requests_total", "source")
    assert not overrides.disabled("istio_requests_total", "destination")


def test_a_workload_telemetry_disables_one_metric_on_one_side_and_retags_another() -> None:
    snap = snapshot(SERVICES, telemetry("reviews", "default", """
selector: {matchLabels: {app: reviews}}
metrics:
- providers: [{name: prometheus}]
  overrides:
  - match: {metric: REQUEST_COUNT, mode: CLIENT}
    disabled: true
  - match: {metric: REQUEST_DURATION, mode: SERVER}
    tagOverrides:
      request_host: {value: request.host}
      response_flags: {operation: REMOVE}
"""))
    overrides = metric_overrides(snap, REVIEWS)
    assert overrides.disabled("istio_requests_total", "source")
    assert not overrides.disabled("istio_requests_total", "destination")
    counters = counters_by_side(snap, REVIEWS)
    assert "requests_total" not in counters["outbound"]
    assert "requests_total" in counters["inbound"]
    duration = counters["inbound"]["request_duration_milliseconds"]
    assert "request_host" in duration and "response_flags" not in duration
    # The workload's Telemetry is its own: ratings keeps all of its metrics.
    assert "requests_total" in counters_by_side(snap, RATINGS)["outbound"]
    out = validate_bootstrap(sidecar_bootstrap(sidecar_resources(snap, REVIEWS)))
    assert out.returncode == 0, out.stdout + out.stderr


def test_disabling_all_metrics_mesh_wide_turns_both_sides_off_unless_a_workload_reenables(
        ) -> None:
    snap = snapshot(
        SERVICES,
        telemetry("mesh", "istio-system", """
metrics:
- providers: [{name: prometheus}]
  overrides: [{match: {metric: ALL_METRICS}, disabled: true}]
"""),
        telemetry("ratings", "default", """
selector: {matchLabels: {app: ratings}}
metrics:
- providers: [{name: prometheus}]
  overrides: [{match: {metric: REQUEST_COUNT}, disabled: false}]
"""))
    assert counters_by_side(snap, REVIEWS) == {"outbound": {}, "inbound": {}}
    assert "requests_total" in counters_by_side(snap, RATINGS)["inbound"]


def test_a_side_with_no_prometheus_provider_in_scope_reports_nothing() -> None:
    snap = snapshot(mesh="defaultProviders: {metrics: []}\n")
    overrides = metric_overrides(snap, REVIEWS)
    assert overrides.overrides == (
        MetricOverride(ALL_METRICS, "source", disabled=True),
        MetricOverride(ALL_METRICS, "destination", disabled=True))


def test_tag_values_are_cel_expressions_given_to_envoys_cel_formatter() -> None:
    snap = snapshot(SERVICES, telemetry("reviews", "default", """
selector: {matchLabels: {app: reviews}}
metrics:
- providers: [{name: prometheus}]
  overrides:
  - match: {metric: REQUEST_COUNT}
    tagOverrides: {destination_port: {value: string(destination.port)}}
"""))
    (override,) = [o for o in metric_overrides(snap, REVIEWS).overrides
                   if o.metric == "istio_requests_total" and o.reporter == "destination"]
    ((name, tag),) = override.tags
    assert (name, tag.operation, tag.value) == (
        "destination_port", TagOperation.UPSERT, "%CEL(string(destination.port))%")
