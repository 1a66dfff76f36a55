"""Filling in a Grafana dashboard's template variables as Grafana does for the Prometheus data
source (the testing kit's heddle.testing.dashboards), on Istio's own workload dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from heddle.testing.dashboard_panels import View, why_not
from heddle.testing.dashboards import (
    ALL,
    Variable,
    panel_queries,
    rate_interval,
    resolve_variables,
    substitute,
)

DASHBOARDS = Path(__file__).resolve().parents[3] / "shared/corpus/istio-telemetry/dashboards"
WORKLOAD = DASHBOARDS / "istio-workload-dashboard.json"


def test_a_single_value_goes_in_as_it_is_and_several_as_an_escaped_alternation() -> None:
    assert Variable("service", False, False, ["a.b"], ["a.b"]).formatted() == "a.b"
    assert Variable("srcwl", True, True, ["a.b"], ["a.b"]).formatted() == r"a\\.b"
    everything = Variable("srcwl", True, True, ["client", "unknown"], [ALL])
    assert everything.formatted() == "(client|unknown)"


def test_both_variable_forms_are_substituted_and_unknown_ones_kept() -> None:
    assert substitute('x{a="$one",b="${two}"}[$__rate_interval] $other',
                      {"one": "1", "two": "2", "__rate_interval": "8s"}) == (
        'x{a="1",b="2"}[8s] $other')


def test_rate_interval_is_grafanas_formula() -> None:
    assert rate_interval(15, 15) == "60s"  # 4 x scrape interval
    assert rate_interval(2, 15) == "17s"  # interval + scrape interval


def test_query_variables_are_resolved_in_order_against_prometheus() -> None:
    asked: list[str] = []

    def query(expr: str) -> list[dict[str, Any]]:
        asked.append(expr)
        if "by (source_workload)" in expr:
            return [{"metric": {"source_workload": "client"}, "value": [1, "3"]},
                    {"metric": {"source_workload": "unknown"}, "value": [1, "1"]}]
        return [{"metric": {"destination_workload_namespace": "default"}, "value": [1, "3"]}]

    values = resolve_variables(WORKLOAD, query, {"workload": ["frontend"]},
                               {"__rate_interval": "17s"})
    assert values["namespace"] == "default"
    assert values["workload"] == "frontend"
    assert values["qrep"] == "destination"  # the dashboard's saved choice
    assert values["srcwl"] == "(client|unknown)"  # "All"
    # The source workloads' query was asked with the variables before it filled in.
    assert any('destination_workload="frontend"' in q and "by (source_workload)" in q
               for q in asked)


def test_every_panel_of_the_workload_dashboard_is_read_rows_included() -> None:
    queries = panel_queries(WORKLOAD)
    assert len(queries) == 71
    assert {q.title for q in queries} >= {"Incoming Request Volume",
                                          "Outgoing Requests By Destination And Response Code"}


def test_source_reported_mtls_panels_do_not_apply_as_istio_leaves_them_empty() -> None:
    written = ('sum(irate(istio_requests_total{reporter="source", connection_security_policy='
               '"mutual_tls", source_workload=~"$workload"}[1m]))')
    view = View("frontend", frozenset({"http"}), calls_out=frozenset({"http"}))
    reason = why_not(written, written.replace("$workload", "frontend"), view)
    assert reason is not None and "unknown" in reason
    plaintext = written.replace('="mutual_tls"', '!="mutual_tls"')
    assert why_not(plaintext, plaintext.replace("$workload", "frontend"), view) is None


def test_panels_about_another_protocol_or_no_traffic_say_why() -> None:
    tcp = 'sum(irate(istio_tcp_sent_bytes_total{reporter=~"destination"}[1m]))'
    assert why_not(tcp, tcp, View("web", frozenset({"http"}))) == (
        "a TCP panel; web carries HTTP only")
    assert why_not("sum(istio_build)", "sum(istio_build)", View("m", frozenset({"http"})))
    grpc = 'sum(rate(istio_request_messages_total{reporter="destination"}[1m]))'
    assert "gRPC" in (why_not(grpc, grpc, View("m", frozenset({"http"}))) or "")
