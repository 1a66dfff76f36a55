"""EnvoyFilter: Istio's rate-limit samples on bookinfo's proxies (golden, and accepted by real
Envoy), each patch operation Heddle applies with Istio's match semantics, a filter skipped
when its result would be inconsistent, and validation naming what Heddle does not apply."""

from __future__ import annotations

from pathlib import Path

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf.json_format import MessageToDict
from test_translate_clusters import check_golden

from heddle.api.loader import load_paths, load_text
from heddle.model.gateways import gateway_workloads
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.bootstraps import sidecar_bootstrap
from heddle.testing.envoy import validate_bootstrap
from heddle.translate.envoy_filters import apply_envoy_filters
from heddle.translate.gateway import gateway_config
from heddle.translate.sidecar import CLUSTER, ENDPOINT, LISTENER, ROUTE, sidecar_resources

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT.parent / "shared" / "corpus" / "istio" / "samples"
LOCAL = SAMPLES / "ratelimit" / "local-rate-limit-service.yaml"
GLOBAL = SAMPLES / "bookinfo" / "policy" / "productpage_envoy_ratelimit.yaml"
GATEWAY = SAMPLES / "bookinfo" / "networking" / "bookinfo-gateway.yaml"
PRODUCTPAGE = Proxy(ProxyType.SIDECAR, "productpage-v1", "default", "127.0.20.2",
                    "127.255.20.2", (("app", "productpage"), ("version", "v1")),
                    "bookinfo-productpage")
REVIEWS = Proxy(ProxyType.SIDECAR, "reviews-v1", "default", "127.0.20.5", "127.255.20.5",
                (("app", "reviews"), ("version", "v1")), "bookinfo-reviews")
INBOUND = "127.0.20.2_9080"


def bookinfo(*texts: str, paths: tuple[Path, ...] = ()) -> MeshSnapshot:
    result = load_paths([ROOT / "examples" / "bookinfo", GATEWAY, *paths])
    assert result.errors == []
    resources = list(result.resources)
    for i, text in enumerate(texts):
        loaded = load_text(text, f"filter-{i}.yaml")
        assert loaded.errors == [], loaded.errors
        resources += loaded.resources
    return MeshSnapshot.build(1, resources)


def gateway(mesh: MeshSnapshot) -> Proxy:
    [workload] = gateway_workloads(mesh)
    return Proxy(ProxyType.ROUTER, workload.name, workload.namespace, "127.0.20.250",
                 "127.0.20.250", workload.labels, workload.service_account)


def managers(listener: object) -> list[hcm.HttpConnectionManager]:
    assert isinstance(listener, listener_pb2.Listener)
    found = []
    for chain in listener.filter_chains:
        for network in chain.filters:
            if network.name.endswith("http_connection_manager"):
                manager = hcm.HttpConnectionManager()
                network.typed_config.Unpack(manager)
                found.append(manager)
    return found


def http_filters(listener: object) -> list[str]:
    return [f.name for f in managers(listener)[0].http_filters]


def filter_yaml(patches: str, selector: str = "app: productpage", name: str = "f",
                extra: str = "") -> str:
    return f"""
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {{name: {name}, namespace: default}}
spec:
  workloadSelector: {{labels: {{{selector}}}}}
{extra}  configPatches:
{patches}
"""


def test_the_local_sample_inserts_the_filter_first_on_productpages_inbound_side_only() -> None:
    mesh = bookinfo(paths=(LOCAL,))
    inbound = sidecar_resources(mesh, PRODUCTPAGE).of(LISTENER)
    # Every HTTP manager of the inbound port (mTLS and plaintext chains), first.
    assert {tuple(m.http_filters[i].name for i in (0, -1)) for m in managers(inbound[INBOUND])
            } == {("envoy.filters.http.local_ratelimit", "envoy.filters.http.router")}
    assert "envoy.filters.http.local_ratelimit" not in http_filters(inbound["virtualOutbound"])
    assert "envoy.filters.http.local_ratelimit" not in http_filters(
        sidecar_resources(mesh, REVIEWS).of(LISTENER)["127.0.20.5_9080"])
    # The sample's route patch names vhost inbound|http|8000; productpage's is 9080: as in
    # Istio, it matches nothing, and the route keeps no limit of its own.
    route = managers(inbound[INBOUND])[0].route_config.virtual_hosts[0].routes[0]
    assert not route.route.rate_limits and not route.typed_per_filter_config


