"""Istio's rules for AuthorizationPolicy, RequestAuthentication and PeerAuthentication."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from heddle.api.problems import FieldProblem, PathKey, did_you_mean
from heddle.api.semantics.common import check_cidr, items, mapping

_WHEN_KEYS = {
    "source.ip", "remote.ip", "source.namespace", "source.principal", "source.serviceAccount",
    "request.auth.principal", "request.auth.audiences", "request.auth.presenter",
    "destination.ip", "destination.port", "connection.sni",
}
_WHEN_PREFIXES = ("request.headers[", "request.auth.claims[", "experimental.envoy.filters.")
_CLAIM_KEY = re.compile(r"^request\.auth\.claims(\[[^\[\]]+\])+$")
_HEADER_KEY = re.compile(r"^request\.headers\[[^\[\]]+\]$")
_IP_SOURCE_FIELDS = ("ipBlocks", "notIpBlocks", "remoteIpBlocks", "notRemoteIpBlocks")


def _when_key(path: PathKey, key: Any) -> list[FieldProblem]:
    if not isinstance(key, str):
        return []
    if key in _WHEN_KEYS:
        return []
    if key.startswith("request.auth.claims[") and _CLAIM_KEY.match(key):
        return []
    if key.startswith("request.headers[") and _HEADER_KEY.match(key):
        return []
    if key.startswith("experimental.envoy.filters."):
        return []
    hint = did_you_mean(key, _WHEN_KEYS) or (
        "supported keys: " + ", ".join(sorted(_WHEN_KEYS)) + ", request.headers[NAME], "
        "request.auth.claims[NAME]"
    )
    return [FieldProblem(path, f"unsupported condition key {key!r}", hint)]


# RFC 3986 pchar without "/", as Envoy's uri_template matcher and Istio accept them.
_TEMPLATE_LITERAL = re.compile(r"^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$")
_TEMPLATE_FIX = "a segment is either literal, {*} (one segment) or {**} (any number)"


def _path_template(path: PathKey, value: Any) -> list[FieldProblem]:
    """Istio's CheckValidPathTemplate: after `{**}` no other operator ({*} or {**}) may come,
    though literal segments may (`/store/{**}/cart`); braces only in `{*}` and `{**}`; and in a
    path with a template every literal segment is a non-empty string of path characters.
    Leading and trailing slashes are not segments."""
    if not isinstance(value, str):
        return []
    has_template = "{*}" in value or "{**}" in value
    after_any = False
    for segment in value.strip("/").split("/"):
        if segment in ("{*}", "{**}"):
            if after_any:
                return [FieldProblem(path, f"invalid path template {value!r}: {{**}} is not "
                                           "the last operator",
                                     "put no {*} or {**} after {**}; literal segments may "
                                     "follow it")]
            after_any = segment == "{**}"
            continue
        if "{" in segment or "}" in segment:
            return [FieldProblem(path, f"invalid path template {value!r}: {segment!r} has "
                                       "'{' or '}' beyond a supported template",
                                 _TEMPLATE_FIX)]
        if has_template and not _TEMPLATE_LITERAL.match(segment):
            return [FieldProblem(path, f"invalid path template {value!r}: segment "
                                       f"{segment!r} is not a valid literal",
                                 "beside {*} and {**}, a segment is a non-empty run of letters, "
                                 "digits and -._~%!$&'()+,;:@=")]
    return []


def _port_string(path: PathKey, value: Any) -> list[FieldProblem]:
    if isinstance(value, str) and value.isdigit() and 0 < int(value) <= 65535:
        return []
    return [FieldProblem(path, f"invalid port {value!r}", 'write a port number as a string, '
                                                           'e.g. "8080"')]


def _rule(path: PathKey, rule: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for i, source_item in items(rule.get("from")):
        source = mapping(mapping(source_item).get("source"))
        spath = (*path, "from", i, "source")
        if not source:
            problems.append(FieldProblem(spath, "source must not be empty",
                                         "add principals, namespaces, ipBlocks, ..."))
        for name in _IP_SOURCE_FIELDS:
            for j, block in items(source.get(name)):
                problems += check_cidr((*spath, name, j), block)
    for i, op_item in items(rule.get("to")):
        operation = mapping(mapping(op_item).get("operation"))
        opath = (*path, "to", i, "operation")
        if not operation:
            problems.append(FieldProblem(opath, "operation must not be empty",
                                         "add hosts, ports, methods or paths"))
        for name in ("ports", "notPorts"):
            for j, port in items(operation.get(name)):
                problems += _port_string((*opath, name, j), port)
        for name in ("paths", "notPaths"):
            for j, value in items(operation.get(name)):
                problems += _path_template((*opath, name, j), value)
    for i, condition in items(rule.get("when")):
        condition = mapping(condition)
        cpath = (*path, "when", i)
        problems += _when_key((*cpath, "key"), condition.get("key"))
        if not condition.get("values") and not condition.get("notValues"):
            problems.append(FieldProblem(cpath, "condition needs values or notValues",
                                         "add values"))
        if condition.get("key") in ("source.ip", "remote.ip", "destination.ip"):
            for name in ("values", "notValues"):
                for j, block in items(condition.get(name)):
                    problems += check_cidr((*cpath, name, j), block)
        if condition.get("key") == "destination.port":
            for name in ("values", "notValues"):
                for j, port in items(condition.get(name)):
                    problems += _port_string((*cpath, name, j), port)
    return problems


def check_authorization_policy(spec: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    action = spec.get("action", "ALLOW")
    if action in ("DENY", "CUSTOM") and not spec.get("rules"):
        # Istio: an error, since without rules the policy never matches (absent, null and
        # `[]` all leave Istio's rules nil); ALLOW without rules denies all, AUDIT is allowed.
        problems.append(FieldProblem(
            ("spec", "action"), f"{action} action without rules is meaningless: it never applies",
            f"add rules; an empty rule `rules: [{{}}]` applies {action} to every request"))
    provider = mapping(spec.get("provider"))
    if action == "CUSTOM" and not provider.get("name"):
        problems.append(FieldProblem(("spec", "provider"), "action CUSTOM needs a provider",
                                     "name an extension provider: provider: {name: ...}"))
    if action != "CUSTOM" and "provider" in spec:
        problems.append(FieldProblem(("spec", "provider"),
                                     f"provider is only allowed with action CUSTOM, not {action}",
                                     "remove provider, or set action: CUSTOM"))
    for i, rule in items(spec.get("rules")):
        problems += _rule(("spec", "rules", i), mapping(rule))
    return problems


def check_request_authentication(spec: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for i, jwt in items(spec.get("jwtRules")):
        jwt = mapping(jwt)
        path: PathKey = ("spec", "jwtRules", i)
        if not jwt.get("issuer"):
            problems.append(FieldProblem(path, "issuer is required", "add the token issuer"))
        if "jwks" in jwt and "jwksUri" in jwt:
            problems.append(FieldProblem(path, 'fields "jwks" and "jwksUri" are mutually exclusive',
                                         "keep one of them"))
        uri = jwt.get("jwksUri")
        if isinstance(uri, str):
            parsed = urlparse(uri)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                problems.append(FieldProblem((*path, "jwksUri"), f"invalid jwksUri {uri!r}",
                                             "use an http:// or https:// URL"))
        for j, header in items(jwt.get("fromHeaders")):
            if not mapping(header).get("name"):
                problems.append(FieldProblem((*path, "fromHeaders", j), "header name is required",
                                             "add name"))
        for j, claim in items(jwt.get("outputClaimToHeaders")):
            claim = mapping(claim)
            if not claim.get("header") or not claim.get("claim"):
                problems.append(FieldProblem((*path, "outputClaimToHeaders", j),
                                             "header and claim are both required",
                                             "set header and claim"))
    return problems


def check_peer_authentication(spec: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    port_level = mapping(spec.get("portLevelMtls"))
    if port_level and not mapping(mapping(spec.get("selector")).get("matchLabels")):
        problems.append(FieldProblem(("spec", "portLevelMtls"),
                                     "portLevelMtls needs a workload selector",
                                     "add selector.matchLabels, or remove portLevelMtls"))
    return problems


DRY_RUN_ANNOTATION = "istio.io/dry-run"
# Go's strconv.ParseBool, with which Istio reads the annotation (and validates it).
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False,
             "False": False}


def parse_go_bool(value: str) -> bool | None:
    """True or False as Go's strconv.ParseBool reads `value`; None where it refuses it."""
    return _GO_BOOLS.get(value)


