"""Istio's EnvoyFilter checks beside what Heddle applies: an empty workload selector, the
deprecated filter names Istio still matches (a warning naming the canonical one), v2 type
URLs (unknown since Envoy dropped the v2 API) and over-long proxyVersion patterns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from heddle.api.diagnostics import Severity
from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import items, mapping

# Deprecated filter name -> the canonical one.
DEPRECATED_FILTER_NAMES = {
    "envoy.buffer": "envoy.filters.http.buffer",
    "envoy.cors": "envoy.filters.http.cors",
    "envoy.csrf": "envoy.filters.http.csrf",
    "envoy.http_dynamo_filter": "envoy.filters.http.dynamo",
    "envoy.ext_authz": "envoy.filters.http.ext_authz",
    "envoy.fault": "envoy.filters.http.fault",
    "envoy.grpc_http1_bridge": "envoy.filters.http.grpc_http1_bridge",
    "envoy.grpc_json_transcoder": "envoy.filters.http.grpc_json_transcoder",
    "envoy.grpc_web": "envoy.filters.http.grpc_web",
    "envoy.gzip": "envoy.filters.http.gzip",
    "envoy.health_check": "envoy.filters.http.health_check",
    "envoy.ip_tagging": "envoy.filters.http.ip_tagging",
    "envoy.lua": "envoy.filters.http.lua",
    "envoy.rate_limit": "envoy.filters.http.ratelimit",
    "envoy.router": "envoy.filters.http.router",
    "envoy.squash": "envoy.filters.http.squash",
    "envoy.listener.http_inspector": "envoy.filters.listener.http_inspector",
    "envoy.listener.original_dst": "envoy.filters.listener.original_dst",
    "envoy.listener.original_src": "envoy.filters.listener.original_src",
    "envoy.listener.proxy_protocol": "envoy.filters.listener.proxy_protocol",
    "envoy.listener.tls_inspector": "envoy.filters.listener.tls_inspector",
    "envoy.client_ssl_auth": "envoy.filters.network.client_ssl_auth",
    "envoy.http_connection_manager": "envoy.filters.network.http_connection_manager",
    "envoy.mongo_proxy": "envoy.filters.network.mongo_proxy",
    "envoy.ratelimit": "envoy.filters.network.ratelimit",
    "envoy.redis_proxy": "envoy.filters.network.redis_proxy",
    "envoy.tcp_proxy": "envoy.filters.network.tcp_proxy",
}
MAX_PROXY_VERSION = 1024
_V2_TYPE = re.compile(r"(^|/)envoy\.[\w.]*\.v2(alpha\d*)?\.")


def _type_urls(path: PathKey, value: Any) -> Iterator[tuple[PathKey, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "@type" and isinstance(item, str):
                yield (*path, key), item
            else:
                yield from _type_urls((*path, key), item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _type_urls((*path, i), item)


def _deprecated_name(path: PathKey, name: Any) -> list[FieldProblem]:
    canonical = DEPRECATED_FILTER_NAMES.get(str(name))
    if canonical is None:
        return []
    return [FieldProblem(path, f"deprecated filter name {name!r}", f"use {canonical!r}",
                         Severity.WARNING)]


def _patch(path: PathKey, patch: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    match = mapping(patch.get("match"))
    if match.get("context") == "WAYPOINT":
        return []
    version = mapping(match.get("proxy")).get("proxyVersion")
    if isinstance(version, str) and len(version) > MAX_PROXY_VERSION:
        problems.append(FieldProblem((*path, "match", "proxy", "proxyVersion"),
                                     f"the proxyVersion pattern is longer than "
                                     f"{MAX_PROXY_VERSION} characters: it is ignored",
                                     "write a shorter pattern", Severity.WARNING))
    network = mapping(mapping(mapping(match.get("listener")).get("filterChain")).get("filter"))
    filter_path = (*path, "match", "listener", "filterChain", "filter")
    if network:
        problems += _deprecated_name((*filter_path, "name"), network.get("name"))
        problems += _deprecated_name((*filter_path, "subFilter", "name"),
                                     mapping(network.get("subFilter")).get("name"))
        if patch.get("applyTo") in ("LISTENER", "FILTER_CHAIN"):
            problems.append(FieldProblem(filter_path, f"a filter match has no effect with "
                                                      f"applyTo {patch['applyTo']}",
                                         "remove the filter match", Severity.WARNING))
    for here, url in _type_urls((*path, "patch", "value"), mapping(patch.get("patch")).get(
            "value")):
        if _V2_TYPE.search(url):
            problems.append(FieldProblem(here, f"unknown type {url}: Envoy's v2 API is gone",
                                         "use the v3 type, e.g. "
                                         + _V2_TYPE.sub(r"\1envoy.extensions.", url)))
    return problems


def check_istio_envoy_filter_rules(spec: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    selector = spec.get("workloadSelector")
    if selector is not None and not mapping(mapping(selector).get("labels")):
        problems.append(FieldProblem(("spec", "workloadSelector"), "the workload selector has "
                                     "no labels: the EnvoyFilter applies to every workload in "
                                     "the namespace", "add labels, or remove workloadSelector",
                                     Severity.WARNING))
    for i, patch in items(spec.get("configPatches")):
        if patch is None:
            problems.append(FieldProblem(("spec", "configPatches", i), "a config patch may "
                                         "not be null", "remove it"))
            continue
        problems += _patch(("spec", "configPatches", i), mapping(patch))
    return problems
