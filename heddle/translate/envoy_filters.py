"""EnvoyFilter patches, applied to a proxy's finished resources as istiod applies them.

Which filters: those in the root namespace and the proxy's own whose workloadSelector
matches it (none: every workload there), or whose targetRefs name the Gateway API Gateway a
gateway proxy was deployed for; in Istio's order (priority, the root namespace first,
creation time, name). A patch applies where its context (SIDECAR_INBOUND, SIDECAR_OUTBOUND,
GATEWAY, ANY), its proxy version regex and its listener / routeConfiguration / cluster match
meet the object. Heddle's objects are named as istiod names them where they are alike; where
they differ the match reads Istio's name:

- a sidecar's inbound listeners are `IP_PORT` (one per port; Istio: chains of
  `virtualInbound`, which a listener name match reaches here too); its outbound side is one
  HTTP proxy listener `virtualOutbound` with one route configuration, `http_proxy`, whose
  virtual hosts (`host:port`, `allow_any`) are Istio's per-port route configurations merged:
  a routeConfiguration portNumber (or name "9080") selects the virtual hosts of that port;
- inbound route configurations (`inbound|PORT||`, virtual host `inbound|http|PORT`) sit in the
  listener's HTTP connection manager, as Istio's; gateways' are `http.PORT` and
  `https.PORT.NAME.GATEWAY.NAMESPACE` with virtual hosts `host:port`, as Istio's;
- clusters are `outbound|PORT|SUBSET|HOST` and `inbound|PORT||`, as Istio's.

Each EnvoyFilter applies as a whole or not at all: when its patches fail (a typed config of
another type to merge) or leave resources that fail the consistency check (EDS without its
cluster, RDS no listener names, a router that is not the last HTTP filter), it is skipped
and the reason returned, never sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, MutableSequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar, cast

import re2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm,
)
from google.protobuf.message import Message

from heddle.api.envoy_protos import PatchValueError, parse_value
from heddle.api.resource import Resource
from heddle.model.gateways import GATEWAY_NAME_LABEL
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.scope import NETWORKING, ROOT_NAMESPACE
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.consistency import inconsistencies
from heddle.translate.listeners import OUTBOUND_ROUTE
from heddle.translate.proto_merge import AnyMergeError, merge, merge_any
from heddle.translate.sidecar import CLUSTER, ENDPOINT, LISTENER, ROUTE, ProxyResources

# The Istio release Heddle follows: what a proxyVersion regex is matched against (istiod
# matches the proxy's ISTIO_VERSION).
PROXY_VERSION = "1.32.0"
HCM_NAME = "envoy.filters.network.http_connection_manager"
HCM_NAMES = (HCM_NAME, "envoy.http_connection_manager")
ROUTER = "envoy.filters.http.router"
OUTBOUND_LISTENER = "virtualOutbound"
INBOUND_LISTENER = "virtualInbound"
GATEWAY_API = "gateway.networking.k8s.io"
T = TypeVar("T", bound=Message)


class PatchError(Exception):
    pass


@dataclass(frozen=True)
class ConfigPatch:
    origin: str  # "configPatches[i]"
    apply_to: str
    operation: str
    match: dict[str, Any]
    value: Message | None

    @property
    def context(self) -> str:
        return str(self.match.get("context") or "ANY")

    def part(self, *path: str) -> dict[str, Any]:
        found: Any = self.match
        for name in path:
            found = found.get(name) if isinstance(found, dict) else None
        return found if isinstance(found, dict) else {}

    def has(self, *path: str) -> bool:
        found: Any = self.match
        for name in path:
            if not isinstance(found, dict) or found.get(name) is None:
                return False
            found = found[name]
        return True


@dataclass(frozen=True)
class EnvoyFilter:
    key: str  # namespace/name
    patches: tuple[ConfigPatch, ...]
    problems: tuple[str, ...] = ()  # patch values that do not parse (validation says so too)


def _filter(resource: Resource[Any]) -> EnvoyFilter:
    spec = resource.body.get("spec") or {}
    patches, problems = [], []
    for index, raw in enumerate(spec.get("configPatches") or []):
        body = raw.get("patch") or {}
        apply_to, operation = str(raw.get("applyTo", "")), str(body.get("operation", ""))
        value = None
        if body.get("value") is not None and operation != "REMOVE":
            try:
                value = parse_value(apply_to, body["value"])
            except PatchValueError as error:
                problems.append(f"configPatches[{index}].patch.value: {error}")
                continue
        patches.append(ConfigPatch(f"configPatches[{index}]", apply_to, operation,
                                   dict(raw.get("match") or {}), value))
    return EnvoyFilter(f"{resource.namespace}/{resource.name}", tuple(patches), tuple(problems))


def _attaches(resource: Resource[Any], proxy: Proxy) -> bool:
    refs = (resource.body.get("spec") or {}).get("targetRefs") or []
    if not refs:
        return True
    gateway = proxy.label_map.get(GATEWAY_NAME_LABEL)
    return gateway is not None and resource.namespace == proxy.namespace and any(
        ref.get("group") == GATEWAY_API and ref.get("kind") == "Gateway"
        and ref.get("name") == gateway for ref in refs)


def _order(resource: Resource[Any]) -> tuple[int, bool, str, str]:
    spec = resource.body.get("spec") or {}
    created = str((resource.body.get("metadata") or {}).get("creationTimestamp") or "")
    return (int(spec.get("priority") or 0), resource.namespace != ROOT_NAMESPACE, created,
            f"{resource.name}.{resource.namespace}")


def selected_filters(snapshot: MeshSnapshot, proxy: Proxy) -> list[EnvoyFilter]:
    """The EnvoyFilters that act on the proxy, in the order they apply."""
    found = [resource for namespace in dict.fromkeys([ROOT_NAMESPACE, proxy.namespace])
             for resource in snapshot.selecting(NETWORKING, "EnvoyFilter", namespace,
                                                proxy.label_map)
             if _attaches(resource, proxy)]
    return [snapshot.memo(("envoy_filter", r.namespace, r.name), partial(_filter, r))
            for r in sorted(found, key=_order)]


def _version_matches(patch: ConfigPatch) -> bool:
    version = patch.part("proxy").get("proxyVersion")
    return not version or re2.search(str(version), PROXY_VERSION) is not None


# --- list operations shared by network filters, HTTP filters ---------------------------

def _list_patch(items: MutableSequence[T], patch: ConfigPatch, has_match: bool,
                matches: Callable[[T], bool], merge_item: Callable[[T], None]) -> None:
    """ADD / INSERT_* / REPLACE / REMOVE / MERGE on a list of named filters, as istiod: an
    insert without a match of its own goes first (INSERT_BEFORE, INSERT_FIRST) or last."""
    value = patch.value
    operation = patch.operation

    def fresh() -> T:
        assert value is not None
        item = cast(T, type(value)())
        item.CopyFrom(cast(T, value))
        return item

    if operation == "ADD" or (operation == "INSERT_AFTER" and not has_match):
        items.append(fresh())
    elif operation == "INSERT_FIRST" or (operation == "INSERT_BEFORE" and not has_match):
        if operation == "INSERT_FIRST" and has_match and not any(matches(i) for i in items):
            return
        items.insert(0, fresh())
    elif operation in ("INSERT_BEFORE", "INSERT_AFTER", "REPLACE"):
        index = next((i for i, item in enumerate(items) if matches(item)), None)
        if index is None:
            return
        if operation == "REPLACE":
            items[index].CopyFrom(fresh())
        else:
            items.insert(index + (operation == "INSERT_AFTER"), fresh())
    elif operation == "REMOVE":
        for index in reversed(range(len(items))):
            if matches(items[index]):
                del items[index]
    elif operation in ("MERGE", "MERGE_AND_REPLACE_LIST"):
        for item in items:
            if matches(item):
                merge_item(item)


def _merge_named(item: Any, value: Any) -> None:
    """A filter's MERGE: a new name replaces its name, a typed config merges into its own."""
    if value.name:
        item.name = value.name
    if value.HasField("typed_config"):
        if not item.HasField("typed_config"):
            raise PatchError(f"{item.name} has no typed_config to merge into")
        try:
            item.typed_config.CopyFrom(merge_any(item.typed_config, value.typed_config))
        except AnyMergeError as error:
            raise PatchError(f"{item.name}: {error}") from None


