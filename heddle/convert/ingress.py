"""Kubernetes Ingresses for ingress-nginx -> Gateway API Gateways, HTTPRoutes and GRPCRoutes.

Pure: YAML documents in, manifests (plain data, ready to print as YAML) and findings out.
How ingress-nginx serves an Ingress decides the output:

- One Gateway per ingress class in each namespace with Ingresses of that class (so its
  certificateRefs name Secrets of its own namespace, as spec.tls does): an `http` listener
  on port 80 and, per TLS host, an HTTPS listener on 443 with that host's secrets.
- One route per host (more when it would pass 16 rules), rules in nginx's location order
  (longest path first). pathType Exact is Exact; Prefix and ImplementationSpecific are
  PathPrefix (ingress-nginx reads ImplementationSpecific as Prefix). When use-regex or
  rewrite-target is on any Ingress of a host, ingress-nginx matches every path of that
  host as a case-insensitive regex anchored at the start: RegularExpression `(?i)PATH.*`.
- Canary Ingresses join the rule of the Ingress serving the same host and path: weights,
  and header rules beside it.
- A host with TLS redirects plain HTTP to HTTPS (308) unless ssl-redirect is false;
  force-ssl-redirect redirects without TLS too. The redirect is a route of its own on the
  `http` listener.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import re2

from heddle.api.diagnostics import ResourceRef
from heddle.api.yaml_documents import YamlDocument
from heddle.convert.findings import Finding, Verdict
from heddle.convert.ingress_input import Backend, Ingress, IngressPath, read_ingresses
from heddle.convert.nginx_annotations import PREFIX, NginxSettings, read_settings

GATEWAY_API = "gateway.networking.k8s.io/v1"
MAX_RULES = 16  # per route, as the HTTPRoute and GRPCRoute CRDs allow
HTTPS_REDIRECT_CODE = 308  # ingress-nginx's http-redirect-code default

Manifest = dict[str, Any]


@dataclass(frozen=True)
class ConvertOptions:
    gateway_class: str = "heddle"
    default_ingress_class: str = "nginx"  # the Gateway for Ingresses that name no class


@dataclass(frozen=True)
class Conversion:
    manifests: tuple[Manifest, ...]  # Gateways, then routes, each sorted by namespace/name
    findings: tuple[Finding, ...]  # sorted by file and line
    ingresses: tuple[ResourceRef, ...]  # every Ingress read, in input order

    def not_converted(self) -> dict[ResourceRef, list[Finding]]:
        """The Ingresses with something the output lacks, each with those findings."""
        out: dict[ResourceRef, list[Finding]] = {}
        for finding in self.findings:
            if finding.verdict is Verdict.NOT_CONVERTED:
                out.setdefault(finding.resource, []).append(finding)
        return out


@dataclass(frozen=True)
class _Source:
    ingress: Ingress
    settings: NginxSettings


@dataclass
class _Draft:
    """One Ingress path as ingress-nginx serves it (a location), with its canary."""

    source: _Source
    path: IngressPath
    canary: tuple[_Source, IngressPath] | None = None


@dataclass(frozen=True)
class _Rule:
    matches: tuple[Manifest, ...]  # one HTTPRoute/GRPCRoute match, or none (every request)
    backends: tuple[Manifest, ...]
    filters: tuple[Manifest, ...]
    https_redirect: bool  # on the plain HTTP listener, redirect to https instead
    grpc: bool = False
    http_matches: tuple[Manifest, ...] | None = None  # a GRPCRoute rule's, for its redirect

    def manifest(self) -> Manifest:
        out: Manifest = {}
        if self.matches:
            out["matches"] = list(self.matches)
        if self.filters:
            out["filters"] = list(self.filters)
        if self.backends:
            out["backendRefs"] = list(self.backends)
        return out

    def redirecting(self) -> _Rule:
        filters = ({"type": "RequestRedirect",
                    "requestRedirect": {"scheme": "https", "statusCode": HTTPS_REDIRECT_CODE}},)
        matches = self.matches if self.http_matches is None else self.http_matches
        return _Rule(matches, (), filters, False)


@dataclass
class _Group:
    """The Ingresses of one class in one namespace: one Gateway."""

    namespace: str
    ingress_class: str
    sources: list[_Source] = field(default_factory=list)


class _Converter:
    def __init__(self, options: ConvertOptions) -> None:
        self.options = options
        self.findings: list[Finding] = []

    def lost(self, source: Ingress, at: Any, subject: str, reason: str,
             verdict: Verdict = Verdict.NOT_CONVERTED) -> None:
        self.findings.append(Finding(at, source.ref, subject, verdict, reason))

    def lost_annotation(self, source: Ingress, short: str, reason: str,
                        verdict: Verdict = Verdict.NOT_CONVERTED) -> None:
        annotation = source.annotation(PREFIX + short)
        assert annotation is not None
        self.lost(source, annotation.position, annotation.subject, reason, verdict)

    # --- paths -----------------------------------------------------------------------------

    def path_match(self, source: _Source, path: IngressPath, regex_host: bool) -> Manifest | None:
        if regex_host:
            if not _re2_ok(path.path):
                self.lost(source.ingress, path.position, f"path {path.path!r}",
                          "not a regular expression Envoy's RE2 accepts (ingress-nginx uses "
                          "PCRE); the path is left out")
                return None
            return {"type": "RegularExpression", "value": f"(?i){path.path}.*"}
        if not _GATEWAY_PATH.match(path.path) or "//" in path.path or path.path.endswith(
                ("/.", "/..")) or "/./" in path.path or "/../" in path.path:
            self.lost(source.ingress, path.position, f"path {path.path!r}",
                      "not a path an HTTPRoute accepts for Exact or PathPrefix matches "
                      "(characters outside RFC 3986's, '//', or '.' segments); the path is "
                      "left out")
            return None
        kind = "Exact" if path.path_type == "Exact" else "PathPrefix"
        return {"type": kind, "value": path.path}

    def rewrite(self, source: _Source, path: IngressPath,
                match: Manifest) -> tuple[Manifest, Manifest | None]:
        """The match and URLRewrite filter for rewrite-target on this path: nginx replaces the
        whole URI with the target, `$N` standing for the path regex's groups."""
        target = source.settings.rewrite_target
        if not target or target == path.path:
            return match, None
        if "$" not in target:
            return match, {"type": "URLRewrite",
                           "urlRewrite": {"path": {"type": "ReplaceFullPath",
                                                   "replaceFullPath": target}}}
        strip = _STRIP_PREFIX.fullmatch(path.path)
        if strip and target == "/$2" and _GATEWAY_PATH.match(strip.group(1)):
            self.lost_annotation(source.ingress, "rewrite-target", f"on path {path.path!r}: "
                                 f"converted to a PathPrefix {strip.group(1)!r} match replacing "
                                 "that prefix with '/', which matches case-sensitively where "
                                 "nginx ignores case", Verdict.NOTE)
            return ({"type": "PathPrefix", "value": strip.group(1)},
                    {"type": "URLRewrite",
                     "urlRewrite": {"path": {"type": "ReplacePrefixMatch",
                                             "replacePrefixMatch": "/"}}})
        self.lost_annotation(source.ingress, "rewrite-target", f"on path {path.path!r}: "
                             "Gateway API's URLRewrite replaces a whole path or a matched "
                             "prefix; it cannot substitute regex groups ($1); the path is "
                             "routed without the rewrite")
        return match, None

    # --- rules -----------------------------------------------------------------------------

    def rules(self, draft: _Draft, regex_host: bool, tls_host: bool) -> list[_Rule]:
        source, settings = draft.source, draft.source.settings
        match = self.path_match(source, draft.path, regex_host)
        if match is None:
            return []
        match, rewrite = self.rewrite(source, draft.path, match)
        filters: list[Manifest] = [rewrite] if rewrite else []
        if settings.cors:
            filters.append({"type": "CORS", "cors": _cors(settings)})
        backend = _backend_ref(draft.path.backend)
        redirect = settings.force_ssl_redirect or (tls_host and settings.ssl_redirect)
        if settings.redirect:
            return [_Rule(({"path": match},), (), (_redirect_filter(settings),), redirect)]
        if draft.canary is None:
            return [_Rule(({"path": match},), (backend,), tuple(filters), redirect,
                          settings.grpc)]
        canary_source, canary_path = draft.canary
        canary = canary_source.settings.canary
        assert canary is not None
        canary_ref = _backend_ref(canary_path.backend)
        out: list[_Rule] = []
        if canary.header:
            header_matches = ([{"name": canary.header, "value": canary.header_value}]
                              if canary.header_value else
                              [{"type": "RegularExpression", "name": canary.header,
                                "value": canary.header_pattern}] if canary.header_pattern else
                              [{"name": canary.header, "value": "always"}])
            out.append(_Rule(({"path": match, "headers": header_matches},), (canary_ref,),
                             tuple(filters), redirect, settings.grpc))
            if not canary.header_value and not canary.header_pattern:
                out.append(_Rule(({"path": match, "headers": [
                    {"name": canary.header, "value": "never"}]},), (backend,), tuple(filters),
                    redirect, settings.grpc))
        backends: tuple[Manifest, ...] = (backend,)
        if canary.weight is not None or not canary.header:
            weight = canary.weight or 0
            backends = ({**backend, "weight": canary.weight_total - weight},
                        {**canary_ref, "weight": weight})
        out.append(_Rule(({"path": match},), backends, tuple(filters), redirect, settings.grpc))
        return out

    def grpc_rule(self, source: _Source, path: IngressPath, rule: _Rule) -> _Rule | None:
        """The GRPCRoute rule for an HTTPRoute rule of a backend-protocol GRPC Ingress: a
        gRPC request's path is /SERVICE/METHOD, so only paths naming a service or method
        (or every one) have a GRPCRoute match."""
        if rule.filters:
            self.lost_annotation(source.ingress, "backend-protocol", "GRPCRoute has no "
                                 "URLRewrite, CORS or RequestRedirect filter, so the gRPC "
                                 "paths of this Ingress are routed by an HTTPRoute (the "
                                 "backend then speaks HTTP/2 only if its Service port says "
                                 "appProtocol: kubernetes.io/h2c)")
            return None
        method = _grpc_method(path)
        if method is None:
            self.lost_annotation(source.ingress, "backend-protocol", f"path {path.path!r} "
                                 "names no gRPC service or method, so it is routed by an "
                                 "HTTPRoute (the backend then speaks HTTP/2 only if its "
                                 "Service port says appProtocol: kubernetes.io/h2c)")
            return None
        matches = tuple({**({"method": method} if method else {}),
                         **({"headers": m["headers"]} if "headers" in m else {})}
                        for m in rule.matches)
        return _Rule(tuple(m for m in matches if m), rule.backends, (), rule.https_redirect,
                     True, rule.matches)

    def tls_listeners(self, group: _Group) -> dict[str, tuple[str, list[str]]]:
        """TLS host ("" for every host) -> (listener name, secret names), from spec.tls of the
        group's Ingresses; an entry without hosts covers the hosts of its Ingress's rules."""
        secrets: dict[str, list[str]] = {}
        for source in group.sources:
            for entry in source.ingress.tls:
                if not entry.secret:
                    self.lost(source.ingress, entry.position, entry.field, "names no "
                              "secretName (ingress-nginx then serves its default certificate); "
                              "a Gateway listener needs one, so no HTTPS listener is made")
                    continue
                for host in entry.hosts or source.ingress.hosts or ("",):
                    names = secrets.setdefault(host, [])
                    if entry.secret not in names:
                        names.append(entry.secret)
        return {host: ("https-" + _host_slug(host) if host else "https", names)
                for host, names in secrets.items()}

    # --- one Gateway -----------------------------------------------------------------------

    def group(self, group: _Group, regex_hosts: set[tuple[str, str]]) -> list[Manifest]:
        drafts: dict[str, dict[str, _Draft]] = {}  # host -> path -> draft
        app_roots: dict[str, _Source] = {}
        mains = [s for s in group.sources if not _is_canary(s)]
        for source in mains:
            for path in _served_paths(source.ingress):
                taken = drafts.setdefault(path.host, {}).get(path.path)
                if taken:
                    self.lost(source.ingress, path.position, f"path {path.path!r} of host "
                              f"{path.host or '*'}", f"also served by {taken.source.ingress.ref} "
                              f"({taken.path.position}); ingress-nginx keeps the oldest "
                              "Ingress's, this keeps the first read")
                    continue
                drafts[path.host][path.path] = _Draft(source, path)
            if source.settings.app_root:
                for host in source.ingress.hosts:
                    app_roots.setdefault(host, source)
        for source in (s for s in group.sources if _is_canary(s)):
            for path in source.ingress.paths:
                draft = drafts.get(path.host, {}).get(path.path)
                if draft is None or draft.canary is not None:
                    self.lost_annotation(source.ingress, "canary", (
                        f"no Ingress without canary serves host {path.host or '*'} path "
                        f"{path.path!r} in this namespace and class" if draft is None else
                        f"host {path.host or '*'} path {path.path!r} has a canary already "
                        f"({draft.canary[0].ingress.ref if draft.canary else ''})"))
                    continue
                draft.canary = (source, path)

        tls = self.tls_listeners(group)
        gateway_name = _dns_label(group.ingress_class)
        listeners: list[Manifest] = [{"name": "http", "port": 80, "protocol": "HTTP"}]
        for host, (name, secrets) in sorted(tls.items()):
            listener: Manifest = {"name": name}
            if host:
                listener["hostname"] = host
            listener.update({"port": 443, "protocol": "HTTPS", "tls": {
                "mode": "Terminate",
                "certificateRefs": [{"kind": "Secret", "name": s} for s in secrets]}})
            listeners.append(listener)
        manifests: list[Manifest] = [{
            "apiVersion": GATEWAY_API, "kind": "Gateway",
            "metadata": _metadata(gateway_name, group.namespace),
            "spec": {"gatewayClassName": self.options.gateway_class, "listeners": listeners}}]

        for host in sorted(set(drafts) | set(app_roots)):
            regex_host = (group.ingress_class, host) in regex_hosts
            sections = sorted({name for tls_host, (name, _) in tls.items()
                               if _covers(tls_host, host)})
            host_drafts = _nginx_order(list(drafts.get(host, {}).values()))
            rules: list[tuple[_Draft | None, _Rule]] = [
                (draft, rule) for draft in host_drafts
                for rule in self.rules(draft, regex_host, bool(sections))]
            if host in app_roots:
                root = app_roots[host]
                rules.append((None, _Rule(({"path": {"type": "Exact", "value": "/"}},), (), ({
                    "type": "RequestRedirect", "requestRedirect": {
                        "path": {"type": "ReplaceFullPath",
                                 "replaceFullPath": root.settings.app_root},
                        "statusCode": 302}},), False)))
            if not rules:
                continue
            first = min((d.source.ingress.name for d, _ in rules if d),
                        default=app_roots[host].ingress.name if host in app_roots else "")
            rules = self.grpc_rules(rules)
            base = f"{first}-{_host_slug(host)}"
            manifests += self.routes(group, gateway_name, base, host, sections,
                                     [r for _, r in rules])
        return manifests

    def grpc_rules(self, rules: list[tuple[_Draft | None, _Rule]]
                   ) -> list[tuple[_Draft | None, _Rule]]:
        """A host served by backend-protocol GRPC Ingresses alone gets a GRPCRoute; a host
        that mixes them with others keeps one HTTPRoute (Gateway API never merges the two
        kinds' rules for one hostname)."""
        grpc = [d for d, r in rules if r.grpc and d]
        if not grpc:
            return rules
        others = [d for d, r in rules if not r.grpc]
        if others:
            for source in {id(d.source): d.source for d in grpc}.values():
                self.lost_annotation(source.ingress, "backend-protocol", (
                    "the host also has paths that are not gRPC "
                    f"({others[0].source.ingress.ref if others[0] else 'app-root'}), and "
                    "Gateway API does not merge GRPCRoute and HTTPRoute rules of a hostname: "
                    "all are routed by an HTTPRoute (the backend then speaks HTTP/2 only if "
                    "its Service port says appProtocol: kubernetes.io/h2c)"))
            return [(d, replace(r, grpc=False)) for d, r in rules]
        out: list[tuple[_Draft | None, _Rule]] = []
        for draft, rule in rules:
            assert draft is not None
            converted = self.grpc_rule(draft.source, draft.path, rule)
            if converted is None:
                return [(d, replace(r, grpc=False)) for d, r in rules]
            out.append((draft, converted))
        return out

    def routes(self, group: _Group, gateway: str, base: str, host: str, sections: list[str],
               rules: list[_Rule]) -> list[Manifest]:
        served = rules
        plain = [r.redirecting() if r.https_redirect else r for r in rules]
        parts: list[tuple[str, list[str], list[_Rule]]]
        if not sections:
            parts = [(base, ["http"], plain)]
        elif plain == served:
            parts = [(base, ["http", *sections], served)]
        else:
            parts = [(base, sections, served), (f"{base}-http", ["http"], plain)]
        manifests: list[Manifest] = []
        for name, listeners, part_rules in parts:
            for kind in ("HTTPRoute", "GRPCRoute"):
                kind_rules = [r for r in part_rules if r.grpc == (kind == "GRPCRoute")]
                for n, start in enumerate(range(0, len(kind_rules), MAX_RULES)):
                    chunk = kind_rules[start:start + MAX_RULES]
                    spec: Manifest = {"parentRefs": [{"name": gateway, "sectionName": s}
                                                     for s in listeners]}
                    if host:
                        spec["hostnames"] = [host]
                    spec["rules"] = [r.manifest() for r in chunk]
                    manifests.append({
                        "apiVersion": GATEWAY_API, "kind": kind,
                        "metadata": _metadata(name + (f"-{n + 1}" if n else ""),
                                              group.namespace),
                        "spec": spec})
        return manifests


