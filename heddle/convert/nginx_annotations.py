"""ingress-nginx's `nginx.ingress.kubernetes.io/*` annotations, read as ingress-nginx reads
them, into the settings the Gateway API conversion uses.

Each family of annotations that converts has a parser in `FAMILIES`; every other annotation
has its reason in `NOT_CONVERTED`, or the generic one. Values are parsed as ingress-nginx
does (Go's strconv.ParseBool for booleans): a value it would refuse is ignored there too,
and said so here."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from heddle.convert.findings import Finding, Verdict
from heddle.convert.ingress_input import CLASS_ANNOTATION, Annotation, Ingress

PREFIX = "nginx.ingress.kubernetes.io/"


@dataclass(frozen=True)
class Cors:
    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...]
    allow_credentials: bool
    max_age: int


@dataclass(frozen=True)
class Redirect:
    """permanent-redirect / temporal-redirect: where every path of the Ingress sends to."""

    scheme: str
    hostname: str
    port: int | None
    path: str | None  # None: the request's own path ($request_uri)
    code: int


@dataclass(frozen=True)
class Canary:
    weight: int | None
    weight_total: int
    header: str
    header_value: str
    header_pattern: str


@dataclass(frozen=True)
class NginxSettings:
    use_regex: bool = False
    rewrite_target: str = ""
    ssl_redirect: bool = True  # ingress-nginx's default: redirect when the host has TLS
    force_ssl_redirect: bool = False
    canary: Canary | None = None
    grpc: bool = False
    cors: Cors | None = None
    app_root: str = ""
    redirect: Redirect | None = None


@dataclass
class _Context:
    """The Ingress's nginx annotations, by short name, and what reading them found."""

    ingress: Ingress
    values: dict[str, Annotation]
    findings: list[Finding] = field(default_factory=list)

    def get(self, name: str) -> str | None:
        found = self.values.get(name)
        return found.value if found else None

    def report(self, name: str, verdict: Verdict, reason: str) -> None:
        found = self.values[name]
        self.findings.append(Finding(found.position, self.ingress.ref, found.subject, verdict,
                                     reason))

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if value in ("1", "t", "T", "true", "TRUE", "True"):
            return True
        if value in ("0", "f", "F", "false", "FALSE", "False"):
            return False
        self.report(name, Verdict.IGNORED, f"not a boolean, so ingress-nginx ignores it and "
                    f"uses {str(default).lower()} (write \"true\" or \"false\")")
        return default

    def integer(self, name: str) -> int | None:
        value = self.get(name)
        if value is None:
            return None
        if re.fullmatch(r"-?[0-9]+", value):
            return int(value)
        self.report(name, Verdict.IGNORED, "not an integer, so ingress-nginx ignores it")
        return None

    def dependents_ignored(self, names: tuple[str, ...], because: str) -> None:
        for name in names:
            if name in self.values:
                self.report(name, Verdict.IGNORED, because)


def _use_regex(ctx: _Context, s: NginxSettings) -> NginxSettings:
    return replace(s, use_regex=ctx.boolean("use-regex", False))


def _rewrite_target(ctx: _Context, s: NginxSettings) -> NginxSettings:
    # How the target applies depends on each path: see heddle.convert.ingress.
    return replace(s, rewrite_target=ctx.get("rewrite-target") or "")


def _ssl_redirect(ctx: _Context, s: NginxSettings) -> NginxSettings:
    return replace(s, ssl_redirect=ctx.boolean("ssl-redirect", True),
                   force_ssl_redirect=ctx.boolean("force-ssl-redirect", False))


CANARY_DEPENDENTS = ("canary-weight", "canary-weight-total", "canary-by-header",
                     "canary-by-header-value", "canary-by-header-pattern", "canary-by-cookie")


def _canary(ctx: _Context, s: NginxSettings) -> NginxSettings:
    if not ctx.boolean("canary", False):
        ctx.dependents_ignored(CANARY_DEPENDENTS, "canary is not \"true\" on this Ingress, so "
                               "ingress-nginx ignores it")
        return s
    if "canary-by-cookie" in ctx.values:
        ctx.report("canary-by-cookie", Verdict.NOT_CONVERTED,
                   "HTTPRoute matches cannot test one cookie's value (a header match on "
                   "Cookie would see every cookie); requests go by the header and weight "
                   "rules only")
    weight = ctx.integer("canary-weight")
    total = ctx.integer("canary-weight-total") or 100
    if weight is not None and not 0 <= weight <= total:
        weight = min(max(weight, 0), total)
        ctx.report("canary-weight", Verdict.NOTE,
                   f"outside 0..{total}: ingress-nginx clamps it, so it is {weight}")
    header, value = ctx.get("canary-by-header") or "", ctx.get("canary-by-header-value") or ""
    pattern = ctx.get("canary-by-header-pattern") or ""
    if not header:
        ctx.dependents_ignored(("canary-by-header-value", "canary-by-header-pattern"),
                               "canary-by-header is not set, so ingress-nginx ignores it")
        value = pattern = ""
    elif value and pattern:
        ctx.report("canary-by-header-pattern", Verdict.IGNORED,
                   "canary-by-header-value is set and takes precedence in ingress-nginx")
        pattern = ""
    return replace(s, canary=Canary(weight, total, header, value, pattern))


