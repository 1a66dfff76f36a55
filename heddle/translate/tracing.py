"""Tracing on every HTTP connection manager of a proxy, as istiod sets it.

Which provider, sampling percentage and custom tags apply comes from the Telemetry API
(`heddle.model.telemetry.tracing`: Telemetry resources over the mesh config's
`defaultProviders.tracing`), one spec for the client side (a sidecar's outbound listener, a
gateway) and one for the server side (a sidecar's inbound listeners); what a spec leaves
unset comes from the mesh config's `defaultConfig.tracing` (sampling, custom tags, path tag
length). With no provider chosen, a proxy has no tracer (Heddle's bootstrap configures none,
so Istio's legacy bootstrap tracer has no equivalent) and trace headers pass through it
untouched.

On the connection manager: the provider's tracer, random sampling (client and overall
sampling 100 %, as Istio), Istio's tags (`istio.canonical_service`, `istio.namespace`, ...,
and the dry-run policy results) with the custom tags, sorted by name, the path tag length,
and on gateways `spawn_upstream_span` (a child span per upstream request). Listeners get
their traffic direction (spans of the outbound side are clients, of the inbound side
servers) and routes a decorator naming the span, `HOST:PORT/PATH*`, as Istio names them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from envoy.extensions.request_id.uuid.v3 import uuid_pb2
from envoy.type.tracing.v3 import custom_tag_pb2

from heddle.api.models._generated.telemetry_telemetry import TelemetrySpecTracingItemCustomTags
from heddle.model import telemetry
from heddle.model.mesh_tracing import CustomTag, TagKind
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.serving import served
from heddle.model.snapshot import MeshSnapshot
from heddle.model.telemetry import TracingConfig, TracingSpec
from heddle.translate.listeners import OUTBOUND_LISTENER
from heddle.translate.names import parse_cluster
from heddle.translate.sidecar import CLUSTER, LISTENER, ROUTE, ProxyResources
from heddle.translate.tracing_providers import ProviderProblem, Tracer, tracer

HCM_NAME = "envoy.filters.network.http_connection_manager"
HCM_TYPE = "HttpConnectionManager"
MESH_ID = "cluster.local"  # Istio's mesh id defaults to the trust domain
CLUSTER_ID = "Kubernetes"  # Istio's default cluster id
RBAC = "envoy.filters.http.rbac"
# The dry-run (shadow) AuthorizationPolicy results, as Istio tags every span with them.
DRY_RUN_TAGS = (
    ("istio.authorization.dry_run.allow_policy.name",
     "istio_dry_run_allow_shadow_effective_policy_id"),
    ("istio.authorization.dry_run.allow_policy.result",
     "istio_dry_run_allow_shadow_engine_result"),
    ("istio.authorization.dry_run.deny_policy.name",
     "istio_dry_run_deny_shadow_effective_policy_id"),
    ("istio.authorization.dry_run.deny_policy.result",
     "istio_dry_run_deny_shadow_engine_result"),
)


def resolve_tracing(snapshot: MeshSnapshot, proxy: Proxy) -> TracingConfig | None:
    """The tracing of `proxy`'s two sides (the Telemetry API's, over the mesh config's
    `defaultProviders.tracing`); None when nothing configures tracing for it."""
    return telemetry.tracing(snapshot, proxy)


def _canonical(proxy: Proxy) -> tuple[str, str]:
    """(canonical service, canonical revision), as Istio's injector derives them."""
    labels = proxy.label_map
    service = (labels.get("service.istio.io/canonical-name")
               or labels.get("app.kubernetes.io/name") or labels.get("app") or proxy.name)
    revision = (labels.get("service.istio.io/canonical-revision")
                or labels.get("app.kubernetes.io/version") or labels.get("version")
                or "latest")
    return service, revision


def _literal(name: str, value: str) -> custom_tag_pb2.CustomTag:
    return custom_tag_pb2.CustomTag(tag=name, literal=custom_tag_pb2.CustomTag.Literal(
        value=value))


def _istio_tags(proxy: Proxy) -> list[custom_tag_pb2.CustomTag]:
    service, revision = _canonical(proxy)
    tags = [_literal("istio.canonical_revision", revision),
            _literal("istio.canonical_service", service),
            _literal("istio.mesh_id", MESH_ID),
            _literal("istio.namespace", proxy.namespace),
            _literal("istio.cluster_id", CLUSTER_ID)]
    for name, key in DRY_RUN_TAGS:
        tag = custom_tag_pb2.CustomTag(tag=name)
        tag.metadata.kind.request.SetInParent()
        tag.metadata.metadata_key.key = RBAC
        tag.metadata.metadata_key.path.add(key=key)
        tags.append(tag)
    return tags


