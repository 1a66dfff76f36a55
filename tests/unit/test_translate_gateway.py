"""A gateway proxy's configuration from Istio Gateways and the VirtualServices bound to them,
as istiod builds it: golden, and accepted by real Envoy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import check_golden

from heddle.api.loader import load_paths, load_text
from heddle.model.gateways import (
    INGRESS_LABELS,
    INGRESS_NAME,
    INGRESS_NAMESPACE,
    gateway_workloads,
)
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.testing.server_certs import TestCA, tls_secret_yaml
from heddle.translate.gateway import gateway_config, gateway_listeners
from heddle.translate.listeners import OUTBOUND_ROUTE
from heddle.translate.sidecar import CLUSTER, LISTENER, ROUTE, SECRET, sidecar_resources

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "golden" / "gateway" / "gateway.yaml"
GATEWAY = Proxy(ProxyType.ROUTER, INGRESS_NAME, INGRESS_NAMESPACE, "127.0.10.250",
                "127.0.10.250", INGRESS_LABELS, "istio-ingressgateway-service-account")
CA = TestCA()
SECRETS = (tls_secret_yaml("a-cert", "istio-system", CA.issue("a.example.com",
                                                                   "secure.example.com"))
           + "---\n"
           + tls_secret_yaml("b-cert", "istio-system", CA.issue("b.example.com"), CA.cert_pem))


def snapshot(*extra: str, fixture: bool = True) -> MeshSnapshot:
    result = load_paths([ROOT / "examples" / "hello", *([FIXTURE] if fixture else [])])
    assert result.errors == []
    resources = list(result.resources)
    for i, text in enumerate(extra):
        loaded = load_text(text, f"extra-{i}.yaml")
        assert loaded.errors == [], loaded.errors
        resources += loaded.resources
    return MeshSnapshot.build(1, resources)


def listener(config: object, port: int) -> listener_pb2.Listener:
    found = config.resources.of(LISTENER)[f"127.0.10.250_{port}"]  # type: ignore[attr-defined]
    assert isinstance(found, listener_pb2.Listener)
    return found


def unpack_tls(chain: listener_components_pb2.FilterChain) -> tls_pb2.DownstreamTlsContext:
    context = tls_pb2.DownstreamTlsContext()
    chain.transport_socket.typed_config.Unpack(context)
    return context


def test_one_listener_per_server_port_on_the_gateway_address() -> None:
    config = gateway_config(snapshot(SECRETS), GATEWAY)
    assert sorted(config.resources.of(LISTENER)) == [
        "127.0.10.250_15443", "127.0.10.250_443", "127.0.10.250_80", "127.0.10.250_8443",
        "127.0.10.250_9000"]
    assert config.problems == []


def test_routes_are_named_per_port_for_http_and_per_server_for_https() -> None:
    routes = gateway_config(snapshot(SECRETS), GATEWAY).resources.of(ROUTE)
    assert sorted(routes) == [
        "http.80", "https.15443.https-mesh.ingressgateway.istio-system",
        "https.443.https-a.ingressgateway.istio-system",
        "https.443.https-b.ingressgateway.istio-system"]


def test_http_servers_of_a_port_share_routes_and_a_redirect_server_requires_tls() -> None:
    [config] = [gateway_config(snapshot(SECRETS), GATEWAY).resources.of(ROUTE)["http.80"]]
    assert isinstance(config, route_pb2.RouteConfiguration)
    hosts = {h.name: h for h in config.virtual_hosts}
    assert sorted(hosts) == ["secure.example.com:80", "web.example.com:80"]
    assert list(hosts["web.example.com:80"].domains) == ["web.example.com", "web.example.com:*"]
    assert hosts["secure.example.com:80"].require_tls == rc.VirtualHost.ALL
    assert hosts["web.example.com:80"].require_tls == rc.VirtualHost.NONE
    web = hosts["web.example.com:80"]
    assert [r.route.cluster for r in web.routes] == [
        "outbound|9090|v1|backend.default.svc.cluster.local",
        "outbound|8080||frontend.default.svc.cluster.local"]


def test_each_https_server_has_its_own_certificate_chosen_by_sni() -> None:
    chains = {c.name: c for c in listener(gateway_config(snapshot(SECRETS), GATEWAY), 443)
              .filter_chains}
    a, b = chains["istio-system/ingressgateway/2"], chains["istio-system/ingressgateway/3"]
    assert list(a.filter_chain_match.server_names) == ["a.example.com", "secure.example.com"]
    assert list(b.filter_chain_match.server_names) == ["b.example.com"]
    simple, mutual = unpack_tls(a), unpack_tls(b)
    [cert] = simple.common_tls_context.tls_certificate_sds_secret_configs
    assert cert.name == "kubernetes://a-cert"
    assert cert.sds_config.HasField("ads")  # served by the control plane, not the agent
    assert not simple.require_client_certificate.value
    assert list(simple.common_tls_context.alpn_protocols) == ["h2", "http/1.1"]
    assert mutual.require_client_certificate.value
    assert mutual.common_tls_context.combined_validation_context \
        .validation_context_sds_secret_config.name == "kubernetes://b-cert-cacert"


def test_credential_secrets_are_served_with_the_listeners() -> None:
    secrets = gateway_config(snapshot(SECRETS), GATEWAY).resources.of(SECRET)
    assert sorted(secrets) == ["kubernetes://a-cert", "kubernetes://b-cert",
                               "kubernetes://b-cert-cacert"]
    a = secrets["kubernetes://a-cert"]
    assert b"BEGIN CERTIFICATE" in a.tls_certificate.certificate_chain.inline_bytes  # type: ignore[attr-defined]
    assert secrets["kubernetes://b-cert-cacert"].validation_context.trusted_ca \
        .inline_bytes == CA.cert_pem  # type: ignore[attr-defined]


def test_a_missing_secret_is_a_problem_naming_the_gateway_server_and_secret() -> None:
    config = gateway_config(snapshot(), GATEWAY)
    assert config.problems == [
        "Gateway istio-system/ingressgateway server 2 (port 443 https-a): credentialName: "
        "Secret istio-system/a-cert does not exist (credentialName is read from the "
        "gateway's namespace, istio-system; create it there with keys tls.crt and tls.key); "
        "its handshakes fail until it is fixed",
        "Gateway istio-system/ingressgateway server 3 (port 443 https-b): credentialName: "
        "Secret istio-system/b-cert does not exist (credentialName is read from the "
        "gateway's namespace, istio-system; create it there with keys tls.crt and tls.key); "
        "its handshakes fail until it is fixed"]
    # The listener still names the secret: without it no handshake succeeds (fail closed).
    assert "kubernetes://a-cert" not in config.resources.of(SECRET)
    assert len(listener(config, 443).filter_chains) == 2


def test_a_secret_that_is_not_pem_is_a_problem_saying_which_key() -> None:
    broken = ("apiVersion: v1\nkind: Secret\nmetadata: {name: a-cert, namespace: istio-system}\n"
              "type: kubernetes.io/tls\nstringData: {tls.crt: nonsense, tls.key: nonsense}\n")
    [problem, _] = gateway_config(snapshot(broken), GATEWAY).problems
    assert "Secret istio-system/a-cert: data.tls.crt is not a PEM certificate" in problem


def test_mutual_without_a_ca_says_where_the_ca_is_looked_for() -> None:
    no_ca = tls_secret_yaml("b-cert", "istio-system", CA.issue("b.example.com"))
    a = tls_secret_yaml("a-cert", "istio-system", CA.issue("a.example.com"))
    [problem] = gateway_config(snapshot(a + "---\n" + no_ca), GATEWAY).problems
    assert "Secret istio-system/b-cert has no ca.crt, and there is no Secret " \
           "istio-system/b-cert-cacert holding one" in problem


def test_istio_mutual_server_uses_the_gateway_identity_from_its_agent() -> None:
    [chain] = listener(gateway_config(snapshot(SECRETS), GATEWAY), 15443).filter_chains
    context = unpack_tls(chain)
    assert context.require_client_certificate.value
    [cert] = context.common_tls_context.tls_certificate_sds_secret_configs
    assert cert.name == "default"
    assert cert.sds_config.api_config_source.grpc_services[0].envoy_grpc.cluster_name == \
        "sds-grpc"


def test_passthrough_forwards_by_sni_without_terminating() -> None:
    [chain] = listener(gateway_config(snapshot(SECRETS), GATEWAY), 8443).filter_chains
    assert list(chain.filter_chain_match.server_names) == ["app.pass.example.com"]
    assert not chain.HasField("transport_socket")
    proxy = tcp_proxy_pb2.TcpProxy()
    chain.filters[0].typed_config.Unpack(proxy)
    assert proxy.cluster == "outbound|8080||frontend.default.svc.cluster.local"


def test_tcp_server_forwards_by_the_bound_tcp_rule() -> None:
    [chain] = listener(gateway_config(snapshot(SECRETS), GATEWAY), 9000).filter_chains
    proxy = tcp_proxy_pb2.TcpProxy()
    chain.filters[0].typed_config.Unpack(proxy)
    assert proxy.cluster == "outbound|9000||echo.default.svc.cluster.local"


def test_gateway_clusters_reach_sidecars_over_istio_mutual() -> None:
    clusters = gateway_config(snapshot(SECRETS), GATEWAY).resources.of(CLUSTER)
    backend = clusters["outbound|9090|v1|backend.default.svc.cluster.local"]
    match = backend.transport_socket_matches[0]  # type: ignore[attr-defined]
    assert match.name == "tlsMode-istio"  # endpoints with a sidecar; others in plaintext
    context = tls_pb2.UpstreamTlsContext()
    match.transport_socket.typed_config.Unpack(context)
    assert context.common_tls_context.tls_certificate_sds_secret_configs[0].name == "default"


SERVER_HOST_NAMESPACES = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["team-a/*.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: team-a}
spec:
  hosts: ["*"]
  gateways: ["istio-system/gw"]
  http: [{route: [{destination: {host: backend.default.svc.cluster.local}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: team-b}
spec:
  hosts: ["b.example.com"]
  gateways: ["istio-system/gw"]
  http: [{route: [{destination: {host: backend.default.svc.cluster.local}}]}]
"""


