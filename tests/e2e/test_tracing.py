"""Tracing end to end: examples/hello with an ingress gateway in front of frontend, spans
reported by every proxy to a test OpenTelemetry collector (OTLP gRPC) or a test Zipkin
receiver, both in this process on loopback ports. The mesh config names both providers and
makes OpenTelemetry the default; Telemetry resources switch to Zipkin and set the sampling.

A request gateway -> frontend's sidecar -> frontend -> frontend's sidecar -> backend's
sidecar is one trace: the gateway's server span and its upstream (client) span, frontend's
inbound (server) and outbound (client) spans, backend's server span, each the child of the
one before (frontend passes the trace headers on, as Istio asks of applications).
"""

from __future__ import annotations

import http.client
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.trace_collector import (
    Collector,
    ReceivedSpan,
    otlp_collector,
    zipkin_collector,
)
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

GATEWAY_PORT = 8000
CLIENT, FRONTEND, BACKENDS = 1, 2, (3, 4)
GATEWAY_SERVICE = "istio-ingressgateway.istio-system"

MESH_CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    defaultProviders:
      tracing: [otel]
    defaultConfig:
      tracing:
        sampling: 100
        customTags:
          team: {literal: {value: payments}}
          zone: {environment: {name: HEDDLE_TEST_ZONE, defaultValue: local}}
          user: {header: {name: x-user, defaultValue: anonymous}}
    extensionProviders:
    - name: otel
      opentelemetry: {service: otel-collector.observability.svc.cluster.local, port: OTLP_PORT}
    - name: zipkin
      zipkin:
        service: ZIPKIN_ADDRESS
        port: ZIPKIN_PORT
        traceContextOption: USE_B3_WITH_W3C_PROPAGATION
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: otel-collector, namespace: observability}
spec:
  hosts: [otel-collector.observability.svc.cluster.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: OTLP_PORT, name: grpc-otlp, protocol: GRPC}]
  endpoints: [{address: 127.0.0.1}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8000, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: frontend-web}
spec:
  hosts: ["*"]
  gateways: [istio-system/web]
  http: [{route: [{destination: {host: frontend.default.svc.cluster.local,
                                 port: {number: 8080}}}]}]
