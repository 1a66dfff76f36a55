"""The parts of a VirtualService http rule beyond "where to": redirects, direct responses,
rewrites, header changes, fault injection, mirroring and CORS, each as Envoy spells it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.filters.http.cors.v3 import cors_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.type.matcher.v3 import regex_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2

from heddle.translate.durations import parse_duration

FAULT_FILTER = "envoy.filters.http.fault"

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


def redirect(spec: dict[str, Any]) -> rc.RedirectAction:
    action = rc.RedirectAction(response_code=_REDIRECT_CODES.get(
        int(spec.get("redirectCode") or 301), rc.RedirectAction.MOVED_PERMANENTLY))
    if "uri" in spec:
        action.path_redirect = str(spec["uri"])
    if "authority" in spec:
        action.host_redirect = str(spec["authority"])
    if "scheme" in spec:
        action.scheme_redirect = str(spec["scheme"])
    if "port" in spec:
        action.port_redirect = int(spec["port"])
    elif spec.get("derivePort") == "FROM_PROTOCOL_DEFAULT":  # 80 for http, 443 for https
        action.port_redirect = 443 if spec.get("scheme") == "https" else 80
    # FROM_REQUEST_PORT: Envoy keeps the request's port when none is given.
    return action


def direct_response(spec: dict[str, Any]) -> rc.DirectResponseAction:
    action = rc.DirectResponseAction(status=int(spec["status"]))
    body = spec.get("body") or {}
    if "string" in body:
        action.body.inline_string = str(body["string"])
    elif "bytes" in body:
        action.body.inline_bytes = str(body["bytes"]).encode()
    return action


def apply_rewrite(action: rc.RouteAction, rewrite: dict[str, Any],
                  match: dict[str, Any]) -> None:
    """`uri` replaces the matched prefix or exact path, as in Istio; after a regex match it
    replaces the whole path."""
    if "uri" in rewrite:
        if "regex" in (match.get("uri") or {}):
            action.regex_rewrite.pattern.regex = "^.*$"
            action.regex_rewrite.substitution = str(rewrite["uri"])
        else:
            action.prefix_rewrite = str(rewrite["uri"])
    if "uriRegexRewrite" in rewrite:
        regex = rewrite["uriRegexRewrite"]
        action.regex_rewrite.pattern.CopyFrom(regex_pb2.RegexMatcher(regex=str(regex["match"])))
        action.regex_rewrite.substitution = str(regex.get("rewrite", ""))
    if "authority" in rewrite:
        action.host_rewrite_literal = str(rewrite["authority"])


def _header_values(changes: dict[str, Any], add: Callable[..., Any]) -> None:
    for name, value in sorted((changes.get("set") or {}).items()):
        add(header=base_pb2.HeaderValue(key=name, value=str(value)),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)
    for name, value in sorted((changes.get("add") or {}).items()):
        add(header=base_pb2.HeaderValue(key=name, value=str(value)),
            append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD)


def apply_headers(target: Any, headers: dict[str, Any]) -> None:
    """Header changes on a Route or a weighted cluster: request and response, set/add/remove."""
    request = headers.get("request") or {}
    response = headers.get("response") or {}
    _header_values(request, target.request_headers_to_add.add)
    target.request_headers_to_remove.extend(str(h) for h in request.get("remove") or [])
    _header_values(response, target.response_headers_to_add.add)
    target.response_headers_to_remove.extend(str(h) for h in response.get("remove") or [])


def _percent(value: Any) -> percent_pb2.FractionalPercent:
    """Istio's percentage (0-100, with fractions) as a per-million fraction."""
    return percent_pb2.FractionalPercent(numerator=int(float(value) * 10_000),
                                         denominator=percent_pb2.FractionalPercent.MILLION)


def fault(spec: dict[str, Any]) -> any_pb2.Any:
    """Per-route config for the fault filter: a fixed delay and/or an abort, in percent."""
    config = fault_pb2.HTTPFault()
    delay = spec.get("delay") or {}
    if delay:
        config.delay.fixed_delay.CopyFrom(parse_duration(str(delay.get("fixedDelay", "0s"))))
        value = (delay.get("percentage") or {}).get("value", delay.get("percent", 100))
        config.delay.percentage.CopyFrom(_percent(value))
    abort = spec.get("abort") or {}
    if abort:
        if "httpStatus" in abort:
            config.abort.http_status = int(abort["httpStatus"])
        elif "grpcStatus" in abort:
            config.abort.grpc_status = int(abort["grpcStatus"]) if str(
                abort["grpcStatus"]).isdigit() else 14
        config.abort.percentage.CopyFrom(_percent((abort.get("percentage") or {})
                                                  .get("value", 100)))
    packed = any_pb2.Any()
    packed.Pack(config)
    return packed


def mirror_policy(cluster: str, percentage: Any) -> rc.RouteAction.RequestMirrorPolicy:
    policy = rc.RouteAction.RequestMirrorPolicy(cluster=cluster)
    if percentage is not None:
        policy.runtime_fraction.default_value.CopyFrom(_percent(percentage))
    return policy


CORS_FILTER = "envoy.filters.http.cors"


def cors(spec: dict[str, Any]) -> any_pb2.Any:
    """Per-route config for the CORS filter from a corsPolicy; Envoy answers preflights."""
    policy = cors_pb2.CorsPolicy()
    for origin in spec.get("allowOrigins") or []:
        matcher = policy.allow_origin_string_match.add()
        if "exact" in origin:
            matcher.exact = str(origin["exact"])
        elif "prefix" in origin:
            matcher.prefix = str(origin["prefix"])
        elif "regex" in origin:
            matcher.safe_regex.regex = str(origin["regex"])
    for origin in spec.get("allowOrigin") or []:  # deprecated: exact origins
        policy.allow_origin_string_match.add(exact=str(origin))
    for field, name in (("allowMethods", "allow_methods"), ("allowHeaders", "allow_headers"),
                        ("exposeHeaders", "expose_headers")):
        if spec.get(field):
            setattr(policy, name, ",".join(str(v) for v in spec[field]))
    if "maxAge" in spec:
        policy.max_age = str(parse_duration(str(spec["maxAge"])).seconds)
    if "allowCredentials" in spec:
        policy.allow_credentials.value = bool(spec["allowCredentials"])
    # Istio forwards preflights no policy origin matches unless told to IGNORE them.
    policy.forward_not_matching_preflights.value = spec.get("unmatchedPreflights") != "IGNORE"
    packed = any_pb2.Any()
    packed.Pack(policy)
    return packed
