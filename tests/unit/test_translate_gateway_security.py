"""Edge security: RequestAuthentication and AuthorizationPolicy on gateway proxies, attached
as Istio attaches them (selector, root namespace, `targetRefs` to a Gateway API Gateway) and
enforced on every HTTP and TCP chain of the gateway: golden, and accepted by real Envoy."""

from __future__ import annotations

from typing import Any

from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import check_golden
from test_translate_gateway import FIXTURE, GATEWAY, SECRETS, listener, snapshot

from heddle.api.resource import Resource
from heddle.model.gateways import gateway_workloads
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.authz import applicable_policies
from heddle.translate.gateway import gateway_config
from heddle.translate.sidecar import CLUSTER, LISTENER

SECURITY = (FIXTURE.parent / "edge-security.yaml").read_text()
BACKEND = Proxy(ProxyType.SIDECAR, "backend-1", "default", "127.0.10.3", "127.255.10.3",
                (("app", "backend"), ("version", "v1")), "backend")


def edge(*extra: str) -> MeshSnapshot:
    return snapshot(SECRETS, SECURITY, *extra)


def web_gateway(mesh: MeshSnapshot) -> Proxy:
    """The workload deployed for Gateway API Gateway apps/web, as `heddle up` runs it."""
    [workload] = [w for w in gateway_workloads(mesh) if w.namespace == "apps"]
    return Proxy(ProxyType.ROUTER, workload.name, workload.namespace, "127.0.10.249",
                 "127.0.10.249", workload.labels, workload.service_account)


def names(policies: list[Resource[Any]]) -> list[str]:
    return sorted(f"{p.namespace}/{p.name}" for p in policies)


def http_filter_names(chain: listener_components_pb2.FilterChain) -> list[str]:
    manager = hcm.HttpConnectionManager()
    chain.filters[0].typed_config.Unpack(manager)
    return [f.name for f in manager.http_filters]


def jwt_config(chain: listener_components_pb2.FilterChain) -> jwt_pb2.JwtAuthentication:
    manager = hcm.HttpConnectionManager()
    chain.filters[0].typed_config.Unpack(manager)
    [found] = [f for f in manager.http_filters if f.name == "envoy.filters.http.jwt_authn"]
    config = jwt_pb2.JwtAuthentication()
    found.typed_config.Unpack(config)
    return config


def test_policies_selecting_the_ingress_gateway_by_its_labels_apply_to_it() -> None:
    mesh = edge()
    assert names(applicable_policies(mesh, GATEWAY)) == [
        "istio-system/deny-admin", "istio-system/require-jwt"]
    assert names(applicable_policies(mesh, GATEWAY, "RequestAuthentication")) == [
        "istio-system/ingress-jwt"]
    # ... and a sidecar's policy does not: its selector picks the backend.
    assert names(applicable_policies(mesh, BACKEND)) == ["default/backend-only"]


def test_a_root_namespace_policy_without_selector_applies_to_gateways_and_sidecars() -> None:
    mesh_wide = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: mesh-wide, namespace: istio-system}
spec: {action: DENY, rules: [{to: [{operation: {methods: [CONNECT]}}]}]}
"""
    mesh = edge(mesh_wide)
    for proxy in (GATEWAY, web_gateway(mesh), BACKEND):
        assert "istio-system/mesh-wide" in names(applicable_policies(mesh, proxy))


def test_target_refs_attach_only_to_the_workload_of_the_gateway_they_name() -> None:
    mesh = edge()
    web = web_gateway(mesh)
    # Not another Gateway's, not a Service of that name, not from another namespace.
    assert names(applicable_policies(mesh, web)) == ["apps/web-gateway"]
    assert names(applicable_policies(mesh, web, "RequestAuthentication")) == ["apps/web-jwt"]


def test_target_refs_are_ignored_by_sidecars_and_by_istio_installed_gateways() -> None:
    retargeted = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ingress-by-ref, namespace: istio-system}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: istio-ingressgateway}]
  action: DENY
  rules: [{}]
"""
    mesh = edge(retargeted)
    assert "istio-system/ingress-by-ref" not in names(applicable_policies(mesh, GATEWAY))
    assert all(not p.body["spec"].get("targetRefs")
               for p in applicable_policies(mesh, BACKEND))