"""


@pytest.fixture(scope="module")
def otlp() -> Iterator[Collector]:
    with otlp_collector() as collector:
        yield collector


@pytest.fixture(scope="module")
def zipkin() -> Iterator[Collector]:
    with zipkin_collector() as collector:
        yield collector


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, otlp: Collector,
         zipkin: Collector) -> Iterator[LocalMesh]:
    # The Zipkin provider names its collector by a literal loopback address (no registry
    # entry), the OpenTelemetry one by a ServiceEntry: both ways Heddle finds a collector.
    config = (MESH_CONFIG.replace("OTLP_PORT", str(otlp.port))
              .replace("ZIPKIN_PORT", str(zipkin.port)).replace("ZIPKIN_ADDRESS", "127.0.0.1"))
    with running_mesh(tmp_path_factory.mktemp("tracing"),
                      extra={"tracing.yaml": config}) as running:
        yield running


def gateway_address(mesh: LocalMesh) -> str:
    return mesh.state().workloads[f"{GATEWAY_SERVICE}"].address


def proxies(mesh: LocalMesh) -> list[EnvoyAdmin]:
    return [EnvoyAdmin(gateway_address(mesh)),
            *(EnvoyAdmin(f"{mesh.subnet}{n}") for n in (CLIENT, FRONTEND, *BACKENDS))]


def tracing_settings(proxy: EnvoyAdmin) -> set[tuple[str, float]]:
    """(tracer, random sampling %) of every HTTP connection manager the proxy serves with."""
    found = set()
    for listener in proxy.listeners().values():
        for chain in listener.get("filter_chains", []):
            for filter_ in chain.get("filters", []):
                typed = filter_.get("typed_config", {})
                if typed.get("@type", "").endswith("HttpConnectionManager"):
                    tracing = typed.get("tracing") or {}
                    found.add((str((tracing.get("provider") or {}).get("name", "")),
                               float((tracing.get("random_sampling") or {}).get("value", 0))))
    return found


def apply_telemetry(mesh: LocalMesh, tracer: str, sampling: float,
                    spec: dict[str, Any] | None) -> None:
    """Put a mesh-wide Telemetry resource with `spec` in force (None: none), and wait until
    every proxy traces to `tracer` at `sampling` percent and has no old listener left."""
    path = mesh.config_dir / "telemetry.yaml"
    if spec is None:
        path.unlink(missing_ok=True)
    else:
        tmp = path.with_suffix(".tmp")  # not YAML: the watcher ignores it until renamed
        tmp.write_text(json.dumps({
            "apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry",
            "metadata": {"name": "mesh-default", "namespace": "istio-system"},
            "spec": spec}))
        tmp.replace(path)
    every = proxies(mesh)
    seen: dict[str, object] = {}

    def in_force() -> bool:
        for proxy in every:
            seen[proxy.host] = (tracing_settings(proxy), proxy.nothing_draining())
        return all(s == ({(tracer, sampling)}, True) for s in seen.values())

    try:
        wait_for(in_force, 60, f"{tracer} at {sampling}% on every proxy")
    except AssertionError as err:
        raise AssertionError(f"{err}; last seen: {seen}") from None


def through_gateway(mesh: LocalMesh, headers: dict[str, str]) -> int:
    conn = http.client.HTTPConnection(gateway_address(mesh), GATEWAY_PORT, timeout=15)
    try:
        conn.request("GET", "/", headers={"Host": "web.example.com", **headers})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def from_client(mesh: LocalMesh, headers: dict[str, str]) -> int:
    """GET frontend from the client workload, through the client's sidecar."""
    conn = http.client.HTTPConnection(f"{mesh.subnet}{CLIENT}", 15001, timeout=15)
    try:
        conn.request("GET", "http://frontend:8080/", headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def of_trace(collector: Collector, trace_id: str, count: int) -> list[ReceivedSpan]:
    """The trace's spans, once `count` have arrived (Envoy reports in batches)."""
    wait_for(lambda: sum(s.trace_id == trace_id for s in collector.spans) >= count, 60,
             f"{count} spans of trace {trace_id}")
    return [s for s in collector.spans if s.trace_id == trace_id]


def chain(spans: list[ReceivedSpan], root_parent: str) -> list[tuple[str, str]]:
    """(service, kind) of each span from the one whose parent is `root_parent` down, each
    the only child of the one before; fails on a fork or a span left out."""
    by_parent: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        by_parent.setdefault(span.parent_id, []).append(span)
    found, parent = [], root_parent
    while parent in by_parent:
        [child] = by_parent.pop(parent)
        found.append((child.service, child.kind))
        parent = child.span_id
    assert by_parent == {}, f"spans outside the chain: {by_parent}"
    return found


GATEWAY_CHAIN = [(GATEWAY_SERVICE, "SERVER"), (GATEWAY_SERVICE, "CLIENT"),
                 ("frontend.default", "SERVER"), ("frontend.default", "CLIENT"),
                 ("backend.default", "SERVER")]


def test_a_w3c_request_through_the_gateway_and_two_sidecars_is_one_trace_of_five_spans(
        mesh: LocalMesh, otlp: Collector) -> None:
    apply_telemetry(mesh, "envoy.tracers.opentelemetry", 100.0, None)
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    user = f"user-{secrets.token_hex(4)}"
    assert through_gateway(mesh, {"traceparent": f"00-{trace_id}-{span_id}-01",
                                  "x-user": user}) == 200
    spans = of_trace(otlp, trace_id, 5)
    assert chain(spans, span_id) == GATEWAY_CHAIN
    edge = next(s for s in spans if s.service == GATEWAY_SERVICE and s.kind == "SERVER")
    # Istio's span name (the route's destination), Istio's tags and each kind of custom tag.
    assert edge.name == "frontend.default.svc.cluster.local:8080/*"
    assert {k: edge.tags.get(k) for k in ("team", "zone", "user", "istio.namespace",
                                          "istio.canonical_service")} == {
        "team": "payments", "zone": "local", "user": user, "istio.namespace": "istio-system",
        "istio.canonical_service": "istio-ingressgateway"}
    backend = next(s for s in spans if s.service == "backend.default")
    # frontend passes the trace headers on, not x-user: the header tag's default.
    assert (backend.tags.get("user"), backend.tags.get("istio.canonical_service")) == (
        "anonymous", "backend")


def test_a_request_without_trace_headers_from_a_sidecar_starts_one_trace_across_three_hops(
        mesh: LocalMesh, otlp: Collector) -> None:
    apply_telemetry(mesh, "envoy.tracers.opentelemetry", 100.0, None)
    user = f"user-{secrets.token_hex(4)}"
    assert from_client(mesh, {"x-user": user}) == 200
    wait_for(lambda: any(s.tags.get("user") == user and s.service == "client.default"
                         for s in otlp.spans), 60, "the client's span")
    [root] = [s for s in otlp.spans if s.tags.get("user") == user
              and s.service == "client.default"]
    spans = of_trace(otlp, root.trace_id, 4)
    assert chain(spans, "") == [("client.default", "CLIENT"), ("frontend.default", "SERVER"),
                                ("frontend.default", "CLIENT"), ("backend.default", "SERVER")]


def test_b3_and_w3c_headers_are_both_honoured_by_the_zipkin_tracer(
        mesh: LocalMesh, zipkin: Collector) -> None:
    apply_telemetry(mesh, "envoy.tracers.zipkin", 100.0,
                    {"tracing": [{"providers": [{"name": "zipkin"}]}]})
    b3_trace, b3_span = secrets.token_hex(16), secrets.token_hex(8)
    assert through_gateway(mesh, {"x-b3-traceid": b3_trace, "x-b3-spanid": b3_span,
                                  "x-b3-sampled": "1"}) == 200
    assert chain(of_trace(zipkin, b3_trace, 5), b3_span) == GATEWAY_CHAIN
    w3c_trace, w3c_span = secrets.token_hex(16), secrets.token_hex(8)
    assert through_gateway(mesh, {"traceparent": f"00-{w3c_trace}-{w3c_span}-01"}) == 200
    assert chain(of_trace(zipkin, w3c_trace, 5), w3c_span) == GATEWAY_CHAIN


REQUESTS = 10


def test_sampling_zero_percent_reports_no_span_and_a_hundred_percent_every_request(
        mesh: LocalMesh, otlp: Collector) -> None:
    apply_telemetry(mesh, "envoy.tracers.opentelemetry", 0.0,
                    {"tracing": [{"randomSamplingPercentage": 0}]})
    users = [f"none-{secrets.token_hex(4)}" for _ in range(REQUESTS)]
    for user in users:
        assert from_client(mesh, {"x-user": user}) == 200
    apply_telemetry(mesh, "envoy.tracers.opentelemetry", 100.0,
                    {"tracing": [{"randomSamplingPercentage": 100}]})
    sampled = [f"all-{secrets.token_hex(4)}" for _ in range(REQUESTS)]
    for user in sampled:
        assert from_client(mesh, {"x-user": user}) == 200
    # Every sampled request's four spans arrive; by then the unsampled ones would have too
    # (each proxy reports in order), and none did.
    def traces() -> set[str]:
        return {s.trace_id for s in otlp.spans if s.tags.get("user") in sampled}

    wait_for(lambda: len(traces()) == REQUESTS, 60, "a trace for every sampled request")
    for trace_id in traces():
        assert len(of_trace(otlp, trace_id, 4)) == 4
    assert [s for s in otlp.spans if s.tags.get("user") in users] == []


def test_the_collectors_cluster_is_each_proxys_own(mesh: LocalMesh, otlp: Collector) -> None:
    apply_telemetry(mesh, "envoy.tracers.opentelemetry", 100.0, None)
    cluster = f"tracing|{otlp.port}||otel-collector.observability.svc.cluster.local"
    for proxy in proxies(mesh):
        assert proxy.cluster_hosts(cluster) == {f"127.0.0.1:{otlp.port}"}

