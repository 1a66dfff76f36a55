"""Who a workload is, in the words of Istio's metric labels: its workload name, namespace,
app, version, canonical service and revision, cluster and principal.

Istio's proxies learn the other side from a metadata exchange their own build adds to
Envoy. Stock Envoy cannot, so each side learns its peer another way:

- the server side learns the client from request headers the client's sidecar adds
  (`PEER_HEADERS`), trusted only on a mutual-TLS chain and removed before the application;
  over TCP (no headers) from the client certificate's SAN, matched against the workloads
  the control plane knows (see exchange.py);
- the client side learns the server from the endpoint it picked: the control plane puts
  each endpoint's labels in its EDS metadata (`endpoint_metadata`) and each cluster's
  service in CDS metadata (`cluster_metadata`).
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.core.v3 import base_pb2

from heddle.model.proxy import Proxy
from heddle.registry.model import Service, Workload
from heddle.translate.mtls import spiffe_id

UNKNOWN = "unknown"  # Istio's value for a label it cannot know
CLUSTER_ID = "Kubernetes"  # Istio's default cluster name (`values.global.multiCluster.clusterName`)
# Where the control plane leaves peers' labels for the stats loggers to read (an identifier,
# so that CEL can select it as a field).
METADATA_NAMESPACE = "heddle_peer"

# Istio's precedence for the canonical service and revision labels.
_CANONICAL_NAME = ("service.istio.io/canonical-name", "app.kubernetes.io/name", "app")
_CANONICAL_REVISION = ("service.istio.io/canonical-revision", "app.kubernetes.io/version",
                       "version")
_APP = ("app", "app.kubernetes.io/name")
_VERSION = ("version", "app.kubernetes.io/version")


def _first(labels: dict[str, str], keys: tuple[str, ...], default: str) -> str:
    return next((labels[k] for k in keys if labels.get(k)), default)


@dataclass(frozen=True)
class PeerLabels:
    """One side of a call, as its labels name it ("source_" or "destination_" + field)."""

    workload: str
    workload_namespace: str
    app: str
    version: str
    canonical_service: str
    canonical_revision: str
    cluster: str
    principal: str

    @classmethod
    def of(cls, name: str, namespace: str, labels: dict[str, str],
           service_account: str) -> PeerLabels:
        return cls(workload=name, workload_namespace=namespace,
                   app=_first(labels, _APP, UNKNOWN), version=_first(labels, _VERSION, UNKNOWN),
                   canonical_service=_first(labels, _CANONICAL_NAME, name),
                   canonical_revision=_first(labels, _CANONICAL_REVISION, "latest"),
                   cluster=CLUSTER_ID, principal=spiffe_id(namespace, service_account))

    @classmethod
    def of_proxy(cls, proxy: Proxy) -> PeerLabels:
        return cls.of(proxy.name, proxy.namespace, proxy.label_map, proxy.service_account)

    @classmethod
    def of_workload(cls, workload: Workload) -> PeerLabels:
        return cls.of(workload.name, workload.namespace, workload.label_map,
                      workload.service_account)

    def fields(self) -> dict[str, str]:
        return {"workload": self.workload, "workload_namespace": self.workload_namespace,
                "app": self.app, "version": self.version,
                "canonical_service": self.canonical_service,
                "canonical_revision": self.canonical_revision, "cluster": self.cluster}


# What the client's sidecar tells the server's (all but the principal, which the server
# reads from the client certificate): field -> header.
PEER_HEADERS: dict[str, str] = {
    field: "x-heddle-peer-" + field.replace("_", "-")
    for field in ("workload", "workload_namespace", "app", "version", "canonical_service",
                  "canonical_revision", "cluster")}


def endpoint_metadata(workload: Workload, principal: bool) -> base_pb2.Metadata:
    """An endpoint's labels for the client's stats loggers. `principal`: whether the client
    reaches it over mutual TLS (its SPIFFE id is then what the client verified)."""
    peer = PeerLabels.of_workload(workload)
    metadata = base_pb2.Metadata()
    metadata.filter_metadata[METADATA_NAMESPACE].update(
        {**peer.fields(), "principal": peer.principal if principal else UNKNOWN})
    return metadata


def add_cluster_metadata(metadata: base_pb2.Metadata, service: Service) -> None:
    """A cluster's service for the client's stats loggers (destination_service*)."""
    metadata.filter_metadata[METADATA_NAMESPACE].update({
        "service": service.hostname, "service_name": service_name(service),
        "service_namespace": service.namespace})


def service_name(service: Service) -> str:
    """Istio's destination_service_name: the short name of a Kubernetes-style host, the
    ServiceEntry's host otherwise."""
    suffix = f".{service.namespace}.svc.cluster.local"
    return service.hostname.removesuffix(suffix) if service.hostname.endswith(suffix) \
        else service.hostname
