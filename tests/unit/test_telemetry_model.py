"""Which Telemetry resources apply to a proxy, and what access logging, tracing and metrics
they come to, with Istio's precedence (pilot/pkg/model/telemetry.go)."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from heddle.api.diagnostics import SourcePosition
from heddle.api.loader import load_text
from heddle.api.resource import UnmanagedObject
from heddle.model.gateways import GATEWAY_NAME_LABEL
from heddle.model.mesh_config import MeshConfig
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.model.telemetry import (
    CLIENT,
    SERVER,
    MetricOverride,
    MetricSpec,
    TagOverride,
    access_logging,
    applicable,
    metrics,
    tracing,
    unknown_providers,
)

REVIEWS = Proxy(ProxyType.SIDECAR, "reviews-1", "default", "127.0.10.3", "127.255.10.3",
                (("app", "reviews"), ("version", "v1")), "reviews")
RATINGS = Proxy(ProxyType.SIDECAR, "ratings-1", "default", "127.0.10.4", "127.255.10.4",
                (("app", "ratings"),), "ratings")
OTHER_NS = Proxy(ProxyType.SIDECAR, "web-1", "shop", "127.0.10.5", "127.255.10.5",
                 (("app", "reviews"),), "web")
GATEWAY = Proxy(ProxyType.ROUTER, "edge-1", "default", "127.0.10.6", "127.255.10.6",
                ((GATEWAY_NAME_LABEL, "edge"),), "edge")

MESH = """
extensionProviders:
- name: json-file
  envoyFileAccessLog:
    path: /tmp/access.json
    logFormat: {labels: {code: "%RESPONSE_CODE%"}}
- name: zipkin
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
- name: otel
  opentelemetry: {service: otel.istio-system.svc.cluster.local, port: 4317}
