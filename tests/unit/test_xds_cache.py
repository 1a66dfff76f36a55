"""The cached generator gives exactly what translation gives, and every input of a cache key
invalidates what it shapes (change it, and the resource is built again)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from heddle.api.loader import load_paths, load_text
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.sidecar import CLUSTER, ROUTE, ProxyResources, sidecar_resources
from heddle.xds.generator import CachedSidecarGenerator

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
from sidecar_scope import mesh_text  # noqa: E402


def _bytes(resources: ProxyResources) -> dict[str, dict[str, bytes]]:
    return {t: {n: m.SerializeToString(deterministic=True) for n, m in items.items()}
            for t, items in resources.by_type.items()}


def _proxies(snapshot: MeshSnapshot) -> list[Proxy]:
    return [Proxy(ProxyType.SIDECAR, w.name, w.namespace, w.address, w.address, w.labels,
                  w.service_account) for w in snapshot.registry.workloads]


def _snapshot(text: str, version: int = 1) -> MeshSnapshot:
    result = load_text(text, "mesh.yaml")
    assert result.errors == [], result.errors[:3]
    return MeshSnapshot.build(version, result.resources)


MESHES = {
    "hello": lambda: MeshSnapshot.build(1, load_paths([ROOT / "examples" / "hello"]).resources),
    "bookinfo": lambda: MeshSnapshot.build(
        1, load_paths([ROOT / "examples" / "bookinfo"]).resources),
    "namespaces": lambda: _snapshot(mesh_text(3, 3)),
}


@pytest.mark.parametrize("mesh", sorted(MESHES))
def test_cached_generator_gives_what_translation_gives(mesh: str) -> None:
    snapshot = MESHES[mesh]()
    generator = CachedSidecarGenerator()
    proxies = _proxies(snapshot)
    assert proxies
    for proxy in proxies:
        assert _bytes(generator(snapshot, proxy)) == _bytes(sidecar_resources(snapshot, proxy))


BASE = {
    "service": """apiVersion: v1
kind: Service
metadata: {name: web, namespace: a}
spec:
  selector: {app: web}
  ports: [{name: http, port: 8080}]
""",
    "web": """apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-0, namespace: a}
spec: {address: 10.0.0.1, labels: {app: web, version: v1, security.istio.io/tlsMode: istio},
       serviceAccount: web}
""",
    "client": """apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client-0, namespace: a}
spec: {address: 10.0.0.9, labels: {app: client, track: blue}, locality: r1/z1}
""",
    "rule": """apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: a}
spec:
  host: web
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 10}}
    outlierDetection: {consecutive5xxErrors: 3}
  subsets: [{name: v1, labels: {version: v1}}]
""",
    "route": """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: a}
spec:
  hosts: [web]
  http: [{route: [{destination: {host: web, subset: v1}}]}]
""",
}

CLIENT = Proxy(ProxyType.SIDECAR, "client-0", "a", "10.0.0.9", "10.0.0.9",
               (("app", "client"), ("track", "blue")), "default")

# One change per input of a key: (name, the documents replaced or added, the cache it hits).
VARIANTS: list[tuple[str, dict[str, str], str]] = [
    ("service port (ClusterKey.service, RouteKey.services)",
     {"service": BASE["service"].replace("port: 8080", "port: 8081")}, "clusters"),
    ("service protocol (ClusterKey.port)",
     {"service": BASE["service"].replace("name: http,", "name: grpc,")}, "clusters"),
    ("destination rule policy (ClusterKey.destination_rule)",
     {"rule": BASE["rule"].replace("maxConnections: 10", "maxConnections: 11")}, "clusters"),
    ("destination rule subsets (ClusterKey.subset, subset_labels)",
     {"rule": BASE["rule"].replace("labels: {version: v1}", "labels: {version: v2}")},
     "endpoints"),
    ("destination workloads' service account (ClusterKey.workloads)",
     {"web": BASE["web"].replace("serviceAccount: web", "serviceAccount: web2")}, "clusters"),
    ("destination namespace mTLS mode (ClusterKey.namespace_mtls_mode)",
     {"pa": """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: a}
spec: {mtls: {mode: DISABLE}}
"""}, "clusters"),
    ("endpoint workload mTLS mode (EndpointKey.endpoint_mtls_modes)",
     {"pa": """apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: web, namespace: a}
spec: {selector: {matchLabels: {app: web}}, mtls: {mode: STRICT},
       portLevelMtls: {8080: {mode: DISABLE}}}
"""}, "endpoints"),
    ("endpoint address (EndpointKey.endpoints)",
     {"web": BASE["web"].replace("10.0.0.1", "10.0.0.2")}, "endpoints"),
    ("endpoint weight (EndpointKey.endpoints)",
     {"web": BASE["web"].replace("serviceAccount: web", "serviceAccount: web, weight: 3")},
     "endpoints"),
    ("virtual service (RouteKey.virtual_services)",
     {"route": BASE["route"].replace("http: [{", "http: [{timeout: 3s, ")}, "routes"),
    ("sourceLabels client labels (RouteKey.client_labels)",
     {"route": BASE["route"].replace(
         "http: [{", "http: [{match: [{sourceLabels: {track: green}}], ")}, "routes"),
    ("outbound traffic mode (RouteKey.outbound_traffic_mode)",
     {"sidecar": """apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: a}