def test_a_server_host_namespace_admits_only_that_namespaces_virtual_services() -> None:
    config = gateway_config(snapshot(SERVER_HOST_NAMESPACES, fixture=False), GATEWAY)
    routes = config.resources.of(ROUTE)["http.8080"]
    # team-a's `*` narrows to the server's host; team-b's host is not admitted.
    assert [h.name for h in routes.virtual_hosts] == ["*.example.com:8080"]  # type: ignore[attr-defined]


def test_a_port_without_bound_virtual_services_answers_404() -> None:
    unbound = SERVER_HOST_NAMESPACES.split("---")[0]
    routes = gateway_config(snapshot(unbound, fixture=False), GATEWAY).resources.of(ROUTE)
    [host] = routes["http.8080"].virtual_hosts  # type: ignore[attr-defined]
    assert host.name == "blackhole:8080"
    assert host.routes[0].direct_response.status == 404


MESH_KEYWORD = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: both, namespace: default}
spec:
  hosts: [frontend]
  gateways: [gw, mesh]
  http:
  - match: [{gateways: [gw], uri: {prefix: /from-gateway}}]
    route: [{destination: {host: backend, subset: v2}}]
  - route: [{destination: {host: frontend}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: gateway-only, namespace: default}
spec:
  hosts: [backend]
  gateways: [gw]
  http: [{route: [{destination: {host: backend, subset: v1}}]}]
"""


def test_mesh_keyword_binds_sidecars_and_match_gateways_narrow_a_rule() -> None:
    mesh = snapshot(MESH_KEYWORD, fixture=False)
    routes = gateway_config(mesh, GATEWAY).resources.of(ROUTE)["http.8080"]
    by_host = {h.name: [r.name for r in h.routes]  # type: ignore[attr-defined]
               for h in routes.virtual_hosts}  # type: ignore[attr-defined]
    assert by_host == {"frontend.default.svc.cluster.local:8080": ["default.both.0",
                                                                   "default.both.1"],
                       "backend.default.svc.cluster.local:8080": ["default.gateway-only.0"]}
    client = Proxy(ProxyType.SIDECAR, "client", "default", "127.0.10.1", "127.128.10.1",
                   (("app", "client"),))
    [config] = sidecar_resources(mesh, client).of(ROUTE).values()
    assert config.name == OUTBOUND_ROUTE  # type: ignore[attr-defined]
    sidecar_hosts = {h.name: [r.name for r in h.routes]  # type: ignore[attr-defined]
                     for h in config.virtual_hosts}  # type: ignore[attr-defined]
    # The sidecar gets the `mesh` rules only; a VirtualService bound to gw alone is not its.
    assert sidecar_hosts["frontend.default.svc.cluster.local:8080"][0] == "default.both.1"
    assert "default.gateway-only.0" not in sidecar_hosts["backend.default.svc.cluster.local:9090"]


def test_conflicting_servers_on_a_port_are_skipped_with_a_problem() -> None:
    conflict = """
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8080, name: tcp, protocol: TCP}
    hosts: ["*"]
