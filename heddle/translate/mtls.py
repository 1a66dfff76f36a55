"""Mutual TLS between sidecars: ISTIO_MUTUAL upstream contexts, inbound contexts, SDS names,
and PeerAuthentication's mode for a workload port with Istio's precedence.

Certificates never appear in translated config: both sides name the agent's SDS secrets
(`default`, the workload certificate; `ROOTCA`, the trust bundle).
"""

from __future__ import annotations

import ipaddress

from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.extensions.transport_sockets.raw_buffer.v3 import raw_buffer_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, struct_pb2
from google.protobuf.message import Message

from heddle.api.models import PeerAuthenticationSpec
from heddle.api.specs import spec_of
from heddle.model.proxy import Proxy
from heddle.model.selectors import matches
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Workload

SDS_CLUSTER = "sds-grpc"
WORKLOAD_SECRET = "default"
ROOT_SECRET = "ROOTCA"
ROOT_NAMESPACE = "istio-system"
TRUST_DOMAIN = "cluster.local"
TLS_MODE_LABEL = "security.istio.io/tlsMode"
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"

STRICT, PERMISSIVE, DISABLE = "STRICT", "PERMISSIVE", "DISABLE"


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def has_sidecar(workload: Workload) -> bool:
    """Istio marks sidecar-injected workloads `security.istio.io/tlsMode: istio`; Heddle's
    local runtime runs a sidecar beside every WorkloadEntry on a loopback address."""
    mode = workload.label_map.get(TLS_MODE_LABEL)
    if mode is not None:
        return mode == "istio"
    try:
        return ipaddress.ip_address(workload.address).is_loopback
    except ValueError:
        return False


def tls_mode_metadata() -> base_pb2.Metadata:
    metadata = base_pb2.Metadata()
    metadata.filter_metadata[TRANSPORT_SOCKET_MATCH].update({"tlsMode": "istio"})
    return metadata


def spiffe_id(namespace: str, service_account: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


def _sds(name: str) -> secret_pb2.SdsSecretConfig:
    return secret_pb2.SdsSecretConfig(name=name, sds_config=config_source_pb2.ConfigSource(
        api_config_source=config_source_pb2.ApiConfigSource(
            api_type=config_source_pb2.ApiConfigSource.GRPC,
            transport_api_version=config_source_pb2.V3,
            grpc_services=[grpc_service_pb2.GrpcService(
                envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER))]),
        resource_api_version=config_source_pb2.V3))


def sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    """A secret the proxy fetches from its agent over SDS by name."""
    return _sds(name)


def _common(sans: list[str], san_prefix: str = "") -> tls_pb2.CommonTlsContext:
    validation = common_pb2.CertificateValidationContext()
    for san in sans:
        validation.match_typed_subject_alt_names.add(
            san_type=common_pb2.SubjectAltNameMatcher.URI,
            matcher=string_pb2.StringMatcher(exact=san))
    if san_prefix:
        validation.match_typed_subject_alt_names.add(
            san_type=common_pb2.SubjectAltNameMatcher.URI,
            matcher=string_pb2.StringMatcher(prefix=san_prefix))
    return tls_pb2.CommonTlsContext(
        tls_certificate_sds_secret_configs=[_sds(WORKLOAD_SECRET)],
        combined_validation_context=tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
            default_validation_context=validation,
            validation_context_sds_secret_config=_sds(ROOT_SECRET)),
    )


def istio_mutual_socket(sans: list[str], sni: str) -> base_pb2.TransportSocket:
    """The client side: present the workload certificate, accept only the expected peers."""
    context = tls_pb2.UpstreamTlsContext(common_tls_context=_common(sans), sni=sni)
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls",
                                    typed_config=_pack(context))


def plaintext_socket() -> base_pb2.TransportSocket:
    return base_pb2.TransportSocket(name="envoy.transport_sockets.raw_buffer",
                                    typed_config=_pack(raw_buffer_pb2.RawBuffer()))


