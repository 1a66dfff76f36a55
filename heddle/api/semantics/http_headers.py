"""HTTP header names and values as Istio checks them in routes: RFC 7230 token names, the
pseudo-headers, `@request.auth.claims` routing keys, and Envoy's `%VARIABLE%` header values."""

from __future__ import annotations

import re

_TCHARS = r"!#$%&'*+\-.^_`|~A-Za-z0-9"
HEADER_NAME = re.compile(f"^[{_TCHARS}]+$")
PSEUDO_HEADERS = {":method", ":scheme", ":authority", ":path", ":status"}
_CONTROL = re.compile("[\u0000-\u0008\u000a-\u001f\u007f]")


_CLAIM_PREFIX = "@request.auth.claims"


def is_jwt_claim_route(name: str) -> bool:
    """`@request.auth.claims.NAME` or `@request.auth.claims[NAME]...`, routing on a claim
    (the prefix in any case, as Istio reads it)."""
    if not name.lower().startswith(_CLAIM_PREFIX):
        return False
    rest = name[len(_CLAIM_PREFIX):]
    return (rest.startswith(".") and len(rest) > 1) or (
        rest.startswith("[") and rest.endswith("]") and len(rest) > 2)


def match_header_problem(name: str) -> str | None:
    """A header a route matches on."""
    if not name:
        return "the header name cannot be empty"
    if is_jwt_claim_route(name) or name in PSEUDO_HEADERS:
        return None
    if not HEADER_NAME.match(name):
        return f"{name!r} is not a valid header name"
    return None


def _internal(name: str) -> bool:
    return name.startswith(":") or name.lower() == "host"


def is_authority(name: str) -> bool:
    return name.lower() in (":authority", "host")


def request_set_header_problem(name: str) -> str | None:
    """A request header added or set: any but an internal one (the authority is checked
    apart: it may be rewritten once)."""
    if not name:
        return "the header name cannot be empty"
    if _internal(name) and not is_authority(name):
        return f"header {name!r} cannot have a ':' prefix"
    return None


def header_operation_problem(name: str) -> str | None:
    """A request header removed, or a response header added, set or removed."""
    if not name:
        return "the header name cannot be empty"
    if name.lower() == "host":
        return "the Host header cannot be changed here"
    if _internal(name):
        return f"header {name!r} cannot have a ':' prefix"
    return None


def header_value_problem(value: str) -> str | None:
    """Envoy's header value syntax: literal text, `%%` for a percent sign, and `%VAR%` or
    `%VAR(args)%` (args a JSON-ish array or a bare string)."""
    if _CONTROL.search(value):
        return f"header value {value!r} has control characters"
    state, pos = "literal", 0
    while pos < len(value):
        ch = value[pos]
        has_next = pos + 1 < len(value)
        if state == "literal":
            if ch == "%":
                if not has_next:
                    return f"header value {value!r} has an unescaped '%'"
                if value[pos + 1] == "%":
                    pos += 1
                else:
                    state = "name"
        elif state == "name":
            if ch == "%":
                state = "literal"
            elif ch == "(":
                state = "array"
        elif state == "array":
            if ch == "[":
                state = "expect-string"
            elif ch != " ":
                state = "string"
        elif state == "delimiter":
            if ch == ",":
                state = "expect-string"
            elif ch == "]":
                state = "args-end"
            elif ch != " ":
                return f"header value {value!r}: expected ',', ']' or a space"
        elif state == "expect-string":
            if ch == '"':
                state = "string"
            elif ch != " ":
                return f"header value {value!r}: expected '\"'"
        elif state == "string":
            if ch == "\\":
                if not has_next:
                    return f"header value {value!r} ends in a backslash"
                pos += 1
            elif ch == ")":
                state = "variable-end"
            elif ch == '"':
                state = "delimiter"
        elif state == "args-end":
            if ch == ")":
                state = "variable-end"
            elif ch != " ":
                return f"header value {value!r}: expected ')'"
        elif state == "variable-end":
            if ch == "%":
                state = "literal"
            elif ch != " ":
                return f"header value {value!r}: expected '%' after ')'"
        pos += 1
    if state != "literal":
        return f"header value {value!r} has an unterminated %VARIABLE%"
    return None
