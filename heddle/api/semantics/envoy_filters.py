"""EnvoyFilter, checked before anything runs: Istio's own rules (a patch needs applyTo, an
operation and, unless it removes, a value that parses as the Envoy message its applyTo
names; a subFilter match needs the HTTP connection manager) and what Heddle applies. A
patch, match field or target Heddle does not act on is an error naming it, never a silent
no-op."""

from __future__ import annotations

from typing import Any

from heddle.api.envoy_protos import PatchValueError, parse_value
from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import check_regex, mapping
from heddle.api.semantics.envoy_filter_names import check_istio_envoy_filter_rules

HCM = "envoy.filters.network.http_connection_manager"
_LIST_OPERATIONS = frozenset({"ADD", "INSERT_BEFORE", "INSERT_AFTER", "INSERT_FIRST",
                              "REPLACE", "REMOVE", "MERGE"})
_MERGES = frozenset({"MERGE", "MERGE_AND_REPLACE_LIST"})
# applyTo -> the operations Heddle applies to it, as Istio does.
OPERATIONS: dict[str, frozenset[str]] = {
    "HTTP_FILTER": _LIST_OPERATIONS,
    "NETWORK_FILTER": _LIST_OPERATIONS,
    "LISTENER": _MERGES,
    "CLUSTER": frozenset({"ADD", "REMOVE"}) | _MERGES,
    "VIRTUAL_HOST": frozenset({"ADD", "REMOVE"}) | _MERGES,
    "HTTP_ROUTE": frozenset({"REMOVE"}) | _MERGES,
}
CONTEXTS = frozenset({"ANY", "SIDECAR_INBOUND", "SIDECAR_OUTBOUND", "GATEWAY"})
# The match fields Heddle compares, per match kind (anything else is an error).
_LISTENER_FIELDS = {"portNumber", "name", "filterChain"}
_CHAIN_FIELDS = {"name", "sni", "transportProtocol", "applicationProtocols", "destinationPort",
                 "filter"}
_ROUTE_FIELDS = {"portNumber", "portName", "gateway", "name", "vhost"}
_VHOST_FIELDS = {"name", "domainName", "route"}
_CLUSTER_FIELDS = {"portNumber", "service", "subset", "name"}
_MATCH_KINDS = {"listener": ("LISTENER", "NETWORK_FILTER", "HTTP_FILTER"),
                "routeConfiguration": ("VIRTUAL_HOST", "HTTP_ROUTE"),
                "cluster": ("CLUSTER",)}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _unknown(path: PathKey, block: dict[str, Any], known: set[str],
             what: str) -> list[FieldProblem]:
    return [FieldProblem((*path, name), f"Heddle does not match on {what}.{name}",
                         f"match on {', '.join(sorted(known))}")
            for name in sorted(set(block) - known)]


def _check_listener(path: PathKey, apply_to: str, match: dict[str, Any]) -> list[FieldProblem]:
    problems = _unknown(path, match, _LISTENER_FIELDS, "listener")
    chain = mapping(match.get("filterChain"))
    problems += _unknown((*path, "filterChain"), chain, _CHAIN_FIELDS, "filterChain")
    network = mapping(chain.get("filter"))
    filter_path = (*path, "filterChain", "filter")
    problems += _unknown(filter_path, network, {"name", "subFilter"}, "filter")
    if chain.get("filter") is not None and not network.get("name"):
        problems.append(FieldProblem((*filter_path, "name"), "the filter match has no name",
                                     "name the network filter, e.g. " + HCM))
    sub = network.get("subFilter")
    if sub is not None:
        if apply_to != "HTTP_FILTER":
            problems.append(FieldProblem((*filter_path, "subFilter"),
                                         "a subFilter match is for applyTo HTTP_FILTER only",
                                         "remove it, or apply to HTTP_FILTER"))
        elif network.get("name") not in (HCM, "envoy.http_connection_manager"):
            problems.append(FieldProblem((*filter_path, "name"),
                                         "a subFilter match needs the filter match " + HCM,
                                         f"match filter.name {HCM}"))
        if not mapping(sub).get("name"):
            problems.append(FieldProblem((*filter_path, "subFilter", "name"),
                                         "the subFilter match has no name",
                                         "name the HTTP filter, e.g. envoy.filters.http.router"))
        problems += _unknown((*filter_path, "subFilter"), mapping(sub), {"name"}, "subFilter")
    return problems


def _check_route_configuration(path: PathKey, match: dict[str, Any]) -> list[FieldProblem]:
    problems = _unknown(path, match, _ROUTE_FIELDS, "routeConfiguration")
    vhost = mapping(match.get("vhost"))
    problems += _unknown((*path, "vhost"), vhost, _VHOST_FIELDS, "vhost")
    problems += _unknown((*path, "vhost", "route"), mapping(vhost.get("route")),
                         {"name", "action"}, "route")
    return problems


