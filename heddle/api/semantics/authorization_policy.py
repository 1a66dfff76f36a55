"""Istio's rules for an AuthorizationPolicy (ValidateAuthorizationPolicy and the attribute
checks of pkg/config/security): selection, actions and providers, sources, operations,
path templates, conditions; and what Heddle does not enforce yet, refused by name."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from heddle.api.diagnostics import Severity
from heddle.api.problems import FieldProblem, PathKey, did_you_mean
from heddle.api.semantics.common import items, mapping
from heddle.api.semantics.policy_targets import selection_problems

_SOURCE_FIELDS = ("principals", "requestPrincipals", "namespaces", "ipBlocks",
                  "remoteIpBlocks", "serviceAccounts", "trustDomains")
_OPERATION_FIELDS = ("ports", "methods", "paths", "hosts")
# Condition keys: the value check each takes.
_PLAIN_KEYS = {"source.namespace", "source.principal", "request.auth.principal",
               "request.auth.audiences", "request.auth.presenter", "connection.sni"}
_IP_KEYS = {"source.ip", "remote.ip", "destination.ip"}
_MAP_PREFIXES = ("request.headers", "request.auth.claims", "experimental.envoy.filters.")
_REPLACED = {"destination.namespace": "metadata.namespace",
             "destination.name": None, "destination.user": None}
_KNOWN_KEYS = sorted({*_PLAIN_KEYS, *_IP_KEYS, "source.serviceAccount", "destination.port",
                      "source.trustDomain"})
# Not enforced by Heddle's RBAC translation: refused, since an ALLOW rule that ignored them
# would let in more than it says.
_UNENFORCED_SOURCE_FIELDS = ("trustDomains", "notTrustDomains")
_UNENFORCED_KEYS = {"source.trustDomain"}
# RFC 3986 pchar without "/", as Envoy's uri_template matcher and Istio accept them.
_TEMPLATE_LITERAL = re.compile(r"^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$")
_CUSTOM_UNSUPPORTED_SOURCE = ("namespaces", "notNamespaces", "serviceAccounts",
                              "notServiceAccounts", "trustDomains", "notTrustDomains",
                              "principals", "notPrincipals", "requestPrincipals",
                              "notRequestPrincipals")


def _error(path: PathKey, message: str, fix: str) -> FieldProblem:
    return FieldProblem(path, message, fix)


def _strings(value: Any) -> list[tuple[int, str]]:
    return [(i, str(v if v is not None else "")) for i, v in items(value)]


def _ip_problems(path: PathKey, values: list[tuple[int, str]]) -> list[FieldProblem]:
    problems = []
    for i, value in values:
        try:
            if "/" in value:
                ipaddress.ip_network(value, strict=False)
            else:
                ipaddress.ip_address(value)
        except ValueError:
            what = "CIDR range" if "/" in value else "IP address"
            problems.append(_error((*path, i), f"bad {what} {value!r}",
                                   "write an address like 10.0.0.1 or a range like "
                                   "10.0.0.0/16"))
    return problems


def _port_problems(path: PathKey, values: list[tuple[int, str]]) -> list[FieldProblem]:
    return [_error((*path, i), f"bad port {value!r}", 'write a port number from 0 to 65535 '
                                                       'as a string, e.g. "8080"')
            for i, value in values if not value.isdigit() or int(value) > 65535]


def _empty_problems(path: PathKey, values: list[tuple[int, str]]) -> list[FieldProblem]:
    return [_error((*path, i), "an empty value is not allowed", "remove the empty value")
            for i, value in values if value == ""][:1]


def _wildcard_problems(path: PathKey, values: list[tuple[int, str]]) -> list[FieldProblem]:
    for i, value in values:
        stars = value.count("*")
        if stars > 1:
            return [_error((*path, i), f"at most one wildcard is allowed: {value!r}",
                           "use one * at the start or the end")]
        if stars == 1 and value != "*" and not (value.startswith("*") or value.endswith("*")):
            return [_error((*path, i), f"a wildcard is only allowed at the start or end: "
                                       f"{value!r}", "move the * to the start or the end")]
    return []


def _service_account_problems(path: PathKey, values: list[tuple[int, str]],
                              ) -> list[FieldProblem]:
    fix = "write SERVICE_ACCOUNT or NAMESPACE/SERVICE_ACCOUNT"
    if len(values) > 16:
        return [_error(path, "at most 16 service accounts may be listed",
                       "split the rule in two")]
    for i, value in values:
        if not value:
            return [_error((*path, i), "an empty value is not allowed", fix)]
        if "*" in value:
            return [_error((*path, i), "wildcards are not allowed in service accounts", fix)]
        if value.count("/") > 1 or len(value) > 320:
            return [_error((*path, i), f"invalid service account {value!r}", fix)]
        namespace, slash, account = value.partition("/")
        if slash and (not namespace or not account):
            return [_error((*path, i), f"invalid service account {value!r}", fix)]
    return []


def path_template_problems(path: PathKey, values: list[tuple[int, str]],
                           ) -> list[FieldProblem]:
    """Istio's CheckValidPathTemplate: after `{**}` no other operator ({*} or {**}) may come,
    though literal segments may (`/store/{**}/cart`); braces only in `{*}` and `{**}`; and in
    a path with a template every literal segment is a non-empty string of path characters.
    Leading and trailing slashes are not segments."""
    for i, value in values:
        has_template = "{*}" in value or "{**}" in value
        after_any = False
        for segment in value.strip("/").split("/"):
            if segment in ("{*}", "{**}"):
                if after_any:
                    return [_error((*path, i), f"invalid path template {value!r}: {{**}} is "
                                               "not the last operator",
                                   "put no {*} or {**} after {**}; literal segments may "
                                   "follow it")]
                after_any = segment == "{**}"
                continue
            if "{" in segment or "}" in segment:
                return [_error((*path, i), f"invalid path template {value!r}: {segment!r} has "
                                           "'{' or '}' beyond a supported template",
                               "a segment is either literal, {*} (one segment) or {**} (any "
                               "number)")]
            if has_template and not _TEMPLATE_LITERAL.match(segment):
                return [_error((*path, i), f"invalid path template {value!r}: segment "
                                           f"{segment!r} is not a valid literal",
                               "beside {*} and {**}, a segment is a non-empty run of "
                               "letters, digits and -._~%!$&'()+,;:@=")]
    return []


def _map_key_problem(key: str) -> str | None:
    opening = key.find("[")
    if key.endswith("]") and 0 < opening < len(key) - 2:
        return None
    return f"bad key {key!r}: write NAME[KEY]"


def condition_problems(path: PathKey, key: str, values: list[tuple[int, str]],
                       ) -> list[FieldProblem]:
    """Istio's ValidateAttribute for one of `values` or `notValues` of a condition."""
    problems = _empty_problems(path, values)
    if problems:
        return problems
    key_path = (*path[:-1], "key")
    if key.startswith(_MAP_PREFIXES):
        problem = _map_key_problem(key)
        return [_error(key_path, problem, "e.g. request.headers[User-Agent]")] if problem else []
    if key in _IP_KEYS:
        return _ip_problems(path, values)
    if key == "source.serviceAccount":
        return _service_account_problems(path, values)
    if key == "source.trustDomain":
        return _wildcard_problems(path, values)
    if key == "destination.port":
        return _port_problems(path, values)
    if key in _PLAIN_KEYS:
        return []
    if key in _REPLACED:
        replacement = _REPLACED[key]
        fix = (f"use the policy's {replacement}" if replacement
               else "select the workload with the selector")
        return [_error(key_path, f"attribute {key} is not supported", fix)]
    if key.startswith("destination.labels"):
        return [_error(key_path, f"attribute {key} is replaced by the workload selector",
                       "select the workload with the selector")]
    return [_error(key_path, f"unknown condition key {key!r}",
                   did_you_mean(key, _KNOWN_KEYS)
                   or "supported keys: " + ", ".join(_KNOWN_KEYS)
                   + ", request.headers[NAME], request.auth.claims[NAME]")]


