"""Clusters and endpoints for examples/hello: golden files, and real Envoy accepts them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from google.protobuf.json_format import MessageToDict

from heddle.api.loader import load_paths
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import static_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.clusters import outbound_clusters, outbound_endpoints

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "hello"


def hello_snapshot() -> MeshSnapshot:
    result = load_paths([ROOT / "examples" / "hello"])
    assert result.errors == []
    return MeshSnapshot.build(1, result.resources)


def check_golden(name: str, value: object) -> None:
    """Compare with the golden file; UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    text = json.dumps(value, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs; rerun with UPDATE_GOLDEN=1 and review"


def test_cluster_per_service_port_and_subset_named_as_istio_does() -> None:
    names = [c.name for c in outbound_clusters(hello_snapshot())]
    assert names == [
        "outbound|9090||backend.default.svc.cluster.local",
        "outbound|9090|v1|backend.default.svc.cluster.local",
        "outbound|9090|v2|backend.default.svc.cluster.local",
        "outbound|9000||echo.default.svc.cluster.local",
        "outbound|8080||frontend.default.svc.cluster.local",
    ]


def test_subset_endpoints_are_filtered_by_labels() -> None:
    by_name = {cla.cluster_name: cla for cla in outbound_endpoints(hello_snapshot())}

    def addresses(name: str) -> list[str]:
        return [lb.endpoint.address.socket_address.address
                for group in by_name[name].endpoints for lb in group.lb_endpoints]

    assert addresses("outbound|9090||backend.default.svc.cluster.local") == [
        "127.0.10.3", "127.0.10.4"]
    assert addresses("outbound|9090|v2|backend.default.svc.cluster.local") == ["127.0.10.4"]


def test_clusters_and_endpoints_match_golden_files() -> None:
    snapshot = hello_snapshot()
    check_golden("clusters.json", [MessageToDict(c) for c in outbound_clusters(snapshot)])
    check_golden("endpoints.json", [MessageToDict(e) for e in outbound_endpoints(snapshot)])


def test_real_envoy_accepts_the_translated_clusters() -> None:
    snapshot = hello_snapshot()
    out = validate_bootstrap(static_bootstrap(outbound_clusters(snapshot),
                                              outbound_endpoints(snapshot)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK" in out.stdout


def test_the_envoy_check_rejects_a_broken_cluster() -> None:
    """The validation above can fail: Envoy refuses a static endpoint that is not an IP."""
    from envoy.config.cluster.v3 import cluster_pb2

    broken = cluster_pb2.Cluster(name="outbound|1||x", type=cluster_pb2.Cluster.STATIC)
    broken.load_assignment.cluster_name = broken.name
    address = broken.load_assignment.endpoints.add().lb_endpoints.add().endpoint.address
    address.socket_address.address = "not-an-ip"
    address.socket_address.port_value = 80
    out = validate_bootstrap(static_bootstrap([broken], []))
    assert out.returncode != 0


def test_an_endpoint_named_by_a_hostname_is_left_out_of_eds_and_envoy_takes_the_rest() -> None:
    """`backend-v1.internal` is a host name, not an IP: in EDS, Envoy would refuse the whole
    response, every cluster's endpoints with it. (`10.0.2.256` once stood here; Istio's
    validation refuses it: a top-level domain may not be all digits.)"""
    from heddle.api.loader import load_text

    extra = """apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: backend-by-name, namespace: default}
spec: {address: backend-v1.internal, labels: {app: backend, version: v1}}
"""
    result = load_paths([ROOT / "examples" / "hello"])
    added = load_text(extra, "extra.yaml")
    assert result.errors == [] and added.errors == []
    snapshot = MeshSnapshot.build(1, [*result.resources, *added.resources])
    clusters = outbound_clusters(snapshot)
    endpoints = outbound_endpoints(snapshot, clusters=clusters)
    addresses = {lb.endpoint.address.socket_address.address
                 for assignment in endpoints for group in assignment.endpoints
                 for lb in group.lb_endpoints}
    assert "backend-v1.internal" not in addresses
    assert addresses == {lb.endpoint.address.socket_address.address
                         for assignment in outbound_endpoints(hello_snapshot())
                         for group in assignment.endpoints for lb in group.lb_endpoints}
    out = validate_bootstrap(static_bootstrap(clusters, endpoints))
    assert out.returncode == 0, out.stderr