# --- listeners --------------------------------------------------------------------------

def _listener_context(proxy: Proxy, listener: listener_pb2.Listener) -> str:
    if proxy.type is ProxyType.ROUTER:
        return "GATEWAY"
    return "SIDECAR_OUTBOUND" if listener.name == OUTBOUND_LISTENER else "SIDECAR_INBOUND"


def _context_matches(patch: ConfigPatch, context: str) -> bool:
    return patch.context in ("ANY", context)


def _listener_names(listener: listener_pb2.Listener, context: str) -> set[str]:
    port = listener.address.socket_address.port_value
    names = {listener.name}
    if context == "SIDECAR_INBOUND":
        names.add(INBOUND_LISTENER)
    elif context == "GATEWAY":
        names.add(f"0.0.0.0_{port}")
    return names


def _listener_matches(patch: ConfigPatch, listener: listener_pb2.Listener, context: str) -> bool:
    match = patch.part("listener")
    name = match.get("name")
    if name and name not in _listener_names(listener, context):
        return False
    port = match.get("portNumber")
    return not port or listener.address.socket_address.port_value == int(port)


def _chain_matches(patch: ConfigPatch, chain: listener_components_pb2.FilterChain) -> bool:
    match = patch.part("listener", "filterChain")
    criteria = chain.filter_chain_match
    if match.get("name") and match["name"] != chain.name:
        return False
    if match.get("sni") and match["sni"] not in criteria.server_names:
        return False
    if match.get("transportProtocol") and match["transportProtocol"] != \
            criteria.transport_protocol:
        return False
    wanted = [p for p in str(match.get("applicationProtocols") or "").split(",") if p]
    if any(p not in criteria.application_protocols for p in wanted):
        return False
    port = match.get("destinationPort")
    return not port or criteria.destination_port.value == int(port)


