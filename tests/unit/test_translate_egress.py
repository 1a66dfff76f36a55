"""ServiceEntry egress clusters: DNS resolves the entry's endpoints (or its host), NONE
connects to the host the application asked for."""

from __future__ import annotations

import textwrap

from envoy.config.cluster.v3 import cluster_pb2

from heddle.api.loader import load_text
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import static_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.clusters import outbound_clusters

ENTRIES = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner}
spec:
  hosts: [api.partner.test]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 8080}]
  endpoints: [{address: eu.partner.test}, {address: us.partner.test, ports: {http: 9090}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: search}
spec:
  hosts: [search.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 443, name: tls, protocol: TLS}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: anything}
spec:
  hosts: ["*.wikipedia.org"]
  location: MESH_EXTERNAL
  resolution: NONE
  ports: [{number: 80, name: http, protocol: HTTP}]
"""


def clusters() -> dict[str, cluster_pb2.Cluster]:
    result = load_text(textwrap.dedent(ENTRIES), "egress.yaml")
    assert result.errors == [], result.errors
    return {c.name: c for c in outbound_clusters(MeshSnapshot.build(1, result.resources))}


def addresses(cluster: cluster_pb2.Cluster) -> list[tuple[str, int]]:
    return [(e.endpoint.address.socket_address.address,
             e.endpoint.address.socket_address.port_value)
            for group in cluster.load_assignment.endpoints for e in group.lb_endpoints]


def test_dns_resolution_resolves_each_endpoint_with_its_port() -> None:
    partner = clusters()["outbound|80||api.partner.test"]
    assert partner.type == cluster_pb2.Cluster.STRICT_DNS
    assert addresses(partner) == [("eu.partner.test", 8080), ("us.partner.test", 9090)]


def test_dns_resolution_without_endpoints_resolves_the_host() -> None:
    search = clusters()["outbound|443||search.example.com"]
    assert addresses(search) == [("search.example.com", 443)]


def test_none_resolution_connects_to_the_requested_host() -> None:
    wiki = clusters()["outbound|80||*.wikipedia.org"]
    assert wiki.cluster_type.name == "envoy.clusters.dynamic_forward_proxy"


def test_real_envoy_accepts_the_egress_clusters() -> None:
    out = validate_bootstrap(static_bootstrap(list(clusters().values()), [], []))
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_dns_subset_resolves_only_its_endpoints_and_may_have_none() -> None:
    text = textwrap.dedent(ENTRIES).replace(
        "endpoints: [{address: eu.partner.test}, {address: us.partner.test, ports: {http: 9090}}]",
        "endpoints: [{address: eu.partner.test, labels: {region: eu}},"
        " {address: us.partner.test, labels: {region: us}}]")
    text += textwrap.dedent("""
    ---
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: partner}
    spec:
      host: api.partner.test
      subsets: [{name: eu, labels: {region: eu}}, {name: asia, labels: {region: asia}}]
    """)
    result = load_text(text, "egress.yaml")
    assert result.errors == [], result.errors
    found = {c.name: c for c in outbound_clusters(MeshSnapshot.build(1, result.resources))}
    assert addresses(found["outbound|80|eu|api.partner.test"]) == [("eu.partner.test", 8080)]
    assert addresses(found["outbound|80|asia|api.partner.test"]) == []
