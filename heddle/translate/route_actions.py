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

from heddle.api import istio_defaults
from heddle.api.models.virtual_service_parts import (
    CorsPolicy,
    HeaderOperations,
    Headers,
    HTTPDirectResponse,
    HTTPFault,
    HTTPMatch,
    HTTPRedirect,
    HTTPRewrite,
)
from heddle.api.specs import is_empty
from heddle.translate.durations import parse_duration

FAULT_FILTER = "envoy.filters.http.fault"

_REDIRECT_CODES = {
    301: rc.RedirectAction.MOVED_PERMANENTLY,
    302: rc.RedirectAction.FOUND,
    303: rc.RedirectAction.SEE_OTHER,
    307: rc.RedirectAction.TEMPORARY_REDIRECT,
    308: rc.RedirectAction.PERMANENT_REDIRECT,
}


_DEFAULT_PORTS = {"http": 80, "https": 443}


def redirect(spec: HTTPRedirect, port: int = 0) -> rc.RedirectAction:
    """`port`: the port the routes serve (a gateway server's or a service's), which
    FROM_REQUEST_PORT redirects to, as Istio does (Envoy cannot derive it from the request:
    with a new host it would drop the port)."""
    action = rc.RedirectAction(response_code=_REDIRECT_CODES.get(
        spec.redirectCode or istio_defaults.REDIRECT_CODE, rc.RedirectAction.MOVED_PERMANENTLY))
    if spec.uri is not None and spec.uri.startswith(istio_defaults.REDIRECT_PREFIX_MARKER):
        action.prefix_rewrite = spec.uri.removeprefix(istio_defaults.REDIRECT_PREFIX_MARKER)
    elif spec.uri is not None:
        action.path_redirect = spec.uri
    if spec.authority is not None:
        action.host_redirect = spec.authority
    if spec.scheme is not None:
        action.scheme_redirect = spec.scheme
    if spec.port is not None:
        action.port_redirect = spec.port
    elif spec.derivePort == "FROM_REQUEST_PORT" and port and port != _DEFAULT_PORTS.get(
            spec.scheme or ("https" if port == 443 else "http")):
        # Envoy cannot take the port from the request, but these routes serve one port:
        # that one, as Istio writes it; not the scheme's default port, which the Location
        # does not name (Gateway API; NGINX writes none either).
        action.port_redirect = port
    # FROM_PROTOCOL_DEFAULT, as Istio: no port, so that Envoy writes none, where a
    # port_redirect of 443 would put ":443" in the Location (Gateway API: a redirect to
    # https on 443 or http on 80 SHOULD NOT name the port); a request's explicit :80 is
    # dropped with a change to https.
    return action


def direct_response(spec: HTTPDirectResponse) -> rc.DirectResponseAction:
    action = rc.DirectResponseAction(status=spec.status)
    body = spec.body
    if body is not None and body.string is not None:
        action.body.inline_string = body.string
    elif body is not None and body.bytes is not None:
        action.body.inline_bytes = body.bytes.encode()
    return action


def apply_rewrite(action: rc.RouteAction, rewrite: HTTPRewrite, match: HTTPMatch) -> None:
    """`uri` replaces the matched prefix or exact path, as in Istio; after a regex match it
    replaces the whole path."""
    if rewrite.uri is not None:
        if match.uri is not None and match.uri.regex is not None:
            action.regex_rewrite.pattern.regex = "^.*$"
            action.regex_rewrite.substitution = rewrite.uri
        else:
            action.prefix_rewrite = rewrite.uri
    regex = rewrite.uriRegexRewrite
    if regex is not None:
        if regex.match is None:  # validation lets it through; translating it always failed
            raise ValueError("uriRegexRewrite without a match")
        action.regex_rewrite.pattern.CopyFrom(regex_pb2.RegexMatcher(regex=regex.match))
        action.regex_rewrite.substitution = regex.rewrite or ""
    if rewrite.authority is not None:
        action.host_rewrite_literal = rewrite.authority