def _source(path: PathKey, source: dict[str, Any], rule_index: int) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    count = {name: len(items(source.get(name))) for name in (
        *_SOURCE_FIELDS, *(f"not{n[0].upper()}{n[1:]}" for n in _SOURCE_FIELDS))}
    if (count["principals"] + count["notPrincipals"] + count["namespaces"]
            + count["notNamespaces"]) and count["serviceAccounts"] + count[
                "notServiceAccounts"]:
        problems.append(_error(path, f"serviceAccounts cannot be set with namespaces or "
                                     f"principals (rule {rule_index})",
                               "keep serviceAccounts, or namespaces and principals"))
    if not any(count.values()):
        problems.append(_error(path, "from.source must not be empty",
                               "add principals, namespaces, ipBlocks, ..."))
    for name in ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks"):
        problems += _ip_problems((*path, name), _strings(source.get(name)))
    for name in ("principals", "requestPrincipals", "namespaces", "ipBlocks", "remoteIpBlocks",
                 "notPrincipals", "notRequestPrincipals", "notNamespaces", "notIpBlocks",
                 "notRemoteIpBlocks"):
        problems += _empty_problems((*path, name), _strings(source.get(name)))
    for name in ("serviceAccounts", "notServiceAccounts"):
        problems += _service_account_problems((*path, name), _strings(source.get(name)))
    for name in ("trustDomains", "notTrustDomains"):
        values = _strings(source.get(name))
        problems += _empty_problems((*path, name), values) or _wildcard_problems(
            (*path, name), values) or [
            _error((*path, name, i), f"a trust domain cannot contain '/': {value!r}",
                   "write the trust domain, e.g. cluster.local")
            for i, value in values if "/" in value][:1]
    for name in _UNENFORCED_SOURCE_FIELDS:
        if items(source.get(name)):
            problems.append(_error((*path, name), f"Heddle does not enforce {name} yet",
                                   "match the identities with principals "
                                   "(TRUST_DOMAIN/ns/NS/sa/SA) instead"))
    return problems


