"""Kuadrant's CEL (a RateLimitPolicy's `when` predicates and `counters`) as Envoy evaluates
it: Envoy's rate-limit descriptor extension `envoy.rate_limit_descriptors.expr` runs the
expression in the proxy, over Envoy's own attributes. Kuadrant's well-known attributes are
Envoy's (request.*, source.*, destination.*, connection.*, metadata, filter_state, xds.*),
so those pass as written; `auth.identity` (what Kuadrant's auth verified) becomes the claims
of the JWT Heddle's RequestAuthentication verified, which the JWT filter puts in dynamic
metadata. Anything else is named as unsupported.

Only top-level names come out of the CEL library, so attribute paths are found with a small
lexer: a name not after a dot and not called, and the `.field`s that follow it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import cel

# Where the JWT filter puts a verified token's claims (heddle.translate.authz.JWT_PAYLOAD,
# under the JWT filter's name); the api layer cannot import translation, so it is said here.
JWT_CLAIMS = "metadata.filter_metadata['envoy.filters.http.jwt_authn']['payload']"
ANY = frozenset({"*"})  # any field below: a map or a proto Envoy passes through

# Envoy's attributes known when the rate-limit filters run (the request's headers are in;
# nothing of the response is).
ENVOY_ATTRIBUTES: dict[str, frozenset[str]] = {
    "request": frozenset({"path", "url_path", "host", "scheme", "method", "headers",
                          "referer", "useragent", "time", "id", "protocol", "query"}),
    "source": frozenset({"address", "port"}),
    "destination": frozenset({"address", "port"}),
    "connection": frozenset({
        "id", "mtls", "requested_server_name", "tls_version", "subject_local_certificate",
        "subject_peer_certificate", "dns_san_local_certificate", "dns_san_peer_certificate",
        "uri_san_local_certificate", "uri_san_peer_certificate", "sha256_peer_certificate"}),
    "xds": frozenset({"cluster_name", "cluster_metadata", "route_name", "route_metadata",
                      "filter_chain_name", "node"}),
    "metadata": ANY,
    "filter_state": ANY,
}
# What some Kuadrant attributes Envoy lacks would be written as instead.
_FIXES = {
    ("source", "id"): "write source.address (the client's address as Envoy sees it)",
    ("request", "auth"): "write auth.identity.CLAIM: a claim of the JWT a "
                         "RequestAuthentication verified",
    ("auth",): "write auth.identity.CLAIM: Heddle knows only the claims of the JWT a "
               "RequestAuthentication verified",
}
_MACROS = {"all", "exists", "exists_one", "map", "filter"}  # their first argument is a name
_KEYWORDS = {"true", "false", "null", "in"}
_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>[rRbB]{0,2}(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"
                          |'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>\|\||&&|==|!=|<=|>=|.)
""", re.VERBOSE | re.DOTALL)


@dataclass(frozen=True)
class Reference:
    """An attribute the expression reads: its dotted path and where it sits in the text."""

    path: tuple[str, ...]
    start: int
    end: int  # just after its last name

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Unsupported:
    reference: Reference
    message: str
    fix: str


def _tokens(text: str) -> list[tuple[str, str, int, int]]:
    found = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "punct"
        if kind != "space":
            found.append((kind, match.group(), match.start(), match.end()))
    return found


def references(text: str) -> list[Reference]:
    """The attribute paths `text` reads, comprehension variables left out."""
    tokens = _tokens(text)
    bound = {tokens[i + 2][1] for i in range(len(tokens) - 2)
             if tokens[i][1] in _MACROS and tokens[i + 1][1] == "("
             and tokens[i + 2][0] == "name" and i > 0 and tokens[i - 1][1] == "."}
    found = []
    i = 0
    while i < len(tokens):
        kind, value, start, end = tokens[i]
        follows_dot = i > 0 and tokens[i - 1][1] == "."
        called = i + 1 < len(tokens) and tokens[i + 1][1] == "("
        if kind != "name" or follows_dot or called or value in _KEYWORDS or value in bound:
            i += 1
            continue
        path = [value]
        while (i + 2 < len(tokens) and tokens[i + 1][1] == "." and tokens[i + 2][0] == "name"
               and not (i + 3 < len(tokens) and tokens[i + 3][1] == "(")):
            path.append(tokens[i + 2][1])
            end = tokens[i + 2][3]
            i += 2
        found.append(Reference(tuple(path), start, end))
        i += 1
    return found


def syntax_error(text: str) -> str | None:
    """The CEL parser's complaint about `text`, if any."""
    try:
        _parse(text)
    except ValueError as err:
        return " ".join(str(err).split())
    return None


@cache
def _parse(text: str) -> object:
    return cel.compile(text)


def _is_identity(reference: Reference) -> bool:
    return reference.path[:2] == ("auth", "identity")


def unsupported(text: str) -> list[Unsupported]:
    """The attributes of `text` that Envoy cannot give the rate-limit filters."""
    found = []
    for reference in references(text):
        root, fields = reference.path[0], reference.path[1:]
        if _is_identity(reference):
            continue
        known = ENVOY_ATTRIBUTES.get(root)
        if known is not None and (known is ANY or (fields and fields[0] in known)):
            continue
        fix = (_FIXES.get(reference.path[:2]) or _FIXES.get((root,))
               or (f"use one of {', '.join(f'{root}.{f}' for f in sorted(known))}"
                   if known else "use Envoy's attributes: request.*, source.*, "
                   "destination.*, connection.*, metadata, auth.identity.*"))
        found.append(Unsupported(
            reference, f"attribute {reference.dotted} is not one Envoy knows when it rate "
            "limits", fix))
    return found


def envoy_text(text: str) -> str:
    """`text` as Envoy's CEL reads it: `auth.identity.X` becomes the verified JWT's claim X."""
    out, last = [], 0
    for reference in references(text):
        if not _is_identity(reference):
            continue
        # Up to the end of `identity`: the claims that follow keep their spelling.
        identity_end = text.index("identity", reference.start) + len("identity")
        out += [text[last:reference.start], JWT_CLAIMS]
        last = identity_end
    return "".join([*out, text[last:]])
