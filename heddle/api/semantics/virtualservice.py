"""Istio's VirtualService rules that its schema cannot state."""

from __future__ import annotations

from typing import Any

from heddle.api.problems import FieldProblem, PathKey, did_you_mean
from heddle.api.semantics.common import (
    check_fqdn_or_wildcard,
    check_percent,
    check_port,
    check_regex,
    items,
    mapping,
)

# Envoy's retry_on policies plus the gRPC ones (x-envoy-retry-on / x-envoy-retry-grpc-on).
RETRY_ON = {
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure",
    "envoy-ratelimited", "retriable-4xx", "refused-stream", "retriable-status-codes",
    "retriable-headers", "http3-post-connect-failure", "cancelled", "deadline-exceeded",
    "internal", "resource-exhausted", "unavailable",
}
_STRING_MATCH_FIELDS = ("uri", "scheme", "method", "authority")
_ACTIONS = ("route", "redirect", "directResponse", "delegate")


def _string_match(path: PathKey, match: Any) -> list[FieldProblem]:
    return check_regex((*path, "regex"), mapping(match).get("regex"))


def _match(path: PathKey, match: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for name in _STRING_MATCH_FIELDS:
        if name in match:
            problems += _string_match((*path, name), match[name])
    for name in ("headers", "queryParams", "withoutHeaders"):
        for key, value in mapping(match.get(name)).items():
            problems += _string_match((*path, name, key), value)
            if name != "queryParams" and not key:
                problems.append(FieldProblem((*path, name), "header name must not be empty",
                                             "name the header, or remove the empty key"))
    problems += check_port((*path, "port"), match.get("port"))
    return problems


def _destination(path: PathKey, dest: dict[str, Any]) -> list[FieldProblem]:
    problems = check_fqdn_or_wildcard((*path, "host"), dest.get("host"))
    problems += check_port((*path, "port", "number"), mapping(dest.get("port")).get("number"))
    return problems


def _weights(path: PathKey, routes: list[tuple[int, Any]]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    weights = []
    for i, route in routes:
        weight = mapping(route).get("weight", 0)
        if isinstance(weight, int):
            weights.append(weight)
            if weight < 0:
                problems.append(FieldProblem((*path, i, "weight"), f"weight {weight} is negative",
                                             "use a weight of 0 or more"))
    if len(routes) > 1 and weights and sum(weights) == 0:
        problems.append(FieldProblem(path, "all destinations have weight 0",
                                     "give at least one destination a positive weight"))
    return problems


def _http_route(path: PathKey, http: dict[str, Any], delegate_vs: bool) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    present = [a for a in _ACTIONS if http.get(a) not in (None, [])]
    if not present:
        problems.append(FieldProblem(path, "HTTP route needs a route, redirect, directResponse "
                                           "or delegate", "add one of them"))
    elif len(present) > 1:
        problems.append(FieldProblem(
            path, "fields " + ", ".join(f'"{a}"' for a in present) + " are mutually exclusive",
            "keep exactly one of route, redirect, directResponse, delegate"))
    if "delegate" in http and delegate_vs:
        problems.append(FieldProblem((*path, "delegate"),
                                     "a delegate VirtualService cannot delegate again",
                                     "route to destinations instead"))
    for i, match in items(http.get("match")):
        problems += _match((*path, "match", i), mapping(match))
    routes = items(http.get("route"))
    for i, route in routes:
        problems += _destination((*path, "route", i, "destination"),
                                 mapping(mapping(route).get("destination")))
    problems += _weights((*path, "route"), routes)
    retries = mapping(http.get("retries"))
    if isinstance(retries.get("attempts"), int) and retries["attempts"] < 0:
        problems.append(FieldProblem((*path, "retries", "attempts"), "attempts is negative",
                                     "use 0 to disable retries"))
    for policy in str(retries.get("retryOn", "")).split(","):
        policy = policy.strip()
        if policy and not policy.isdigit() and policy not in RETRY_ON:
            problems.append(FieldProblem((*path, "retries", "retryOn"),
                                         f"unknown retry policy {policy!r}",
                                         did_you_mean(policy, RETRY_ON)
                                         or "use Envoy retry-on names or HTTP status codes"))
    fault = mapping(http.get("fault"))
    for kind in ("delay", "abort"):
        spec = mapping(fault.get(kind))
        problems += check_percent((*path, "fault", kind, "percentage", "value"),
                                  mapping(spec.get("percentage")).get("value"))
    abort_status = mapping(fault.get("abort")).get("httpStatus")
    if isinstance(abort_status, int) and not 200 <= abort_status <= 599:
        problems.append(FieldProblem((*path, "fault", "abort", "httpStatus"),
                                     f"HTTP status {abort_status} is out of range",
                                     "use a status from 200 to 599"))
    problems += check_percent((*path, "mirrorPercentage", "value"),
                              mapping(http.get("mirrorPercentage")).get("value"))
    if "mirror" in http and "mirrors" in http:
        problems.append(FieldProblem(path, 'fields "mirror" and "mirrors" are mutually exclusive',
                                     "move the mirror into mirrors"))
    if "mirror" in http:
        problems += _destination((*path, "mirror"), mapping(http["mirror"]))
    for i, mirror in items(http.get("mirrors")):
        problems += _destination((*path, "mirrors", i, "destination"),
                                 mapping(mapping(mirror).get("destination")))
        problems += check_percent((*path, "mirrors", i, "percentage", "value"),
                                  mapping(mapping(mirror).get("percentage")).get("value"))
    rewrite = mapping(http.get("rewrite"))
    if "uri" in rewrite and "uriRegexRewrite" in rewrite:
        problems.append(FieldProblem((*path, "rewrite"),
                                     'fields "uri" and "uriRegexRewrite" are mutually exclusive',
                                     "keep one of them"))
    problems += check_regex((*path, "rewrite", "uriRegexRewrite", "match"),
                            mapping(rewrite.get("uriRegexRewrite")).get("match"))
    redirect = mapping(http.get("redirect"))
    if "port" in redirect and "derivePort" in redirect:
        problems.append(FieldProblem((*path, "redirect"),
                                     'fields "port" and "derivePort" are mutually exclusive',
                                     "keep one of them"))
    for i, origin in items(mapping(http.get("corsPolicy")).get("allowOrigins")):
        problems += check_regex((*path, "corsPolicy", "allowOrigins", i, "regex"),
                                mapping(origin).get("regex"))
    return problems


def check_virtual_service(spec: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    hosts = items(spec.get("hosts"))
    delegate_vs = not hosts
    if delegate_vs and spec.get("gateways"):
        problems.append(FieldProblem(("spec", "gateways"),
                                     "a delegate VirtualService (no hosts) cannot set gateways",
                                     "add hosts, or remove gateways"))
    for i, host in hosts:
        problems += check_fqdn_or_wildcard(("spec", "hosts", i), host)
    if not any(spec.get(k) for k in ("http", "tcp", "tls")):
        problems.append(FieldProblem(("spec",), "http, tcp or tls must be provided",
                                     "add at least one http, tcp or tls route"))
    for i, http in items(spec.get("http")):
        problems += _http_route(("spec", "http", i), mapping(http), delegate_vs)
    for proto in ("tcp", "tls"):
        for i, rule in items(spec.get(proto)):
            routes = items(mapping(rule).get("route"))
            if not routes:
                problems.append(FieldProblem(("spec", proto, i), f"{proto} rule has no route",
                                             "add a route with a destination"))
            for j, route in routes:
                problems += _destination(("spec", proto, i, "route", j, "destination"),
                                         mapping(mapping(route).get("destination")))
            problems += _weights(("spec", proto, i, "route"), routes)
            for j, match in items(mapping(rule).get("match")):
                problems += check_port(("spec", proto, i, "match", j, "port"),
                                       mapping(match).get("port"))
                if proto == "tls" and not mapping(match).get("sniHosts"):
                    problems.append(FieldProblem(("spec", proto, i, "match", j),
                                                 "TLS match needs sniHosts", "add sniHosts"))
    return problems
