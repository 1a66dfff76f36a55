"""Tracing as istiod configures it: the mesh config's providers and defaults, Telemetry
overrides, the connection manager's tracing (golden), the collector's cluster, and real
Envoy accepting all of it."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from envoy.config.listener.v3 import listener_pb2
from envoy.config.trace.v3 import opentelemetry_pb2, zipkin_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import check_golden

from heddle.api.diagnostics import SourcePosition
from heddle.api.loader import load_paths, load_text
from heddle.api.resource import UnmanagedObject
from heddle.model.mesh_config import MeshConfig
from heddle.model.mesh_tracing import DEFAULT_SAMPLING
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.gateway import gateway_config
from heddle.translate.listeners import OUTBOUND_LISTENER
from heddle.translate.sidecar import CLUSTER, LISTENER, ROUTE, sidecar_resources
from heddle.translate.tracing import apply_tracing

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "golden" / "tracing" / "tracing.yaml"
FRONTEND = Proxy(ProxyType.SIDECAR, "frontend", "default", "127.0.10.2", "127.255.10.2",
                 (("app", "frontend"), ("version", "v1")), "frontend")
GATEWAY = Proxy(ProxyType.ROUTER, "istio-ingressgateway", "istio-system", "127.0.10.250",
                "127.0.10.250", (("app", "istio-ingressgateway"), ("istio", "ingressgateway")),
                "istio-ingressgateway-service-account")
OTLP_CLUSTER = "tracing|4317||otel-collector.observability.svc.cluster.local"


def snapshot(*extra: str, fixture: bool = True) -> MeshSnapshot:
    result = load_paths([ROOT / "examples" / "hello", *([FIXTURE] if fixture else [])])
    assert result.errors == []
    resources, unmanaged = list(result.resources), list(result.unmanaged)
    for i, text in enumerate(extra):
        loaded = load_text(text, f"extra-{i}.yaml")
        assert loaded.errors == [], loaded.errors
        resources += loaded.resources
        unmanaged += loaded.unmanaged
    return MeshSnapshot.build(1, resources, mesh_config=MeshConfig.from_objects(unmanaged))


def managers(listener: object) -> list[hcm.HttpConnectionManager]:
    assert isinstance(listener, listener_pb2.Listener)
    found = []
    for chain in listener.filter_chains:
        for item in chain.filters:
            if item.typed_config.type_url.endswith("HttpConnectionManager"):
                manager = hcm.HttpConnectionManager()
                item.typed_config.Unpack(manager)
                found.append(manager)
    return found


def outbound_tracing(mesh: MeshSnapshot) -> hcm.HttpConnectionManager.Tracing:
    [manager] = managers(sidecar_resources(mesh, FRONTEND).of(LISTENER)[OUTBOUND_LISTENER])
    return manager.tracing


TELEMETRY = """
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing:
  - providers: [{name: zipkin}]
    randomSamplingPercentage: 12.5
    customTags:
      stage: {literal: {value: canary}}
      route: {formatter: {value: "%REQ(:PATH)%"}}
