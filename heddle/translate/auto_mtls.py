"""Auto-mTLS: whether a client sidecar speaks mTLS or plaintext to a destination, decided as
Istio decides it, per cluster and then per endpoint.

An auto-mTLS cluster carries two transport sockets, mTLS for endpoints with the
`tlsMode: istio` metadata and plaintext for the rest (`clusters._apply_tls`). Which
endpoints get that metadata is where PeerAuthentication reaches the client: an endpoint's
workload that accepts only plaintext on its port (DISABLE, at any level down to
`portLevelMtls`) is sent without it, so the client never opens a TLS handshake that the
server's plaintext-only listener would reset (Istio's EDS `mtlsChecker`).
"""

from __future__ import annotations

from heddle.model.snapshot import MeshSnapshot
from heddle.registry.model import Endpoint, Service
from heddle.translate.mtls import DISABLE, has_sidecar, namespace_mtls_mode, workload_mtls_mode

ISTIO_MUTUAL = "ISTIO_MUTUAL"


def service_may_use_mtls(snapshot: MeshSnapshot, service: Service) -> bool:
    """Istio's BestEffortInferServiceMTLSMode for a cluster without a DestinationRule TLS
    mode: only the namespace's (else the mesh's) PeerAuthentication is known per service;
    when it disables mTLS the cluster is plaintext and offers no mTLS at all."""
    return namespace_mtls_mode(snapshot, service.namespace) != DISABLE


def endpoint_uses_mtls(snapshot: MeshSnapshot, endpoint: Endpoint, rule_tls_mode: str) -> bool:
    """Whether the endpoint is marked `tlsMode: istio`. A DestinationRule that sets a TLS
    mode for the cluster decides alone (mTLS only for ISTIO_MUTUAL); otherwise the endpoint
    needs a sidecar and its workload must not DISABLE mTLS on the endpoint's port (the port
    the workload listens on, which is what `portLevelMtls` keys name)."""
    if rule_tls_mode:
        return rule_tls_mode == ISTIO_MUTUAL
    workload = endpoint.workload
    if not has_sidecar(workload):
        return False
    return workload_mtls_mode(snapshot, workload.namespace, workload.labels,
                              endpoint.port) != DISABLE