def _check_match(path: PathKey, apply_to: str, match: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    context = match.get("context", "ANY")
    if context not in CONTEXTS:
        problems.append(FieldProblem((*path, "context"),
                                     f"Heddle has no {context} proxies to patch",
                                     "use SIDECAR_INBOUND, SIDECAR_OUTBOUND, GATEWAY or ANY"))
    proxy = mapping(match.get("proxy"))
    if proxy.get("metadata"):
        problems.append(FieldProblem((*path, "proxy", "metadata"),
                                     "Heddle's proxies carry no node metadata to match",
                                     "select the workloads by workloadSelector instead"))
    problems += _unknown((*path, "proxy"), proxy, {"proxyVersion", "metadata"}, "proxy")
    if isinstance(proxy.get("proxyVersion"), str):
        problems += check_regex((*path, "proxy", "proxyVersion"), proxy["proxyVersion"])
    for kind, targets in _MATCH_KINDS.items():
        if match.get(kind) is None:
            continue
        if apply_to not in targets:
            problems.append(FieldProblem((*path, kind),
                                         f"a {kind} match cannot select a {apply_to}",
                                         f"use it with applyTo {' / '.join(targets)}"))
        elif kind == "listener":
            problems += _check_listener((*path, kind), apply_to, mapping(match[kind]))
            if mapping(match[kind]).get("portNumber") and context in ("ANY",
                                                                     "SIDECAR_OUTBOUND"):
                problems.append(FieldProblem(
                    (*path, kind, "portNumber"),
                    "a sidecar's outbound side is one HTTP proxy listener for every port "
                    "(virtualOutbound) in Heddle: a port cannot pick its filters",
                    "say context SIDECAR_INBOUND or GATEWAY, or patch the outbound "
                    "routes of that port (routeConfiguration.portNumber)"))
        elif kind == "routeConfiguration":
            problems += _check_route_configuration((*path, kind), mapping(match[kind]))
        else:
            problems += _unknown((*path, kind), mapping(match[kind]), _CLUSTER_FIELDS,
                                 "cluster")
    for name in sorted(set(match) - {"context", "proxy", *_MATCH_KINDS}):
        problems.append(FieldProblem((*path, name), f"Heddle does not match on {name}",
                                     "match on context, proxy, listener, routeConfiguration "
                                     "or cluster"))
    return problems


def _check_patch(path: PathKey, patch: dict[str, Any]) -> list[FieldProblem]:
    apply_to = patch.get("applyTo")
    if not apply_to:
        return [FieldProblem((*path, "applyTo"), "the patch has no applyTo",
                             "say what it patches, e.g. HTTP_FILTER")]
    if apply_to not in OPERATIONS:
        return [FieldProblem((*path, "applyTo"), f"Heddle does not patch {apply_to}",
                             f"patch one of {', '.join(OPERATIONS)}")]
    body = mapping(patch.get("patch"))
    operation = body.get("operation")
    if not operation:
        return [FieldProblem((*path, "patch", "operation"), "the patch has no operation",
                             "add an operation, e.g. MERGE")]
    problems: list[FieldProblem] = []
    if operation not in OPERATIONS[apply_to]:
        problems.append(FieldProblem((*path, "patch", "operation"),
                                     f"Heddle does not {operation} a {apply_to}",
                                     f"use {', '.join(sorted(OPERATIONS[apply_to]))}"))
    if body.get("filterClass") not in (None, "UNSPECIFIED"):
        problems.append(FieldProblem((*path, "patch", "filterClass"),
                                     "Heddle does not place filters by filterClass",
                                     "insert the filter by a subFilter match instead"))
    problems += _check_match((*path, "match"), apply_to, mapping(patch.get("match")))
    value = body.get("value")
    if value is None:
        if operation != "REMOVE":
            problems.append(FieldProblem((*path, "patch", "value"),
                                         f"{operation} needs a value",
                                         f"add the {apply_to} to {operation.lower()}"))
    elif operation == "REMOVE":
        problems.append(FieldProblem((*path, "patch", "value"),
                                     "REMOVE takes no value: it would be ignored",
                                     "remove the value"))
    elif isinstance(value, dict):
        try:
            parse_value(apply_to, value)
        except PatchValueError as error:
            problems.append(FieldProblem((*path, "patch", "value"), str(error),
                                         "write the Envoy message in its JSON form, with "
                                         "@type for each typed_config"))
    return problems


def check_envoy_filter(spec: dict[str, Any]) -> list[FieldProblem]:
    problems = check_istio_envoy_filter_rules(spec)
    for i, raw in enumerate(_list(spec.get("targetRefs"))):
        ref = mapping(raw)
        if (ref.get("group"), ref.get("kind")) != ("gateway.networking.k8s.io", "Gateway"):
            problems.append(FieldProblem(
                ("spec", "targetRefs", i, "kind"),
                f"Heddle applies an EnvoyFilter only to a Gateway's proxies, not a "
                f"{ref.get('kind')} (group {ref.get('group', '')!r})",
                "target a Gateway (group gateway.networking.k8s.io), or use workloadSelector"))
    if spec.get("targetRefs") and spec.get("workloadSelector"):
        problems.append(FieldProblem(("spec", "targetRefs"),
                                     "targetRefs and workloadSelector exclude each other",
                                     "keep one of them"))
    for i, patch in enumerate(_list(spec.get("configPatches"))):
        problems += _check_patch(("spec", "configPatches", i), mapping(patch))
    return problems