def _network_filter_matches(patch: ConfigPatch, item: listener_components_pb2.Filter) -> bool:
    name = patch.part("listener", "filterChain", "filter").get("name")
    return not name or item.name == name or (name in HCM_NAMES and item.name in HCM_NAMES)


def _http_filter_matches(patch: ConfigPatch, item: hcm.HttpFilter) -> bool:
    name = patch.part("listener", "filterChain", "filter", "subFilter").get("name")
    return not name or item.name == name


@dataclass
class _Patcher:
    proxy: Proxy
    patches: list[ConfigPatch]

    def of(self, apply_to: str, context: str) -> list[ConfigPatch]:
        return [p for p in self.patches
                if p.apply_to == apply_to and _context_matches(p, context)]

    # listeners -------------------------------------------------------------------------
    def listener(self, listener: listener_pb2.Listener) -> None:
        context = _listener_context(self.proxy, listener)
        for patch in self.of("LISTENER", context):
            if _listener_matches(patch, listener, context):
                assert isinstance(patch.value, listener_pb2.Listener)
                merge(listener, patch.value, patch.operation == "MERGE_AND_REPLACE_LIST")
        chains = [*listener.filter_chains]
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            self.chain(listener, chain, context)

    def chain(self, listener: listener_pb2.Listener,
              chain: listener_components_pb2.FilterChain, context: str) -> None:
        def applies(patch: ConfigPatch) -> bool:
            return _listener_matches(patch, listener, context) and _chain_matches(patch, chain)
        for patch in self.of("NETWORK_FILTER", context):
            if applies(patch):
                _list_patch(chain.filters, patch,
                            patch.has("listener", "filterChain", "filter"),
                            partial(_network_filter_matches, patch),
                            partial(_merge_named, value=patch.value))
        for network in chain.filters:
            if network.name not in HCM_NAMES or not network.HasField("typed_config"):
                continue
            manager = hcm.HttpConnectionManager()
            if not network.typed_config.Unpack(manager):
                raise PatchError(f"filter {network.name} is no longer an HTTP connection "
                                 f"manager ({network.typed_config.type_url})")
            for patch in self.of("HTTP_FILTER", context):
                if applies(patch) and _network_filter_matches(patch, network):
                    _list_patch(manager.http_filters, patch,
                                patch.has("listener", "filterChain", "filter", "subFilter"),
                                partial(_http_filter_matches, patch),
                                partial(_merge_named, value=patch.value))
            if manager.HasField("route_config"):
                self.route_config(manager.route_config, context)
            network.typed_config.Pack(manager)

    # routes ----------------------------------------------------------------------------
    def route_config(self, config: route_pb2.RouteConfiguration, context: str) -> None:
        for patch in self.of("VIRTUAL_HOST", context):
            kept = []
            for host in config.virtual_hosts:
                if _route_config_matches(patch, config, host, context) and \
                        _vhost_matches(patch, host):
                    if patch.operation == "REMOVE":
                        continue
                    if patch.operation in ("MERGE", "MERGE_AND_REPLACE_LIST"):
                        assert isinstance(patch.value, rc.VirtualHost)
                        merge(host, patch.value, patch.operation == "MERGE_AND_REPLACE_LIST")
                kept.append(host)
            if patch.operation == "REMOVE" and len(kept) != len(config.virtual_hosts):
                survivors = [rc.VirtualHost() for _ in kept]
                for target, source in zip(survivors, kept, strict=True):
                    target.CopyFrom(source)
                del config.virtual_hosts[:]
                config.virtual_hosts.extend(survivors)
            if patch.operation == "ADD" and _route_config_matches(patch, config, None, context):
                assert isinstance(patch.value, rc.VirtualHost)
                config.virtual_hosts.add().CopyFrom(patch.value)
        for host in config.virtual_hosts:
            for patch in self.of("HTTP_ROUTE", context):
                if not (_route_config_matches(patch, config, host, context)
                        and _vhost_matches(patch, host)):
                    continue
                for index in reversed(range(len(host.routes))):
                    route = host.routes[index]
                    if not _route_matches(patch, route):
                        continue
                    if patch.operation == "REMOVE":
                        del host.routes[index]
                    else:
                        assert isinstance(patch.value, rc.Route)
                        merge(route, patch.value, patch.operation == "MERGE_AND_REPLACE_LIST")

    # clusters --------------------------------------------------------------------------
    def clusters(self, resources: ProxyResources, services: Iterable[str]) -> None:
        clusters = resources.by_type.setdefault(CLUSTER, {})
        hosts = tuple(services)
        for name in list(clusters):
            cluster = clusters[name]
            assert isinstance(cluster, cluster_pb2.Cluster)
            context = "GATEWAY" if self.proxy.type is ProxyType.ROUTER else (
                "SIDECAR_INBOUND" if name.startswith("inbound|") else "SIDECAR_OUTBOUND")
            for patch in self.of("CLUSTER", context):
                if not _cluster_matches(patch, cluster, hosts):
                    continue
                if patch.operation == "REMOVE":
                    del clusters[name]
                    resources.by_type.get(ENDPOINT, {}).pop(name, None)
                    break
                if patch.operation in ("MERGE", "MERGE_AND_REPLACE_LIST"):
                    assert isinstance(patch.value, cluster_pb2.Cluster)
                    merge(cluster, patch.value, patch.operation == "MERGE_AND_REPLACE_LIST")
        context = "GATEWAY" if self.proxy.type is ProxyType.ROUTER else "SIDECAR_OUTBOUND"
        for patch in self.patches:
            if patch.apply_to != "CLUSTER" or patch.operation != "ADD":
                continue
            # istiod: an ADD without a context adds to outbound sidecars and gateways only
            if patch.context in ("ANY", context):
                assert isinstance(patch.value, cluster_pb2.Cluster)
                added = cluster_pb2.Cluster()
                added.CopyFrom(patch.value)
                clusters[added.name] = added


