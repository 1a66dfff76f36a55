"""Locality load balancing for one client: failover priorities (with outlier detection) and
distribute weights, from a DestinationRule's localityLbSetting and WorkloadEntry localities."""

from __future__ import annotations

import textwrap

from heddle.api.loader import load_text
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.sidecar import CLUSTER, ENDPOINT, sidecar_resources

MESH = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api}
spec:
  hosts: [api.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: api}}
""" + "".join(f"""---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: {name}}}
spec: {{address: 127.0.50.{i}, labels: {{app: {app}}}, locality: {locality}}}
""" for i, (name, app, locality) in enumerate([
    ("client", "client", "eu/zone-1/rack-1"), ("api-near", "api", "eu/zone-1/rack-1"),
    ("api-zone", "api", "eu/zone-2/rack-1"), ("api-us", "api", "us/zone-1/rack-1"),
    ("api-ap", "api", "ap/zone-1/rack-1")], start=1))

CLIENT = Proxy(ProxyType.SIDECAR, "client", "default", "127.0.50.1", "127.255.50.1",
               (("app", "client"),), "default")
CLUSTER_NAME = "outbound|8080||api.default.svc.cluster.local"


def resources(rule: str) -> dict[str, dict[str, object]]:
    text = MESH + "---\n" + textwrap.dedent(rule)
    result = load_text(text, "mesh.yaml")
    assert result.errors == [], result.errors
    found = sidecar_resources(MeshSnapshot.build(1, result.resources), CLIENT)
    return {"cluster": found.of(CLUSTER), "endpoint": found.of(ENDPOINT)}


def priorities(rule: str) -> dict[str, int]:
    assignment = resources(rule)["endpoint"][CLUSTER_NAME]
    return {group.locality.region + "/" + group.locality.zone: group.priority  # type: ignore[attr-defined]
            for group in assignment.endpoints}  # type: ignore[attr-defined]


def test_with_outlier_detection_nearer_localities_get_higher_priority() -> None:
    rule = """
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: api}
    spec:
      host: api
      trafficPolicy:
        outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s}
        loadBalancer:
          localityLbSetting:
            failover: [{from: eu, to: us}]
    """
    assert priorities(rule) == {"eu/zone-1": 0, "eu/zone-2": 1, "us/zone-1": 2, "ap/zone-1": 3}


def test_without_outlier_detection_every_locality_shares_the_traffic() -> None:
    rule = """
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: api}
    spec:
      host: api
      trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
    """
    assert set(priorities(rule).values()) == {0}


def test_distribute_weights_localities_for_clients_it_names() -> None:
    rule = """
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: api}
    spec:
      host: api
      trafficPolicy:
        loadBalancer:
          localityLbSetting:
            distribute:
            - from: eu/zone-1/*
              to: {"eu/*": 80, "us/*": 20}
    """
    found = resources(rule)
    assignment = found["endpoint"][CLUSTER_NAME]
    weights = {g.locality.zone and f"{g.locality.region}/{g.locality.zone}":  # type: ignore[attr-defined]
               g.load_balancing_weight.value for g in assignment.endpoints}  # type: ignore[attr-defined]
    assert weights == {"eu/zone-1": 40, "eu/zone-2": 40, "us/zone-1": 20}  # ap: no share
    cluster = found["cluster"][CLUSTER_NAME]
    assert cluster.common_lb_config.HasField("locality_weighted_lb_config")  # type: ignore[attr-defined]


def test_real_envoy_accepts_locality_priorities_and_weights() -> None:
    rule = """
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: api}
    spec:
      host: api
      trafficPolicy:
        outlierDetection: {consecutive5xxErrors: 1}
      subsets:
      - name: weighted
        labels: {app: api}
        trafficPolicy:
          loadBalancer:
            localityLbSetting:
              distribute: [{from: "eu/*", to: {"eu/zone-2/*": 100}}]
    """
    text = MESH + "---\n" + textwrap.dedent(rule)
    result = load_text(text, "mesh.yaml")
    found = sidecar_resources(MeshSnapshot.build(1, result.resources), CLIENT)
    out = validate_bootstrap(sidecar_bootstrap(found))
    assert out.returncode == 0, out.stdout + out.stderr


def test_failover_priority_ranks_endpoints_by_the_labels_they_share_with_the_client() -> None:
    rule = """
    apiVersion: networking.istio.io/v1
    kind: DestinationRule
    metadata: {name: api}
    spec:
      host: api
      trafficPolicy:
        outlierDetection: {consecutive5xxErrors: 1}
        loadBalancer:
          localityLbSetting:
            failoverPriority: [topology.kubernetes.io/region, topology.kubernetes.io/zone]
    """
    assert priorities(rule) == {"eu/zone-1": 0, "eu/zone-2": 1, "us/zone-1": 2, "ap/zone-1": 2}