def _backend_protocol(ctx: _Context, s: NginxSettings) -> NginxSettings:
    value = (ctx.get("backend-protocol") or "HTTP").upper()
    if value in ("HTTP", "AUTO_HTTP"):
        return s
    if value == "GRPC":
        return replace(s, grpc=True)
    reasons = {
        "HTTPS": "TLS to the backend needs a BackendTLSPolicy, which always verifies the "
                 "backend's certificate where nginx (proxy-ssl-verify off, its default) does "
                 "not; heddle convert does not write BackendTLSPolicy: the backend is reached "
                 "in plaintext",
        "GRPCS": "gRPC over TLS to the backend needs a BackendTLSPolicy (see HTTPS), which "
                 "heddle convert does not write",
        "FCGI": "Gateway API has no FastCGI backends",
        "AJP": "Gateway API has no AJP backends",
    }
    if value in reasons:
        ctx.report("backend-protocol", Verdict.NOT_CONVERTED, reasons[value])
    else:
        ctx.report("backend-protocol", Verdict.IGNORED,
                   "not a protocol ingress-nginx knows (HTTP, HTTPS, AUTO_HTTP, GRPC, GRPCS, "
                   "AJP, FCGI), so it uses HTTP")
    return s


CORS_DEPENDENTS = ("cors-allow-origin", "cors-allow-methods", "cors-allow-headers",
                   "cors-expose-headers", "cors-allow-credentials", "cors-max-age")
# ingress-nginx's defaults (docs/user-guide/nginx-configuration/annotations.md#enable-cors)
CORS_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")
CORS_HEADERS = ("DNT", "Keep-Alive", "User-Agent", "X-Requested-With", "If-Modified-Since",
                "Cache-Control", "Content-Type", "Range", "Authorization")
CORS_MAX_AGE = 1728000
# What the HTTPRoute CRD accepts in a CORS filter (spec.rules[].filters[].cors).
_ORIGIN = re.compile(r"(^\*$)|(^(http(s)?):\/\/(((\*\.)?([a-zA-Z0-9\-]+\.)*[a-zA-Z0-9-]+|\*)"
                     r"(:([0-9]{1,5}))?)$)")
_HEADER = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*")


def _cors_list(ctx: _Context, name: str, default: tuple[str, ...], valid: Callable[[str], bool],
               what: str) -> tuple[str, ...]:
    raw = ctx.get(name)
    if raw is None:
        return default
    items = tuple(dict.fromkeys(i.strip() for i in raw.split(",") if i.strip()))
    bad = [i for i in items if not valid(i)]
    if bad:
        ctx.report(name, Verdict.NOT_CONVERTED, f"{', '.join(bad)}: not {what} a Gateway API "
                   "CORS filter accepts; left out")
    return tuple(i for i in items if valid(i))


def _cors(ctx: _Context, s: NginxSettings) -> NginxSettings:
    if not ctx.boolean("enable-cors", False):
        ctx.dependents_ignored(CORS_DEPENDENTS, "enable-cors is not \"true\" on this Ingress, "
                               "so ingress-nginx ignores it")
        return s
    origins = _cors_list(ctx, "cors-allow-origin", ("*",), lambda o: bool(_ORIGIN.match(o)),
                         "an origin")
    if "*" in origins and len(origins) > 1:
        origins = ("*",)
    methods = tuple(m.upper() for m in _cors_list(
        ctx, "cors-allow-methods", CORS_METHODS, lambda m: m.upper() in _METHODS, "a method"))
    headers = _cors_list(ctx, "cors-allow-headers", CORS_HEADERS,
                         lambda h: bool(_HEADER.match(h)), "a header name")
    expose = _cors_list(ctx, "cors-expose-headers", (), lambda h: bool(_HEADER.match(h)),
                        "a header name")
    max_age = ctx.integer("cors-max-age")
    if max_age is not None and max_age < 1:
        ctx.report("cors-max-age", Verdict.NOT_CONVERTED, "a Gateway API CORS filter's maxAge "
                   "is at least 1 second; the default is written instead")
        max_age = None
    if not origins:
        return s
    return replace(s, cors=Cors(origins, methods, headers, expose,
                                ctx.boolean("cors-allow-credentials", True),
                                max_age or CORS_MAX_AGE))


