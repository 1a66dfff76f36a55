"""Sidecar scoping and PeerAuthentication ports, as simulated calls (ported from
test_translate_scope.py and test_peer_authentication.py): a scoped-out service falls to the
catch-all; a STRICT port takes only mTLS, PERMISSIVE both, a port-level DISABLE plaintext."""

from __future__ import annotations

import textwrap

from heddle.api.loader import load_text
from heddle.model.mesh_config import MeshConfig
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.simulation import Call, Direction, Error, Protocol, Tls, simulate
from heddle.translate.sidecar import ProxyResources, sidecar_resources

MESH = """
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: cart}
  ports: [{name: http, port: 8080}, {name: tcp-admin, port: 9000}]
---
apiVersion: v1
kind: Service
metadata: {name: pay, namespace: shop}
spec:
  selector: {app: pay}
  ports: [{name: http, port: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: bank}
spec:
  selector: {app: ledger}
  ports: [{name: http, port: 8080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: cart, namespace: shop}
spec: {address: 127.0.30.1, labels: {app: cart}, serviceAccount: cart}
"""

CART = Proxy(ProxyType.SIDECAR, "cart", "shop", "127.0.30.1", "127.255.30.1",
             (("app", "cart"),), "cart")
LEDGER = "ledger.bank.svc.cluster.local"
DOT_STAR = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
"""
REGISTRY_ONLY = """
apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data:
  mesh: |
    outboundTrafficPolicy:
      mode: REGISTRY_ONLY
"""


def proxy_config(*extra: str) -> ProxyResources:
    result = load_text("\n---\n".join([MESH, *(textwrap.dedent(e) for e in extra)]),
                       "mesh.yaml")
    assert result.errors == [], result.errors
    snapshot = MeshSnapshot.build(1, result.resources,
                                  mesh_config=MeshConfig.from_objects(result.unmanaged))
    return sidecar_resources(snapshot, CART)


# --- Sidecar scoping ---------------------------------------------------------------------

def test_a_visible_service_is_routed_to_its_cluster() -> None:
    result = simulate(proxy_config(), Call(host="ledger.bank", port=8080))
    assert result.cluster == f"outbound|8080||{LEDGER}"


def test_a_service_the_sidecar_scopes_out_passes_through_by_default() -> None:
    result = simulate(proxy_config(DOT_STAR), Call(host="ledger.bank", port=8080))
    assert (result.virtual_host, result.route, result.cluster) == (
        "allow_any", "allow_any", "PassthroughCluster")
    tunnel = simulate(proxy_config(DOT_STAR),
                      Call(host="ledger.bank", port=8080, protocol=Protocol.TCP))
    assert tunnel.cluster == "PassthroughCluster"
    # Its own namespace's services stay routed.
    assert simulate(proxy_config(DOT_STAR), Call(host="pay", port=8080)).cluster \
        == "outbound|8080||pay.shop.svc.cluster.local"


def test_a_scoped_out_service_gets_502_under_registry_only() -> None:
    for call in (Call(host="ledger.bank", port=8080),
                 Call(host="ledger.bank", port=8080, protocol=Protocol.TCP)):
        result = simulate(proxy_config(DOT_STAR, REGISTRY_ONLY), call)
        assert (result.virtual_host, result.route, result.status) == (
            "block_all", "block_all", 502)
        assert result.cluster is None


def test_the_bare_name_of_another_namespaces_service_is_not_its_domain() -> None:
    result = simulate(proxy_config(REGISTRY_ONLY), Call(host="ledger", port=8080))
    assert result.virtual_host == "block_all"  # only from bank does `ledger` resolve
    assert simulate(proxy_config(REGISTRY_ONLY), Call(host="cart", port=8080)).cluster \
        == "outbound|8080||cart.shop.svc.cluster.local"


# --- PeerAuthentication ports ------------------------------------------------------------

def peer_authentication(mode: str, port_mode: str = "") -> str:
    text = ("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\n"
            "metadata: {name: cart, namespace: shop}\nspec:\n"
            "  selector: {matchLabels: {app: cart}}\n"
            f"  mtls: {{mode: {mode}}}\n")
    if port_mode:
        text += f"  portLevelMtls: {{'8080': {{mode: {port_mode}}}}}\n"
    return text


def inbound(tls: Tls, port: int = 8080, protocol: Protocol = Protocol.HTTP) -> Call:
    return Call(direction=Direction.INBOUND, address="127.0.30.1", port=port, tls=tls,
                host="cart", protocol=protocol)


def test_a_strict_port_takes_only_the_mtls_chain() -> None:
    config = proxy_config(peer_authentication("STRICT"))
    mtls = simulate(config, inbound(Tls.MTLS))
    assert (mtls.listener, mtls.filter_chain, mtls.cluster) == (
        "127.0.30.1_8080", "mtls", "inbound|8080||")
    assert simulate(config, inbound(Tls.PLAINTEXT)).error == Error.NO_FILTER_CHAIN
    # TLS without the mesh's client certificate fails the handshake.
    assert simulate(config, inbound(Tls.TLS)).error == Error.MTLS_ERROR


def test_a_permissive_port_takes_mtls_and_plaintext() -> None:
    for config in (proxy_config(), proxy_config(peer_authentication("PERMISSIVE"))):
        assert simulate(config, inbound(Tls.MTLS)).filter_chain == "mtls"
        plaintext = simulate(config, inbound(Tls.PLAINTEXT))
        assert (plaintext.filter_chain, plaintext.cluster) == ("plaintext", "inbound|8080||")


def test_a_port_level_disable_takes_only_plaintext_on_that_port() -> None:
    config = proxy_config(peer_authentication("STRICT", port_mode="DISABLE"))
    assert simulate(config, inbound(Tls.PLAINTEXT)).filter_chain == "plaintext"
    assert simulate(config, inbound(Tls.MTLS)).error == Error.NO_FILTER_CHAIN
    # The workload's other port keeps the workload-wide STRICT.
    tcp = simulate(config, inbound(Tls.MTLS, port=9000, protocol=Protocol.TCP))
    assert (tcp.filter_chain, tcp.cluster) == ("mtls", "inbound|9000||")
    assert simulate(config, inbound(Tls.PLAINTEXT, port=9000, protocol=Protocol.TCP)).error \
        == Error.NO_FILTER_CHAIN


def test_a_port_the_workload_does_not_serve_has_no_listener() -> None:
    assert simulate(proxy_config(), inbound(Tls.MTLS, port=7777)).error == Error.NO_LISTENER