"""


def telemetry(name: str, namespace: str, spec: str) -> str:
    indented = "\n".join("  " + line for line in spec.strip().splitlines())
    return (f"apiVersion: telemetry.istio.io/v1\nkind: Telemetry\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{indented}\n---\n")


def snapshot(*docs: str, mesh: str = MESH) -> MeshSnapshot:
    loaded = load_text("".join(docs), "telemetry.yaml")
    assert loaded.errors == []
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "istio", "namespace": "istio-system"}, "data": {"mesh": mesh}}
    config = MeshConfig.from_objects([UnmanagedObject(
        "v1", "ConfigMap", "istio-system", "istio", SourcePosition("mesh.yaml", 1, 1),
        MappingProxyType(body))])
    return MeshSnapshot.build(1, loaded.resources, mesh_config=config)


def logged(snap: MeshSnapshot, proxy: Proxy, mode: str = SERVER) -> dict[str, bool]:
    """provider -> enabled, for one side of a proxy."""
    return {c.provider: not c.disabled for c in access_logging(snap, proxy, mode).configs}


MESH_WIDE = telemetry("mesh-default", "istio-system",
                      "accessLogging: [{providers: [{name: envoy}]}]")


def test_levels_are_root_then_namespace_then_the_selecting_workload_ones() -> None:
    snap = snapshot(MESH_WIDE,
                    telemetry("ns", "default", "accessLogging: [{providers: [{name: envoy}]}]"),
                    telemetry("reviews", "default",
                              "selector: {matchLabels: {app: reviews}}\n"
                              "accessLogging: [{disabled: true}]"),
                    telemetry("other", "shop", "accessLogging: [{disabled: true}]"))
    assert [k.name for k in applicable(snap, REVIEWS).keys] == ["mesh-default", "ns", "reviews"]
    assert [k.name for k in applicable(snap, RATINGS).keys] == ["mesh-default", "ns"]
    assert [k.name for k in applicable(snap, OTHER_NS).keys] == ["mesh-default", "other"]


def test_a_workload_telemetry_disables_its_logs_and_no_one_elses() -> None:
    snap = snapshot(MESH_WIDE, telemetry("quiet-reviews", "default",
                                         "selector: {matchLabels: {app: reviews}}\n"
                                         "accessLogging: [{disabled: true}]"))
    assert logged(snap, REVIEWS) == {"envoy": False}
    assert logged(snap, REVIEWS, CLIENT) == {"envoy": False}
    assert logged(snap, RATINGS) == {"envoy": True}


def test_without_any_telemetry_the_mesh_config_access_log_file_decides() -> None:
    assert access_logging(snapshot(), REVIEWS, SERVER).uses_mesh_config


def test_disabling_without_a_provider_in_scope_leaves_the_mesh_config_log_on() -> None:
    # Istio's behaviour: `disabled` applies to the providers in scope; with none named
    # anywhere (and no default provider) nothing is disabled and accessLogFile still logs.
    snap = snapshot(telemetry("quiet", "default", "accessLogging: [{disabled: true}]"))
    assert access_logging(snap, REVIEWS, SERVER).uses_mesh_config


def test_the_most_specific_level_that_names_providers_replaces_the_others() -> None:
    snap = snapshot(MESH_WIDE, telemetry("json", "default",
                                         "selector: {matchLabels: {app: reviews}}\n"
                                         "accessLogging: [{providers: [{name: json-file}]}]"))
    assert logged(snap, REVIEWS) == {"json-file": True}
    assert logged(snap, RATINGS) == {"envoy": True}


def test_match_mode_limits_an_item_to_one_side() -> None:
    snap = snapshot(MESH_WIDE, telemetry("server-only-off", "default",
                                         "accessLogging: [{match: {mode: SERVER}, "
                                         "disabled: true}]"))
    assert logged(snap, REVIEWS, SERVER) == {"envoy": False}
    assert logged(snap, REVIEWS, CLIENT) == {"envoy": True}


def test_the_filter_written_last_for_a_provider_is_its_filter() -> None:
    snap = snapshot(
        telemetry("mesh-default", "istio-system",
                  "accessLogging: [{providers: [{name: envoy}], "
                  "filter: {expression: 'response.code >= 500'}}]"),
        telemetry("errors", "default", "accessLogging: [{providers: [{name: envoy}], "
                                       "filter: {expression: 'response.code >= 400'}}]"))
    [config] = access_logging(snap, REVIEWS, SERVER).configs
    assert config.filter == "response.code >= 400"
    [mesh_wide] = access_logging(snap, OTHER_NS, SERVER).configs
    assert mesh_wide.filter == "response.code >= 500"


def test_default_providers_apply_where_no_telemetry_does() -> None:
    snap = snapshot(mesh=MESH + "defaultProviders: {accessLogging: [json-file]}\n")
    assert logged(snap, REVIEWS) == {"json-file": True}


def test_unknown_and_non_logging_providers_are_left_out_and_reported() -> None:
    resource = telemetry("typo", "default",
                         "accessLogging: [{providers: [{name: envoi}, {name: zipkin}]}]")
    snap = snapshot(resource)
    assert access_logging(snap, REVIEWS, SERVER).uses_mesh_config
    [typo] = snap.of_kind("telemetry.istio.io", "Telemetry")
    assert unknown_providers(snap, typo) == [("spec.accessLogging[0].providers[0].name",
                                              "envoi")]


def test_target_refs_attach_to_the_named_gateway_only() -> None:
    snap = snapshot(MESH_WIDE, telemetry(
        "edge-quiet", "default",
        "targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: edge}]\n"
        "accessLogging: [{disabled: true}]"))
    assert logged(snap, GATEWAY, CLIENT) == {"envoy": False}
    assert logged(snap, REVIEWS) == {"envoy": True}


def test_a_selector_in_the_root_namespace_selects_only_root_namespace_workloads() -> None:
    snap = snapshot(MESH_WIDE, telemetry("root-selector", "istio-system",
                                         "selector: {matchLabels: {app: reviews}}\n"
                                         "accessLogging: [{disabled: true}]"))
    assert logged(snap, REVIEWS) == {"envoy": True}


def test_only_one_namespace_wide_telemetry_counts_per_namespace() -> None:
    snap = snapshot(telemetry("a", "default", "accessLogging: [{providers: [{name: envoy}]}]"),
                    telemetry("b", "default", "accessLogging: [{disabled: true, "
                                              "providers: [{name: envoy}]}]"))
    assert [k.name for k in applicable(snap, REVIEWS).keys] == ["a"]
    assert logged(snap, REVIEWS) == {"envoy": True}


def test_tracing_overrides_field_by_field_and_per_side() -> None:
    snap = snapshot(
        telemetry("mesh-default", "istio-system",
                  "tracing: [{providers: [{name: zipkin}], randomSamplingPercentage: 1, "
                  "customTags: {team: {literal: {value: mesh}}}}]"),
        telemetry("reviews", "default",
                  "selector: {matchLabels: {app: reviews}}\n"
                  "tracing: [{match: {mode: SERVER}, randomSamplingPercentage: 50},"
                  " {match: {mode: CLIENT}, providers: [{name: otel}], "
                  "disableSpanReporting: true}]"))
    config = tracing(snap, REVIEWS)
    assert config is not None
    assert (config.server.provider, config.server.random_sampling_percentage) == ("zipkin", 50.0)
    assert not config.server.disabled
    assert (config.client.provider, config.client.random_sampling_percentage) == ("otel", 1.0)
    assert config.client.disabled
    assert config.server.custom_tags["team"].literal is not None
    other = tracing(snap, RATINGS)
    assert other is not None and other.server.random_sampling_percentage == 1.0


def test_tracing_is_none_without_telemetry_or_default_provider_and_off_without_provider() -> None:
    assert tracing(snapshot(), REVIEWS) is None
    sampled = telemetry("t", "default", "tracing: [{randomSamplingPercentage: 5}]")
    config = tracing(snapshot(sampled), REVIEWS)
    assert config is not None and config.client.disabled and config.server.disabled
    assert config.server.random_sampling_percentage == 5.0


def test_metrics_default_to_prometheus_and_overrides_merge_later_winning() -> None:
    assert dict(metrics(snapshot(), REVIEWS)).keys() == {"prometheus"}
    snap = snapshot(
        telemetry("mesh-default", "istio-system",
                  "metrics: [{providers: [{name: prometheus}], overrides: [{match: "
                  "{metric: REQUEST_COUNT}, tagOverrides: {request_protocol: "
                  "{operation: REMOVE}, team: {value: '\"mesh\"'}}}]}]"),
        telemetry("reviews", "default",
                  "selector: {matchLabels: {app: reviews}}\n"
                  "metrics: [{overrides: [{match: {metric: REQUEST_COUNT, mode: SERVER}, "
                  "tagOverrides: {team: {value: '\"reviews\"'}}}, "
                  "{match: {mode: CLIENT}, disabled: true}]}]"))
    config = metrics(snap, REVIEWS)["prometheus"]
    assert config.client == MetricSpec(disabled=True)
    assert config.server.overrides == (MetricOverride("REQUEST_COUNT", False, (
        TagOverride("request_protocol", remove=True), TagOverride("team", value='"reviews"'))),)
    ratings = metrics(snap, RATINGS)["prometheus"]
    assert ratings.client.overrides == ratings.server.overrides == (MetricOverride(
        "REQUEST_COUNT", False, (TagOverride("request_protocol", remove=True),
                                 TagOverride("team", value='"mesh"'))),)


def test_a_lower_level_re_enables_metrics_the_root_turned_off() -> None:
    snap = snapshot(
        telemetry("mesh-default", "istio-system",
                  "metrics: [{providers: [{name: prometheus}], overrides: [{disabled: true}]}]"),
        telemetry("reviews", "default", "selector: {matchLabels: {app: reviews}}\n"
                  "metrics: [{overrides: [{match: {metric: REQUEST_COUNT}, disabled: false}]}]"))
    assert metrics(snap, RATINGS)["prometheus"].server.disabled
    assert not metrics(snap, REVIEWS)["prometheus"].server.disabled


@pytest.mark.parametrize("mode", ["BOTH", "client"])
def test_an_unknown_side_is_a_programming_error(mode: str) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        access_logging(snapshot(), REVIEWS, mode)