def inbound_mutual_socket() -> base_pb2.TransportSocket:
    """The server side: require a client certificate from this trust domain."""
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=_common([], san_prefix=f"spiffe://{TRUST_DOMAIN}/"))
    context.require_client_certificate.value = True
    return base_pb2.TransportSocket(name="envoy.transport_sockets.tls",
                                    typed_config=_pack(context))


def tls_mode_match() -> struct_pb2.Struct:
    match = struct_pb2.Struct()
    match.update({"tlsMode": "istio"})
    return match


def _mode_of(spec: PeerAuthenticationSpec, port: int | None) -> str:
    """The mode a policy sets (on `port`, else for the workload); "" where it leaves it UNSET."""
    if port is not None:
        port_level = (spec.portLevelMtls or {}).get(str(port))
        if port_level and port_level.mode and port_level.mode != "UNSET":
            return port_level.mode.value
    mode = spec.mtls.mode if spec.mtls else None
    return mode.value if mode and mode != "UNSET" else ""


def workload_mtls_mode(snapshot: MeshSnapshot, namespace: str,
                       labels: tuple[tuple[str, str], ...], port: int) -> str:
    """The mode a workload (its namespace and labels) accepts on its port `port`, with
    Istio's precedence: workload (port level, then workload) over namespace over mesh (the
    root namespace); UNSET inherits; with nothing set the mode is PERMISSIVE. Where several
    policies apply at one level, the first by name wins (Istio: the oldest)."""
    key = ("mtls_mode", namespace, tuple(sorted(labels)), port)
    return snapshot.memo(key, lambda: _workload_mode(snapshot, namespace, dict(labels), port))


def namespace_mtls_mode(snapshot: MeshSnapshot, namespace: str) -> str:
    """The mode of the namespace's (else the mesh's) PeerAuthentication without a selector:
    what Istio's BestEffortInferServiceMTLSMode knows about a service before its workloads."""
    return _mode_from(((_unselected(snapshot, ROOT_NAMESPACE), None),
                       (_unselected(snapshot, namespace), None)))


def peer_authentication_mode(snapshot: MeshSnapshot, proxy: Proxy, port: int) -> str:
    """The mode the workload behind `proxy` accepts on its port `port`."""
    return workload_mtls_mode(snapshot, proxy.namespace, proxy.labels, port)


_PEER_AUTHENTICATION = ("security.istio.io", "PeerAuthentication")


def _policies(snapshot: MeshSnapshot, namespace: str) -> list[PeerAuthenticationSpec]:
    return [spec_of(r, PeerAuthenticationSpec)
            for r in snapshot.of_kind(*_PEER_AUTHENTICATION, namespace)]


def _match_labels(spec: PeerAuthenticationSpec) -> dict[str, str]:
    return dict(spec.selector.matchLabels or {}) if spec.selector else {}


def _unselected(snapshot: MeshSnapshot, namespace: str) -> list[PeerAuthenticationSpec]:
    return [spec for spec in _policies(snapshot, namespace) if not _match_labels(spec)]


def _workload_mode(snapshot: MeshSnapshot, namespace: str, labels: dict[str, str],
                   port: int) -> str:
    selected = [spec for spec in _policies(snapshot, namespace)
                if (sel := _match_labels(spec)) and matches(sel, labels)]
    return _mode_from(((_unselected(snapshot, ROOT_NAMESPACE), None),
                       (_unselected(snapshot, namespace), None), (selected, port)))


def _mode_from(levels: tuple[tuple[list[PeerAuthenticationSpec], int | None], ...]) -> str:
    """From the widest level to the narrowest: each level's first policy that sets a mode
    replaces what the wider levels said."""
    mode = PERMISSIVE
    for policies, port in levels:
        if policies:
            mode = _mode_of(policies[0], port) or mode
    return mode
