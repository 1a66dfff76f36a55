"""The dashboard's service graph: nodes, edges and their rates from Istio's standard
metrics, as Prometheus's rate() and histogram_quantile() would read them."""

from __future__ import annotations

import math

import pytest

from heddle.dashboard.graph import DURATION_BUCKETS, REQUESTS, Sample, Scrape, build, quantile
from heddle.dashboard.scrape import parse


def _requests(reporter: str, source: str, destination: str, code: str, value: float,
              mtls: bool = True) -> Sample:
    return Sample(REQUESTS, {
        "reporter": reporter, "source_workload": source, "source_workload_namespace": "default",
        "destination_workload": destination, "destination_workload_namespace": "default",
        "destination_version": "v1", "destination_service": "reviews.default.svc.cluster.local",
        "destination_service_name": "reviews", "destination_service_namespace": "default",
        "response_code": code, "request_protocol": "http",
        "connection_security_policy": "mutual_tls" if mtls else "none"}, value)


def test_each_request_is_counted_once_from_the_destinations_report() -> None:
    earlier = Scrape(0.0, (_requests("source", "productpage-v1", "reviews-v1", "200", 10),
                           _requests("destination", "productpage-v1", "reviews-v1", "200", 10)))
    later = Scrape(10.0, (_requests("source", "productpage-v1", "reviews-v1", "200", 30),
                          _requests("destination", "productpage-v1", "reviews-v1", "200", 30)))
    graph = build(earlier, later)
    assert [n.id for n in graph.nodes] == [
        "service:reviews.default.svc.cluster.local", "workload:default/productpage-v1",
        "workload:default/reviews-v1"]
    edges = {(e.source, e.target): e for e in graph.edges}
    into_service = edges["workload:default/productpage-v1",
                         "service:reviews.default.svc.cluster.local"]
    assert into_service.requests_per_second == pytest.approx(2.0)
    assert into_service.total == 30
    assert into_service.mtls and not into_service.denied
    assert edges["service:reviews.default.svc.cluster.local",
                 "workload:default/reviews-v1"].requests_per_second == pytest.approx(2.0)


def test_a_pair_only_the_source_reported_still_shows_and_errors_count() -> None:
    earlier = Scrape(0.0, (_requests("source", "productpage-v1", "unknown", "503", 0),))
    later = Scrape(5.0, (_requests("source", "productpage-v1", "unknown", "503", 5),))
    (edge,) = build(earlier, later).edges
    assert edge.target == "service:reviews.default.svc.cluster.local"
    assert edge.requests_per_second == pytest.approx(1.0)
    assert edge.error_rate == 1.0


def test_denied_requests_mark_the_edge_and_plaintext_is_not_mtls() -> None:
    earlier = Scrape(0.0, (_requests("destination", "sleep", "reviews-v1", "403", 1, False),))
    later = Scrape(2.0, (_requests("destination", "sleep", "reviews-v1", "403", 3, False),))
    edges = build(earlier, later).edges
    assert all(e.denied and not e.mtls for e in edges)


def test_a_counter_that_went_down_was_reset_and_counts_whole() -> None:
    earlier = Scrape(0.0, (_requests("destination", "a", "reviews-v1", "200", 100),))
    later = Scrape(4.0, (_requests("destination", "a", "reviews-v1", "200", 8),))
    assert build(earlier, later).edges[0].requests_per_second == pytest.approx(2.0)


def test_without_an_earlier_scrape_there_are_totals_but_no_rates() -> None:
    graph = build(None, Scrape(1.0, (_requests("destination", "a", "reviews-v1", "200", 7),)))
    assert graph.edges[0].total == 7 and graph.edges[0].requests_per_second == 0
    assert graph.edges[0].p99_ms is None


def test_p99_interpolates_within_the_bucket_as_histogram_quantile() -> None:
    assert quantile(0.99, {10.0: 50.0, 25.0: 100.0, math.inf: 100.0}) == pytest.approx(24.7)
    assert quantile(0.5, {10.0: 0.0, 25.0: 0.0, math.inf: 0.0}) is None
    assert quantile(0.99, {10.0: 0.0, math.inf: 4.0}) == 10.0  # beyond the last bound


def test_latency_comes_from_the_bucket_increases() -> None:
    def bucket(le: str, value: float) -> Sample:
        labels = dict(_requests("destination", "a", "reviews-v1", "200", 0).labels, le=le)
        return Sample(DURATION_BUCKETS, labels, value)

    earlier = Scrape(0.0, (_requests("destination", "a", "reviews-v1", "200", 0),
                           bucket("5", 0), bucket("10", 0), bucket("+Inf", 0)))
    later = Scrape(1.0, (_requests("destination", "a", "reviews-v1", "200", 10),
                         bucket("5", 0), bucket("10", 10), bucket("+Inf", 10)))
    assert build(earlier, later).edges[0].p99_ms == pytest.approx(9.95)


def test_the_exposition_parser_keeps_only_requests_and_latency() -> None:
    text = (
        "# TYPE istio_requests_total counter\n"
        'istio_requests_total{reporter="destination",response_code="200"} 4\n'
        "# TYPE istio_request_duration_milliseconds histogram\n"
        'istio_request_duration_milliseconds_bucket{reporter="destination",le="5"} 3\n'
        'istio_request_duration_milliseconds_sum{reporter="destination"} 9\n'
        "# TYPE envoy_cluster_upstream_rq counter\n"
        'envoy_cluster_upstream_rq{envoy_cluster_name="x"} 12\n')
    samples = parse(text)
    assert [(s.name, s.value) for s in samples] == [
        (REQUESTS, 4.0), (DURATION_BUCKETS, 3.0)]