def _route_port(config: route_pb2.RouteConfiguration, host: rc.VirtualHost | None,
                context: str) -> int | None:
    """The port a route configuration (or, in the outbound `http_proxy`, a virtual host) is
    for, as istiod reads it from its name; None: every port (`allow_any`)."""
    name = config.name
    if name == OUTBOUND_ROUTE:
        if host is None or ":" not in host.name:
            return None
        tail = host.name.rsplit(":", 1)[1]
        return int(tail) if tail.isdigit() else None
    if name.startswith("inbound|"):
        parts = name.split("|")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if context == "GATEWAY":
        parts = name.split(".")
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return int(name) if name.isdigit() else 0


def _route_config_matches(patch: ConfigPatch, config: route_pb2.RouteConfiguration,
                          host: rc.VirtualHost | None, context: str) -> bool:
    match = patch.part("routeConfiguration")
    port = _route_port(config, host, context)
    name = match.get("name")
    if name and name != config.name and not (
            config.name == OUTBOUND_ROUTE and str(name).isdigit()
            and (port is None or port == int(name))):
        return False
    if match.get("portNumber") and port is not None and port != int(match["portNumber"]):
        return False
    if context == "GATEWAY" and (match.get("portName") or match.get("gateway")):
        parts = config.name.split(".")  # https.PORT.PORT_NAME.GATEWAY.NAMESPACE
        port_name = parts[2] if len(parts) == 5 else ""
        gateway = f"{parts[4]}/{parts[3]}" if len(parts) == 5 else ""
        if match.get("portName") and match["portName"] != port_name:
            return False
        if match.get("gateway") and match["gateway"] != gateway:
            return False
    return True