def check_dry_run_annotation(group: str, kind: str, spec: dict[str, Any],
                             annotations: dict[str, Any]) -> list[FieldProblem]:
    """Istio's checkDryRunAnnotation, for every Istio kind: only an AuthorizationPolicy may
    carry `istio.io/dry-run`, only with action ALLOW or DENY, and only a boolean value."""
    if DRY_RUN_ANNOTATION not in annotations:
        return []
    path: PathKey = ("metadata", "annotations", DRY_RUN_ANNOTATION)
    if (group, kind) != ("security.istio.io", "AuthorizationPolicy"):
        return [FieldProblem(path, f"{kind} does not support the annotation "
                                   f"{DRY_RUN_ANNOTATION}",
                             "remove the annotation: only an AuthorizationPolicy has a "
                             "dry-run mode")]
    action = spec.get("action", "ALLOW")
    if action not in ("ALLOW", "DENY"):
        return [FieldProblem(path, f"{DRY_RUN_ANNOTATION} supports only action ALLOW or DENY, "
                                   f"not {action}",
                             "remove the annotation, or dry-run an ALLOW or DENY policy")]
    value = annotations[DRY_RUN_ANNOTATION]
    if not isinstance(value, str) or parse_go_bool(value) is None:
        return [FieldProblem(path, f"invalid {DRY_RUN_ANNOTATION} value {value!r}",
                             'write "true" or "false"')]
    return []
