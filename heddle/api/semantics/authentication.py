"""Istio's rules for RequestAuthentication (validateJwtRule) and PeerAuthentication."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from heddle.api.diagnostics import Severity
from heddle.api.problems import FieldProblem, PathKey
from heddle.api.semantics.common import items, mapping
from heddle.api.semantics.durations import duration_problems
from heddle.api.semantics.policy_targets import selection_problems

_STRICT_HEADER = re.compile(r"^[-_A-Za-z0-9]+$")
# Members of a JWK that only a private (or symmetric) key has.
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}
_KEY_TYPES = {"RSA", "EC", "OKP", "oct"}


def jwks_uri_problem(uri: str) -> str | None:
    """Istio's ParseJwksURI: an http or https URL whose port, if any, is a number."""
    try:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https"):
            return f"jwksUri scheme {parts.scheme!r} is not supported"
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as err:
        return f"invalid jwksUri {uri!r}: {err}"
    return None


def jwks_keys(text: str) -> list[dict[str, Any]] | str:
    """The keys of an inline JWKS (a key set, or one key), or what is wrong with it."""
    try:
        document = json.loads(text)
    except ValueError as err:
        return f"the JWKS is not JSON: {err}"
    if isinstance(document, dict) and "keys" in document:
        keys = document["keys"]
        if not isinstance(keys, list):
            return "the JWKS keys member is not a list"
    elif isinstance(document, dict):
        keys = [document]
    else:
        return "the JWKS is not a JSON object"
    for key in keys:
        if not isinstance(key, dict) or key.get("kty") not in _KEY_TYPES:
            return "every JWKS key needs kty RSA, EC, OKP or oct"
    return keys


def _jwt_rule(path: PathKey, rule: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for i, audience in items(rule.get("audiences")):
        if not audience:
            problems.append(FieldProblem((*path, "audiences", i), "an audience cannot be empty",
                                         "remove the empty audience"))
    issuer, uri = rule.get("issuer"), rule.get("jwksUri")
    if not issuer and not uri:
        problems.append(FieldProblem(path, "a JWT rule needs an issuer or a jwksUri",
                                     "add the token issuer"))
    if uri:
        problem = jwks_uri_problem(str(uri))
        if problem:
            problems.append(FieldProblem((*path, "jwksUri"), problem,
                                         "use an http:// or https:// URL"))
    if rule.get("jwks"):
        keys = jwks_keys(str(rule["jwks"]))
        if isinstance(keys, str):
            problems.append(FieldProblem((*path, "jwks"), f"cannot parse the jwks: {keys}",
                                         "paste the issuer's JSON Web Key Set"))
        else:
            for i, key in enumerate(keys):
                if _PRIVATE_MEMBERS & set(key):
                    problems.append(FieldProblem(
                        (*path, "jwks"), f"JWKS key {i} holds private key material: only "
                        "public keys verify tokens", "publish only the public key",
                        Severity.WARNING))
    for i, header in items(rule.get("fromHeaders")):
        if header is None or not mapping(header).get("name"):
            problems.append(FieldProblem((*path, "fromHeaders", i), "a token header needs a "
                                         "name", "name the header, e.g. Authorization"))
    for name, what in (("fromParams", "query parameter"), ("fromCookies", "cookie")):
        for i, value in items(rule.get(name)):
            if not value:
                problems.append(FieldProblem((*path, name, i), f"a token {what} needs a name",
                                             f"name the {what}"))
    for i, claim in items(rule.get("outputClaimToHeaders")):
        here = (*path, "outputClaimToHeaders", i)
        claim = mapping(claim)
        if not claim.get("claim") or not claim.get("header"):
            problems.append(FieldProblem(here, "header and claim are both required",
                                         "set header and claim"))
        elif not _STRICT_HEADER.match(str(claim["header"])):
            problems.append(FieldProblem((*here, "header"), f"{claim['header']!r} is not a "
                                         "valid header name",
                                         "use letters, digits, '-' and '_'"))
    problems += duration_problems((*path, "timeout"), rule.get("timeout"))
    return problems


def check_request_authentication(spec: dict[str, Any]) -> list[FieldProblem]:
    problems = selection_problems(spec, "RequestAuthentication")
    for i, rule in items(spec.get("jwtRules")):
        if rule is not None:
            problems += _jwt_rule(("spec", "jwtRules", i), mapping(rule))
    return problems


def check_peer_authentication(spec: dict[str, Any]) -> list[FieldProblem]:
    problems = selection_problems(spec, "PeerAuthentication")
    port_level = spec.get("portLevelMtls")
    if port_level is not None and not mapping(port_level):
        problems.append(FieldProblem(("spec", "portLevelMtls"), "portLevelMtls, if given, "
                                     "needs at least one port", "add a port, or remove "
                                                                "portLevelMtls"))
    elif port_level and not mapping(mapping(spec.get("selector")).get("matchLabels")):
        problems.append(FieldProblem(("spec", "portLevelMtls"),
                                     "portLevelMtls needs a workload selector",
                                     "add selector.matchLabels, or remove portLevelMtls"))
    for port in mapping(port_level):
        if not str(port).isdigit() or not 1 <= int(port) <= 65535:
            problems.append(FieldProblem(("spec", "portLevelMtls", port),
                                         f"port {port} must be in the range 1..65535",
                                         "use a port from 1 to 65535"))
    return problems
