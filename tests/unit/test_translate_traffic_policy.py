"""DestinationRule trafficPolicy on outbound clusters and routes, field by field, as Istio
translates it; every cluster produced here is also put before a real Envoy."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from textwrap import dedent
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf.json_format import MessageToDict

from heddle.api.loader import load_text
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import http_listener, static_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.clusters import outbound_clusters, outbound_endpoints
from heddle.translate.routes import proxy_route_config
from heddle.translate.traffic_policy import HTTP_PROTOCOL_OPTIONS

HOST = "backend.default.svc.cluster.local"
BASE = """
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: backend}
spec:
  hosts: [backend.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9090, name: http, protocol: HTTP}
  - {number: 9091, name: http-admin, protocol: HTTP}
  workloadSelector: {labels: {app: backend}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: backend-1}
spec: {address: 127.0.10.3, labels: {app: backend, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: backend-2}
spec: {address: 127.0.10.4, labels: {app: backend, version: v2}}
"""


def snapshot_of(*documents: str) -> MeshSnapshot:
    text = "\n---\n".join([BASE, *(dedent(d).strip() for d in documents)])
    result = load_text(text, "case.yaml")
    assert result.errors == [], result.errors
    return MeshSnapshot.build(1, result.resources)


def rule(spec: str, name: str = "backend", namespace: str = "default") -> str:
    body = "\n".join("  " + line for line in dedent(spec).strip().splitlines())
    return (f"apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{body}")


def clusters(snapshot: MeshSnapshot, proxy: Proxy | None = None,
             ) -> dict[str, cluster_pb2.Cluster]:
    return {c.name: c for c in outbound_clusters(snapshot, proxy)}


def cluster(spec: str, port: int = 9090, subset: str = "") -> cluster_pb2.Cluster:
    return clusters(snapshot_of(rule(spec)))[f"outbound|{port}|{subset}|{HOST}"]


def protocol_options(c: cluster_pb2.Cluster) -> http_protocol_options_pb2.HttpProtocolOptions:
    options = http_protocol_options_pb2.HttpProtocolOptions()
    c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].Unpack(options)
    return options


def upstream_tls(c: cluster_pb2.Cluster) -> tls_pb2.UpstreamTlsContext:
    context = tls_pb2.UpstreamTlsContext()
    assert c.transport_socket.typed_config.Unpack(context)
    return context


def as_dict(message: Any) -> dict[str, Any]:
    return MessageToDict(message)


# -- load balancing ------------------------------------------------------------------------

def test_without_a_rule_clusters_use_least_request_and_unlimited_circuit_breakers() -> None:
    c = clusters(snapshot_of())[f"outbound|9090||{HOST}"]
    assert c.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
    assert as_dict(c.circuit_breakers) == {"thresholds": [{
        "maxConnections": 4294967295, "maxPendingRequests": 4294967295,
        "maxRequests": 4294967295, "maxRetries": 4294967295, "trackRemaining": True}]}
    assert not c.HasField("outlier_detection")
    assert HTTP_PROTOCOL_OPTIONS not in c.typed_extension_protocol_options


@pytest.mark.parametrize(("simple", "policy"), [
    ("ROUND_ROBIN", cluster_pb2.Cluster.ROUND_ROBIN),
    ("LEAST_REQUEST", cluster_pb2.Cluster.LEAST_REQUEST),
    ("LEAST_CONN", cluster_pb2.Cluster.LEAST_REQUEST),
    ("RANDOM", cluster_pb2.Cluster.RANDOM),
])
def test_simple_load_balancer_sets_the_lb_policy(simple: str, policy: int) -> None:
    c = cluster(f"host: backend\ntrafficPolicy: {{loadBalancer: {{simple: {simple}}}}}")
    assert c.lb_policy == policy


def test_warmup_duration_is_slow_start_for_round_robin_and_least_request() -> None:
    rr = cluster("host: backend\ntrafficPolicy:\n  loadBalancer: "
                 "{simple: ROUND_ROBIN, warmupDurationSecs: 30s}")
    assert rr.round_robin_lb_config.slow_start_config.slow_start_window.seconds == 30
    lr = cluster("host: backend\ntrafficPolicy: {loadBalancer: {warmupDurationSecs: 5s}}")
    assert lr.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
    assert lr.least_request_lb_config.slow_start_config.slow_start_window.seconds == 5


def test_passthrough_makes_an_original_destination_cluster_without_endpoints() -> None:
    snapshot = snapshot_of(rule("host: backend\ntrafficPolicy: "
                                "{loadBalancer: {simple: PASSTHROUGH}}"))
    c = clusters(snapshot)[f"outbound|9090||{HOST}"]
    assert c.type == cluster_pb2.Cluster.ORIGINAL_DST
    assert c.lb_policy == cluster_pb2.Cluster.CLUSTER_PROVIDED
    assert not c.HasField("eds_cluster_config") and not c.transport_socket_matches
    assert f"outbound|9090||{HOST}" not in {e.cluster_name for e in outbound_endpoints(snapshot)}


@pytest.mark.parametrize(("consistent", "expected"), [
    ("{httpHeaderName: x-user, ringHash: {minimumRingSize: 2048}}",
     {"lbPolicy": "RING_HASH", "ringHashLbConfig": {"minimumRingSize": "2048"}}),
    ("{httpHeaderName: x-user, maglev: {tableSize: 65537}}",
     {"lbPolicy": "MAGLEV", "maglevLbConfig": {"tableSize": "65537"}}),
    ("{httpHeaderName: x-user}",
     {"lbPolicy": "RING_HASH", "ringHashLbConfig": {"minimumRingSize": "1024"}}),
    ("{useSourceIp: true, minimumRingSize: 4096}",
     {"lbPolicy": "RING_HASH", "ringHashLbConfig": {"minimumRingSize": "4096"}}),
])
def test_consistent_hash_picks_ring_hash_or_maglev(consistent: str,
                                                   expected: dict[str, Any]) -> None:
    c = as_dict(cluster(f"host: backend\ntrafficPolicy: {{loadBalancer: "
                        f"{{consistentHash: {consistent}}}}}"))
    assert {k: c.get(k) for k in expected} == expected


def _route_hash(snapshot: MeshSnapshot, port: int = 9090) -> list[dict[str, Any]]:
    config = proxy_route_config(snapshot, "15001")
    host = next(v for v in config.virtual_hosts if v.name == f"{HOST}:{port}")
    return [as_dict(p) for p in host.routes[0].route.hash_policy]


@pytest.mark.parametrize(("consistent", "expected"), [
    ("{httpHeaderName: x-user}", {"header": {"headerName": "x-user"}}),
    ("{httpCookie: {name: session, path: /, ttl: 60s}}",
     {"cookie": {"name": "session", "path": "/", "ttl": "60s"}}),
    ("{useSourceIp: true}", {"connectionProperties": {"sourceIp": True}}),
    ("{httpQueryParameterName: user}", {"queryParameter": {"name": "user"}}),
])
def test_the_default_route_hashes_on_what_the_rule_names(consistent: str,
                                                         expected: dict[str, Any]) -> None:
    snapshot = snapshot_of(rule(f"host: backend\ntrafficPolicy: {{loadBalancer: "
                                f"{{consistentHash: {consistent}}}}}"))
    assert _route_hash(snapshot) == [expected]
    assert _route_hash(snapshot_of()) == []


def test_virtual_service_routes_hash_per_destination_subset() -> None:
    snapshot = snapshot_of(rule("""
        host: backend
        subsets:
        - name: v1
          labels: {version: v1}
          trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-v1}}}
        - {name: v2, labels: {version: v2}}
        """), """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: backend}
        spec:
          hosts: [backend]
          http:
          - route:
            - {destination: {host: backend, subset: v1}, weight: 50}
            - {destination: {host: backend, subset: v2}, weight: 50}
        """)
    assert _route_hash(snapshot) == [{"header": {"headerName": "x-v1"}}]
    by_name = clusters(snapshot)
    assert by_name[f"outbound|9090|v1|{HOST}"].lb_policy == cluster_pb2.Cluster.RING_HASH
    assert by_name[f"outbound|9090|v2|{HOST}"].lb_policy == cluster_pb2.Cluster.LEAST_REQUEST


# -- connection pool -----------------------------------------------------------------------

def test_connection_pool_limits_become_circuit_breaker_thresholds() -> None:
    c = cluster("""
        host: backend
        trafficPolicy:
          connectionPool:
            tcp: {maxConnections: 7, connectTimeout: 250ms,
                  tcpKeepalive: {probes: 3, time: 2h, interval: 75s}}
            http: {http1MaxPendingRequests: 1, http2MaxRequests: 9, maxRetries: 2}
        """)
    assert as_dict(c.circuit_breakers) == {"thresholds": [{
        "maxConnections": 7, "maxPendingRequests": 1, "maxRequests": 9, "maxRetries": 2,
        "trackRemaining": True}]}
    assert as_dict(c.connect_timeout) == "0.250s"
    assert as_dict(c.upstream_connection_options) == {"tcpKeepalive": {
        "keepaliveProbes": 3, "keepaliveTime": 7200, "keepaliveInterval": 75}}


def test_http_settings_become_upstream_http_protocol_options() -> None:
    c = cluster("""
        host: backend
        trafficPolicy:
          connectionPool:
            tcp: {maxConnectionDuration: 1h}
            http: {idleTimeout: 30s, maxRequestsPerConnection: 10}
        """)
    assert as_dict(protocol_options(c)) == {
        "commonHttpProtocolOptions": {"idleTimeout": "30s", "maxConnectionDuration": "3600s",
                                      "maxRequestsPerConnection": 10},
        "explicitHttpConfig": {"httpProtocolOptions": {}},
    }


def test_h2_upgrade_and_client_protocol_choose_the_upstream_protocol() -> None:
    upgrade = protocol_options(cluster("host: backend\ntrafficPolicy: {connectionPool: "
                                       "{http: {h2UpgradePolicy: UPGRADE, "
                                       "maxConcurrentStreams: 50}}}"))
    assert as_dict(upgrade) == {"explicitHttpConfig": {"http2ProtocolOptions": {
        "maxConcurrentStreams": 50}}}
    client = protocol_options(cluster("host: backend\ntrafficPolicy: {connectionPool: "
                                      "{http: {useClientProtocol: true}}}"))
    assert as_dict(client) == {"useDownstreamProtocolConfig": {
        "httpProtocolOptions": {}, "http2ProtocolOptions": {}}}


# -- outlier detection ---------------------------------------------------------------------

def test_outlier_detection_is_mapped_as_istio_does() -> None:
    c = cluster("""
        host: backend
        trafficPolicy:
          outlierDetection:
            consecutive5xxErrors: 2
            consecutiveGatewayErrors: 0
            interval: 1s
            baseEjectionTime: 30s
            maxEjectionPercent: 50
            splitExternalLocalOriginErrors: true
            consecutiveLocalOriginFailures: 4
        """)
    assert as_dict(c.outlier_detection) == {
        "consecutive5xx": 2, "enforcingConsecutive5xx": 100,
        "consecutiveGatewayFailure": 0, "enforcingConsecutiveGatewayFailure": 0,
        "interval": "1s", "baseEjectionTime": "30s", "maxEjectionPercent": 50,
        "enforcingSuccessRate": 0, "splitExternalLocalOriginErrors": True,
        "consecutiveLocalOriginFailure": 4, "enforcingConsecutiveLocalOriginFailure": 100,
        "enforcingLocalOriginSuccessRate": 0,
    }
    assert as_dict(c.common_lb_config) == {"healthyPanicThreshold": {}}  # 0%: never panic


def test_min_health_percent_is_the_panic_threshold() -> None:
    c = cluster("host: backend\ntrafficPolicy: {outlierDetection: "
                "{consecutive5xxErrors: 1, minHealthPercent: 30}}")
    assert c.common_lb_config.healthy_panic_threshold.value == 30


# -- TLS -------------------------------------------------------------------------------------

def test_simple_tls_originates_tls_with_the_rules_sni_sans_and_ca_file() -> None:
    c = cluster("""
        host: backend
        trafficPolicy:
          tls: {mode: SIMPLE, sni: secure.example.test, caCertificates: /etc/ca.pem,
                subjectAltNames: [secure.example.test, "spiffe://x/y"]}
        """)
    assert not c.transport_socket_matches
    context = as_dict(upstream_tls(c))
    assert context == {"sni": "secure.example.test", "commonTlsContext": {"validationContext": {
        "trustedCa": {"filename": "/etc/ca.pem"},
        "matchTypedSubjectAltNames": [
            {"sanType": "DNS", "matcher": {"exact": "secure.example.test"}},
            {"sanType": "URI", "matcher": {"exact": "spiffe://x/y"}}]}}}
    assert HTTP_PROTOCOL_OPTIONS not in c.typed_extension_protocol_options


def test_simple_tls_without_sni_uses_auto_sni_and_the_system_trust_store() -> None:
    c = cluster("host: backend\ntrafficPolicy: {tls: {mode: SIMPLE}}")
    context = as_dict(upstream_tls(c))
    assert context["commonTlsContext"]["validationContext"]["trustedCa"] == {
        "filename": "/etc/ssl/certs/ca-certificates.crt"}
    assert as_dict(protocol_options(c))["upstreamHttpProtocolOptions"] == {
        "autoSni": True, "autoSanValidation": True}


def test_insecure_skip_verify_drops_certificate_validation() -> None:
    c = cluster("host: backend\ntrafficPolicy: "
                "{tls: {mode: SIMPLE, sni: a.test, insecureSkipVerify: true}}")
    assert as_dict(upstream_tls(c)) == {"sni": "a.test"}


def test_mutual_tls_presents_the_client_certificate_files() -> None:
    c = cluster("""
        host: backend
        trafficPolicy:
          tls: {mode: MUTUAL, sni: a.test, clientCertificate: /c.pem, privateKey: /k.pem,
                caCertificates: /ca.pem}
        """)
    common = as_dict(upstream_tls(c))["commonTlsContext"]
    assert common["tlsCertificates"] == [{"certificateChain": {"filename": "/c.pem"},
                                          "privateKey": {"filename": "/k.pem"}}]


def _secret(name: str, namespace: str, **data: bytes) -> str:
    encoded = {key.replace("_", "."): base64.b64encode(value).decode()
               for key, value in data.items()}
    lines = "\n".join(f"  {k}: {v}" for k, v in encoded.items())
    return (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
            f"type: kubernetes.io/tls\ndata:\n{lines}")


def test_credential_name_inlines_the_secret_of_the_rules_namespace() -> None:
    snapshot = snapshot_of(
        rule("host: backend.default.svc.cluster.local\ntrafficPolicy: "
             "{tls: {mode: MUTUAL, credentialName: client-cred, sni: a.test}}",
             namespace="default"),
        _secret("client-cred", "default", tls_crt=b"CERT", tls_key=b"KEY", ca_crt=b"CA"))
    context = upstream_tls(clusters(snapshot)[f"outbound|9090||{HOST}"])
    common = context.common_tls_context
    assert common.tls_certificates[0].certificate_chain.inline_bytes == b"CERT"
    assert common.tls_certificates[0].private_key.inline_bytes == b"KEY"
    assert common.validation_context.trusted_ca.inline_bytes == b"CA"


def test_a_missing_credential_fails_closed_over_sds_rather_than_failing_the_push() -> None:
    c = cluster("host: backend\ntrafficPolicy: {tls: {mode: MUTUAL, credentialName: nope}}")
    common = upstream_tls(c).common_tls_context
    assert common.validation_context_sds_secret_config.name == "kubernetes://nope-cacert"
    assert common.tls_certificate_sds_secret_configs[0].name == "kubernetes://nope"


def test_tls_modes_disable_and_istio_mutual_replace_auto_mtls() -> None:
    auto = cluster("host: backend")
    assert [m.name for m in auto.transport_socket_matches] == ["tlsMode-istio",
                                                               "tlsMode-disabled"]
    disabled = cluster("host: backend\ntrafficPolicy: {tls: {mode: DISABLE}}")
    assert not disabled.transport_socket_matches and not disabled.HasField("transport_socket")
    mutual = cluster("host: backend\ntrafficPolicy: {tls: {mode: ISTIO_MUTUAL}}")
    assert upstream_tls(mutual).sni == f"outbound_.9090_._.{HOST}"


# -- merging: port level, subsets, several rules ---------------------------------------------

def test_port_level_settings_replace_the_host_policy_for_that_port() -> None:
    snapshot = snapshot_of(rule("""
        host: backend
        trafficPolicy:
          loadBalancer: {simple: RANDOM}
          outlierDetection: {consecutive5xxErrors: 3}
          portLevelSettings:
          - port: {number: 9091}
            connectionPool: {tcp: {maxConnections: 5}}
        """))
    by_name = clusters(snapshot)
    main, admin = by_name[f"outbound|9090||{HOST}"], by_name[f"outbound|9091||{HOST}"]
    assert main.lb_policy == cluster_pb2.Cluster.RANDOM and main.HasField("outlier_detection")
    # Port level does not inherit: defaults for what it leaves out, as in Istio.
    assert admin.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
    assert not admin.HasField("outlier_detection")
    assert admin.circuit_breakers.thresholds[0].max_connections.value == 5


def test_subset_policy_overrides_the_host_policy_field_by_field() -> None:
    snapshot = snapshot_of(rule("""
        host: backend
        trafficPolicy:
          loadBalancer: {simple: RANDOM}
          connectionPool: {tcp: {maxConnections: 10}}
        subsets:
        - name: v1
          labels: {version: v1}
          trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
        - name: v2
          labels: {version: v2}
          trafficPolicy:
            portLevelSettings:
            - port: {number: 9090}
              outlierDetection: {consecutive5xxErrors: 1}
        """))
    by_name = clusters(snapshot)
    v1 = by_name[f"outbound|9090|v1|{HOST}"]
    assert v1.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN
    assert v1.circuit_breakers.thresholds[0].max_connections.value == 10
    v2 = by_name[f"outbound|9090|v2|{HOST}"]  # the subset's port level replaces everything
    assert v2.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST and v2.HasField("outlier_detection")
    assert v2.circuit_breakers.thresholds[0].max_connections.value == 4294967295
    v2_admin = by_name[f"outbound|9091|v2|{HOST}"]  # other ports: host policy
    assert v2_admin.lb_policy == cluster_pb2.Cluster.RANDOM


def test_rules_for_one_host_in_one_namespace_merge_first_policy_wins() -> None:
    snapshot = snapshot_of(
        rule("host: backend\ntrafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
             "subsets: [{name: v1, labels: {version: v1}}]", name="a"),
        rule("host: backend\ntrafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}\n"
             "subsets: [{name: v1, labels: {version: v2}}, {name: v2, labels: {version: v2}}]",
             name="b"))
    by_name = clusters(snapshot)
    assert by_name[f"outbound|9090||{HOST}"].lb_policy == cluster_pb2.Cluster.RANDOM
    assert set(by_name) == {
        f"outbound|9090||{HOST}", f"outbound|9090|v1|{HOST}", f"outbound|9090|v2|{HOST}",
        f"outbound|9091||{HOST}", f"outbound|9091|v1|{HOST}", f"outbound|9091|v2|{HOST}"}
    endpoints = {e.cluster_name: e for e in outbound_endpoints(snapshot)}
    v1 = endpoints[f"outbound|9090|v1|{HOST}"].endpoints[0].lb_endpoints
    assert [lb.endpoint.address.socket_address.address for lb in v1] == ["127.0.10.3"]


def _client(namespace: str) -> Proxy:
    return Proxy(ProxyType.SIDECAR, "client", namespace, "127.0.10.1", "127.0.10.1")


def test_the_clients_namespace_then_the_services_then_the_root_namespace() -> None:
    snapshot = snapshot_of(
        rule(f"host: {HOST}\ntrafficPolicy: {{loadBalancer: {{simple: RANDOM}}}}",
             namespace="team"),
        rule("host: backend\ntrafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}"),
        rule("host: '*.svc.cluster.local'\ntrafficPolicy: {tls: {mode: DISABLE}}",
             namespace="istio-system"))
    name = f"outbound|9090||{HOST}"
    assert clusters(snapshot, _client("team"))[name].lb_policy == cluster_pb2.Cluster.RANDOM
    from_other = clusters(snapshot, _client("other"))[name]
    assert from_other.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN
    assert from_other.transport_socket_matches  # the root rule is not merged in
    only_root = snapshot_of(rule("host: '*.svc.cluster.local'\ntrafficPolicy: "
                                 "{tls: {mode: DISABLE}}", namespace="istio-system"))
    assert not clusters(only_root, _client("other"))[name].transport_socket_matches


def test_export_to_hides_a_rule_from_other_namespaces() -> None:
    snapshot = snapshot_of(rule("host: backend\nexportTo: ['.']\n"
                                "trafficPolicy: {loadBalancer: {simple: RANDOM}}"))
    name = f"outbound|9090||{HOST}"
    assert clusters(snapshot, _client("default"))[name].lb_policy == cluster_pb2.Cluster.RANDOM
    assert clusters(snapshot, _client("other"))[name].lb_policy == (
        cluster_pb2.Cluster.LEAST_REQUEST)


def test_a_more_specific_host_wins_over_a_wildcard_in_one_namespace() -> None:
    snapshot = snapshot_of(
        rule("host: '*.default.svc.cluster.local'\n"
             "trafficPolicy: {loadBalancer: {simple: RANDOM}}", name="a-wild"),
        rule("host: backend\ntrafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}", name="z"))
    assert clusters(snapshot)[f"outbound|9090||{HOST}"].lb_policy == (
        cluster_pb2.Cluster.ROUND_ROBIN)


# -- Envoy ---------------------------------------------------------------------------------

def _pem_files(tmp: Path) -> dict[str, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    pem = {"cert": cert.public_bytes(serialization.Encoding.PEM),
           "key": key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())}
    for kind, data in pem.items():
        (tmp / f"{kind}.pem").write_bytes(data)
    return pem


def test_real_envoy_accepts_every_policy_together(tmp_path: Path) -> None:
    pem = _pem_files(tmp_path)
    snapshot = snapshot_of(rule(f"""
        host: backend
        trafficPolicy:
          loadBalancer: {{consistentHash: {{httpCookie: {{name: s, ttl: 10s, path: /}},
                                          ringHash: {{minimumRingSize: 1024}}}}}}
          connectionPool:
            tcp: {{maxConnections: 1, connectTimeout: 1s, maxConnectionDuration: 1h,
                  tcpKeepalive: {{probes: 2, time: 10s, interval: 5s}}}}
            http: {{http1MaxPendingRequests: 1, http2MaxRequests: 2, maxRetries: 1,
                   idleTimeout: 10s, maxRequestsPerConnection: 5, h2UpgradePolicy: UPGRADE}}
          outlierDetection: {{consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s,
                             maxEjectionPercent: 100, minHealthPercent: 0,
                             splitExternalLocalOriginErrors: true,
                             consecutiveLocalOriginFailures: 2}}
          portLevelSettings:
          - port: {{number: 9091}}
            loadBalancer: {{simple: ROUND_ROBIN, warmupDurationSecs: 10s}}
            tls: {{mode: MUTUAL, clientCertificate: {tmp_path}/cert.pem,
                  privateKey: {tmp_path}/key.pem, caCertificates: {tmp_path}/cert.pem,
                  subjectAltNames: [test]}}
        subsets:
        - name: v1
          labels: {{version: v1}}
          trafficPolicy:
            loadBalancer: {{consistentHash: {{useSourceIp: true, maglev: {{tableSize: 65537}}}}}}
            tls: {{mode: SIMPLE, credentialName: cred}}
        - name: v2
          labels: {{version: v2}}
          trafficPolicy:
            loadBalancer: {{simple: PASSTHROUGH}}
            connectionPool: {{http: {{useClientProtocol: true}}}}
            tls: {{mode: SIMPLE, insecureSkipVerify: true}}
        """), _secret("cred", "default", ca_crt=pem["cert"]), """
        apiVersion: networking.istio.io/v1
        kind: VirtualService
        metadata: {name: backend}
        spec:
          hosts: [backend]
          http:
          - route:
            - {destination: {host: backend, subset: v1}, weight: 50}
            - {destination: {host: backend, subset: v2}, weight: 50}
        """)
    produced = outbound_clusters(snapshot)
    assert len(produced) == 6
    listener = http_listener(18080, proxy_route_config(snapshot, "15001"))
    out = validate_bootstrap(static_bootstrap(produced, outbound_endpoints(snapshot), [listener]))
    assert out.returncode == 0, out.stdout + out.stderr
