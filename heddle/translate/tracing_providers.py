"""Tracing extension providers of the mesh config as Envoy tracers: `opentelemetry` as
`envoy.tracers.opentelemetry` (OTLP over gRPC, or over HTTP when `http` is set) and
`zipkin` as `envoy.tracers.zipkin` (Zipkin v2 JSON), each with the cluster its spans go to.

The provider's `service` names the collector as Istio's LookupCluster reads it: HOST, or
NAMESPACE/HOST where the host is in several namespaces, of a registry service (a
ServiceEntry, a v1 Service). Heddle also takes a literal IP address (a collector on a
loopback address outside the registry). Unlike Istio, which reuses the proxy's outbound
cluster for the host, the tracer gets a cluster of its own, `tracing|PORT||HOST`: plaintext
to the collector's endpoints, HTTP/2 for OTLP gRPC, present whatever the proxy's Sidecar
scope lets it reach, and untouched by DestinationRules meant for application traffic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import (
    address_pb2,
    base_pb2,
    grpc_service_pb2,
    http_service_pb2,
    http_uri_pb2,
)
from envoy.config.trace.v3 import http_tracer_pb2, opentelemetry_pb2, zipkin_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message

from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Resolution
from heddle.translate.clusters import CONNECT_TIMEOUT, is_ip_address

OPENTELEMETRY = "envoy.tracers.opentelemetry"
ZIPKIN = "envoy.tracers.zipkin"
ZIPKIN_PATH = "/api/v2/spans"  # Istio's default: Zipkin v2, JSON
ZIPKIN_TIMEOUT = "5s"
HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


class ProviderProblem(ValueError):
    """A tracing provider Heddle cannot configure; tracing stays off where it is chosen."""


@dataclass(frozen=True)
class Tracer:
    """An Envoy tracer, the cluster it reports to, and what the connection manager needs
    to know of it."""

    provider: http_tracer_pb2.Tracing.Http
    cluster: cluster_pb2.Cluster
    max_tag_length: int  # 0: Envoy's default


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def tracing_cluster_name(host: str, port: int) -> str:
    return f"tracing|{port}||{host}"


def _collector(snapshot: MeshSnapshot, service: str, port: int, name: str,
               ) -> tuple[str, list[tuple[str, int]], bool]:
    """(host, addresses, DNS?) of the collector `service` names, as Istio looks it up."""
    if is_ip_address(service):
        return service, [(service, port)], False
    namespace, _, host = service.rpartition("/")
    found = [s for s in snapshot.registry.services
             if s.hostname == host and (not namespace or s.namespace == namespace)]
    namespaces = sorted({s.namespace for s in found})
    if len(namespaces) > 1:
        raise ProviderProblem(
            f"extension provider {name!r}: service {service!r} is in namespaces "
            f"{', '.join(namespaces)}; write it as NAMESPACE/{host}")
    if not found:
        raise ProviderProblem(
            f"extension provider {name!r}: service {service!r} is not in the registry; "
            "declare it (a ServiceEntry for the collector) or name a literal IP address")
    target = found[0]
    declared = target.port(port)
    if declared is None:
        raise ProviderProblem(
            f"extension provider {name!r}: service {host} has no port {port} (it has "
            f"{', '.join(str(p.number) for p in target.ports) or 'none'})")
    if target.resolution in (Resolution.DNS, Resolution.DNS_ROUND_ROBIN) \
            and not snapshot.registry.workloads_of(target):
        return host, [(host, declared.target_port or port)], True
    endpoints = snapshot.registry.endpoints(target, declared)
    return host, [(e.address, e.port) for e in endpoints], not all(
        is_ip_address(e.address) for e in endpoints)


def _cluster(name: str, addresses: list[tuple[str, int]], dns: bool,
             http2: bool) -> cluster_pb2.Cluster:
    cluster = cluster_pb2.Cluster(
        name=name, connect_timeout=CONNECT_TIMEOUT,
        type=cluster_pb2.Cluster.STRICT_DNS if dns else cluster_pb2.Cluster.STATIC)
    cluster.load_assignment.cluster_name = name
    if addresses:
        group = cluster.load_assignment.endpoints.add()
        for address, port in addresses:
            group.lb_endpoints.add().endpoint.address.CopyFrom(address_pb2.Address(
                socket_address=address_pb2.SocketAddress(address=address, port_value=port)))
    if http2:
        options = http_protocol_options_pb2.HttpProtocolOptions()
        options.explicit_http_config.http2_protocol_options.SetInParent()
        cluster.typed_extension_protocol_options[HTTP_OPTIONS].Pack(options)
    return cluster


def _duration(value: object, field: str, name: str) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    try:
        duration.FromJsonString(str(value))
    except ValueError as err:
        raise ProviderProblem(f"extension provider {name!r}: {field} {value!r} is not a "
                              "duration like 5s or 250ms") from err
    return duration


def _headers(values: object) -> list[tuple[str, str]]:
    """Istio's provider headers: `[{name, value}]` (a value from `envName` is the control
    plane's environment in Istio; Heddle leaves such headers out rather than guess)."""
    found = []
    for header in values if isinstance(values, list) else []:
        if isinstance(header, dict) and header.get("name") and "value" in header:
            found.append((str(header["name"]), str(header["value"])))
    return found