"""
    [problem] = gateway_config(snapshot(conflict, fixture=False), GATEWAY).problems
    assert problem.startswith("Gateway istio-system/gw server 1 (port 8080 tcp): port 8080 is "
                              "already served by Gateway istio-system/gw server 0")


def test_without_root_privileged_ports_move_by_the_offset_and_say_so() -> None:
    unprivileged = replace(GATEWAY, low_port_offset=8000)
    mesh = snapshot(SECRETS)
    assert "127.0.10.250_8080" in gateway_config(mesh, unprivileged).resources.of(LISTENER)
    urls = [listener.url for listener in gateway_listeners(mesh, unprivileged)]
    assert urls == ["http://127.0.10.250:8080", "https://127.0.10.250:8443",
                    "tls://127.0.10.250:8443", "tcp://127.0.10.250:9000",
                    "https://127.0.10.250:15443"]
    # 443 moved onto 8443, where the TLS server listens: that one is skipped, and said.
    assert any("port 8443 would listen on 8443, as port 443 does" in p
               for p in gateway_config(mesh, unprivileged).problems)


def test_the_default_ingress_gateway_runs_unless_an_istio_operator_turns_it_off() -> None:
    mesh = snapshot(fixture=False)
    assert [g.key for g in gateway_workloads(mesh)] == ["istio-ingressgateway.istio-system"]
    operator = load_text("""
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata: {name: installed, namespace: istio-system}
spec:
  components:
    ingressGateways: [{name: istio-ingressgateway, enabled: false}]
