"""The stats loggers the translation writes carry, per metric and reporter, exactly the label
names Istio's own proxy tests expect (istio/proxy testdata/metric templates); the merged
metrics endpoint prints them with Istio's names; Telemetry overrides disable and retag."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from envoy.extensions.access_loggers.stats.v3 import stats_pb2

from heddle.agent import http
from heddle.agent.merged_metrics import istio_names, merged
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.scrape import AppMetrics, app_metrics_of
from heddle.translate.metrics.loggers import STATS_LOGGER, http_loggers, tcp_loggers
from heddle.translate.metrics.overrides import (
    ALL_METRICS,
    NO_OVERRIDES,
    MetricOverride,
    MetricOverrides,
    TagOperation,
    TagOverride,
)
from heddle.translate.metrics.sides import client_labels, server_http_labels

TEMPLATES = (Path(__file__).resolve().parents[3] / "shared" / "corpus" / "istio-telemetry"
             / "proxy-testdata-metric")
PROXY = Proxy(ProxyType.SIDECAR, "productpage-v1", "default", "127.0.20.2", "127.255.20.2",
              (("app", "productpage"), ("version", "v1")), "bookinfo-productpage")

# Templates that do not describe Heddle's standard metrics, and why.
NOT_APPLICABLE = {
    "client_custom_metric.yaml.tmpl": "a custom metric (istio_custom) defined by the test",
    "client_request_total_customized.yaml.tmpl": "test-only tag overrides (configurable_metric_a)",
    "client_request_total_labels.yaml.tmpl": "a test-only extra label (role)",
    "server_request_total_labels.yaml.tmpl": "a test-only extra label (role)",
    "tcp_client_connection_open.yaml.tmpl": "a test-only extra label (role), when enabled",
    "tcp_server_connection_open.yaml.tmpl": "a test-only extra label (role), when enabled",
    "client_request_messages.yaml.tmpl": "a test-only extra label (configurable_metric_a)",
    "client_response_messages.yaml.tmpl": "a test-only extra label (configurable_metric_a)",
    "server_waypoint_proxy_connect_connections_opened_total.yaml.tmpl": "ambient waypoints",
    "server_waypoint_proxy_connect_emptymeta_request_total.yaml.tmpl": "ambient waypoints",
    "server_waypoint_proxy_connect_request_total.yaml.tmpl": "ambient waypoints",
    "server_waypoint_proxy_request_total.yaml.tmpl": "ambient waypoints",
    "client_request_total_baggage.yaml.tmpl": "ambient: reporter=waypoint, peers by baggage",
    "tcp_server_mx_stats_alpn_found.yaml.tmpl": "Istio's metadata exchange filter's own stats",
    "tcp_server_mx_stats_alpn_not_found.yaml.tmpl": "Istio's metadata exchange filter's stats",
    "tcp_server_mx_stats_metadata_added.yaml.tmpl": "Istio's metadata exchange filter's stats",
    "istio_build.yaml": "the Istio proxy build's version gauge",
    "envoy_bug_failures.yaml": "an Envoy stat, not an Istio metric",
    "basic_flow_client_requests.yaml.tmpl": "Envoy's own stats (envoy_listener_http_*)",
    "basic_flow_server_requests.yaml.tmpl": "Envoy's own stats (envoy_listener_http_*)",
    "basic_flow_client_tcp_connection.yaml.tmpl": "Envoy's own stats (envoy_tcp_*)",
    "basic_flow_server_tcp_connection.yaml.tmpl": "Envoy's own stats (envoy_tcp_*)",
}


def template(path: Path) -> tuple[str, str, frozenset[str]]:
    """(metric name, reporter, label names) of one template, Go actions left out (the
    labels inside `if` branches that are on by default are kept)."""
    text = path.read_text()
    name = re.search(r"^name: (\S+)", text, re.M)
    assert name is not None
    labels = frozenset(re.findall(r"^  - name: (\S+)", text, re.M))
    reporter = re.search(r"- name: reporter\n\s+value: (\w+)", text)
    return name.group(1), reporter.group(1) if reporter else "", labels


def translated() -> dict[tuple[str, str], set[frozenset[str]]]:
    """(metric, reporter) -> the label-name sets of every stats logger that counts it."""
    loggers = [*http_loggers(client_labels(PROXY), "source", NO_OVERRIDES, tunnels=True),
               *http_loggers(server_http_labels(PROXY, None, True), "destination",
                             NO_OVERRIDES),
               *tcp_loggers(client_labels(PROXY, tcp=True), "source", NO_OVERRIDES),
               *tcp_loggers(server_http_labels(PROXY, None, True), "destination",
                            NO_OVERRIDES)]
    found: dict[tuple[str, str], set[frozenset[str]]] = {}
    for logger in loggers:
        assert logger.name == STATS_LOGGER
        config = stats_pb2.Config()
        logger.typed_config.Unpack(config)
        for stat in [*(c.stat for c in config.counters), *(h.stat for h in config.histograms)]:
            tags = {t.name: t.value_format for t in stat.tags}
            found.setdefault((f"istio_{stat.name}", tags["reporter"]), set()).add(
                frozenset(tags))
    return found


APPLICABLE = sorted(p.name for p in TEMPLATES.glob("*.yaml*") if p.name not in NOT_APPLICABLE)


@pytest.mark.parametrize("name", APPLICABLE)
def test_every_applicable_template_has_istios_label_names(name: str) -> None:
    metric, reporter, labels = template(TEMPLATES / name)
    assert translated()[(metric, reporter)] == {labels}


def test_the_templates_left_out_are_only_those_listed() -> None:
    assert set(NOT_APPLICABLE) <= {p.name for p in TEMPLATES.glob("*.yaml*")}
    assert len(APPLICABLE) == 18


def test_envoy_names_become_istio_names_and_nothing_else_changes() -> None:
    text = ("# TYPE envoy_istio_requests_total counter\n"
            'envoy_istio_requests_total{reporter="source"} 3\n'
            "# TYPE envoy_cluster_upstream_cx_total counter\n"
            'envoy_cluster_upstream_cx_total{envoy_cluster_name="x"} 1\n')
    assert istio_names(text) == (
        "# TYPE istio_requests_total counter\n" 'istio_requests_total{reporter="source"} 3\n'
        "# TYPE envoy_cluster_upstream_cx_total counter\n"
        'envoy_cluster_upstream_cx_total{envoy_cluster_name="x"} 1\n')


def test_the_applications_metrics_are_merged_after_envoys() -> None:
    async def run() -> str:
        async def app(method: str, target: str) -> tuple[int, str]:
            return (200, "app_hits_total 7\n") if target == "/custom" else (404, "")
        server = await http.serve(app, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async def envoy(path: str) -> str:
                return 'envoy_istio_requests_total{reporter="destination"} 1\n'
            return await merged(envoy, AppMetrics("127.0.0.1", port, "/custom"))
        finally:
            server.close()
            await server.wait_closed()
    assert asyncio.run(run()) == (
        'istio_requests_total{reporter="destination"} 1\napp_hits_total 7\n')


def test_prometheus_annotations_name_the_applications_metrics_as_istio_reads_them() -> None:
    assert app_metrics_of({"prometheus.io/port": "9100"}, "127.1.0.1") == AppMetrics(
        "127.1.0.1", 9100, "/metrics")
    assert app_metrics_of({"prometheus.io/port": "9100", "prometheus.io/path": "/m"},
                          "a") == AppMetrics("a", 9100, "/m")
    assert app_metrics_of({"prometheus.io/scrape": "false", "prometheus.io/port": "9100"},
                          "a") is None
    assert app_metrics_of({}, "a") is None


def _stats(loggers: list) -> dict[str, dict[str, str]]:  # type: ignore[type-arg]
    found: dict[str, dict[str, str]] = {}
    for logger in loggers:
        config = stats_pb2.Config()
        logger.typed_config.Unpack(config)
        for stat in [*(c.stat for c in config.counters), *(h.stat for h in config.histograms)]:
            found[stat.name] = {t.name: t.value_format for t in stat.tags}
    return found


def test_overrides_disable_metrics_and_upsert_or_remove_labels() -> None:
    overrides = MetricOverrides((
        MetricOverride("istio_request_bytes", disabled=True),
        MetricOverride("istio_requests_total", reporter="destination", tags=(
            ("request_host", TagOverride(TagOperation.UPSERT, "%CEL(request.host)%")),
            ("destination_cluster", TagOverride(TagOperation.REMOVE)))),
    ))
    server = _stats(http_loggers(server_http_labels(PROXY, None, True), "destination",
                                 overrides))
    assert "request_bytes" not in server
    assert server["requests_total"]["request_host"] == "%CEL(request.host)%"
    assert "destination_cluster" not in server["requests_total"]
    client = _stats(http_loggers(client_labels(PROXY), "source", overrides))
    assert "destination_cluster" in client["requests_total"]  # the other reporter's
    off = MetricOverrides((MetricOverride(ALL_METRICS, disabled=True),))
    assert http_loggers(client_labels(PROXY), "source", off, tunnels=True) == []