def _operation(path: PathKey, operation: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    names = (*_OPERATION_FIELDS, *(f"not{n[0].upper()}{n[1:]}" for n in _OPERATION_FIELDS))
    if not any(items(operation.get(n)) for n in names):
        problems.append(_error(path, "to.operation must not be empty",
                               "add hosts, ports, methods or paths"))
    for name in ("ports", "notPorts"):
        problems += _port_problems((*path, name), _strings(operation.get(name)))
    for name in names:
        problems += _empty_problems((*path, name), _strings(operation.get(name)))
    for name in ("paths", "notPaths"):
        problems += path_template_problems((*path, name), _strings(operation.get(name)))
    return problems


def _has_any(block: dict[str, Any], names: tuple[str, ...]) -> bool:
    return any(block.get(n) is not None for n in names)


_TCP_SOURCE = ("principals", "notPrincipals", "ipBlocks", "notIpBlocks", "namespaces",
               "notNamespaces", "remoteIpBlocks", "notRemoteIpBlocks", "serviceAccounts",
               "notServiceAccounts")


def _rule(path: PathKey, rule: dict[str, Any], index: int, action: str) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    if rule.get("from") is not None and not items(rule.get("from")):
        problems.append(_error((*path, "from"), "from must not be empty",
                               "add a source, or remove from"))
    tcp_from = tcp_to = has_from = has_to = False
    for i, item in items(rule.get("from")):
        here = (*path, "from", i)
        if item is None or mapping(item).get("source") is None:
            problems.append(_error(here, "from.source must not be null", "add a source"))
            continue
        has_from = True
        source = mapping(mapping(item)["source"])
        problems += _source((*here, "source"), source, index)
        tcp_from = tcp_from or _has_any(source, _TCP_SOURCE)
    if rule.get("to") is not None and not items(rule.get("to")):
        problems.append(_error((*path, "to"), "to must not be empty",
                               "add an operation, or remove to"))
    for i, item in items(rule.get("to")):
        here = (*path, "to", i)
        if item is None or mapping(item).get("operation") is None:
            problems.append(_error(here, "to.operation must not be null", "add an operation"))
            continue
        has_to = True
        operation = mapping(mapping(item)["operation"])
        problems += _operation((*here, "operation"), operation)
        tcp_to = tcp_to or _has_any(operation, ("ports", "notPorts"))
    for i, condition in items(rule.get("when")):
        condition = mapping(condition)
        here = (*path, "when", i)
        key = str(condition.get("key") or "")
        if not key:
            problems.append(_error((*here, "key"), "a condition needs a key",
                                   "e.g. key: request.headers[User-Agent]"))
            continue
        values, not_values = _strings(condition.get("values")), _strings(
            condition.get("notValues"))
        if not values and not not_values:
            problems.append(_error(here, f"condition {key} needs values or notValues",
                                   "add values"))
            continue
        for name, listed in (("values", values), ("notValues", not_values)):
            if listed:
                problems += condition_problems((*here, name), key, listed)
        if key in _UNENFORCED_KEYS:
            problems.append(_error((*here, "key"), f"Heddle does not enforce {key} yet",
                                   "match the identities with source.principal instead"))
    only_http = (has_from and not has_to and not tcp_from) or (has_to and not tcp_to)
    if action == "DENY" and only_http:
        problems.append(FieldProblem(path, "this DENY rule uses only HTTP attributes: it "
                                           "denies all traffic to TCP ports in its scope",
                                     "name the ports the rule applies to (to.operation.ports)",
                                     Severity.WARNING))
    return problems


def _custom_rule(path: PathKey, rule: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for i, item in items(rule.get("from")):
        source = mapping(mapping(item).get("source"))
        for name in _CUSTOM_UNSUPPORTED_SOURCE:
            if items(source.get(name)):
                problems.append(_error((*path, "from", i, "source", name),
                                       f"from.{name} is not supported with action CUSTOM",
                                       "match on ipBlocks, or move the rule to an ALLOW or "
                                       "DENY policy"))
    for i, condition in items(rule.get("when")):
        key = str(mapping(condition).get("key") or "")
        if key in ("source.namespace", "source.serviceAccount", "source.trustDomain",
                   "source.principal") or key.startswith("request.auth."):
            problems.append(_error((*path, "when", i, "key"), f"{key} is not supported with "
                                                              "action CUSTOM",
                                   "match it in an ALLOW or DENY policy"))
    return problems


def check_authorization_policy(spec: dict[str, Any]) -> list[FieldProblem]:
    problems = selection_problems(spec, "AuthorizationPolicy")
    action = str(spec.get("action") or "ALLOW")
    rules = spec.get("rules")
    provider = spec.get("provider")
    # Without rules (absent, null or `[]`: Istio's rules are nil) DENY and CUSTOM never apply.
    if action in ("DENY", "CUSTOM") and not rules:
        problems.append(_error(("spec", "action"), f"{action} action without rules is "
                                                   "meaningless: it never applies",
                               f"add rules; an empty rule `rules: [{{}}]` applies {action} "
                               "to every request"))
    if action == "CUSTOM":
        if rules and not mapping(provider).get("name"):
            problems.append(_error(("spec", "provider"), "action CUSTOM needs provider.name",
                                   "name an extension provider: provider: {name: ...}"))
        for i, rule in items(rules):
            problems += _custom_rule(("spec", "rules", i), mapping(rule))
    elif provider is not None:
        problems.append(_error(("spec", "provider"), f"provider is only allowed with action "
                                                     f"CUSTOM, not {action}",
                               "remove provider, or set action: CUSTOM"))
    for i, rule in items(rules):
        if rule is None:
            problems.append(_error(("spec", "rules", i), "a rule must not be null",
                                   "write {} for a rule that matches every request"))
            continue
        problems += _rule(("spec", "rules", i), mapping(rule), i, action)
    return problems
