"""What a proxy sees: exportTo, the Sidecar resource (egress hosts, ingress, outbound traffic
policy) and where traffic to unknown hosts goes (PassthroughCluster or 502)."""

from __future__ import annotations

import textwrap

from envoy.config.route.v3 import route_pb2

from heddle.api.loader import load_text
from heddle.model.mesh_config import MeshConfig
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.scope import proxy_scope
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.sidecar import CLUSTER, LISTENER, ROUTE, sidecar_resources

# Two namespaces with two services each, one exported only to its own namespace.
MESH = """
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: cart}
  ports: [{name: http, port: 8080}]
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
kind: ServiceEntry
metadata: {name: vault, namespace: bank}
spec:
  hosts: [vault.bank.svc.cluster.local]
  exportTo: ["."]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8200, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vault}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: cart, namespace: shop}
spec: {address: 127.0.30.1, labels: {app: cart}, serviceAccount: cart}
"""

CART = Proxy(ProxyType.SIDECAR, "cart", "shop", "127.0.30.1", "127.255.30.1",
             (("app", "cart"),), "cart")


def snapshot(*extra: str) -> MeshSnapshot:
    text = "\n---\n".join([MESH, *(textwrap.dedent(e) for e in extra)])
    result = load_text(text, "mesh.yaml")
    assert result.errors == [], result.errors
    return MeshSnapshot.build(1, result.resources)


def visible_hosts(snap: MeshSnapshot, proxy: Proxy = CART) -> list[str]:
    return [s.hostname for s in proxy_scope(snap, proxy).snapshot.registry.services]


def outbound_clusters(snap: MeshSnapshot) -> list[str]:
    return sorted(n for n in sidecar_resources(snap, CART).of(CLUSTER)
                  if n.startswith("outbound|"))


def catch_all(snap: MeshSnapshot) -> route_pb2.VirtualHost:
    [config] = sidecar_resources(snap, CART).of(ROUTE).values()
    [host] = [h for h in config.virtual_hosts if list(h.domains) == ["*"]]  # type: ignore[attr-defined]
    return host


def test_without_a_sidecar_resource_a_proxy_sees_what_is_exported_to_its_namespace() -> None:
    assert visible_hosts(snapshot()) == [
        "cart.shop.svc.cluster.local", "ledger.bank.svc.cluster.local",
        "pay.shop.svc.cluster.local"]  # vault is exported only to bank


def test_a_namespace_sidecar_with_dot_star_keeps_only_that_namespace() -> None:
    sidecar = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: default, namespace: shop}
    spec:
      egress: [{hosts: ["./*"]}]
    """
    assert outbound_clusters(snapshot()) == [
        "outbound|8080||cart.shop.svc.cluster.local",
        "outbound|8080||ledger.bank.svc.cluster.local",
        "outbound|8080||pay.shop.svc.cluster.local"]
    assert outbound_clusters(snapshot(sidecar)) == [
        "outbound|8080||cart.shop.svc.cluster.local",
        "outbound|8080||pay.shop.svc.cluster.local"]


def test_egress_hosts_name_namespaces_and_hosts_exactly_or_by_wildcard() -> None:
    sidecar = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: default, namespace: shop}
    spec:
      egress: [{hosts: ["bank/ledger.bank.svc.cluster.local", "*/*.shop.svc.cluster.local"]}]
    """
    assert visible_hosts(snapshot(sidecar)) == [
        "cart.shop.svc.cluster.local", "ledger.bank.svc.cluster.local",
        "pay.shop.svc.cluster.local"]
    other = sidecar.replace("*/*.shop", "bank/*.shop")
    assert visible_hosts(snapshot(other)) == ["ledger.bank.svc.cluster.local"]
    tilde = sidecar.replace('"bank/ledger.bank.svc.cluster.local", "*/*.shop.svc.cluster.local"',
                            '"~/*"')
    assert visible_hosts(snapshot(tilde)) == []