spec: {outboundTrafficPolicy: {mode: REGISTRY_ONLY}}
"""}, "routes"),
    ("consistent hash in the rule (RouteKey.destination_rules)",
     {"rule": BASE["rule"].replace(
         "outlierDetection:", "loadBalancer: {consistentHash: {httpHeaderName: x-user}}\n"
         "    outlierDetection:")}, "routes"),
    ("mesh config (every key's mesh_config)",
     {"mesh": """apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    outboundTrafficPolicy: {mode: REGISTRY_ONLY}
"""}, "routes"),
]


def _mesh(documents: dict[str, str], version: int) -> MeshSnapshot:
    result = load_text("---\n".join(documents.values()), "mesh.yaml")
    assert result.errors == [], result.errors[:3]
    from heddle.model.mesh_config import MeshConfig
    return MeshSnapshot.build(version, result.resources,
                              mesh_config=MeshConfig.from_objects(result.unmanaged))


@pytest.mark.parametrize(("name", "change", "cache"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_each_key_input_invalidates(name: str, change: dict[str, str], cache: str) -> None:
    generator = CachedSidecarGenerator()
    before = _mesh(BASE, 1)
    stale = _bytes(generator(before, CLIENT))
    after = _mesh({**BASE, **change}, 2)
    misses = generator.stats()[cache]["misses"]
    fresh = _bytes(sidecar_resources(after, CLIENT))
    assert fresh != stale, "the change must change the configuration to test anything"
    assert _bytes(generator(after, CLIENT)) == fresh
    assert generator.stats()[cache]["misses"] > misses, f"{cache} was not rebuilt"


@pytest.mark.parametrize("rule", ["sourceLabels", "failoverPriority"])
def test_client_labels_a_rule_compares_invalidate(rule: str) -> None:
    """Two clients alike but for a label a rule compares do not share what it shapes."""
    change = {"rule": BASE["rule"].replace(
        "outlierDetection:", "loadBalancer: {localityLbSetting: {enabled: true, "
        "failoverPriority: [track]}}\n    outlierDetection:"),
        "web": BASE["web"].replace("app: web,", "app: web, track: blue,"),
        "web1": BASE["web"].replace("app: web,", "app: web, track: green,").replace(
            "web-0", "web-1").replace("10.0.0.1", "10.0.0.3")} \
        if rule == "failoverPriority" else {"route": BASE["route"].replace(
            "http: [{", "http: [{match: [{sourceLabels: {track: blue}}], ")}
    snapshot = _mesh({**BASE, **change}, 1)
    green = Proxy(ProxyType.SIDECAR, "client-1", "a", "10.0.0.9", "10.0.0.9",
                  (("app", "client"), ("track", "green")), "default")
    generator = CachedSidecarGenerator()
    assert _bytes(generator(snapshot, CLIENT)) == _bytes(sidecar_resources(snapshot, CLIENT))
    fresh = _bytes(sidecar_resources(snapshot, green))
    assert fresh != _bytes(sidecar_resources(snapshot, CLIENT))
    assert _bytes(generator(snapshot, green)) == fresh


def test_an_unrelated_change_rebuilds_nothing() -> None:
    generator = CachedSidecarGenerator()
    generator(_mesh(BASE, 1), CLIENT)
    other = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: elsewhere, namespace: b}
spec:
  hosts: [elsewhere.b.svc.cluster.local]
  exportTo: ["."]
  http: [{route: [{destination: {host: elsewhere.b.svc.cluster.local}}]}]
"""
    before = generator.stats()
    assert _bytes(generator(_mesh({**BASE, "other": other}, 2), CLIENT)) == _bytes(
        sidecar_resources(_mesh({**BASE, "other": other}, 2), CLIENT))
    after = generator.stats()
    assert {k: v["misses"] for k, v in after.items()} == {
        k: v["misses"] for k, v in before.items()}


def test_distinct_workloads_share_one_outbound_side() -> None:
    snapshot = _snapshot(mesh_text(2, 3))
    generator = CachedSidecarGenerator()
    for proxy in _proxies(snapshot):
        generator(snapshot, proxy)
    stats = generator.stats()
    # 6 services, a subset each: 12 clusters, built once though 12 distinct workloads ask.
    assert stats["clusters"]["misses"] == 12
    assert stats["routes"]["misses"] == 2  # one per namespace (scope)