def _app_root(ctx: _Context, s: NginxSettings) -> NginxSettings:
    value = ctx.get("app-root") or ""
    if value and not value.startswith("/"):
        ctx.report("app-root", Verdict.IGNORED, "not a path (it must start with '/'), so "
                   "ingress-nginx refuses it")
        return s
    if value:
        ctx.report("app-root", Verdict.NOTE, "nginx's `return` drops the query string of a "
                   "request for '/'; a Gateway API redirect may keep it (Envoy does)")
    return replace(s, app_root=value)


REDIRECT_DEPENDENTS = ("permanent-redirect-code", "temporal-redirect-code")


def _redirect_url(ctx: _Context, name: str, code: int) -> Redirect | None:
    value = ctx.get(name) or ""
    keep_path = value.endswith("$request_uri")  # `https://host$request_uri`: the same path
    url = urlsplit(value.removesuffix("$request_uri") if keep_path else value)
    if url.scheme not in ("http", "https") or not url.hostname:
        ctx.report(name, Verdict.IGNORED, "not an http(s) URL with a host, so ingress-nginx "
                   "refuses it")
        return None
    if url.query or url.fragment or "$" in url.netloc + url.path or (keep_path and url.path):
        ctx.report(name, Verdict.NOT_CONVERTED, "a Gateway API redirect sets scheme, host, port "
                   "and path, not a query, a fragment or nginx variables")
        return None
    ctx.report(name, Verdict.NOTE, "nginx's `return` drops the query string of the request; a "
               "Gateway API redirect may keep it (Envoy does)")
    return Redirect(url.scheme, url.hostname, url.port, None if keep_path else url.path or "/",
                    code)


def _redirect(ctx: _Context, s: NginxSettings) -> NginxSettings:
    # As ingress-nginx's redirect parser: temporal first, then permanent; a code out of range
    # falls back to the default. Gateway API allows 301, 302, 303, 307 and 308.
    for name, low, high, default in (("temporal-redirect", 300, 307, 302),
                                     ("permanent-redirect", 300, 308, 301)):
        if not ctx.get(name):
            continue
        code = ctx.integer(f"{name}-code")
        if code is not None and not low <= code <= high:
            ctx.report(f"{name}-code", Verdict.IGNORED,
                       f"outside {low}..{high}, so ingress-nginx uses {default}")
            code = None
        if code in (300, 304, 305, 306):
            ctx.report(f"{name}-code", Verdict.NOT_CONVERTED, "Gateway API redirects use 301, "
                       f"302, 303, 307 or 308; {default} is written instead")
            code = None
        redirect = _redirect_url(ctx, name, code or default)
        other = "permanent-redirect" if name == "temporal-redirect" else ""
        if other and ctx.get(other):
            ctx.report(other, Verdict.IGNORED, "temporal-redirect is set and takes precedence "
                       "in ingress-nginx")
            ctx.dependents_ignored((f"{other}-code",), "temporal-redirect takes precedence")
        return replace(s, redirect=redirect) if redirect else s
    ctx.dependents_ignored(REDIRECT_DEPENDENTS, "no redirect URL is set, so ingress-nginx "
                           "ignores it")
    return s


@dataclass(frozen=True)
class Family:
    annotations: tuple[str, ...]  # short names, without nginx.ingress.kubernetes.io/
    parse: Callable[[_Context, NginxSettings], NginxSettings]


FAMILIES: tuple[Family, ...] = (
    Family(("use-regex",), _use_regex),
    Family(("rewrite-target",), _rewrite_target),
    Family(("ssl-redirect", "force-ssl-redirect"), _ssl_redirect),
    Family(("canary", *CANARY_DEPENDENTS), _canary),
    Family(("backend-protocol",), _backend_protocol),
    Family(("enable-cors", *CORS_DEPENDENTS), _cors),
    Family(("app-root",), _app_root),
    Family(("permanent-redirect", "temporal-redirect", *REDIRECT_DEPENDENTS), _redirect),
)

_RATE_LIMIT = ("Heddle has no rate-limit policy for Gateway API routes yet; this converts to "
               "one once it exists")
_TIMEOUT = ("HTTPRoute timeouts (request, backendRequest) bound a whole exchange; nginx's {0} "
            "bounds {1}, so a mapping would cut off responses nginx serves; set "
            "spec.rules[].timeouts yourself if a total bound is what you want")