def test_a_tilde_namespace_egress_host_excludes_that_namespace_from_the_rest() -> None:
    sidecar = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: default, namespace: shop}
    spec:
      egress: [{hosts: ["*/*", "~bank/*"]}]
    """
    assert visible_hosts(snapshot(sidecar)) == [
        "cart.shop.svc.cluster.local", "pay.shop.svc.cluster.local"]
    one_host = sidecar.replace("~bank/*", "~shop/pay.shop.svc.cluster.local")
    assert visible_hosts(snapshot(one_host)) == [
        "cart.shop.svc.cluster.local", "ledger.bank.svc.cluster.local"]


def test_a_workload_selector_sidecar_wins_over_the_namespace_and_root_ones() -> None:
    root = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: default, namespace: istio-system}
    spec:
      egress: [{hosts: ["bank/*"]}]
    """
    assert visible_hosts(snapshot(root)) == ["ledger.bank.svc.cluster.local"]
    namespace = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: default, namespace: shop}
    spec:
      egress: [{hosts: ["./pay.shop.svc.cluster.local"]}]
    """
    assert visible_hosts(snapshot(root, namespace)) == ["pay.shop.svc.cluster.local"]
    selected = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: cart, namespace: shop}
    spec:
      workloadSelector: {labels: {app: cart}}
      egress: [{hosts: ["./cart.shop.svc.cluster.local"]}]
    """
    assert visible_hosts(snapshot(root, namespace, selected)) == ["cart.shop.svc.cluster.local"]


def test_services_a_visible_virtual_service_routes_to_stay_reachable() -> None:
    sidecar = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: default, namespace: shop}
    spec:
      egress: [{hosts: ["./*"]}]
    """
    virtual_service = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: pay, namespace: shop}
    spec:
      hosts: [pay.shop.svc.cluster.local]
      http:
      - route: [{destination: {host: ledger.bank.svc.cluster.local}}]
    """
    assert "ledger.bank.svc.cluster.local" in visible_hosts(snapshot(sidecar, virtual_service))


def test_unknown_hosts_pass_through_by_default_and_get_502_under_registry_only() -> None:
    passthrough = catch_all(snapshot())
    assert [r.route.cluster for r in passthrough.routes] == ["PassthroughCluster"] * 2
    assert "PassthroughCluster" in sidecar_resources(snapshot(), CART).of(CLUSTER)
    mesh_config = """
    apiVersion: v1
    kind: ConfigMap
    metadata: {name: istio, namespace: istio-system}
    data:
      mesh: |
        outboundTrafficPolicy:
          mode: REGISTRY_ONLY
    """
    text = "\n---\n".join([MESH, textwrap.dedent(mesh_config)])
    result = load_text(text, "mesh.yaml")
    registry_only = MeshSnapshot.build(1, result.resources,
                                       mesh_config=MeshConfig.from_objects(result.unmanaged))
    blocked = catch_all(registry_only)
    assert {r.name for r in blocked.routes} == {"block_all"}
    assert {r.direct_response.status for r in blocked.routes} == {502}
    # A Sidecar's own policy overrides the mesh's.
    allow = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: default, namespace: shop}
    spec:
      outboundTrafficPolicy: {mode: ALLOW_ANY}
    """
    result = load_text("\n---\n".join([text, textwrap.dedent(allow)]), "mesh.yaml")
    overridden = MeshSnapshot.build(1, result.resources,
                                    mesh_config=MeshConfig.from_objects(result.unmanaged))
    assert catch_all(overridden).routes[0].route.cluster == "PassthroughCluster"


def test_sidecar_ingress_replaces_the_inbound_ports_and_forwards_to_the_default_endpoint() -> None:
    sidecar = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: cart, namespace: shop}
    spec:
      workloadSelector: {labels: {app: cart}}
      ingress:
      - port: {number: 9443, protocol: HTTP, name: http-admin}
        defaultEndpoint: 127.0.0.1:7000
    """
    resources = sidecar_resources(snapshot(sidecar), CART)
    assert "127.0.30.1_9443" in resources.of(LISTENER)
    assert "127.0.30.1_8080" not in resources.of(LISTENER)
    cluster = resources.of(CLUSTER)["inbound|9443||"]
    address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address  # type: ignore[attr-defined]
    assert (address.socket_address.address, address.socket_address.port_value) == (
        "127.255.30.1", 7000)


def test_real_envoy_accepts_scoped_passthrough_and_blocking_configs() -> None:
    sidecar = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: default, namespace: shop}
    spec:
      egress: [{hosts: ["./*"]}]
      outboundTrafficPolicy: {mode: REGISTRY_ONLY}
    """
    for snap in (snapshot(), snapshot(sidecar)):
        out = validate_bootstrap(sidecar_bootstrap(sidecar_resources(snap, CART)))
        assert out.returncode == 0, out.stdout + out.stderr


def test_a_virtual_service_exported_only_to_its_namespace_routes_only_there() -> None:
    virtual_service = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: ledger, namespace: bank}
    spec:
      hosts: [ledger.bank.svc.cluster.local]
      exportTo: ["."]
      http:
      - route: [{destination: {host: ledger.bank.svc.cluster.local}}]
        timeout: 3s
    """
    teller = Proxy(ProxyType.SIDECAR, "teller", "bank", "127.0.30.2", "127.255.30.2",
                   (("app", "teller"),), "teller")

    def ledger_timeout(proxy: Proxy) -> int:
        [config] = sidecar_resources(snapshot(virtual_service), proxy).of(ROUTE).values()
        [host] = [h for h in config.virtual_hosts  # type: ignore[attr-defined]
                  if h.name == "ledger.bank.svc.cluster.local:8080"]
        return int(host.routes[0].route.timeout.seconds)

    assert ledger_timeout(teller) == 3  # in bank: the VirtualService applies
    assert ledger_timeout(CART) == 0  # in shop: Istio's default route