# --- helpers ---------------------------------------------------------------------------------

# What HTTPRoute's CEL rules accept in an Exact or PathPrefix value.
_GATEWAY_PATH = re.compile(r"^/(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})*$")
# ingress-nginx's documented "strip a prefix" idiom: path /PREFIX(/|$)(.*), target /$2.
_STRIP_PREFIX = re.compile(r"(/[-A-Za-z0-9/_~]*[-A-Za-z0-9_~])\(/\|\$\)\(\.\*\)")
_GRPC_NAME = re.compile(r"[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*")


def _re2_ok(pattern: str) -> bool:
    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(f"(?i){pattern}.*", options=options)
    except re2.error:
        return False
    return True


def _grpc_method(path: IngressPath) -> Manifest | None:
    """{} for every method, {service} or {service, method}, or None when no gRPC match fits."""
    parts = path.path.strip("/").split("/") if path.path.strip("/") else []
    if not parts:
        return {} if path.path_type != "Exact" else None
    if len(parts) == 1 and path.path_type != "Exact" and _GRPC_NAME.fullmatch(parts[0]):
        return {"type": "Exact", "service": parts[0]}
    if (len(parts) == 2 and all(_GRPC_NAME.fullmatch(p) for p in parts)
            and (path.path_type == "Exact" or not path.path.endswith("/"))):
        return {"type": "Exact", "service": parts[0], "method": parts[1]}
    return None