def test_selector_policies_apply_to_gateway_api_gateways_too() -> None:
    # Istio's default (ENABLE_SELECTOR_BASED_K8S_GATEWAY_POLICY=true), though istioctl
    # analyze suggests targetRefs instead (IST0166).
    by_label = """
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-by-label, namespace: apps}
spec:
  selector: {matchLabels: {gateway.networking.k8s.io/gateway-name: web}}
  action: DENY
  rules: [{to: [{operation: {paths: [/private*]}}]}]
"""
    mesh = edge(by_label)
    assert "apps/web-by-label" in names(applicable_policies(mesh, web_gateway(mesh)))


# Every gateway chain starts by naming the gateway to the sidecars it calls (peer labels)
# and counting gRPC messages, for Istio's metrics.
PEER = ["heddle.internal_headers", "envoy.filters.http.header_mutation",
        "envoy.filters.http.grpc_stats"]


def test_every_http_chain_authenticates_then_authorizes_then_routes() -> None:
    config = gateway_config(edge(), GATEWAY)
    assert config.problems == []
    chains = [*listener(config, 80).filter_chains,
              *(c for c in listener(config, 443).filter_chains),  # SIMPLE and MUTUAL
              *listener(config, 15443).filter_chains]  # ISTIO_MUTUAL
    assert len(chains) == 4
    for chain in chains:
        assert http_filter_names(chain) == [
            *PEER, "envoy.filters.http.jwt_authn", "envoy.filters.http.rbac.deny",
            "envoy.filters.http.rbac.allow", "envoy.filters.http.cors",
            "envoy.filters.http.fault", "heddle.alpn", "envoy.filters.http.router"]


def test_jwt_at_the_gateway_lets_tokenless_requests_on_to_authorization_and_copies_claims(
        ) -> None:
    config = gateway_config(edge(), GATEWAY)
    jwt = jwt_config(listener(config, 80).filter_chains[0])
    [local, remote] = (jwt.providers[f"origins-istio-system-ingress-jwt-{i}"] for i in (0, 1))
    assert [(c.header_name, c.claim_name) for c in local.claim_to_headers] == [
        ("x-jwt-sub", "sub")]
    assert (local.forward, remote.forward) == (False, True)  # forwardOriginalToken
    # No token: on to the RBAC filters, where require-jwt's requestPrincipals refuse it.
    assert jwt.rules[0].requires.requires_any.requirements[-1].HasField("allow_missing")
    # The remote JWKS is fetched through a cluster of the gateway's own.
    assert remote.remote_jwks.http_uri.cluster in config.resources.of(CLUSTER)


def test_tcp_and_passthrough_chains_enforce_the_policies_on_the_connection() -> None:
    config = gateway_config(edge(), GATEWAY)
    for port in (9000, 8443):
        for chain in listener(config, port).filter_chains:
            assert [f.name for f in chain.filters] == [
                "envoy.filters.network.rbac.deny", "envoy.filters.network.rbac.allow",
                "envoy.filters.network.tcp_proxy"]


def test_a_gateway_without_policies_has_no_authentication_or_authorization_filters() -> None:
    config = gateway_config(snapshot(SECRETS), GATEWAY)
    assert http_filter_names(listener(config, 80).filter_chains[0]) == [
        *PEER, "envoy.filters.http.cors", "envoy.filters.http.fault", "heddle.alpn",
        "envoy.filters.http.router"]


def test_a_policy_attached_by_target_refs_is_enforced_on_that_gateways_listeners() -> None:
    # An Istio Gateway may select the deployed workload by its label, as in Istio.
    listeners = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: web-servers, namespace: apps}
spec:
  selector: {gateway.networking.k8s.io/gateway-name: web}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
"""
    mesh = edge(listeners)
    web = web_gateway(mesh)
    config = gateway_config(mesh, web)
    [chain] = config.resources.of(LISTENER)[f"{web.address}_8080"].filter_chains  # type: ignore[attr-defined]
    assert http_filter_names(chain)[:len(PEER) + 2] == [*PEER, "envoy.filters.http.jwt_authn",
                                            "envoy.filters.http.rbac.deny"]
    assert "jwks|127.0.0.9|8080" in config.resources.of(CLUSTER)
    out = validate_bootstrap(sidecar_bootstrap(config.resources))
    assert out.returncode == 0, out.stdout + out.stderr


def test_edge_security_matches_golden_and_real_envoy_accepts_it() -> None:
    resources = gateway_config(edge(), GATEWAY).resources
    check_golden("../gateway/gateway-ingress-security.json", {
        name: MessageToDict(m) for name, m in sorted(resources.of(LISTENER).items())})
    out = validate_bootstrap(sidecar_bootstrap(resources))
    assert out.returncode == 0, out.stdout + out.stderr