def test_client_locality_invalidates() -> None:
    """Two clients alike but for their locality do not share locality-weighted clusters."""
    rule = BASE["rule"].replace(
        "outlierDetection:", "loadBalancer: {localityLbSetting: {enabled: true, "
        "distribute: [{from: r1/*, to: {r1/*: 80, r2/*: 20}}]}}\n    outlierDetection:")
    other = BASE["client"].replace("client-0", "client-1").replace("10.0.0.9", "10.0.0.8") \
        .replace("r1/z1", "r2/z2")
    snapshot = _mesh({**BASE, "rule": rule, "other": other}, 1)
    there = Proxy(ProxyType.SIDECAR, "client-1", "a", "10.0.0.8", "10.0.0.8", CLIENT.labels)
    generator = CachedSidecarGenerator()
    assert _bytes(generator(snapshot, CLIENT)) == _bytes(sidecar_resources(snapshot, CLIENT))
    fresh = _bytes(sidecar_resources(snapshot, there))
    assert fresh[CLUSTER] != _bytes(sidecar_resources(snapshot, CLIENT))[CLUSTER]
    assert _bytes(generator(snapshot, there)) == fresh


def test_a_virtual_service_change_reuses_the_whole_outbound_side() -> None:
    """Routes are rebuilt; the clusters and endpoints are not even looked up again one by
    one: nothing of OutboundKey changed."""
    generator = CachedSidecarGenerator()
    generator(_mesh(BASE, 1), CLIENT)
    before = generator.stats()
    after = _mesh({**BASE, "route": BASE["route"].replace("http: [{", "http: [{timeout: 3s, ")},
                  2)
    assert _bytes(generator(after, CLIENT)) == _bytes(sidecar_resources(after, CLIENT))
    stats = generator.stats()
    assert stats["routes"]["misses"] == before["routes"]["misses"] + 1
    assert stats["outbound"]["hits"] == before["outbound"]["hits"] + 1
    for cache in ("clusters", "endpoints"):
        assert stats[cache] == before[cache]


def test_what_no_configuration_holds_is_forgotten_and_what_one_holds_is_kept() -> None:
    """After a push, the packed copy and the built message of a route configuration that
    every proxy has moved past are dropped; the clusters the proxies still hold stay cached."""
    from heddle.xds.cache import PackCache

    generator, packs = CachedSidecarGenerator(), PackCache()
    before = _mesh(BASE, 1)
    old = generator(before, CLIENT)
    held = {t: packs.versioned(items) for t, items in old.by_type.items()}
    after = _mesh({**BASE, "route": BASE["route"].replace("http: [{", "http: [{timeout: 3s, ")},
                  2)
    new = generator(after, CLIENT)
    held = {t: packs.versioned(items) for t, items in new.by_type.items()}  # old one dropped
    old_route, new_route = (next(iter(r.of(ROUTE).values())) for r in (old, new))
    assert old_route is not new_route
    packs.sweep()
    generator.sweep(packs.holds)
    assert not packs.holds(old_route) and packs.holds(new_route)
    assert generator.stats()["routes"]["entries"] == 1
    misses = generator.stats()["clusters"]["misses"]
    assert _bytes(generator(after, CLIENT)) == _bytes(new)  # the held clusters: no rebuild
    assert generator.stats()["clusters"]["misses"] == misses
    del held
    packs.sweep()
    generator.sweep(packs.holds)
    assert generator.stats()["routes"]["entries"] == 0 and len(packs) == 0


def test_responses_joined_from_encoded_resources_decode_as_built_ones() -> None:
    """A response is its header's encoding followed by each resource's: it decodes to the
    response protobuf would build from the same parts, in order."""
    from envoy.service.discovery.v3 import discovery_pb2

    from heddle.xds.versions import encoded_response, versioned_one

    resources = CachedSidecarGenerator()(_mesh(BASE, 1), CLIENT)
    clusters = [versioned_one(n, m) for n, m in sorted(resources.of(CLUSTER).items())]
    assert len(clusters) > 1
    delta = discovery_pb2.DeltaDiscoveryResponse.FromString(encoded_response(
        discovery_pb2.DeltaDiscoveryResponse(system_version_info="v1", type_url=CLUSTER,
                                             nonce="7", removed_resources=["gone"]),
        [c.delta_part for c in clusters]))
    assert delta == discovery_pb2.DeltaDiscoveryResponse(
        system_version_info="v1", type_url=CLUSTER, nonce="7", removed_resources=["gone"],
        resources=[discovery_pb2.Resource(name=c.name, version=c.version,
                                          resource=c.body) for c in clusters])
    sotw = discovery_pb2.DiscoveryResponse.FromString(encoded_response(
        discovery_pb2.DiscoveryResponse(version_info="v1", type_url=CLUSTER, nonce="8"),
        [c.sotw_part for c in clusters]))
    assert [r.value for r in sotw.resources] == [
        m.SerializeToString(deterministic=True) for _, m in sorted(resources.of(CLUSTER).items())]
    assert (sotw.version_info, sotw.nonce, sotw.type_url) == ("v1", "8", CLUSTER)