def custom_tag(tag: CustomTag) -> custom_tag_pb2.CustomTag:
    """A custom tag of the mesh config's `defaultConfig.tracing.customTags`."""
    if tag.kind is TagKind.LITERAL:
        return _literal(tag.name, tag.value)
    if tag.kind is TagKind.ENVIRONMENT:
        return custom_tag_pb2.CustomTag(tag=tag.name, environment=custom_tag_pb2.CustomTag
                                        .Environment(name=tag.value,
                                                     default_value=tag.default))
    return custom_tag_pb2.CustomTag(tag=tag.name, request_header=custom_tag_pb2.CustomTag
                                    .Header(name=tag.value, default_value=tag.default))


def telemetry_tag(name: str, tag: TelemetrySpecTracingItemCustomTags,
                  ) -> custom_tag_pb2.CustomTag | None:
    """A custom tag of a Telemetry resource (one of literal, environment, header, formatter:
    an Envoy format string such as `%REQ(:PATH)%`)."""
    if tag.literal is not None:
        return _literal(name, tag.literal.value)
    if tag.environment is not None:
        return custom_tag_pb2.CustomTag(tag=name, environment=custom_tag_pb2.CustomTag
                                        .Environment(name=tag.environment.name,
                                                     default_value=tag.environment
                                                     .defaultValue or ""))
    if tag.header is not None:
        return custom_tag_pb2.CustomTag(tag=name, request_header=custom_tag_pb2.CustomTag
                                        .Header(name=tag.header.name,
                                                default_value=tag.header.defaultValue or ""))
    if tag.formatter is not None:
        return custom_tag_pb2.CustomTag(tag=name, value=tag.formatter.value)
    return None


def hcm_tracing(snapshot: MeshSnapshot, proxy: Proxy, spec: TracingSpec, found: Tracer,
                ) -> hcm.HttpConnectionManager.Tracing:
    mesh = snapshot.mesh_config.tracing
    tracing = hcm.HttpConnectionManager.Tracing(provider=found.provider)
    if proxy.type is ProxyType.ROUTER:
        tracing.spawn_upstream_span.value = True  # Istio: gateways start an upstream span
    tracing.client_sampling.value = 100.0
    tracing.overall_sampling.value = 100.0
    # Telemetry's randomSamplingPercentage, else the mesh's defaultConfig.tracing.sampling.
    sampling = spec.random_sampling_percentage
    tracing.random_sampling.value = sampling if sampling is not None else mesh.sampling
    tags = _istio_tags(proxy) if spec.enable_istio_tags else []
    if spec.custom_tags:  # a Telemetry's tags replace the mesh config's
        tags += [t for name, body in spec.custom_tags.items()
                 if (t := telemetry_tag(name, body)) is not None]
    else:
        tags += [custom_tag(t) for t in mesh.custom_tags]
    tracing.custom_tags.extend(sorted(tags, key=lambda t: t.tag))
    length = found.max_tag_length or mesh.max_path_tag_length
    if length:
        tracing.max_path_tag_length.value = length
    return tracing


def request_id(spec: TracingSpec) -> uuid_pb2.UuidRequestIdConfig:
    """Envoy's UUID request ids, as Istio configures them: the sampling decision is packed
    into x-request-id, so each hop of a request that passes it on decides alike."""
    config = uuid_pb2.UuidRequestIdConfig()
    config.use_request_id_for_trace_sampling.value = spec.use_request_id_for_trace_sampling
    return config


def _operation(route: rc.Route, path: str, fallback: str) -> str:
    """Istio's span name for a route: HOST:PORT of its one destination, else `fallback`
    (the virtual host), then the path it matches."""
    cluster = route.route.cluster
    if cluster.startswith("outbound|"):
        _, port, _, host = parse_cluster(cluster)
        return f"{host}:{port}{path}"
    return f"{fallback}{path}"


def _path(match: rc.RouteMatch) -> str:
    kind = match.WhichOneof("path_specifier")
    if kind == "prefix":
        return f"{match.prefix}*"
    if kind == "path":
        return str(match.path)
    if kind == "safe_regex":
        return str(match.safe_regex.regex)
    return "/*"


def decorate(config: route_pb2.RouteConfiguration,
             inbound: Callable[[str], str | None] | None = None) -> None:
    """A decorator on every route that has none. `inbound`: the span name of an inbound
    cluster (`inbound|PORT||`), which names no host."""
    for host in config.virtual_hosts:
        for route in host.routes:
            if route.HasField("decorator"):
                continue
            cluster = route.route.cluster
            if inbound is not None and cluster.startswith("inbound|"):
                operation = inbound(cluster)
                if operation is None:
                    continue
                route.decorator.operation = f"{operation}{_path(route.match)}"
                continue
            route.decorator.operation = _operation(route, _path(route.match), host.name)