def _is_canary(source: _Source) -> bool:
    return source.settings.canary is not None


def _served_paths(ingress: Ingress) -> list[IngressPath]:
    """The Ingress's paths, and its default backend: ingress-nginx serves `/` of each of its
    hosts that has no `/` path with it, and of the catch-all server when it has no rules."""
    paths = list(ingress.paths)
    if ingress.default_backend:
        for host in ingress.hosts or [""]:
            if not any(p.host == host and p.path == "/" for p in paths):
                paths.append(IngressPath(host, "/", "Prefix", ingress.default_backend,
                                         ingress.position))
    return paths


def _nginx_order(drafts: list[_Draft]) -> list[_Draft]:
    """As ingress-nginx orders a server's locations: longest path first, then by path,
    descending (the order regex locations are tried in)."""
    drafts = sorted(drafts, key=lambda d: d.path.path, reverse=True)
    return sorted(drafts, key=lambda d: len(d.path.path), reverse=True)


def _backend_ref(backend: Backend) -> Manifest:
    return {"name": backend.service, "port": backend.port}


def _cors(settings: NginxSettings) -> Manifest:
    cors = settings.cors
    assert cors is not None
    out: Manifest = {"allowOrigins": list(cors.allow_origins),
                     "allowCredentials": cors.allow_credentials}
    if cors.allow_methods:
        out["allowMethods"] = list(cors.allow_methods)
    if cors.allow_headers:
        out["allowHeaders"] = list(cors.allow_headers)
    if cors.expose_headers:
        out["exposeHeaders"] = list(cors.expose_headers)
    out["maxAge"] = cors.max_age
    return out