"""


def test_the_sidecar_traces_with_the_default_provider_golden_and_accepted_by_envoy() -> None:
    resources = sidecar_resources(snapshot(), FRONTEND)
    check_golden("../tracing/sidecar-frontend-listeners.json",
                 {name: MessageToDict(listener)
                  for name, listener in sorted(resources.of(LISTENER).items())})
    check_golden("../tracing/sidecar-frontend-collector.json",
                 MessageToDict(resources.of(CLUSTER)[OTLP_CLUSTER]))
    out = validate_bootstrap(sidecar_bootstrap(resources))
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_gateway_spawns_upstream_spans_golden_and_accepted_by_envoy() -> None:
    config = gateway_config(snapshot(), GATEWAY)
    assert config.problems == []
    [manager] = managers(config.resources.of(LISTENER)["127.0.10.250_8000"])
    assert manager.tracing.spawn_upstream_span.value is True
    check_golden("../tracing/gateway-tracing.json", MessageToDict(manager.tracing))
    [route] = [r for c in config.resources.of(ROUTE).values()
               for h in c.virtual_hosts for r in h.routes]
    assert route.decorator.operation == "frontend.default.svc.cluster.local:8080/*"
    out = validate_bootstrap(sidecar_bootstrap(config.resources))
    assert out.returncode == 0, out.stdout + out.stderr


def test_spans_name_the_proxy_app_dot_namespace_in_opentelemetry() -> None:
    config = opentelemetry_pb2.OpenTelemetryConfig()
    outbound_tracing(snapshot()).provider.typed_config.Unpack(config)
    assert (config.service_name, config.grpc_service.envoy_grpc.cluster_name,
            config.grpc_service.envoy_grpc.authority) == (
        "frontend.default", OTLP_CLUSTER, "otel-collector.observability.svc.cluster.local")


def test_sampling_and_custom_tags_come_from_default_config_tracing() -> None:
    tracing = outbound_tracing(snapshot())
    assert (tracing.random_sampling.value, tracing.client_sampling.value,
            tracing.overall_sampling.value) == (100.0, 100.0, 100.0)
    tags = {t.tag: t for t in tracing.custom_tags}
    assert tags["team"].literal.value == "payments"
    assert (tags["zone"].environment.name, tags["zone"].environment.default_value) == (
        "HEDDLE_ZONE", "local")
    assert (tags["user"].request_header.name, tags["user"].request_header.default_value) == (
        "x-user", "anonymous")
    assert tags["istio.canonical_service"].literal.value == "frontend"
    assert [t.tag for t in tracing.custom_tags] == sorted(tags)


def test_a_telemetry_resource_picks_the_provider_sampling_and_replaces_the_tags() -> None:
    tracing = outbound_tracing(snapshot(TELEMETRY))
    assert tracing.provider.name == "envoy.tracers.zipkin"
    zipkin = zipkin_pb2.ZipkinConfig()
    tracing.provider.typed_config.Unpack(zipkin)
    assert zipkin.trace_context_option == zipkin_pb2.ZipkinConfig.USE_B3_WITH_W3C_PROPAGATION
    assert zipkin.collector_service.http_uri.uri == \
        "http://zipkin.observability.svc.cluster.local/api/v2/spans"
    assert tracing.random_sampling.value == 12.5
    assert tracing.max_path_tag_length.value == 128  # the zipkin provider's maxTagLength
    tags = {t.tag: t for t in tracing.custom_tags}
    assert tags["stage"].literal.value == "canary" and tags["route"].value == "%REQ(:PATH)%"
    assert "team" not in tags  # replaced, not merged, as Istio does


def test_disabled_span_reporting_leaves_the_server_side_untraced() -> None:
    mesh = snapshot("""
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: frontend, namespace: default}
spec:
  selector: {matchLabels: {app: frontend}}
  tracing: [{match: {mode: SERVER}, disableSpanReporting: true}]
""")
    listeners = sidecar_resources(mesh, FRONTEND).of(LISTENER)
    inbound = [m for name, lst in listeners.items() if name != OUTBOUND_LISTENER
               for m in managers(lst)]
    assert inbound and not any(m.HasField("tracing") for m in inbound)
    assert outbound_tracing(mesh).HasField("provider")


def test_without_a_tracing_provider_nothing_changes() -> None:
    mesh = snapshot(fixture=False)
    resources = sidecar_resources(mesh, FRONTEND)
    assert apply_tracing(mesh, FRONTEND, resources) == (resources, [])
    assert not outbound_tracing(mesh).HasField("provider")


def test_a_collector_missing_from_the_registry_is_said_and_leaves_tracing_off() -> None:
    mesh = snapshot("""
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    defaultProviders: {tracing: [otel]}
    extensionProviders:
    - {name: otel, opentelemetry: {service: nowhere.example.com, port: 4317}}
""", fixture=False)
    resources, problems = apply_tracing(mesh, FRONTEND, sidecar_resources(mesh, FRONTEND))
    assert problems == ["extension provider 'otel': service 'nowhere.example.com' is not in "
                        "the registry; declare it (a ServiceEntry for the collector) or name "
                        "a literal IP address; no spans are reported"]
    assert not any(m.HasField("tracing") for lst in resources.of(LISTENER).values()
                   for m in managers(lst))


def mesh_config(text: str) -> MeshConfig:
    return MeshConfig.from_objects([UnmanagedObject(
        "v1", "ConfigMap", "istio-system", "istio", SourcePosition("mesh.yaml", 1, 1),
        MappingProxyType({"data": {"mesh": text}}))])


def test_istio_reads_sampling_zero_as_unset_and_above_a_hundred_as_one() -> None:
    for value in (0, 150):
        config = mesh_config(f"defaultConfig: {{tracing: {{sampling: {value}}}}}")
        assert config.tracing.sampling == DEFAULT_SAMPLING
    assert mesh_config("defaultConfig: {tracing: {sampling: 42}}").tracing.sampling == 42


def test_a_bad_custom_tag_is_an_error_naming_it_and_its_fix() -> None:
    config = mesh_config("defaultConfig: {tracing: {customTags: {team: {literal: {}}}}}")
    [problem] = config.diagnostics
    assert problem.field == "data.mesh.defaultConfig.tracing.customTags"
    assert "customTags.team.literal.value must be a non-empty string" in problem.message
    assert problem.fix and "literal: {value:" in problem.fix
    assert config.tracing.custom_tags == ()