def test_the_local_sample_on_port_9080_limits_productpage_and_real_envoy_accepts_it() -> None:
    mesh = bookinfo(LOCAL.read_text().replace("inbound|http|8000", "inbound|http|9080"))
    resources = sidecar_resources(mesh, PRODUCTPAGE)
    listener = resources.of(LISTENER)[INBOUND]
    [host] = managers(listener)[0].route_config.virtual_hosts
    assert host.name == "inbound|http|9080"
    route = host.routes[0]
    assert len(route.route.rate_limits) == 2
    assert route.route.cluster == "inbound|9080||"  # the merge kept what was there
    assert "envoy.filters.http.local_ratelimit" in route.typed_per_filter_config
    check_golden("../envoyfilter/productpage-inbound.json", MessageToDict(listener))
    out = validate_bootstrap(sidecar_bootstrap(resources))
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_bookinfo_global_sample_patches_the_ingress_gateway() -> None:
    mesh = bookinfo(paths=(GLOBAL,))
    config = gateway_config(mesh, gateway(mesh))
    assert config.problems == []
    [listener] = config.resources.of(LISTENER).values()
    names = http_filters(listener)
    assert names[-2:] == ["envoy.ratelimit", "envoy.filters.http.router"]  # before the router
    limit = rate_limit_pb2.RateLimit()
    managers(listener)[0].http_filters[-2].typed_config.Unpack(limit)
    assert (limit.domain, limit.failure_mode_deny) == ("productpage-ratelimit", True)
    added = config.resources.of(CLUSTER)["rate_limit_cluster"]
    assert isinstance(added, cluster_pb2.Cluster) and added.type == cluster_pb2.Cluster.STRICT_DNS
    [host] = config.resources.of(ROUTE)["http.8080"].virtual_hosts  # vhost name "": any
    assert host.rate_limits[0].actions[0].request_headers.descriptor_key == "PATH"
    check_golden("../envoyfilter/gateway.json", {
        "listener": MessageToDict(listener), "routes": MessageToDict(host),
        "cluster": MessageToDict(added)})
    out = validate_bootstrap(sidecar_bootstrap(config.resources))
    assert out.returncode == 0, out.stdout + out.stderr
    # The sidecars are not the sample's: untouched.
    assert "envoy.ratelimit" not in str(MessageToDict(
        sidecar_resources(mesh, PRODUCTPAGE).of(LISTENER)[INBOUND]))


ROUTER_MATCH = """      match:
        context: SIDECAR_INBOUND
        listener:
          filterChain:
            filter:
              name: envoy.filters.network.http_connection_manager
              subFilter: {name: envoy.filters.http.router}
"""
FAULT = """        value:
          name: envoy.filters.http.fault
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
"""


def patch(operation: str, match: str = ROUTER_MATCH, value: str = FAULT,
          apply_to: str = "HTTP_FILTER") -> str:
    return f"    - applyTo: {apply_to}\n{match}      patch:\n        operation: {operation}\n" \
           + (value if operation != "REMOVE" else "")


# What every inbound chain starts with: the client's peer labels read, gRPC messages counted.
# What comes before the policies in every chain: the internal-header strip, the peer metadata.
PEER = ["heddle.internal_headers", "envoy.filters.http.header_to_metadata",
        "envoy.filters.http.grpc_stats"]


def test_http_filter_list_operations_place_the_filter_as_istio_does() -> None:
    def names(*patches: str) -> list[str]:
        mesh = bookinfo(filter_yaml("".join(patches)))
        return http_filters(sidecar_resources(mesh, PRODUCTPAGE).of(LISTENER)[INBOUND])
    router = "envoy.filters.http.router"
    fault = "envoy.filters.http.fault"
    assert names(patch("INSERT_BEFORE")) == [*PEER, fault, router]
    assert names(patch("INSERT_FIRST")) == [fault, *PEER, router]
    assert names(patch("INSERT_BEFORE"), patch("REPLACE", value=FAULT.replace(
        "name: envoy.filters.http.fault", "name: fault-renamed"),
        match=ROUTER_MATCH.replace("envoy.filters.http.router", fault))) == [
        *PEER, "fault-renamed", router]
    assert names(patch("INSERT_BEFORE"), patch(
        "REMOVE", match=ROUTER_MATCH.replace("envoy.filters.http.router", fault))) == [
        *PEER, router]