def _redirect_filter(settings: NginxSettings) -> Manifest:
    redirect = settings.redirect
    assert redirect is not None
    out: Manifest = {"scheme": redirect.scheme, "hostname": redirect.hostname}
    if redirect.port is not None:
        out["port"] = redirect.port
    if redirect.path is not None:
        out["path"] = {"type": "ReplaceFullPath", "replaceFullPath": redirect.path}
    out["statusCode"] = redirect.code
    return {"type": "RequestRedirect", "requestRedirect": out}


def _covers(tls_host: str, host: str) -> bool:
    if tls_host in ("", host):
        return True
    if tls_host.startswith("*.") and host:
        return host.split(".", 1)[-1] == tls_host[2:] and "." in host
    return False


def _host_slug(host: str) -> str:
    return _dns_label(host.replace("*", "wildcard")) if host else "all-hosts"


def _dns_label(text: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return slug[:63].rstrip("-") or "default"


def _metadata(name: str, namespace: str) -> Manifest:
    return {"name": name, **({"namespace": namespace} if namespace else {})}


def convert(documents: Iterable[YamlDocument], options: ConvertOptions | None = None
            ) -> Conversion:
    """Every Ingress of `documents` as Gateway API resources, with what could not convert."""
    options = options or ConvertOptions()
    read = read_ingresses(documents)
    converter = _Converter(options)
    converter.findings += read.findings
    groups: dict[tuple[str, str], _Group] = {}
    for ingress in read.ingresses:
        settings, findings = read_settings(ingress)
        converter.findings += findings
        cls = ingress.ingress_class or options.default_ingress_class
        groups.setdefault((ingress.namespace, cls), _Group(ingress.namespace, cls)).sources.append(
            _Source(ingress, settings))
    # One nginx server per host, whatever the namespace: regex mode is the host's.
    regex_hosts = {(cls, host) for (_, cls), group in groups.items() for s in group.sources
                   if not _is_canary(s) and (s.settings.use_regex or s.settings.rewrite_target)
                   for host in s.ingress.hosts}
    manifests: list[Manifest] = []
    for key in sorted(groups):
        manifests += converter.group(groups[key], regex_hosts)
    order = {"Gateway": 0, "HTTPRoute": 1, "GRPCRoute": 2}
    manifests.sort(key=lambda m: (order[m["kind"]], m["metadata"].get("namespace", ""),
                                  m["metadata"]["name"]))
    return Conversion(tuple(manifests), tuple(sorted(set(converter.findings))),
                      tuple(i.ref for i in read.ingresses))