def _vhost_matches(patch: ConfigPatch, host: rc.VirtualHost) -> bool:
    match = patch.part("routeConfiguration", "vhost")
    if match.get("name") and match["name"] != host.name:
        return False
    return not match.get("domainName") or match["domainName"] in host.domains


def _route_matches(patch: ConfigPatch, route: rc.Route) -> bool:
    match = patch.part("routeConfiguration", "vhost", "route")
    if match.get("name") and match["name"] != route.name:
        return False
    action = match.get("action") or "ANY"
    kinds = {"route": "ROUTE", "redirect": "REDIRECT", "direct_response": "DIRECT_RESPONSE"}
    return action == "ANY" or kinds.get(route.WhichOneof("action") or "") == action


def _cluster_matches(patch: ConfigPatch, cluster: cluster_pb2.Cluster,
                     inbound_hosts: tuple[str, ...]) -> bool:
    match = patch.part("cluster")
    if match.get("name"):
        return bool(match["name"] == cluster.name)
    parts = cluster.name.split("|")
    if len(parts) != 4:
        return not (match.get("service") or match.get("subset") or match.get("portNumber"))
    direction, port, subset, host = parts
    hosts = inbound_hosts if direction == "inbound" else (host,)
    if match.get("subset") and match["subset"] != subset:
        return False
    if match.get("service") and match["service"] not in hosts:
        return False
    return not match.get("portNumber") or port == str(match["portNumber"])


# --- the consistency check --------------------------------------------------------------