def _port(settings: Mapping[str, Any], name: str) -> int:
    port = settings.get("port")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ProviderProblem(f"extension provider {name!r}: port must be a port number, "
                              f"not {port!r}")
    if not settings.get("service"):
        raise ProviderProblem(f"extension provider {name!r}: service is required (the "
                              "collector's host)")
    return port


def _opentelemetry(snapshot: MeshSnapshot, name: str, settings: Mapping[str, Any],
                   service_name: str) -> Tracer:
    port = _port(settings, name)
    http = settings.get("http")
    host, addresses, dns = _collector(snapshot, str(settings["service"]), port, name)
    cluster = tracing_cluster_name(host, port)
    config = opentelemetry_pb2.OpenTelemetryConfig(service_name=service_name)
    if isinstance(http, dict):  # OTLP over HTTP
        path = str(http.get("path") or "/v1/traces")
        uri = http_uri_pb2.HttpUri(uri=f"http://{host}:{port}/{path.lstrip('/')}",
                                   cluster=cluster)
        uri.timeout.CopyFrom(_duration(http.get("timeout") or "5s", "http.timeout", name))
        config.http_service.CopyFrom(http_service_pb2.HttpService(http_uri=uri))
        for key, value in _headers(http.get("headers")):
            config.http_service.request_headers_to_add.add(
                header=base_pb2.HeaderValue(key=key, value=value),
                append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)
    else:  # OTLP over gRPC, Istio's default
        given = settings.get("grpc")
        grpc: Mapping[str, Any] = given if isinstance(given, dict) else {}
        service = grpc_service_pb2.GrpcService(envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(
            cluster_name=cluster, authority=host))
        if grpc.get("timeout"):
            service.timeout.CopyFrom(_duration(grpc["timeout"], "grpc.timeout", name))
        for key, value in _headers(grpc.get("initialMetadata")):
            service.initial_metadata.add(key=key, value=value)
        config.grpc_service.CopyFrom(service)
    return Tracer(http_tracer_pb2.Tracing.Http(name=OPENTELEMETRY, typed_config=_pack(config)),
                  _cluster(cluster, addresses, dns, http2=not isinstance(http, dict)),
                  int(settings.get("maxTagLength") or 0))


def _zipkin(snapshot: MeshSnapshot, name: str, settings: Mapping[str, Any]) -> Tracer:
    port = _port(settings, name)
    host, addresses, dns = _collector(snapshot, str(settings["service"]), port, name)
    cluster = tracing_cluster_name(host, port)
    path = str(settings.get("path") or ZIPKIN_PATH)
    config = zipkin_pb2.ZipkinConfig(
        collector_endpoint_version=zipkin_pb2.ZipkinConfig.HTTP_JSON,
        # Istio's 128-bit trace ids unless `enable64bitTraceId`; spans of one hop, not shared.
        trace_id_128bit=not bool(settings.get("enable64bitTraceId")))
    config.shared_span_context.value = False
    option = str(settings.get("traceContextOption") or "USE_B3")
    if option not in ("USE_B3", "USE_B3_WITH_W3C_PROPAGATION"):
        raise ProviderProblem(f"extension provider {name!r}: traceContextOption {option!r} "
                              "is not USE_B3 or USE_B3_WITH_W3C_PROPAGATION")
    config.trace_context_option = zipkin_pb2.ZipkinConfig.TraceContextOption.Value(option)
    uri = http_uri_pb2.HttpUri(uri=f"http://{host}{path}", cluster=cluster)
    uri.timeout.CopyFrom(_duration(settings.get("timeout") or ZIPKIN_TIMEOUT, "timeout", name))
    config.collector_service.CopyFrom(http_service_pb2.HttpService(http_uri=uri))
    for key, value in _headers(settings.get("headers")):
        config.collector_service.request_headers_to_add.add(
            header=base_pb2.HeaderValue(key=key, value=value),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)
    return Tracer(http_tracer_pb2.Tracing.Http(name=ZIPKIN, typed_config=_pack(config)),
                  _cluster(cluster, addresses, dns, http2=False),
                  int(settings.get("maxTagLength") or 0))


def tracer(snapshot: MeshSnapshot, provider: Mapping[str, Any], service_name: str) -> Tracer:
    """The Envoy tracer for an extension provider; `service_name`: how spans name the
    proxy that reports them (OpenTelemetry's `service.name`; Zipkin takes the node's
    cluster, which the agent's bootstrap sets to the same)."""
    name = str(provider.get("name", ""))
    if isinstance(provider.get("opentelemetry"), dict):
        return _opentelemetry(snapshot, name, provider["opentelemetry"], service_name)
    if isinstance(provider.get("zipkin"), dict):
        return _zipkin(snapshot, name, provider["zipkin"])
    kinds = sorted(k for k in provider if k != "name")
    raise ProviderProblem(f"extension provider {name!r} ({', '.join(kinds) or 'empty'}) is "
                          "no tracing provider Heddle supports: use opentelemetry or zipkin")
