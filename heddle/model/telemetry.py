"""Which Telemetry resources (`telemetry.istio.io`) apply to a proxy, and what they come to.

Precedence follows Istio's pilot/pkg/model/telemetry.go: the namespace-wide Telemetry (no
selector, no targetRefs) of the root namespace `istio-system`, then the namespace-wide one of
the proxy's namespace, then those of the proxy's namespace that select it (`selector`, or
`targetRefs` naming the Gateway API Gateway a gateway proxy was deployed for); a later level
overrides an earlier one per provider. Where several resources sit at one level Istio takes
them in creation order; Heddle has no creation times and takes them in name order.

Three questions, each answered per proxy as plain data (translators turn it into Envoy config):

- `access_logging(snapshot, proxy, mode)`: the access-log providers for the CLIENT side
  (outbound, gateways) or the SERVER side (inbound), each enabled or disabled, with its CEL
  filter. No entry means Istio's fallback: the mesh config's `accessLogFile`.
- `tracing(snapshot, proxy)`: the client and server tracing settings, or None where neither a
  Telemetry resource nor `defaultProviders.tracing` says anything.
- `metrics(snapshot, proxy)`: per metrics provider, the client and server overrides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from heddle.api.models import TelemetrySpec
from heddle.api.models._generated.telemetry_telemetry import (
    TelemetrySpecAccessLoggingItem,
    TelemetrySpecMetric,
    TelemetrySpecMetricOverrideMatch,
    TelemetrySpecTracingItem,
    TelemetrySpecTracingItemCustomTags,
)
from heddle.api.resource import Resource, ResourceKey
from heddle.api.specs import spec_of
from heddle.model.gateways import GATEWAY_NAME_LABEL
from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot

ROOT_NAMESPACE = "istio-system"
TELEMETRY = ("telemetry.istio.io", "Telemetry")
GATEWAY_API = "gateway.networking.k8s.io"

# WorkloadMode: the side of a request a proxy's listener reports. Outbound listeners and
# gateways are the CLIENT, inbound listeners the SERVER.
CLIENT = "CLIENT"
SERVER = "SERVER"
CLIENT_AND_SERVER = "CLIENT_AND_SERVER"
MODES = (CLIENT, SERVER)

# Extension provider kinds that write access logs (the others trace or count).
ACCESS_LOG_PROVIDER_KINDS = ("envoyFileAccessLog", "envoyHttpAls", "envoyTcpAls", "envoyOtelAls")

# Every standard metric, as an override without `match` (or ALL_METRICS) applies to each.
ALL_METRICS = ("GRPC_REQUEST_MESSAGES", "GRPC_RESPONSE_MESSAGES", "REQUEST_COUNT",
               "REQUEST_DURATION", "REQUEST_SIZE", "RESPONSE_SIZE", "TCP_CLOSED_CONNECTIONS",
               "TCP_OPENED_CONNECTIONS", "TCP_RECEIVED_BYTES", "TCP_SENT_BYTES")


@dataclass(frozen=True)
class Applicable:
    """The Telemetry resources that apply to one proxy, least specific first."""

    root: Resource[Any] | None = None
    namespace: Resource[Any] | None = None
    workload: tuple[Resource[Any], ...] = ()

    @property
    def levels(self) -> tuple[Resource[Any], ...]:
        return (*(r for r in (self.root, self.namespace) if r is not None), *self.workload)

    @property
    def keys(self) -> tuple[ResourceKey, ...]:
        return tuple(r.key for r in self.levels)


# --- access logging -------------------------------------------------------------------------

@dataclass(frozen=True)
class LoggingConfig:
    """One access-log provider on one side of a proxy."""

    provider: str  # the name as the mesh config's extensionProviders spells it
    config: Mapping[str, Any]  # that extension provider (e.g. {"envoyFileAccessLog": {...}})
    disabled: bool = False
    filter: str | None = None  # a CEL expression: log only the requests it is true for

    @property
    def kind(self) -> str:
        """Which of ACCESS_LOG_PROVIDER_KINDS the provider is."""
        return next(k for k in ACCESS_LOG_PROVIDER_KINDS if k in self.config)


@dataclass(frozen=True)
class AccessLogging:
    """What the Telemetry API says about one side's access logs. `configs` sorted by
    provider; empty: nothing applies (use the mesh config's accessLogFile, as Istio does)."""

    configs: tuple[LoggingConfig, ...] = ()
    sources: tuple[ResourceKey, ...] = ()  # the Telemetry resources that were weighed

    @property
    def uses_mesh_config(self) -> bool:
        return not self.configs

    @property
    def enabled(self) -> tuple[LoggingConfig, ...]:
        return tuple(c for c in self.configs if not c.disabled)


# --- tracing --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TracingSpec:
    """Tracing on one side (client or server) of a proxy."""

    provider: str | None = None
    provider_config: Mapping[str, Any] | None = None
    disabled: bool = False  # disableSpanReporting, or no provider at all
    random_sampling_percentage: float | None = None
    custom_tags: Mapping[str, TelemetrySpecTracingItemCustomTags] = field(
        default_factory=lambda: MappingProxyType({}))
    use_request_id_for_trace_sampling: bool = True
    enable_istio_tags: bool = True
    disable_context_propagation: bool = False


@dataclass(frozen=True)
class TracingConfig:
    client: TracingSpec
    server: TracingSpec


# --- metrics --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TagOverride:
    name: str
    remove: bool = False
    value: str = ""  # a CEL expression (UPSERT)


@dataclass(frozen=True)
class MetricOverride:
    name: str  # a standard metric (REQUEST_COUNT, ...) or a custom metric's name
    disabled: bool = False
    tags: tuple[TagOverride, ...] = ()  # sorted by name


@dataclass(frozen=True)
class MetricSpec:
    """One provider's metrics on one side: all off, or overrides (sorted by metric)."""

    disabled: bool = False
    overrides: tuple[MetricOverride, ...] = ()


@dataclass(frozen=True)
class MetricsConfig:
    client: MetricSpec = MetricSpec()
    server: MetricSpec = MetricSpec()
    reporting_interval: str | None = None  # a duration as written ("15s")


# --- which resources apply ------------------------------------------------------------------

def _spec(resource: Resource[Any]) -> TelemetrySpec:
    return spec_of(resource, TelemetrySpec)


def _targets(spec: TelemetrySpec) -> list[Any]:
    return [*(spec.targetRefs or []), *([spec.targetRef] if spec.targetRef else [])]


def _namespace_wide(spec: TelemetrySpec) -> bool:
    return not (spec.selector and spec.selector.matchLabels) and not _targets(spec)


def _selects(resource: Resource[Any], proxy: Proxy) -> bool:
    """A workload-level Telemetry: its selector matches the proxy's labels, or its targetRefs
    name the Gateway API Gateway the (gateway) proxy was deployed for. Sidecars ignore
    targetRefs, as Istio attaches them only to gateways and waypoints."""
    spec = _spec(resource)
    targets = _targets(spec)
    if targets:
        gateway = proxy.label_map.get(GATEWAY_NAME_LABEL)
        return gateway is not None and any(
            (ref.group or "") == GATEWAY_API and ref.kind == "Gateway" and ref.name == gateway
            and ref.namespace in (None, "", resource.namespace) for ref in targets)
    labels = proxy.label_map
    wanted = (spec.selector.matchLabels or {}) if spec.selector else {}
    return all(labels.get(k) == v for k, v in wanted.items())


def applicable(snapshot: MeshSnapshot, proxy: Proxy) -> Applicable:
    """The Telemetry resources for `proxy`, as Istio's applicableTelemetries picks them."""
    def resolve() -> Applicable:
        def namespace_wide(namespace: str) -> Resource[Any] | None:
            return next((r for r in snapshot.of_kind(*TELEMETRY, namespace)
                         if _namespace_wide(_spec(r))), None)

        root = namespace_wide(ROOT_NAMESPACE)
        own = namespace_wide(proxy.namespace) if proxy.namespace != ROOT_NAMESPACE else None
        workload = tuple(r for r in snapshot.of_kind(*TELEMETRY, proxy.namespace)
                         if not _namespace_wide(_spec(r)) and _selects(r, proxy))
        return Applicable(root, own, workload)

    key = ("telemetry.applicable", proxy.namespace, proxy.labels)
    return snapshot.memo(key, resolve)


def _provider_names(providers: Sequence[Any] | None) -> list[str]:
    return [p.name for p in providers or []]


def _mode_matches(match: Any, mode: str) -> bool:
    wanted = getattr(match, "mode", None) if match is not None else None
    return wanted is None or wanted in (CLIENT_AND_SERVER, mode)


# --- access logging -------------------------------------------------------------------------

def access_logging(snapshot: MeshSnapshot, proxy: Proxy, mode: str) -> AccessLogging:
    """The access-log providers of one side (`CLIENT` or `SERVER`) of `proxy`.

    Istio's mergeLogs: the providers in scope are those the most specific level names for
    this side (else `defaultProviders.accessLogging`); an item without providers inherits
    the previous item's; for each in-scope provider the last matching item decides whether it
    is disabled, and the last filter written for it is its filter. Providers the mesh config
    does not define, and providers that do not log, are left out."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")

    def resolve() -> AccessLogging:
        found = applicable(snapshot, proxy)
        levels = [tuple(_spec(r).accessLogging or ()) for r in found.levels]
        levels = [items for items in levels if items]
        defaults = list(snapshot.mesh_config.default_providers.access_logging)
        if not levels:
            if not defaults:
                return AccessLogging(sources=found.keys)
            return AccessLogging(_logging_configs(snapshot, {p: (False, None) for p in defaults}),
                                 found.keys)
        return AccessLogging(_logging_configs(snapshot, _merge_logs(levels, defaults, mode)),
                             found.keys)

    return snapshot.memo(("telemetry.access_logging", proxy.namespace, proxy.labels, mode),
                         resolve)


def _merge_logs(levels: list[tuple[TelemetrySpecAccessLoggingItem, ...]], defaults: list[str],
                mode: str) -> dict[str, tuple[bool, str | None]]:
    in_scope = list(defaults)
    filters: dict[str, str | None] = {}
    for items in levels:
        named: list[str] = []
        for item in items:
            if not _mode_matches(item.match, mode):
                continue
            names = _provider_names(item.providers)
            named += names
            for name in names:
                filters[name] = item.filter.expression if item.filter else None
        if named:
            in_scope = named
    scope = set(in_scope)
    decided: dict[str, tuple[bool, str | None]] = {}
    parent = list(defaults)
    for items in levels:
        for item in items:
            names = _provider_names(item.providers) or parent
            parent = names
            if not _mode_matches(item.match, mode):
                continue
            for name in names:
                if name in scope:
                    decided[name] = (True, None) if item.disabled else (
                        False, filters.get(name))
    return decided


def _logging_configs(snapshot: MeshSnapshot, decided: Mapping[str, tuple[bool, str | None]],
                     ) -> tuple[LoggingConfig, ...]:
    configs = []
    for name, (disabled, expression) in decided.items():
        config = snapshot.mesh_config.provider(name)
        if config is None or not any(k in config for k in ACCESS_LOG_PROVIDER_KINDS):
            continue
        configs.append(LoggingConfig(str(config.get("name") or name), config, disabled,
                                     expression))
    return tuple(sorted(configs, key=lambda c: c.provider))


def unknown_providers(snapshot: MeshSnapshot, resource: Resource[Any]) -> list[tuple[str, str]]:
    """(field, name) for each provider a Telemetry resource names that the mesh config does
    not define (Istio ignores them; the user probably misspelt one)."""
    spec = _spec(resource)
    found = []
    sections: tuple[tuple[str, Sequence[Any] | None], ...] = (
        ("accessLogging", spec.accessLogging), ("tracing", spec.tracing),
        ("metrics", spec.metrics))
    for section, items in sections:
        for i, item in enumerate(items or []):
            for j, provider in enumerate(item.providers or []):
                if snapshot.mesh_config.provider(provider.name) is None:
                    found.append((f"spec.{section}[{i}].providers[{j}].name", provider.name))
    return found


# --- tracing --------------------------------------------------------------------------------

def tracing(snapshot: MeshSnapshot, proxy: Proxy) -> TracingConfig | None:
    """Istio's Telemetries.Tracing: client and server settings, each starting from the first
    `defaultProviders.tracing` provider and overridden, field by field, by every applicable
    tracing item in order (`match.mode` limits an item to one side). A side left without a
    provider is disabled. None: nothing configures tracing through the Telemetry API."""
    def resolve() -> TracingConfig | None:
        items = [item for r in applicable(snapshot, proxy).levels
                 for item in (_spec(r).tracing or ())]
        defaults = snapshot.mesh_config.default_providers.tracing
        if not items and not defaults:
            return None
        sides: dict[str, dict[str, Any]] = {CLIENT: {}, SERVER: {}}
        if defaults:
            for side in sides.values():
                _set_provider(snapshot, side, defaults[0])
        for item in items:
            targets = [sides[m] for m in MODES if _mode_matches(item.match, m)]
            _merge_tracing(snapshot, item, targets)
        specs = {}
        for mode, side in sides.items():
            if side.get("provider_config") is None:
                side["disabled"] = True
            specs[mode] = TracingSpec(**side)
        return TracingConfig(specs[CLIENT], specs[SERVER])

    return snapshot.memo(("telemetry.tracing", proxy.namespace, proxy.labels), resolve)


def _set_provider(snapshot: MeshSnapshot, side: dict[str, Any], name: str) -> None:
    config = snapshot.mesh_config.provider(name)
    side["provider"] = str(config.get("name") or name) if config is not None else None
    side["provider_config"] = config


def _merge_tracing(snapshot: MeshSnapshot, item: TelemetrySpecTracingItem,
                   sides: list[dict[str, Any]]) -> None:
    names = _provider_names(item.providers)
    for side in sides:
        if names:  # one provider per side: the first named
            _set_provider(snapshot, side, names[0])
        if item.disableSpanReporting is not None:
            side["disabled"] = item.disableSpanReporting
        if item.customTags is not None:  # replaces, not merges, as Istio does
            side["custom_tags"] = MappingProxyType(dict(item.customTags))
        if item.randomSamplingPercentage is not None:
            side["random_sampling_percentage"] = float(item.randomSamplingPercentage)
        if item.useRequestIdForTraceSampling is not None:
            side["use_request_id_for_trace_sampling"] = item.useRequestIdForTraceSampling
        if item.enableIstioTags is not None:
            side["enable_istio_tags"] = item.enableIstioTags
        if item.disableContextPropagation is not None:
            side["disable_context_propagation"] = item.disableContextPropagation


# --- metrics --------------------------------------------------------------------------------

@dataclass
class _Override:
    disabled: bool | None = None
    tags: dict[str, TagOverride] = field(default_factory=dict)


def metrics(snapshot: MeshSnapshot, proxy: Proxy) -> Mapping[str, MetricsConfig]:
    """Istio's mergeMetrics: per metrics provider in scope (the most specific level's
    `providers`, else `defaultProviders.metrics`), the overrides of every applicable level in
    order, later ones winning per metric and tag; `disabled` on all metrics turns a side off
    (a later override of that side turns it back on). Unknown providers are left out."""
    def resolve() -> Mapping[str, MetricsConfig]:
        items = [item for r in applicable(snapshot, proxy).levels
                 for item in (_spec(r).metrics or ())]
        merged = _merge_metrics(items, snapshot.mesh_config.default_providers.metrics)
        return MappingProxyType({name: config for name, config in sorted(merged.items())
                                 if snapshot.mesh_config.provider(name) is not None})

    return snapshot.memo(("telemetry.metrics", proxy.namespace, proxy.labels), resolve)


def _modes(match: TelemetrySpecMetricOverrideMatch | None) -> tuple[str, ...]:
    mode = match.mode if match is not None else None
    return (str(mode),) if mode in MODES else MODES


def _is_all_metrics(match: TelemetrySpecMetricOverrideMatch | None) -> bool:
    if match is None:
        return True
    if match.customMetric:
        return False
    return match.metric is None or match.metric == "ALL_METRICS"


def _metric_names(match: TelemetrySpecMetricOverrideMatch | None) -> tuple[str, ...]:
    if match is not None and match.customMetric:
        return (match.customMetric,)
    if match is None or match.metric is None or match.metric == "ALL_METRICS":
        return ALL_METRICS
    return (str(match.metric),)


def _merge_metrics(items: list[TelemetrySpecMetric], defaults: tuple[str, ...],
                   ) -> dict[str, MetricsConfig]:
    providers: dict[str, dict[str, dict[str, _Override]]] = {}
    if not items:
        providers = {name: {} for name in defaults}
    in_scope = list(defaults)
    for item in items:
        if names := _provider_names(item.providers):
            in_scope = names
    scope = set(in_scope)
    parent = list(defaults)
    all_off: set[tuple[str, str]] = set()
    intervals: dict[str, str] = {}
    for item in items:
        names = _provider_names(item.providers) or parent
        parent = names
        for provider in names:
            if provider not in scope:
                continue  # named higher up, replaced lower down
            if item.reportingInterval is not None:
                intervals[provider] = item.reportingInterval
            sides = providers.setdefault(provider, {CLIENT: {}, SERVER: {}})
            for override in item.overrides or []:
                if _is_all_metrics(override.match) and override.disabled:
                    all_off.update((provider, m) for m in _modes(override.match))
                    continue
                for mode in _modes(override.match):
                    all_off.discard((provider, mode))
                    for metric in _metric_names(override.match):
                        merged = sides.setdefault(mode, {}).setdefault(metric, _Override())
                        if override.disabled is not None:
                            merged.disabled = override.disabled
                        for tag, change in (override.tagOverrides or {}).items():
                            remove = change.operation == "REMOVE"
                            merged.tags[tag] = TagOverride(
                                tag, remove, "" if remove else change.value or "")
    result = {}
    for provider, sides in providers.items():
        specs = {}
        for mode in MODES:
            if (provider, mode) in all_off:
                specs[mode] = MetricSpec(disabled=True)
                continue
            specs[mode] = MetricSpec(overrides=tuple(
                MetricOverride(name, bool(o.disabled), tuple(o.tags[t] for t in sorted(o.tags)))
                for name, o in sorted(sides.get(mode, {}).items())))
        result[provider] = MetricsConfig(specs[CLIENT], specs[SERVER], intervals.get(provider))
    return result