def _header_values(changes: HeaderOperations, add: Callable[..., Any]) -> None:
    for name, value in sorted((changes.set or {}).items()):
        add(header=base_pb2.HeaderValue(key=name, value=value),
            append_action=base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD)
    for name, value in sorted((changes.add or {}).items()):
        add(header=base_pb2.HeaderValue(key=name, value=value),
            append_action=base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD)


def apply_headers(target: Any, headers: Headers) -> None:
    """Header changes on a Route or a weighted cluster: request and response, set/add/remove."""
    if headers.request is not None:
        _header_values(headers.request, target.request_headers_to_add.add)
        target.request_headers_to_remove.extend(headers.request.remove or [])
    if headers.response is not None:
        _header_values(headers.response, target.response_headers_to_add.add)
        target.response_headers_to_remove.extend(headers.response.remove or [])


def _percent(value: float) -> percent_pb2.FractionalPercent:
    """Istio's percentage (0-100, with fractions) as a per-million fraction."""
    return percent_pb2.FractionalPercent(numerator=int(float(value) * 10_000),
                                         denominator=percent_pb2.FractionalPercent.MILLION)


def fault(spec: HTTPFault) -> any_pb2.Any:
    """Per-route config for the fault filter: a fixed delay and/or an abort, in percent."""
    config = fault_pb2.HTTPFault()
    delay = spec.delay
    if delay is not None and not is_empty(delay):
        config.delay.fixed_delay.CopyFrom(parse_duration(
            delay.fixedDelay if delay.fixedDelay is not None
            else istio_defaults.FAULT_FIXED_DELAY))
        share = delay.percentage.value if delay.percentage is not None else None
        if share is None:  # the deprecated integer `percent`
            share = delay.percent if delay.percent is not None else istio_defaults.FAULT_PERCENT
        config.delay.percentage.CopyFrom(_percent(share))
    abort = spec.abort
    if abort is not None and not is_empty(abort):
        if abort.httpStatus is not None:
            config.abort.http_status = abort.httpStatus
        elif abort.grpcStatus is not None:
            # A status given by name is sent as UNAVAILABLE (14), whatever the name.
            config.abort.grpc_status = int(abort.grpcStatus) if abort.grpcStatus.isdigit() \
                else 14
        share = abort.percentage.value if abort.percentage is not None else None
        config.abort.percentage.CopyFrom(_percent(
            share if share is not None else istio_defaults.FAULT_PERCENT))
    packed = any_pb2.Any()
    packed.Pack(config)
    return packed


def mirror_policy(cluster: str, percentage: float | None,
                  ) -> rc.RouteAction.RequestMirrorPolicy:
    policy = rc.RouteAction.RequestMirrorPolicy(cluster=cluster)
    if percentage is not None:
        policy.runtime_fraction.default_value.CopyFrom(_percent(percentage))
    return policy


CORS_FILTER = "envoy.filters.http.cors"


def cors(spec: CorsPolicy) -> any_pb2.Any:
    """Per-route config for the CORS filter from a corsPolicy; Envoy answers preflights."""
    policy = cors_pb2.CorsPolicy()
    for origin in spec.allowOrigins or []:
        matcher = policy.allow_origin_string_match.add()
        if origin.exact is not None:
            matcher.exact = origin.exact
        elif origin.prefix is not None:
            matcher.prefix = origin.prefix
        elif origin.regex is not None:
            matcher.safe_regex.regex = origin.regex
    for exact in spec.allowOrigin or []:  # deprecated: exact origins
        policy.allow_origin_string_match.add(exact=exact)
    for values, name in ((spec.allowMethods, "allow_methods"),
                         (spec.allowHeaders, "allow_headers"),
                         (spec.exposeHeaders, "expose_headers")):
        if values:
            setattr(policy, name, ",".join(values))
    if spec.maxAge is not None:
        policy.max_age = str(parse_duration(spec.maxAge).seconds)
    if spec.allowCredentials is not None:
        policy.allow_credentials.value = spec.allowCredentials
    # Istio forwards preflights no policy origin matches unless told to IGNORE them.
    policy.forward_not_matching_preflights.value = spec.unmatchedPreflights != "IGNORE"
    packed = any_pb2.Any()
    packed.Pack(policy)
    return packed