def test_a_filter_that_would_break_the_router_is_skipped_and_said() -> None:
    mesh = bookinfo(filter_yaml(patch("INSERT_AFTER"), name="late"),
                    filter_yaml(patch("INSERT_BEFORE"), name="early"))
    plain = sidecar_resources(bookinfo(), PRODUCTPAGE)
    resources, problems = apply_envoy_filters(mesh, PRODUCTPAGE, plain)
    assert [p.split(":")[0] for p in problems] == ["EnvoyFilter default/late"]
    assert "not the router" in problems[0] and problems[0].endswith("skipped")
    # The other filter still applies.
    assert http_filters(resources.of(LISTENER)[INBOUND])[len(PEER)] == "envoy.filters.http.fault"


def test_priority_orders_filters_and_a_proxy_version_regex_selects_them() -> None:
    first = filter_yaml(patch("INSERT_FIRST"), name="zz", extra="  priority: -1\n")
    renamed = FAULT.replace("name: envoy.filters.http.fault", "name: second")
    second = filter_yaml(patch("INSERT_FIRST", value=renamed), name="aa")
    names = http_filters(sidecar_resources(bookinfo(first, second), PRODUCTPAGE).of(
        LISTENER)[INBOUND])
    assert names[:2] == ["second", "envoy.filters.http.fault"]  # zz (-1) first, aa after it
    old = ROUTER_MATCH.replace("      match:\n", "      match:\n        proxy: "
                               "{proxyVersion: '^1\\.2[0-9].*'}\n")
    assert http_filters(sidecar_resources(bookinfo(filter_yaml(patch("INSERT_FIRST", old))),
                                          PRODUCTPAGE).of(LISTENER)[INBOUND]) == \
        [*PEER, "envoy.filters.http.router"]


CLUSTER_MATCH = """      match:
        context: SIDECAR_OUTBOUND
        cluster: {service: reviews.default.svc.cluster.local, portNumber: 9080}
"""


def test_cluster_merge_replaces_a_duration_and_remove_takes_its_endpoints() -> None:
    mesh = bookinfo(filter_yaml(patch("MERGE", CLUSTER_MATCH, apply_to="CLUSTER", value=(
        "        value: {connect_timeout: 7s, "
        "circuit_breakers: {thresholds: [{max_connections: 5}]}}\n"))))
    merged = sidecar_resources(mesh, PRODUCTPAGE).of(CLUSTER)[
        "outbound|9080||reviews.default.svc.cluster.local"]
    assert isinstance(merged, cluster_pb2.Cluster)
    assert merged.connect_timeout.ToSeconds() == 7 and merged.connect_timeout.nanos == 0
    # A list appends as in protobuf's merge (MERGE_AND_REPLACE_LIST would replace it).
    assert merged.circuit_breakers.thresholds[-1].max_connections.value == 5
    assert len(merged.circuit_breakers.thresholds) == 2
    assert merged.type == cluster_pb2.Cluster.EDS  # the rest is the translation's
    # The generator's shared cluster is not the patched one.
    plain = sidecar_resources(bookinfo(), PRODUCTPAGE).of(CLUSTER)[merged.name]
    assert isinstance(plain, cluster_pb2.Cluster) and plain.connect_timeout.ToSeconds() != 7
    removed = sidecar_resources(bookinfo(filter_yaml(patch(
        "REMOVE", CLUSTER_MATCH, apply_to="CLUSTER"))), PRODUCTPAGE)
    assert merged.name not in removed.of(CLUSTER) and merged.name not in removed.of(ENDPOINT)


def test_an_outbound_route_patch_finds_its_port_in_the_http_proxy_routes() -> None:
    vhost = """      match:
        context: SIDECAR_OUTBOUND
        routeConfiguration:
          portNumber: 9080
          vhost:
            name: reviews.default.svc.cluster.local:9080
            route: {name: default}
"""
    mesh = bookinfo(filter_yaml(patch("MERGE", vhost, apply_to="HTTP_ROUTE",
                                      value="        value: {route: {timeout: 2s}}\n")))
    routes = sidecar_resources(mesh, PRODUCTPAGE).of(ROUTE)["http_proxy"]
    timeouts = {(h.name, r.name): r.route.timeout.ToSeconds()
                for h in routes.virtual_hosts for r in h.routes if r.HasField("route")}
    assert timeouts[("reviews.default.svc.cluster.local:9080", "default")] == 2
    assert timeouts[("details.default.svc.cluster.local:9080", "default")] != 2