def _inbound_operations(snapshot: MeshSnapshot, proxy: Proxy) -> Mapping[str, str]:
    """`inbound|PORT||` -> HOST:PORT of the service that port serves (the first by name)."""
    return {f"inbound|{number}||": f"{pairs[0].service.hostname}:{pairs[0].port.number}"
            for number, pairs in served(snapshot, proxy).items()}


def _managers(listener: listener_pb2.Listener) -> Iterable[tuple[int, int]]:
    """(chain index, -1 for the default chain; filter index) of each connection manager."""
    chains = [*((i, c) for i, c in enumerate(listener.filter_chains))]
    if listener.HasField("default_filter_chain"):
        chains.append((-1, listener.default_filter_chain))
    for i, chain in chains:
        for j, item in enumerate(chain.filters):
            if item.name == HCM_NAME or item.typed_config.type_url.endswith(HCM_TYPE):
                yield i, j


def _with_tracing(snapshot: MeshSnapshot, proxy: Proxy, listener: listener_pb2.Listener,
                  spec: TracingSpec, found: Tracer, outbound: bool,
                  inbound: Callable[[str], str | None]) -> listener_pb2.Listener:
    copy = listener_pb2.Listener()
    copy.CopyFrom(listener)
    copy.traffic_direction = base_pb2.OUTBOUND if outbound else base_pb2.INBOUND
    tracing = hcm_tracing(snapshot, proxy, spec, found)
    for i, j in list(_managers(copy)):
        chain = copy.default_filter_chain if i < 0 else copy.filter_chains[i]
        manager = hcm.HttpConnectionManager()
        chain.filters[j].typed_config.Unpack(manager)
        manager.tracing.CopyFrom(tracing)
        manager.request_id_extension.typed_config.Pack(request_id(spec))
        if manager.HasField("route_config"):
            decorate(manager.route_config, inbound)
        chain.filters[j].typed_config.Pack(manager)
    return copy


def apply_tracing(snapshot: MeshSnapshot, proxy: Proxy, resources: ProxyResources,
                  ) -> tuple[ProxyResources, list[str]]:
    """`resources` with tracing where it applies (copies: the messages given may be shared
    with other proxies), and why a chosen provider could not be configured (tracing stays
    off there)."""
    resolved = resolve_tracing(snapshot, proxy)
    if resolved is None:
        return resources, []
    problems: list[str] = []
    tracers: dict[str, Tracer | None] = {}

    def tracer_for(spec: TracingSpec) -> Tracer | None:
        if spec.disabled or spec.provider is None:
            return None
        if spec.provider not in tracers:
            provider = spec.provider_config
            try:
                if provider is None:
                    raise ProviderProblem(
                        f"tracing provider {spec.provider!r} is not among the mesh config's "
                        "extensionProviders; add it there or name another")
                tracers[spec.provider] = tracer(snapshot, provider, proxy.service_cluster)
            except ProviderProblem as err:
                problems.append(f"{err}; no spans are reported")
                tracers[spec.provider] = None
        return tracers[spec.provider]

    operations = _inbound_operations(snapshot, proxy)
    by_type = {kind: dict(items) for kind, items in resources.by_type.items()}
    listeners = by_type.setdefault(LISTENER, {})
    clusters = by_type.setdefault(CLUSTER, {})
    traced_client = False
    for name, listener in list(listeners.items()):
        assert isinstance(listener, listener_pb2.Listener)
        outbound = proxy.type is ProxyType.ROUTER or name == OUTBOUND_LISTENER
        spec = resolved.client if outbound else resolved.server
        found = tracer_for(spec)
        if found is None or not any(True for _ in _managers(listener)):
            continue
        listeners[name] = _with_tracing(snapshot, proxy, listener, spec, found, outbound,
                                        operations.get)
        clusters.setdefault(found.cluster.name, found.cluster)
        traced_client = traced_client or outbound
    if traced_client:  # the routes of the outbound side (sidecar) or of the gateway's servers
        routes = by_type.setdefault(ROUTE, {})
        for name, config in list(routes.items()):
            assert isinstance(config, route_pb2.RouteConfiguration)
            copy = route_pb2.RouteConfiguration()
            copy.CopyFrom(config)
            decorate(copy)
            routes[name] = copy
    return ProxyResources(by_type), problems