def _router_last(listeners: Iterable[Message]) -> list[str]:
    problems = []
    for listener in listeners:
        assert isinstance(listener, listener_pb2.Listener)
        for chain in listener.filter_chains:
            for network in chain.filters:
                if network.name not in HCM_NAMES:
                    continue
                manager = hcm.HttpConnectionManager()
                if not network.typed_config.Unpack(manager):
                    problems.append(f"listener {listener.name}: {network.name} is not an "
                                    f"HTTP connection manager")
                    continue
                names = [f.name for f in manager.http_filters]
                if not names or names[-1] != ROUTER:
                    # Envoy wants a terminal filter last; Heddle's chains end with the router.
                    problems.append(f"listener {listener.name}: the HTTP filters end with "
                                    f"{names[-1] if names else 'nothing'}, not the router "
                                    f"(Envoy rejects a chain without its terminal filter)")
    return problems


def consistency_problems(resources: ProxyResources) -> list[str]:
    """What would make Envoy reject or wait on the set (the xDS server's check, and the
    router's place), by name."""
    listeners = resources.of(LISTENER).values()
    return [*inconsistencies({t: dict(items) for t, items in resources.by_type.items()},
                             listeners), *_router_last(listeners)]


# --- applying ---------------------------------------------------------------------------

_TOUCHES = {"LISTENER": (LISTENER,), "NETWORK_FILTER": (LISTENER,),
            "HTTP_FILTER": (LISTENER,), "VIRTUAL_HOST": (LISTENER, ROUTE),
            "HTTP_ROUTE": (LISTENER, ROUTE), "CLUSTER": (CLUSTER, ENDPOINT)}


def _copied(resources: ProxyResources, types: set[str]) -> ProxyResources:
    """A copy whose messages of `types` are the proxy's own: the translation's may be shared
    with other proxies (the generator's caches)."""
    copied: dict[str, dict[str, Message]] = {}
    for type_url, items in resources.by_type.items():
        if type_url not in types:
            copied[type_url] = dict(items)
            continue
        copied[type_url] = {}
        for name, message in items.items():
            clone = type(message)()
            clone.CopyFrom(message)
            copied[type_url][name] = clone
    return ProxyResources(copied)


def inbound_hosts(snapshot: MeshSnapshot, proxy: Proxy) -> list[str]:
    """The services whose selector picks the proxy's workload (what an inbound cluster is
    for, which its name does not say)."""
    registry = snapshot.registry
    return [s.hostname for s in registry.services
            if s.selector is not None and s.namespace == proxy.namespace
            and any(w.address == proxy.address for w in registry.workloads_of(s))]


def apply_envoy_filters(snapshot: MeshSnapshot, proxy: Proxy, resources: ProxyResources,
                        ) -> tuple[ProxyResources, list[str]]:
    """The resources with every EnvoyFilter acting on the proxy applied, and the filters
    skipped with why."""
    current, problems = resources, []
    for envoy_filter in selected_filters(snapshot, proxy):
        if envoy_filter.problems:
            problems.append(f"EnvoyFilter {envoy_filter.key}: "
                            f"{'; '.join(envoy_filter.problems)}; skipped")
            continue
        patches = [p for p in envoy_filter.patches if _version_matches(p)]
        if not patches:
            continue
        touched = {t for p in patches for t in _TOUCHES.get(p.apply_to, ())}
        patched = _copied(current, touched)
        patcher = _Patcher(proxy, patches)
        try:
            for listener in patched.of(LISTENER).values():
                assert isinstance(listener, listener_pb2.Listener)
                patcher.listener(listener)
            for config in patched.of(ROUTE).values():
                assert isinstance(config, route_pb2.RouteConfiguration)
                patcher.route_config(config, "GATEWAY" if proxy.type is ProxyType.ROUTER
                                     else "SIDECAR_OUTBOUND")
            if "CLUSTER" in {p.apply_to for p in patches}:
                patcher.clusters(patched, inbound_hosts(snapshot, proxy))
        except PatchError as error:
            problems.append(f"EnvoyFilter {envoy_filter.key}: {error}; skipped")
            continue
        found = consistency_problems(patched)
        if found:
            problems.append(f"EnvoyFilter {envoy_filter.key}: the patched configuration "
                            f"would be inconsistent ({'; '.join(found)}); skipped")
            continue
        current = patched
    return current, problems

