"""The upstream runner's rules for comparing a round trip with its expectation
(`conformance/utils/http/http.go`, CompareRoundTrip; `conformance/utils/grpc/grpc.go`,
compareResponse, for a gRPC call), as pure functions.

- A request header's values are joined with "," before comparing; names are matched
  case-insensitively.
- 408 and 504 are interchangeable: either passes a case expecting a timeout.
- A 200 (or a CORS 204) is checked on what the backend echoed: host, path, method,
  namespace, headers, absent headers and the pod (by its name's prefix, the backend); any
  other status only on the status, and a redirect on its Location.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from heddle.conformance.scenarios import GRPC_CODES, GRPC_ECHO_SERVICE, Case, Redirect

TIMEOUTS = (408, 504)
REDIRECTS = (300, 301, 302, 303, 304, 305, 307, 308)


@dataclass(frozen=True)
class Captured:
    """What came back: the response, and the request the echo server saw (None when the
    answer was not the echo's JSON)."""

    status: int
    headers: Mapping[str, tuple[str, ...]]  # lower-case names
    echoed: Mapping[str, object] | None = None
    location: str = ""
    protocol: str = "HTTP/1.1"
    extra: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class RpcCaptured:
    """What a gRPC call ended with: its status code (Go's name) and, when OK, what the echo
    service's assertions say it saw."""

    code: str
    full_method: str = ""
    namespace: str = ""
    pod: str = ""
    authority: str = ""
    headers: tuple[tuple[str, str], ...] = ()  # the request metadata the backend saw
    details: str = ""  # a failed call's status message, for the log


def compare_rpc(case: Case, got: RpcCaptured) -> str | None:
    """None when the call met the case: its code, and when OK the full method the backend
    answered, its namespace (when the case names one) and its pod (by the backend's name as
    a prefix). The upstream compares nothing else: not the metadata the backend saw, nor the
    response headers its tables list."""
    assert case.rpc is not None
    want = case.rpc.code
    if got.code != want:
        return (f"expected status code to be {want} ({GRPC_CODES[want]}), but got {got.code} "
                f"({GRPC_CODES.get(got.code, -1)})" + (f": {got.details}" if got.details else ""))
    if got.code != "OK":
        return None
    method = f"/{GRPC_ECHO_SERVICE}/{case.rpc.method}"
    if got.full_method != method:
        return f"expected path to be {method}, got {got.full_method}"
    if case.namespace and case.namespace != got.namespace:
        return f"expected namespace to be {case.namespace}, got {got.namespace}"
    if not got.pod.startswith(case.backend):
        return f"expected pod name to start with {case.backend}, got {got.pod}"
    return None


def _lower(headers: object) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    if isinstance(headers, Mapping):
        for name, values in headers.items():
            vals = values if isinstance(values, list) else [values]
            found.setdefault(str(name).lower(), []).extend(str(v) for v in vals)
    return found


def redirect_of(location: str, request_scheme: str, request_path: str) -> Redirect:
    """A Location as the upstream's RedirectRequest (Go's resp.Location(): relative to the
    request's URL)."""
    parts = urlsplit(location)
    return Redirect(scheme=parts.scheme or request_scheme, host=parts.hostname or "",
                    port=str(parts.port) if parts.port else "",
                    path=parts.path if (parts.scheme or parts.path) else request_path)


def compare(case: Case, got: Captured, scheme: str = "http") -> str | None:
    """None when `got` meets `case`; otherwise what differs, as the upstream says it."""
    expected_codes = case.response.status_codes
    if got.status in TIMEOUTS and any(c in TIMEOUTS for c in expected_codes):
        return None
    if got.status not in expected_codes:
        return f"expected status code to be one of {list(expected_codes)}, got {got.status}"
    if got.status in (200, 204):
        return _compare_echoed(case, got)
    if got.status in REDIRECTS and case.redirect is not None:
        return _compare_redirect(case, got, scheme)
    return None


def _compare_echoed(case: Case, got: Captured) -> str | None:
    echoed = got.echoed or {}
    want = case.expected_request
    host, path = str(echoed.get("host", "")), str(echoed.get("path", ""))
    if got.echoed is None:
        # not the echo's JSON (a direct response): the upstream assumes the method was right
        host, path = "", ""
    if want.host and want.host != host:
        return f"expected host to be {want.host}, got {host}"
    if want.path != path:
        return f"expected path to be {want.path}, got {path}"
    method = str(echoed.get("method", case.request.method)) if got.echoed else (
        case.request.method)
    if want.method != method:
        return f"expected method to be {want.method}, got {method}"
    namespace = str(echoed.get("namespace", ""))
    if case.namespace != namespace:
        return f"expected namespace to be {case.namespace}, got {namespace}"
    seen = _lower(echoed.get("headers"))
    for name, value in want.headers:
        if name.lower() not in seen:
            return f"expected {name} header to be set, actual headers: {seen}"
        actual = ",".join(seen[name.lower()])
        if actual != value:
            return f"expected {name} header to be set to {value}, got {actual}"
    resp = case.response
    for name, values in resp.valid_header_values:
        if name.lower() not in got.headers:
            return f"expected {name} header to be set, actual headers: {dict(got.headers)}"
        actual = ",".join(got.headers[name.lower()])
        options = list(values)
        if resp.ignore_whitespace:
            actual, options = actual.replace(" ", ""), [v.replace(" ", "") for v in options]
        if actual not in options:
            return f"expected {name} header to be set to one of {list(values)}, got {actual}"
    for name, value in resp.headers:
        if name.lower() not in got.headers:
            return f"expected {name} header to be set, actual headers: {dict(got.headers)}"
        actual = ",".join(got.headers[name.lower()])
        if resp.ignore_whitespace:
            actual, value = actual.replace(" ", ""), value.replace(" ", "")
        if actual != value:
            return f"expected {name} header to be set to {value}, got {actual}"
    for name in resp.absent_headers:
        if name.lower() in got.headers:
            return f"expected {name} header to not be set, got {list(got.headers[name.lower()])}"
    for name in want.absent_headers:
        if name.lower() in seen:
            return f"expected {name} header to not be set, got {seen[name.lower()]}"
    pod = str(echoed.get("pod", ""))
    if not pod.startswith(case.backend):
        return f"expected pod name to start with {case.backend}, got {pod}"
    return None


def _compare_redirect(case: Case, got: Captured, scheme: str) -> str | None:
    assert case.redirect is not None
    actual = redirect_of(got.location, scheme, case.request.path.split("?")[0])
    want = case.redirect
    want_host = want.host or actual.host
    want_scheme = want.scheme or scheme
    want_path = want.path or case.request.path.split("?")[0]
    if want_host != actual.host:
        return f"expected redirected hostname to be {want_host!r}, got {actual.host!r}"
    if not want.port:
        if actual.scheme.lower() == "http" and actual.port not in ("", "80"):
            return f"for http scheme, expected redirected port to be 80 or not set, " \
                   f"got {actual.port!r}"
        if actual.scheme.lower() == "https" and actual.port not in ("", "443"):
            return f"for https scheme, expected redirected port to be 443 or not set, " \
                   f"got {actual.port!r}"
    elif want.port != actual.port:
        return f"expected redirected port to be {want.port!r}, got {actual.port!r}"
    if want_scheme != actual.scheme:
        return f"expected redirected scheme to be {want_scheme!r}, got {actual.scheme!r}"
    if want_path != actual.path:
        return f"expected redirected path to be {want_path!r}, got {actual.path!r}"
    return None
