"""The sidecar generator with shared caches: the same resources as
`translate.sidecar.sidecar_resources`, but each outbound cluster, load assignment and route
configuration is built once for every proxy and snapshot whose inputs are the same.

What a proxy's outbound side depends on, besides its scope (namespace, Sidecar), is its
locality and only those of its labels that some configuration compares: the keys of
`sourceLabels`, of a `workloadSelector`'s `matchLabels` and of `failoverPriority`. Distinct
workloads of one namespace that no such rule tells apart share one outbound side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf.message import Message

from heddle.model.destination_rules import destination_rule
from heddle.model.proxy import Proxy
from heddle.model.scope import NETWORKING, ProxyScope, proxy_scope
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.clusters import (
    client_locality,
    is_eds,
    load_assignment,
    outbound_cluster_resource,
    outbound_targets,
)
from heddle.translate.egress import passthrough_cluster
from heddle.translate.envoy_filters import apply_envoy_filters
from heddle.translate.gateway import gateway_config
from heddle.translate.listeners import OUTBOUND_ROUTE, inbound_clusters, sidecar_listeners
from heddle.translate.mtls import namespace_mtls_mode, workload_mtls_mode
from heddle.translate.routes import proxy_route_config
from heddle.translate.sidecar import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyResources
from heddle.translate.tracing import apply_tracing
from heddle.xds.cache import (
    BuildCache,
    ClusterKey,
    EndpointKey,
    Fingerprints,
    Labels,
    OutboundKey,
    RouteKey,
    digest,
)

Outbound = tuple[list[cluster_pb2.Cluster], list[endpoint_pb2.ClusterLoadAssignment]]
SECURITY = "security.istio.io"
log = logging.getLogger(__name__)


def _label_keys(value: Any, found: set[str]) -> None:
    """Every label key that a sourceLabels, matchLabels or failoverPriority names."""
    if isinstance(value, dict) or hasattr(value, "items"):
        for key, item in value.items():
            if key in ("sourceLabels", "matchLabels") and hasattr(item, "keys"):
                found.update(str(k) for k in item)
            elif key == "failoverPriority" and isinstance(item, list):
                found.update(str(entry).partition("=")[0] for entry in item)
            else:
                _label_keys(item, found)
    elif isinstance(value, list | tuple):
        for item in value:
            _label_keys(item, found)


def compared_label_keys(snapshot: MeshSnapshot) -> frozenset[str]:
    """The client label keys any VirtualService or DestinationRule compares."""
    def compute() -> frozenset[str]:
        found: set[str] = set()
        for kind in ("VirtualService", "DestinationRule"):
            for resource in snapshot.of_kind(NETWORKING, kind):
                _label_keys(resource.body, found)
        return frozenset(found)
    return snapshot.memo("compared_label_keys", compute)


def projected_labels(snapshot: MeshSnapshot, proxy: Proxy) -> Labels:
    keys = compared_label_keys(snapshot)
    return tuple((k, v) for k, v in proxy.labels if k in keys)


class CachedSidecarGenerator:
    """A Generator for XdsServer: (snapshot, proxy) -> ProxyResources, through the caches."""

    def __init__(self) -> None:
        self.clusters: BuildCache[cluster_pb2.Cluster] = BuildCache()
        self.endpoints: BuildCache[endpoint_pb2.ClusterLoadAssignment] = BuildCache()
        self.routes: BuildCache[route_pb2.RouteConfiguration] = BuildCache()
        self.outbound: BuildCache[Outbound] = BuildCache()
        self.fingerprints = Fingerprints()
        self._snapshot: MeshSnapshot | None = None
        self._rule_digests: dict[int, tuple[object, str]] = {}
        self._skipped: dict[str, tuple[str, ...]] = {}  # EnvoyFilters skipped, per proxy

    def _begin(self, snapshot: MeshSnapshot) -> None:
        if self._snapshot is not snapshot and (self._snapshot is None
                                               or self._snapshot.version != snapshot.version):
            self._snapshot = snapshot
            self._rule_digests = {}
            self.fingerprints.keep_only(snapshot.resources())

    def sweep(self, wanted: Callable[[Message], bool]) -> None:
        """After a push: forget every built message that `wanted` says no configuration
        holds (an outbound side goes once any of its messages does)."""
        for cache in (self.clusters, self.endpoints, self.routes):
            cache.sweep(wanted)
        self.outbound.sweep(lambda side: all(wanted(m) for part in side for m in part))

    def stats(self) -> dict[str, dict[str, int]]:
        return {name: {"entries": len(c), "hits": c.hits, "misses": c.misses}
                for name, c in (("clusters", self.clusters), ("endpoints", self.endpoints),
                                ("routes", self.routes), ("outbound", self.outbound))}

    def __call__(self, snapshot: MeshSnapshot, proxy: Proxy) -> ProxyResources:
        self._begin(snapshot)
        scope = proxy_scope(snapshot, proxy)
        outbound = scope.snapshot
        labels = projected_labels(snapshot, proxy)
        locality = client_locality(snapshot, proxy)
        # The proxy as the outbound side sees it: only the labels some rule compares.
        client = replace(proxy, labels=labels)
        clusters, endpoints = outbound.memo(
            ("cached_outbound", labels, locality),
            lambda: self.outbound.get(
                self._outbound_key(snapshot, outbound, client.namespace, labels, locality),
                lambda: self._outbound(snapshot, outbound, client, labels, locality)))
        routes = outbound.memo(("cached_routes", labels),
                               lambda: self._routes(snapshot, scope, client, labels))
        passthrough = snapshot.memo("passthrough_cluster", passthrough_cluster)
        every = [*clusters, passthrough, *inbound_clusters(snapshot, proxy)]
        # Tracing and EnvoyFilters patch copies: the cached messages stay every proxy's.
        traced, untraced = apply_tracing(snapshot, proxy, ProxyResources({
            CLUSTER: {c.name: c for c in every},
            ENDPOINT: {e.cluster_name: e for e in endpoints},
            LISTENER: {listener.name: listener
                       for listener in sidecar_listeners(snapshot, proxy)},
            ROUTE: {OUTBOUND_ROUTE: routes},
        }))
        resources, skipped = apply_envoy_filters(snapshot, proxy, traced)
        skipped = [*untraced, *skipped]
        said = self._skipped.get(proxy.id, ())
        for problem in skipped:
            if problem not in said:
                log.error("sidecar %s.%s: %s", proxy.name, proxy.namespace, problem)
        self._skipped[proxy.id] = tuple(skipped)
        return resources

    def _mesh(self, snapshot: MeshSnapshot) -> str:
        return snapshot.memo("mesh_config_digest", lambda: digest(repr(snapshot.mesh_config)))

    def _rule_digest(self, rule: object) -> str:
        held = self._rule_digests.get(id(rule))
        if held is None or held[0] is not rule:
            held = (rule, digest(repr(rule)))
            self._rule_digests[id(rule)] = held
        return held[1]

    def _secrets(self, snapshot: MeshSnapshot) -> str:
        return snapshot.memo("secrets_digest", lambda: digest(
            [self.fingerprints.keyed(list(snapshot.of_kind("", "Secret")))]))

    def _outbound_key(self, snapshot: MeshSnapshot, outbound: MeshSnapshot, namespace: str,
                      labels: Labels, locality: str) -> OutboundKey:
        return OutboundKey(
            services=outbound.registry.services, workloads=outbound.registry.workloads,
            destination_rules=self.fingerprints.keyed(
                list(outbound.of_kind(NETWORKING, "DestinationRule"))),
            peer_authentications=self.fingerprints.keyed(
                list(snapshot.of_kind(SECURITY, "PeerAuthentication"))),
            secrets=self._secrets(snapshot), mesh_config=self._mesh(snapshot),
            client_namespace=namespace, client_labels=labels, client_locality=locality)

    def _outbound(self, snapshot: MeshSnapshot, outbound: MeshSnapshot, client: Proxy,
                  labels: Labels, locality: str) -> Outbound:
        mesh = self._mesh(snapshot)
        clusters: list[cluster_pb2.Cluster] = []
        endpoints: list[endpoint_pb2.ClusterLoadAssignment] = []
        for target in outbound_targets(outbound, client):
            service = target.service
            rule = destination_rule(outbound, service.hostname, service.namespace,
                                    client.namespace, dict(labels))
            rule_text = repr(rule)
            rule_digest = self._rule_digest(rule) if rule is not None else ""
            key = ClusterKey(
                service=service, port=target.port, subset=target.subset,
                subset_labels=target.subset_labels, destination_rule=rule_digest,
                client_locality=locality,
                workloads=outbound.registry.workloads_of(service),
                namespace_mtls_mode=namespace_mtls_mode(outbound, service.namespace),
                secrets=self._secrets(snapshot) if "credentialName" in rule_text else "",
                mesh_config=mesh)
            cluster = self.clusters.get(key, partial(outbound_cluster_resource, target,
                                                     outbound, client))
            clusters.append(cluster)
            if not is_eds(cluster):
                continue
            found = outbound.registry.endpoints(service, target.port, dict(target.subset_labels))
            endpoint_key = EndpointKey(
                service=service, port=target.port, subset=target.subset,
                subset_labels=target.subset_labels,
                endpoints=tuple((e, e.workload) for e in found),
                endpoint_mtls_modes=tuple(
                    workload_mtls_mode(outbound, e.workload.namespace, e.workload.labels,
                                       e.port) for e in found),
                destination_rule=rule_digest, client_locality=locality,
                client_labels=labels, mesh_config=mesh)
            endpoints.append(self.endpoints.get(
                endpoint_key, partial(load_assignment, outbound, target, client)))
        return clusters, endpoints

    def _routes(self, snapshot: MeshSnapshot, scope: ProxyScope, client: Proxy,
                labels: Labels) -> route_pb2.RouteConfiguration:
        outbound = scope.snapshot
        # Delegates have no hosts, so no scope keeps them; the routes read them by name.
        delegates = [vs for vs in snapshot.of_kind(NETWORKING, "VirtualService")
                     if not (vs.body.get("spec") or {}).get("hosts")]
        key = RouteKey(
            name=OUTBOUND_ROUTE, client_namespace=client.namespace, client_labels=labels,
            outbound_traffic_mode=scope.outbound_traffic_mode,
            services=outbound.registry.services,
            virtual_services=self.fingerprints.keyed(
                [*outbound.of_kind(NETWORKING, "VirtualService"), *delegates]),
            destination_rules=self.fingerprints.keyed(
                list(outbound.of_kind(NETWORKING, "DestinationRule"))),
            mesh_config=self._mesh(snapshot))
        return self.routes.get(key, lambda: proxy_route_config(
            outbound, OUTBOUND_ROUTE, client, scope.outbound_traffic_mode))



class GatewayGenerator:
    """A Generator for routers (gateway proxies): translate.gateway's resources, with what
    the configuration gets wrong there (a conflicting server, a credentialName without a
    usable Secret) logged for people once, when it appears."""

    def __init__(self, problems_log: logging.Logger | None = None) -> None:
        self._log = problems_log or logging.getLogger(__name__)
        self._said: dict[str, tuple[str, ...]] = {}

    def __call__(self, snapshot: MeshSnapshot, proxy: Proxy) -> ProxyResources:
        config = gateway_config(snapshot, proxy)
        problems = tuple(config.problems)
        said = self._said.get(proxy.id, ())
        for problem in problems:
            if problem not in said:
                self._log.error("gateway %s.%s: %s", proxy.name, proxy.namespace, problem)
        self._said[proxy.id] = problems
        return config.resources