def test_network_filter_and_listener_merges_merge_the_typed_config() -> None:
    hcm_match = """      match:
        context: SIDECAR_INBOUND
        listener:
          portNumber: 9080
          filterChain: {filter: {name: envoy.filters.network.http_connection_manager}}
"""
    manager_type = ("type.googleapis.com/envoy.extensions.filters.network."
                    "http_connection_manager.v3.HttpConnectionManager")
    value = f"""        value:
          typed_config:
            "@type": {manager_type}
            server_name: bookinfo
"""
    listener_match = "      match: {context: SIDECAR_INBOUND, listener: {portNumber: 9080}}\n"
    mesh = bookinfo(filter_yaml(
        patch("MERGE", hcm_match, value, apply_to="NETWORK_FILTER")
        + patch("MERGE", listener_match, "        value: {per_connection_buffer_limit_bytes:"
                " 32768}\n", apply_to="LISTENER")))
    listener = sidecar_resources(mesh, PRODUCTPAGE).of(LISTENER)[INBOUND]
    assert isinstance(listener, listener_pb2.Listener)
    assert listener.per_connection_buffer_limit_bytes.value == 32768
    manager = managers(listener)[0]
    assert manager.server_name == "bookinfo"
    assert manager.stat_prefix == "inbound_9080"  # merged into, not replaced
    assert [f.name for f in manager.http_filters] == [*PEER, "envoy.filters.http.router"]


def test_targetrefs_apply_to_the_gateway_deployed_for_that_gateway_only() -> None:
    text = """
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter
metadata: {name: by-ref, namespace: istio-system}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: other}]
  configPatches:
""" + patch("INSERT_FIRST", ROUTER_MATCH.replace("SIDECAR_INBOUND", "GATEWAY"))
    mesh = bookinfo(text)
    config = gateway_config(mesh, gateway(mesh))  # istio's own gateway: no Gateway API name
    assert "envoy.filters.http.fault" not in http_filters(
        next(iter(config.resources.of(LISTENER).values())))[:1]


def errors(text: str) -> list[str]:
    return [f"{e.field}: {e.message}" for e in load_text(text, "f.yaml").errors]


def test_what_heddle_does_not_apply_is_an_error_naming_the_field() -> None:
    assert any(m.startswith("spec.configPatches[0].applyTo:") for m in errors(filter_yaml(
        patch("ADD", "      match: {context: SIDECAR_INBOUND}\n", apply_to="FILTER_CHAIN"))))
    assert any(m.startswith("spec.configPatches[0].patch.operation:") for m in errors(
        filter_yaml(patch("ADD", "      match: {context: SIDECAR_INBOUND}\n",
                          "        value: {name: x}\n", apply_to="LISTENER"))))
    unknown_field = FAULT + "            no_such_field: 1\n"
    assert any(m.startswith("spec.configPatches[0].patch.value:") and "no_such_field" in m
               for m in errors(filter_yaml(patch("INSERT_FIRST", value=unknown_field))))
    unknown_type = FAULT.replace("fault.v3.HTTPFault", "fault.v3.NoSuchThing")
    assert any("unknown @type" in m for m in errors(filter_yaml(
        patch("INSERT_FIRST", value=unknown_type))))
    outbound_port = ROUTER_MATCH.replace("SIDECAR_INBOUND", "SIDECAR_OUTBOUND").replace(
        "        listener:\n", "        listener:\n          portNumber: 9080\n")
    assert any(m.startswith("spec.configPatches[0].match.listener.portNumber:")
               for m in errors(filter_yaml(patch("INSERT_FIRST", outbound_port))))
    metadata = ROUTER_MATCH.replace("      match:\n", "      match:\n        proxy: "
                                    "{metadata: {A: b}}\n")
    assert any(m.startswith("spec.configPatches[0].match.proxy.metadata:")
               for m in errors(filter_yaml(patch("INSERT_FIRST", metadata))))
    sub_filter_elsewhere = ROUTER_MATCH.replace("http_connection_manager", "tcp_proxy")
    assert any("subFilter match needs" in m for m in errors(filter_yaml(
        patch("INSERT_FIRST", sub_filter_elsewhere))))
    assert errors(LOCAL.read_text()) == [] and errors(GLOBAL.read_text()) == []
