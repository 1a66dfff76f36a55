"""HTTPRoute and GRPCRoute rules -> VirtualService http rules, as Istio converts them.

Each (rule, match) becomes one http rule named as the rule is (or `NAMESPACE.ROUTE.INDEX`):
path Exact/PathPrefix/RegularExpression, headers, query parameters and method become the
match; RequestHeaderModifier/ResponseHeaderModifier `headers`, RequestRedirect `redirect`,
URLRewrite `rewrite`, RequestMirror `mirrors`, CORS `corsPolicy`, `timeouts` `timeout`
(and `retries.perTryTimeout`), `retry` `retries`; backendRefs weighted destinations with
their own header changes. A rule whose backends all weigh 0 answers 500, as the spec says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from heddle.api import istio_defaults
from heddle.api.models._generated import gateway_httproute as httproute
from heddle.api.models.gateway_api_parts import (
    HTTP_FILTERS,
    BackendRef,
    CorsFilter,
    Filter,
    GRPCMatch,
    GRPCRule,
    HeaderFilter,
    HTTPMatch,
    HTTPRule,
    MirrorFilter,
    RedirectFilter,
    RewriteFilter,
    WeightedBackendRef,
)
from heddle.model.gateway_api.backends import UNUSABLE_HOST, Backends, RouteError, unusable

# Gateway API says a `retry` stanza retries connection errors too.
_CONNECTION_ERRORS = "connect-failure,refused-stream,unavailable,cancelled"
_ANY_ORIGIN = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s?#]+$"
_DURATION_PART = re.compile(r"(\d+)(h|ms|m|s)")
_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


@dataclass
class Rules:
    """A route's http rules; `error`: what ResolvedRefs reports (the rules stay, with the
    broken backends answering 500); `fatal`: the route could not be converted at all."""

    http: list[dict[str, Any]] = field(default_factory=list)
    error: RouteError | None = None
    fatal: RouteError | None = None

    def note(self, error: RouteError | None) -> None:
        if error is not None and self.error is None:
            self.error = error


def duration(value: str) -> str | None:
    """A Gateway API duration (`1h30m`, `500ms`) as a VirtualService one; None for zero."""
    total = sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION_PART.findall(value))
    if total == 0:
        return None
    return f"{total // 1000}s" if total % 1000 == 0 else f"{total / 1000:g}s"


def _headers(change: HeaderFilter | None) -> dict[str, Any] | None:
    if change is None:
        return None
    out: dict[str, Any] = {}
    for part, items in (("set", change.set), ("add", change.add)):
        values: dict[str, str] = {}
        for item in items or []:
            values.setdefault(item.name.lower(), item.value)  # later duplicates are ignored
        if values:
            out[part] = values
    if change.remove:
        out["remove"] = list(change.remove)
    return out


def _redirect(redirect: RedirectFilter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if redirect.statusCode is not None:
        out["redirectCode"] = int(redirect.statusCode)
    if redirect.hostname is not None:
        out["authority"] = redirect.hostname
    if redirect.scheme is not None:
        out["scheme"] = str(redirect.scheme)
    if redirect.port is not None:
        out["port"] = redirect.port
    else:  # "When empty, port (if specified) of the request is used" (unlike Istio's default)
        out["derivePort"] = ("FROM_PROTOCOL_DEFAULT" if redirect.scheme is not None
                             else "FROM_REQUEST_PORT")
    path = redirect.path
    if path is not None and str(path.type) == "ReplaceFullPath":
        out["uri"] = path.replaceFullPath or "/"
    elif path is not None:  # Istio's marker: the redirect replaces the matched prefix only
        prefix = (path.replacePrefixMatch or "").removesuffix("/") or "/"
        out["uri"] = istio_defaults.REDIRECT_PREFIX_MARKER + prefix
    return out


def _rewrite(rewrite: RewriteFilter) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    path = rewrite.path
    if path is not None and str(path.type) == "ReplacePrefixMatch":
        out["uri"] = (path.replacePrefixMatch or "").removesuffix("/") or "/"
    elif path is not None:
        out["uriRegexRewrite"] = {"match": "/.*", "rewrite": path.replaceFullPath or "/"}
    if rewrite.hostname is not None:
        out["authority"] = rewrite.hostname
    return out or None


def _origin(origin: str) -> dict[str, str]:
    if origin == "*":
        return {"regex": _ANY_ORIGIN}
    if "*" not in origin:
        return {"exact": origin}
    if origin.count("*") == 1 and origin.endswith("*"):
        return {"prefix": origin[:-1]}
    return {"regex": "^" + re.escape(origin).replace(r"\*", ".*") + "$"}


def _cors(cors: CorsFilter) -> dict[str, Any]:
    out: dict[str, Any] = {"allowOrigins": [_origin(o.root) for o in cors.allowOrigins or []
                                            if o.root]}
    if cors.allowCredentials:
        out["allowCredentials"] = True
    for key, values in (("allowMethods", [str(m) for m in cors.allowMethods or []]),
                        ("allowHeaders", [h.root for h in cors.allowHeaders or []]),
                        ("exposeHeaders", [h.root for h in cors.exposeHeaders or []])):
        if values:
            out[key] = values
    if cors.maxAge:
        out["maxAge"] = f"{cors.maxAge}s"
    out["unmatchedPreflights"] = "IGNORE"
    return out


def _mirror(mirror: MirrorFilter, backends: Backends,
            ) -> tuple[dict[str, Any] | None, RouteError | None]:
    destination, error = backends.resolve(mirror.backendRef)
    if destination is None:
        return None, error
    out: dict[str, Any] = {"destination": destination}
    if mirror.fraction is not None:
        out["percentage"] = {"value": 100 * mirror.fraction.numerator
                             / (mirror.fraction.denominator or 100)}
    elif mirror.percent is not None:
        out["percentage"] = {"value": float(mirror.percent)}
    return out, error


def _apply_filters(out: dict[str, Any], filters: Sequence[Filter], backends: Backends,
                   rules: Rules) -> RouteError | None:
    """Each filter into `out` (an http rule, or one of its destinations); the error that
    makes the whole route unusable, if any."""
    for f in filters:
        kind = str(f.type)
        if kind == "RequestHeaderModifier" and (h := _headers(f.requestHeaderModifier)):
            out.setdefault("headers", {})["request"] = h
        elif kind == "ResponseHeaderModifier" and (h := _headers(f.responseHeaderModifier)):
            out.setdefault("headers", {})["response"] = h
        elif kind == "RequestMirror" and f.requestMirror is not None:
            mirror, error = _mirror(f.requestMirror, backends)
            rules.note(error)
            if mirror is not None:
                out.setdefault("mirrors", []).append(mirror)
        elif isinstance(f, HTTP_FILTERS) and kind == "RequestRedirect" \
                and f.requestRedirect is not None:
            out["redirect"] = _redirect(f.requestRedirect)
        elif isinstance(f, HTTP_FILTERS) and kind == "URLRewrite" and f.urlRewrite is not None:
            if (rewrite := _rewrite(f.urlRewrite)) is not None:
                out["rewrite"] = rewrite
        elif isinstance(f, HTTP_FILTERS) and kind == "CORS" and f.cors is not None:
            out["corsPolicy"] = _cors(f.cors)
        elif kind not in ("RequestHeaderModifier", "ResponseHeaderModifier"):
            return RouteError("UnsupportedValue", f"unsupported filter type {kind!r}")
    return None


def _destinations(refs: Sequence[WeightedBackendRef], backends: Backends, rules: Rules,
                  ) -> tuple[list[dict[str, Any]], RouteError | None]:
    """Weighted destinations; backends of weight 0 are left out, and a single one gets no
    weight (all of the traffic)."""
    weighted = [(ref, 1 if ref.weight is None else ref.weight) for ref in refs]
    weighted = [(ref, w) for ref, w in weighted if w > 0]
    out: list[dict[str, Any]] = []
    for ref, weight in weighted:
        destination, error = backends.resolve(ref)
        if destination is None and error is not None and error.reason not in (
                "RefNotPermitted", "InvalidKind", "BackendNotFound"):
            return [], error
        rules.note(error)
        entry: dict[str, Any] = {"destination": destination or unusable(ref)}
        if len(weighted) > 1:
            entry["weight"] = weight
        for f in getattr(ref, "filters", None) or []:
            kind = str(f.type)
            if kind == "RequestHeaderModifier" and (h := _headers(f.requestHeaderModifier)):
                entry.setdefault("headers", {})["request"] = h
            elif kind == "ResponseHeaderModifier" and (
                    h := _headers(f.responseHeaderModifier)):
                entry.setdefault("headers", {})["response"] = h
            elif kind not in ("RequestHeaderModifier", "ResponseHeaderModifier"):
                return [], RouteError("UnsupportedValue",
                                      f"unsupported filter type {kind!r} on a backendRef")
        out.append(entry)
    return out, None


def _common(rule: HTTPRule | GRPCRule, name: str, match: dict[str, Any] | None,
            backends: Backends, rules: Rules) -> dict[str, Any] | None:
    out: dict[str, Any] = {"name": name}
    if match:
        out["match"] = [match]
    fatal = _apply_filters(out, rule.filters or [], backends, rules)
    if fatal is not None:
        rules.fatal = fatal
        return None
    refs = rule.backendRefs or []
    if "redirect" in out:
        return out
    if not any((1 if r.weight is None else r.weight) > 0 for r in refs):
        out["directResponse"] = {"status": 500}
        return out
    destinations, fatal = _destinations(refs, backends, rules)
    if fatal is not None:
        rules.fatal = fatal
        return None
    if all(d["destination"]["host"] == UNUSABLE_HOST for d in destinations):
        out["directResponse"] = {"status": 500}  # every backend is invalid
        return out
    out["route"] = destinations
    return out


def _http_match(match: HTTPMatch) -> dict[str, Any]:
    out: dict[str, Any] = {}
    path = match.path
    kind = str(path.type) if path is not None and path.type is not None else "PathPrefix"
    value = path.value if path is not None and path.value is not None else "/"
    if kind == "PathPrefix":
        out["uri"] = {"prefix": value if value == "/" else value.removesuffix("/")}
    elif kind == "Exact":
        out["uri"] = {"exact": value}
    else:
        out["uri"] = {"regex": value}
    headers = {h.name: ({"regex": h.value} if str(h.type) == "RegularExpression"
                        else {"exact": h.value}) for h in match.headers or []}
    if headers:
        out["headers"] = headers
    query = {q.name: ({"regex": q.value} if str(q.type) == "RegularExpression"
                      else {"exact": q.value}) for q in match.queryParams or []}
    if query:
        out["queryParams"] = query
    if match.method is not None:
        out["method"] = {"exact": str(match.method)}
    return out


def _grpc_match(match: GRPCMatch) -> tuple[dict[str, Any], RouteError | None]:
    out: dict[str, Any] = {}
    method = match.method
    if method is not None:
        regex = str(method.type) == "RegularExpression"
        if method.method is None and method.service is None:
            return out, RouteError("UnsupportedValue",
                                   "gRPC match must have method or service defined")
        if method.method is None:
            out["uri"] = ({"regex": f"/{method.service}/.+"} if regex
                          else {"prefix": f"/{method.service}/"})
        elif method.service is None:
            out["uri"] = {"regex": f"/[^/]+/{method.method}"}
        else:
            out["uri"] = ({"regex": f"/{method.service}/{method.method}"} if regex
                          else {"exact": f"/{method.service}/{method.method}"})
    headers = {h.name: ({"regex": h.value} if str(h.type) == "RegularExpression"
                        else {"exact": h.value}) for h in match.headers or []}
    if headers:
        out["headers"] = headers
    return out, None


def _timeouts(out: dict[str, Any], rule: HTTPRule) -> None:
    if rule.retry is not None:
        retry_on = ",".join([_CONNECTION_ERRORS, *(str(c.root) for c in rule.retry.codes or [])])
        attempts = 2 if rule.retry.attempts is None else rule.retry.attempts
        retries: dict[str, Any] = {"attempts": attempts}
        if attempts:
            retries["retryOn"] = retry_on
        if rule.retry.backoff is not None and (backoff := duration(rule.retry.backoff)):
            retries["backoff"] = backoff
        out["retries"] = retries
    timeouts = rule.timeouts
    if timeouts is None:
        return
    if timeouts.request is not None and (request := duration(timeouts.request)):
        out["timeout"] = request
    if timeouts.backendRequest is not None and (
            backend := duration(timeouts.backendRequest)):
        if "retries" in out:
            out["retries"]["perTryTimeout"] = backend
        else:
            out["timeout"] = backend


def http_rules(namespace: str, name: str, spec_rules: Sequence[HTTPRule],
               backends: Backends) -> Rules:
    rules = Rules()
    for i, rule in enumerate(spec_rules):
        rule_name = rule.name or f"{namespace}.{name}.{i}"
        for match in rule.matches or [httproute.HTTPRouteSpecRuleMatch()]:
            converted = _common(rule, rule_name, _http_match(match), backends, rules)
            if converted is None:
                return Rules(fatal=rules.fatal)
            if "redirect" not in converted:
                _timeouts(converted, rule)
            rules.http.append(converted)
    return rules


def grpc_rules(namespace: str, name: str, spec_rules: Sequence[GRPCRule],
               backends: Backends) -> Rules:
    rules = Rules()
    for i, rule in enumerate(spec_rules or []):
        rule_name = rule.name or f"{namespace}.{name}.{i}"
        matches: list[GRPCMatch | None] = list(rule.matches or []) or [None]
        for match in matches:
            converted_match: dict[str, Any] = {}
            if match is not None:
                converted_match, error = _grpc_match(match)
                if error is not None:
                    return Rules(fatal=error)
            converted = _common(rule, rule_name, converted_match, backends, rules)
            if converted is None:
                return Rules(fatal=rules.fatal)
            rules.http.append(converted)
    return rules


def _rank(rule: dict[str, Any]) -> tuple[int, int, bool, int, int]:
    match = (rule.get("match") or [{}])[0]
    uri = match.get("uri") or {}
    kind, value = next(iter(uri.items()), ("", ""))
    return ({"exact": 3, "prefix": 2, "regex": 1}.get(kind, -1), len(value),
            "method" in match, len(match.get("headers") or {}),
            len(match.get("queryParams") or {}))


def sort_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gateway API precedence across the rules of every route merged into one host: exact
    path, then the longest prefix, then method, then most headers, then most query
    parameters; ties keep their order (oldest route first). Rules without a match last."""
    with_match = [r for r in rules if r.get("match")]
    return (sorted(with_match, key=_rank, reverse=True)
            + [r for r in rules if not r.get("match")])


__all__ = ["BackendRef", "Rules", "duration", "grpc_rules", "http_rules", "sort_rules"]
