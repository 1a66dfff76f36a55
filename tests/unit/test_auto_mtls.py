"""Auto-mTLS per destination port: what clients are told (EDS `tlsMode`, the cluster's
transport sockets) follows the destination workload's PeerAuthentication, as in Istio."""

from __future__ import annotations

from textwrap import dedent

from envoy.config.cluster.v3 import cluster_pb2

from heddle.api.loader import load_text
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.clusters import outbound_clusters, outbound_endpoints
from heddle.translate.mtls import TRANSPORT_SOCKET_MATCH

HOST = "server.default.svc.cluster.local"
BASE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: server}
spec:
  hosts: [server.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 8080, name: http, protocol: HTTP}
  - {number: 9000, name: tcp-echo, protocol: TCP}
  - {number: 80, name: http-web, protocol: HTTP, targetPort: 8081}
  workloadSelector: {labels: {app: server}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-1}
spec: {address: 127.0.30.2, labels: {app: server}, serviceAccount: server}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-vm}
spec: {address: 10.0.0.7, labels: {app: server}, serviceAccount: server}
"""


def peer_authentication(spec: str, name: str = "server", namespace: str = "default") -> str:
    body = "\n".join("  " + line for line in dedent(spec).strip().splitlines())
    return (f"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}")


def snapshot_of(*documents: str) -> MeshSnapshot:
    text = "\n---\n".join([BASE, *(dedent(d).strip() for d in documents)])
    result = load_text(text, "case.yaml")
    assert result.errors == [], result.errors
    return MeshSnapshot.build(1, result.resources)


def mtls_endpoints(snapshot: MeshSnapshot, port: int) -> list[str]:
    """The endpoints of the port's cluster that the client reaches over mTLS."""
    [assignment] = [a for a in outbound_endpoints(snapshot)
                    if a.cluster_name == f"outbound|{port}||{HOST}"]
    return sorted(f"{lb.endpoint.address.socket_address.address}:"
                  f"{lb.endpoint.address.socket_address.port_value}"
                  for group in assignment.endpoints for lb in group.lb_endpoints
                  if TRANSPORT_SOCKET_MATCH in lb.metadata.filter_metadata
                  and lb.metadata.filter_metadata[TRANSPORT_SOCKET_MATCH]
                  .fields["tlsMode"].string_value == "istio")


def cluster(snapshot: MeshSnapshot, port: int) -> cluster_pb2.Cluster:
    return {c.name: c for c in outbound_clusters(snapshot)}[f"outbound|{port}||{HOST}"]


SELECT_SERVER = "selector: {matchLabels: {app: server}}\n"


def test_only_endpoints_with_a_sidecar_are_reached_over_mtls_by_default() -> None:
    snapshot = snapshot_of()
    assert mtls_endpoints(snapshot, 8080) == ["127.0.30.2:8080"]
    assert mtls_endpoints(snapshot, 9000) == ["127.0.30.2:9000"]


def test_port_level_disable_sends_plaintext_to_that_port_only() -> None:
    snapshot = snapshot_of(peer_authentication(
        SELECT_SERVER + "mtls: {mode: STRICT}\nportLevelMtls: {9000: {mode: DISABLE}}"))
    assert mtls_endpoints(snapshot, 9000) == []
    assert mtls_endpoints(snapshot, 8080) == ["127.0.30.2:8080"]
    # The cluster still offers both transports: each endpoint's metadata picks one.
    assert [m.name for m in cluster(snapshot, 9000).transport_socket_matches] == [
        "tlsMode-istio", "tlsMode-disabled"]


def test_port_level_keys_name_the_port_the_workload_listens_on() -> None:
    snapshot = snapshot_of(peer_authentication(
        SELECT_SERVER + "portLevelMtls: {8081: {mode: DISABLE}}"))
    assert mtls_endpoints(snapshot, 80) == []  # service port 80 -> workload port 8081
    assert mtls_endpoints(snapshot, 8080) == ["127.0.30.2:8080"]


def test_workload_level_disable_with_a_port_level_strict_keeps_mtls_on_that_port() -> None:
    snapshot = snapshot_of(peer_authentication(
        SELECT_SERVER + "mtls: {mode: DISABLE}\nportLevelMtls: {9000: {mode: STRICT}}"))
    assert mtls_endpoints(snapshot, 8080) == []
    assert mtls_endpoints(snapshot, 9000) == ["127.0.30.2:9000"]


def test_a_policy_for_other_workloads_or_namespaces_changes_nothing() -> None:
    snapshot = snapshot_of(
        peer_authentication("selector: {matchLabels: {app: other}}\nmtls: {mode: DISABLE}",
                            name="other"),
        peer_authentication("mtls: {mode: DISABLE}", name="default", namespace="elsewhere"))
    assert mtls_endpoints(snapshot, 8080) == ["127.0.30.2:8080"]


def test_namespace_level_disable_makes_the_cluster_plaintext() -> None:
    """Istio's BestEffortInferServiceMTLSMode: a namespace (or mesh) DISABLE is known per
    service, and the cluster then offers no mTLS at all."""
    snapshot = snapshot_of(peer_authentication("mtls: {mode: DISABLE}", name="default"))
    plain = cluster(snapshot, 8080)
    assert not plain.transport_socket_matches and not plain.HasField("transport_socket")
    assert mtls_endpoints(snapshot, 8080) == []


def test_mesh_level_disable_yields_to_a_namespace_level_mode() -> None:
    mesh_disable = peer_authentication("mtls: {mode: DISABLE}", name="default",
                                       namespace="istio-system")
    assert not cluster(snapshot_of(mesh_disable), 8080).transport_socket_matches
    snapshot = snapshot_of(mesh_disable, peer_authentication("mtls: {mode: PERMISSIVE}",
                                                             name="default"))
    assert len(cluster(snapshot, 8080).transport_socket_matches) == 2
    assert mtls_endpoints(snapshot, 8080) == ["127.0.30.2:8080"]


def test_a_destination_rule_tls_mode_decides_over_peer_authentication() -> None:
    rule = ("apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
            "metadata: {name: server}\nspec:\n  host: server\n"
            "  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}")
    snapshot = snapshot_of(rule, peer_authentication(
        SELECT_SERVER + "portLevelMtls: {9000: {mode: DISABLE}}"))
    assert cluster(snapshot, 9000).HasField("transport_socket")  # mTLS, whatever EDS says
    assert mtls_endpoints(snapshot, 9000) == ["10.0.0.7:9000", "127.0.30.2:9000"]