""", "operator.yaml")
    assert gateway_workloads(mesh, tuple(operator.unmanaged)) == []


def test_gateway_api_gateways_of_heddles_classes_get_a_gateway_proxy_each() -> None:
    classes = load_text("""
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: apps}
spec:
  gatewayClassName: istio
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: elsewhere, namespace: apps}
spec:
  gatewayClassName: other
  listeners: [{name: http, port: 80, protocol: HTTP}]
""", "gateway-api.yaml")
    assert classes.errors == []
    mesh = MeshSnapshot.build(1, classes.resources)
    [ingress, web] = gateway_workloads(mesh)
    assert ingress.source == "default ingress gateway"
    assert (web.name, web.namespace, dict(web.labels)["gateway.networking.k8s.io/gateway-name"]
            ) == ("web-istio", "apps", "web")


def test_gateway_resources_match_golden_and_real_envoy_accepts_them() -> None:
    resources = gateway_config(snapshot(SECRETS), GATEWAY).resources
    check_golden("../gateway/gateway-ingress.json", {
        type_url.rsplit(".", 1)[-1]: {name: MessageToDict(m) for name, m in sorted(items.items())}
        for type_url, items in resources.by_type.items() if type_url != SECRET
    })
    out = validate_bootstrap(sidecar_bootstrap(resources))
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("mode", ["SIMPLE", "MUTUAL", "OPTIONAL_MUTUAL", "ISTIO_MUTUAL"])
def test_real_envoy_accepts_a_tls_server_of_every_terminating_mode(mode: str) -> None:
    gateway = f"""
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: gw, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: 8443, name: https, protocol: HTTPS}}
    hosts: ["*"]
    tls:
      mode: {mode}
      {"credentialName: b-cert" if mode != "ISTIO_MUTUAL" else ""}
      minProtocolVersion: TLSV1_2
  - port: {{number: 9443, name: tls, protocol: TLS}}
    hosts: ["*"]
    tls:
      mode: {mode}
      {"credentialName: b-cert" if mode != "ISTIO_MUTUAL" else ""}
"""
    tcp = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: tcp, namespace: istio-system}
spec:
  hosts: ["*"]
  gateways: [gw]
  tcp: [{route: [{destination: {host: echo.default.svc.cluster.local, port: {number: 9000}}}]}]
"""
    config = gateway_config(snapshot(gateway, tcp, SECRETS, fixture=False), GATEWAY)
    assert config.problems == []
    assert len(config.resources.of(LISTENER)) == 2
    out = validate_bootstrap(sidecar_bootstrap(config.resources))
    assert out.returncode == 0, out.stdout + out.stderr