def test_same_named_services_in_two_namespaces_never_share_a_domain() -> None:
    other_cart = """
    apiVersion: v1
    kind: Service
    metadata: {name: cart, namespace: bank}
    spec:
      selector: {app: cart}
      ports: [{name: http, port: 8080}]
    """
    resources = sidecar_resources(snapshot(other_cart), CART)
    [config] = resources.of(ROUTE).values()
    domains = {h.name: list(h.domains) for h in config.virtual_hosts}  # type: ignore[attr-defined]
    assert "cart:8080" in domains["cart.shop.svc.cluster.local:8080"]  # the proxy's namespace
    assert "cart:8080" not in domains["cart.bank.svc.cluster.local:8080"]
    assert "cart.bank:8080" in domains["cart.bank.svc.cluster.local:8080"]
    out = validate_bootstrap(sidecar_bootstrap(resources))
    assert out.returncode == 0, out.stdout + out.stderr


def test_one_host_named_by_two_service_entries_is_one_service() -> None:
    entries = "".join(f"""
    ---
    apiVersion: networking.istio.io/v1
    kind: ServiceEntry
    metadata: {{name: partner, namespace: {ns}}}
    spec:
      hosts: [api.partner.test]
      location: MESH_EXTERNAL
      resolution: DNS
      ports: [{{number: 80, name: http, protocol: HTTP}}]
    """ for ns in ("bank", "shop"))
    scoped = proxy_scope(snapshot(entries), CART).snapshot.registry.services
    [partner] = [s for s in scoped if s.hostname == "api.partner.test"]
    assert partner.namespace == "shop"  # the proxy's own namespace's entry


def test_services_a_delegate_routes_to_stay_reachable_under_a_sidecar() -> None:
    sidecar = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: default, namespace: shop}
    spec:
      egress: [{hosts: ["./*"]}]
    """
    root = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: pay, namespace: shop}
    spec:
      hosts: [pay.shop.svc.cluster.local]
      http:
      - match: [{uri: {prefix: /ledger}}]
        delegate: {name: ledger-routes, namespace: bank}
    """
    delegate = """
    apiVersion: networking.istio.io/v1
    kind: VirtualService
    metadata: {name: ledger-routes, namespace: bank}
    spec:
      http:
      - route: [{destination: {host: ledger.bank.svc.cluster.local}}]
    """
    assert "ledger.bank.svc.cluster.local" in visible_hosts(snapshot(sidecar, root, delegate))


def test_sidecar_ingress_to_a_unix_socket_forwards_there() -> None:
    sidecar = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: cart, namespace: shop}
    spec:
      workloadSelector: {labels: {app: cart}}
      ingress:
      - port: {number: 8080, protocol: HTTP, name: http}
        defaultEndpoint: unix:///var/run/cart.sock
    """
    resources = sidecar_resources(snapshot(sidecar), CART)
    cluster = resources.of(CLUSTER)["inbound|8080||"]
    address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address  # type: ignore[attr-defined]
    assert address.pipe.path == "/var/run/cart.sock"
    out = validate_bootstrap(sidecar_bootstrap(resources))
    assert out.returncode == 0, out.stdout + out.stderr


def test_an_egress_listener_with_a_port_admits_only_that_port() -> None:
    two_ports = """
    apiVersion: v1
    kind: Service
    metadata: {name: stock, namespace: shop}
    spec:
      selector: {app: stock}
      ports: [{name: http, port: 8080}, {name: grpc, port: 9090}]
    """
    sidecar = """
    apiVersion: networking.istio.io/v1
    kind: Sidecar
    metadata: {name: default, namespace: shop}
    spec:
      egress:
      - port: {number: 9090, protocol: GRPC, name: grpc}
        hosts: ["./stock.shop.svc.cluster.local"]
      - hosts: ["./pay.shop.svc.cluster.local"]
    """
    assert outbound_clusters(snapshot(two_ports, sidecar)) == [
        "outbound|8080||pay.shop.svc.cluster.local",
        "outbound|9090||stock.shop.svc.cluster.local"]