# Annotation (short name; a trailing * matches a prefix) -> why it does not convert.
NOT_CONVERTED: tuple[tuple[str, str], ...] = (
    ("limit-*", _RATE_LIMIT),
    ("proxy-connect-timeout", "a connection-establishment timeout has no HTTPRoute field "
     "(Istio's DestinationRule connectionPool.tcp.connectTimeout is one, per service)"),
    ("proxy-read-timeout", _TIMEOUT.format("proxy_read_timeout",
                                           "only the wait between two reads from the backend")),
    ("proxy-send-timeout", _TIMEOUT.format("proxy_send_timeout",
                                           "only the wait between two writes to the backend")),
    ("auth-tls-*", "client certificate verification is a TLS setting of the Gateway's "
     "listener, not of a route; heddle convert does not write it"),
    ("auth-*", "authentication (basic or external auth_request) has no Gateway API filter; "
     "Heddle's AuthorizationPolicy (CUSTOM with an ext_authz provider) is the nearest"),
    ("affinity*", "session affinity has no standard Gateway API field; an Istio "
     "DestinationRule consistentHash (httpCookie) is the nearest"),
    ("session-cookie-*", "session affinity has no standard Gateway API field; an Istio "
     "DestinationRule consistentHash (httpCookie) is the nearest"),
    ("upstream-hash-by*", "load balancing belongs to the backend, not the route (an Istio "
     "DestinationRule loadBalancer.consistentHash)"),
    ("load-balance", "load balancing belongs to the backend, not the route (an Istio "
     "DestinationRule loadBalancer)"),
    ("service-upstream", "Gateway API routes to a Service's endpoints; sending to its "
     "cluster IP instead has no equivalent"),
    ("proxy-ssl-*", "TLS to the backend needs a BackendTLSPolicy, which heddle convert does "
     "not write"),
    ("ssl-passthrough", "TLS passthrough needs a TLSRoute on a Passthrough listener, which "
     "heddle convert does not write"),
    ("*-snippet", "raw NGINX configuration cannot be converted"),
    ("proxy-body-size", "Gateway API has no request body size limit"),
    ("client-body-buffer-size", "Gateway API has no request buffering setting"),
    ("proxy-buffer*", "Gateway API has no response buffering setting"),
    ("enable-access-log", "access logging is telemetry (Istio's Telemetry), not a route "
     "setting"),
    ("fastcgi-*", "Gateway API has no FastCGI backends"),
    ("whitelist-source-range", "source addresses are checked by an Istio AuthorizationPolicy "
     "(ipBlocks) on the gateway, not by a route"),
    ("denylist-source-range", "source addresses are checked by an Istio AuthorizationPolicy "
     "(ipBlocks) on the gateway, not by a route"),
)
_GENERIC = "heddle convert ingress has no Gateway API mapping for it"


def not_converted_reason(short: str) -> str:
    for pattern, reason in NOT_CONVERTED:
        if pattern.endswith("*") and short.startswith(pattern[:-1]):
            return reason
        if pattern.startswith("*") and short.endswith(pattern[1:]):
            return reason
        if pattern == short:
            return reason
    return _GENERIC


def _other_annotation(annotation: Annotation) -> tuple[Verdict, str] | None:
    """The verdict on an annotation outside ingress-nginx's prefix, or None to say nothing."""
    if annotation.key in (CLASS_ANNOTATION, "kubectl.kubernetes.io/last-applied-configuration"):
        return None  # the class chooses the Gateway; kubectl's own record is not config
    if annotation.key.startswith("nginx.org/"):
        return (Verdict.NOT_CONVERTED, "an annotation of F5's NGINX Ingress Controller, which "
                "ingress-nginx ignores; heddle convert ingress converts ingress-nginx's")
    if annotation.key.startswith(("cert-manager.io/", "kubernetes.io/tls-acme")):
        return (Verdict.NOT_CONVERTED, "cert-manager's: annotate the Gateway for cert-manager's "
                "Gateway API support instead")
    return (Verdict.NOT_CONVERTED, "not an ingress-nginx annotation; heddle convert ingress "
            "does not know what it asks for")


def read_settings(ingress: Ingress) -> tuple[NginxSettings, list[Finding]]:
    """The Ingress's nginx settings, and a finding for each annotation not (fully) carried."""
    ctx = _Context(ingress, {a.key[len(PREFIX):]: a for a in ingress.annotations
                             if a.key.startswith(PREFIX)})
    settings = NginxSettings()
    handled: set[str] = set()
    for family in FAMILIES:
        if any(name in ctx.values for name in family.annotations):
            settings = family.parse(ctx, settings)
        handled.update(family.annotations)
    for short in ctx.values:
        if short not in handled:
            ctx.report(short, Verdict.NOT_CONVERTED, not_converted_reason(short))
    for annotation in ingress.annotations:
        if not annotation.key.startswith(PREFIX):
            verdict = _other_annotation(annotation)
            if verdict:
                ctx.findings.append(Finding(annotation.position, ingress.ref,
                                            annotation.subject, *verdict))
    return settings, ctx.findings
