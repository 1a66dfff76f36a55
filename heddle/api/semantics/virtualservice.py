"""Istio's VirtualService rules that its schema cannot state (ValidateVirtualService and
validateHTTPRoute): hosts by where the service applies, delegation, matches, headers,
destinations, redirects, rewrites, mirrors, faults, retries, CORS, TLS and TCP routes."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from heddle.api.diagnostics import Severity
from heddle.api.problems import FieldProblem, PathKey, did_you_mean
from heddle.api.semantics.common import check_cidr, check_regex, items, mapping
from heddle.api.semantics.http_headers import (
    HEADER_NAME,
    header_operation_problem,
    header_value_problem,
    is_authority,
    is_jwt_claim_route,
    match_header_problem,
    request_set_header_problem,
)
from heddle.api.semantics.istio_common import (
    export_to_problems,
    gateway_name_problems,
    host_matches,
    host_subset_of,
    label_problems,
)
from heddle.api.semantics.istio_hosts import (
    gateway_bound_domain_problem,
    is_dns1123_label,
    is_ip,
    wildcard_domain_problem,
)
from heddle.api.semantics.unreachable_routes import unreachable_rule_warnings

# Envoy's retry_on policies plus the gRPC ones (x-envoy-retry-on / x-envoy-retry-grpc-on).
RETRY_ON = {
    "5xx", "gateway-error", "reset", "reset-before-request", "connect-failure",
    "envoy-ratelimited", "retriable-4xx", "refused-stream", "retriable-status-codes",
    "retriable-headers", "http3-post-connect-failure", "cancelled", "deadline-exceeded",
    "internal", "resource-exhausted", "unavailable",
}
GRPC_STATUSES = {
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
}
CORS_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE",
                "*"}
MESH_GATEWAY = "mesh"
ROUTE_SEMANTICS = "internal.istio.io/route-semantics"
_KB = 1024
_MAX_REGEX = 1024


def _error(path: PathKey, message: str, fix: str) -> FieldProblem:
    return FieldProblem(path, message, fix)


def _warning(path: PathKey, message: str, fix: str) -> FieldProblem:
    return FieldProblem(path, message, fix, Severity.WARNING)


def _regex(path: PathKey, pattern: Any) -> list[FieldProblem]:
    if not isinstance(pattern, str):
        return []
    if not pattern:
        return [_error(path, "a regex match cannot be empty", "write a pattern, or use prefix")]
    if len(pattern) > _MAX_REGEX:
        return [_error(path, f"the regex is {len(pattern)} characters long, more than "
                             f"{_MAX_REGEX}", "write a shorter pattern")]
    return check_regex(path, pattern)


def _string_match(path: PathKey, match: Any, allow_empty_prefix: bool = False,
                  ) -> list[FieldProblem]:
    match = mapping(match)
    if "prefix" in match and match["prefix"] == "" and not allow_empty_prefix:
        return [_error((*path, "prefix"), "a prefix match cannot be empty",
                       "write a prefix, or remove the match")]
    if "regex" in match:
        return _regex((*path, "regex"), match["regex"])
    return []


def _header_ops(path: PathKey, headers: Any) -> list[FieldProblem]:
    """headers.request / headers.response: set, add, remove."""
    problems: list[FieldProblem] = []
    fix = "name a header that the proxy may change"
    for side in ("request", "response"):
        block = mapping(mapping(headers).get(side))
        for op in ("set", "add"):
            for name, value in mapping(block.get(op)).items():
                name = str(name)
                here = (*path, side, op, name)
                problem = (request_set_header_problem(name) if side == "request"
                           else header_operation_problem(name))
                if problem:
                    problems.append(_error(here, problem, fix))
                value_problem = header_value_problem(str(value if value is not None else ""))
                if value_problem:
                    problems.append(_error(here, value_problem,
                                           "write %% for a literal percent sign"))
        for i, name in items(block.get("remove")):
            problem = header_operation_problem(str(name))
            if problem:
                problems.append(_error((*path, side, "remove", i), problem, fix))
    return problems


def _authority_rewrite(path: PathKey, http: dict[str, Any]) -> list[FieldProblem]:
    current = mapping(http.get("rewrite")).get("authority") or ""
    request = mapping(mapping(http.get("headers")).get("request"))
    for op in ("set", "add"):
        for name, value in mapping(request.get(op)).items():
            if not is_authority(str(name)):
                continue
            if current:
                return [_error((*path, "headers", "request", op, name),
                               f"the authority is set twice: {current!r} and {value!r}",
                               "rewrite the authority in one place")]
            current = value
    return []


def _port_number(path: PathKey, port: Any) -> list[FieldProblem]:
    if isinstance(port, int) and not 1 <= port <= 65535:
        return [_error(path, f"port number {port} must be in the range 1..65535",
                       "use a port from 1 to 65535")]
    return []


def _destination(path: PathKey, destination: Any) -> list[FieldProblem]:
    if destination is None:
        return []
    destination = mapping(destination)
    problems: list[FieldProblem] = []
    host = str(destination.get("host") or "")
    if host == "*":
        problems.append(_error((*path, "host"), "a destination host cannot be *",
                               "name the service to route to"))
    else:
        problem = wildcard_domain_problem(host)
        if problem:
            problems.append(_error((*path, "host"), problem,
                                   "name a service, e.g. reviews.default.svc.cluster.local"))
    subset = destination.get("subset")
    if subset and not is_dns1123_label(str(subset)):
        problems.append(_error((*path, "subset"), f"invalid subset name {subset!r}",
                               "a subset name is one DNS label"))
    if destination.get("port") is not None:
        problems += _port_number((*path, "port", "number"),
                                 mapping(destination["port"]).get("number", 0))
    return problems


def _weights(path: PathKey, routes: list[tuple[int, Any]], gateway_semantics: bool,
             http: bool) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    total = 0
    for i, route in routes:
        if route is None:
            problems.append(_error((*path, i), "a route destination may not be null",
                                   "remove the empty entry"))
            continue
        route = mapping(route)
        if route.get("destination") is None:
            problems.append(_error((*path, i), "destination is required",
                                   "add destination.host"))
        if http:
            problems += _header_ops((*path, i, "headers"), route.get("headers"))
        if not gateway_semantics:
            problems += _destination((*path, i, "destination"), route.get("destination"))
        weight = route.get("weight", 0)
        if isinstance(weight, int):
            if weight < 0:
                problems.append(_error((*path, i, "weight"), f"weight {weight} is negative",
                                       "use a weight of 0 or more"))
            total += weight
    if len(routes) > 1 and total == 0:
        problems.append(_error(path, "the total destination weight is 0",
                               "give at least one destination a positive weight"))
    return problems


def _match(path: PathKey, match: dict[str, Any]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    fix = "header names are tokens (RFC 7230), a pseudo-header or @request.auth.claims.NAME"
    for name, header in mapping(match.get("headers")).items():
        here = (*path, "headers", name)
        if header is None:
            problems.append(_error(here, f"header match {name!r} cannot be null",
                                   "write exact, prefix or regex"))
        problem = match_header_problem(str(name))
        if problem:
            problems.append(_error(here, problem, fix))
        problems += _string_match(here, header)
    for name, header in mapping(match.get("withoutHeaders")).items():
        here = (*path, "withoutHeaders", name)
        problem = match_header_problem(str(name))
        if problem:
            problems.append(_error(here, problem, fix))
        # regex "*" is not RE2: Istio reads it as "the header is present".
        if header is not None and mapping(header).get("regex") != "*":
            problems += _string_match(here, header)
    if match.get("uri") is not None:
        problems += _string_match((*path, "uri"), match["uri"], allow_empty_prefix=True)
    for name in ("scheme", "method", "authority"):
        if match.get(name) is not None:
            problems += _string_match((*path, name), match[name])
    for name, value in mapping(match.get("queryParams")).items():
        problems += _string_match((*path, "queryParams", name), value)
    if match.get("port"):  # 0 is unset
        problems += _port_number((*path, "port"), match["port"])
    problems += label_problems((*path, "sourceLabels"), match.get("sourceLabels"))
    problems += gateway_name_problems((*path, "gateways"), match.get("gateways"))
    namespace = match.get("sourceNamespace")
    if namespace and not is_dns1123_label(str(namespace)):
        problems.append(_error((*path, "sourceNamespace"),
                               f"invalid sourceNamespace {namespace!r}",
                               "a namespace is one DNS label"))
    return problems


def _conflicts(path: PathKey, http: dict[str, Any], delegate_vs: bool) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    routes = http.get("route") or []
    has = {name: http.get(name) is not None for name in (
        "redirect", "directResponse", "fault", "rewrite", "delegate", "mirror")}
    if not delegate_vs and has["delegate"]:  # a root route: only delegate
        for name in ("redirect", "route"):
            if http.get(name) is not None:
                problems.append(_error((*path, name), f"a route that delegates must not set "
                                                      f"{name}", "keep only delegate"))
        return problems
    if delegate_vs and has["delegate"]:
        problems.append(_error((*path, "delegate"),
                               "a delegate VirtualService's route cannot delegate again",
                               "route to destinations instead"))
    for action in ("redirect", "directResponse"):
        if not has[action]:
            continue
        others = ["route"] if routes else []
        others += [k for k in ("fault", "rewrite") if has[k]]
        others += [k for k in ("redirect", "directResponse") if k != action and has[k]]
        for other in others:
            problems.append(_error((*path, other), f"an HTTP route cannot have both {action} "
                                                   f"and {other}", "keep one of them"))
        break
    else:
        if not routes:
            problems.append(_error(path, "an HTTP route needs a route, redirect or "
                                         "directResponse", "add one of them"))
    if has["mirror"] and http.get("mirrors"):
        problems.append(_error(path, "an HTTP route cannot have both mirror and mirrors",
                               "move the mirror into mirrors"))
    return problems


def _percent(path: PathKey, value: Any, what: str) -> list[FieldProblem]:
    if isinstance(value, int | float) and not 0 <= value <= 100:
        return [_error(path, f"{what} {value} is not between 0 and 100",
                       "use a value from 0 to 100")]
    return []


def _fault(path: PathKey, fault: Any) -> list[FieldProblem]:
    if fault is None:
        return []
    fault = mapping(fault)
    problems: list[FieldProblem] = []
    if fault.get("abort") is None and fault.get("delay") is None:
        problems.append(_error(path, "a fault needs an abort, a delay or both",
                               "add abort or delay"))
    abort = fault.get("abort")
    if abort is not None:
        abort = mapping(abort)
        problems += _percent((*path, "abort", "percentage", "value"),
                             mapping(abort.get("percentage")).get("value"), "percentage")
        if "grpcStatus" in abort:
            if abort["grpcStatus"] not in GRPC_STATUSES:
                problems.append(_error((*path, "abort", "grpcStatus"),
                                       f"unknown gRPC status {abort['grpcStatus']!r}",
                                       did_you_mean(str(abort["grpcStatus"]), GRPC_STATUSES)
                                       or "use a gRPC status name such as NOT_FOUND"))
        elif "http2Error" in abort:
            problems.append(_error((*path, "abort", "http2Error"),
                                   "HTTP/2 abort faults are not supported",
                                   "abort with httpStatus or grpcStatus"))
        elif "httpStatus" in abort:
            status = abort["httpStatus"]
            if isinstance(status, int) and not 200 <= status <= 599:
                problems.append(_error((*path, "abort", "httpStatus"),
                                       f"HTTP status {status} is not in range 200-599",
                                       "use a status from 200 to 599"))
        else:
            problems.append(_warning((*path, "abort"), "the abort has no error type",
                                     "set httpStatus or grpcStatus"))
    delay = fault.get("delay")
    if delay is not None:
        delay = mapping(delay)
        problems += _percent((*path, "delay", "percentage", "value"),
                             mapping(delay.get("percentage")).get("value"), "percentage")
        if "exponentialDelay" in delay:
            problems.append(_error((*path, "delay", "exponentialDelay"),
                                   "exponentialDelay is not supported", "use fixedDelay"))
    return problems


def _cors(path: PathKey, cors: Any) -> list[FieldProblem]:
    cors = mapping(cors)
    problems: list[FieldProblem] = []
    for i, origin in items(cors.get("allowOrigins")):
        origin = mapping(origin)
        value = next((origin[k] for k in ("exact", "prefix", "regex") if k in origin), "")
        if not value:
            problems.append(_error((*path, "allowOrigins", i), "an allowed origin needs "
                                   "exact, prefix or regex", "write the origin to allow"))
        elif "regex" in origin:
            problems += _regex((*path, "allowOrigins", i, "regex"), origin["regex"])
    for i, method in items(cors.get("allowMethods")):
        if method not in CORS_METHODS:
            problems.append(_error((*path, "allowMethods", i),
                                   f"{method!r} is not a supported HTTP method",
                                   "use GET, POST, PUT, ... or *"))
    for name in ("allowHeaders", "exposeHeaders"):
        for i, header in items(cors.get(name)):
            header = str(header)
            if header != "*" and not HEADER_NAME.match(header):
                problems.append(_error((*path, name, i), f"{header!r} is not a valid header "
                                       "name", "write a header name, or *"))
    max_age = cors.get("maxAge")
    if isinstance(max_age, str) and "." in max_age.rstrip("s"):
        problems.append(_error((*path, "maxAge"), "maxAge is accurate only to seconds",
                               "write whole seconds, e.g. 24h or 60s"))
    return problems


def _retries(path: PathKey, retries: Any) -> list[FieldProblem]:
    if retries is None:
        return []
    retries = mapping(retries)
    problems: list[FieldProblem] = []
    attempts = retries.get("attempts", 0)
    if isinstance(attempts, int) and attempts < 0:
        problems.append(_error((*path, "attempts"), "attempts cannot be negative",
                               "use 0 to disable retries"))
    if attempts == 0 and any(retries.get(k) not in (None, "") for k in (
            "perTryTimeout", "retryOn", "retryRemoteLocalities")):
        problems.append(_error((*path, "attempts"), "a retry policy is set while attempts is "
                                                    "0 (retries disabled)",
                               "set attempts, or remove the retry policy"))
    for policy in str(retries.get("retryOn") or "").split(","):
        if retries.get("retryOn") in (None, ""):
            break
        known_status = policy.isdigit() and int(policy) in {s.value for s in HTTPStatus}
        if not known_status and policy not in RETRY_ON:
            problems.append(_error((*path, "retryOn"), f"{policy!r} is not a valid retryOn "
                                                       "policy",
                                   did_you_mean(policy, RETRY_ON)
                                   or "use Envoy retry-on names or HTTP status codes"))
    return problems


def _redirect(path: PathKey, redirect: Any, matches: list[tuple[int, Any]],
              ) -> list[FieldProblem]:
    if redirect is None:
        return []
    redirect = mapping(redirect)
    if redirect.get("uri") and redirect.get("prefixRewrite"):
        return [_error(path, "a redirect may set only one of uri and prefixRewrite",
                       "keep one of them")]
    if redirect.get("prefixRewrite"):
        for _, match in matches:
            uri = mapping(match).get("uri")
            if uri is not None and "prefix" not in mapping(uri):
                return [_error((*path, "prefixRewrite"), "prefixRewrite needs every URI match "
                                                         "to be a prefix match",
                               "match uri by prefix, or redirect to a whole uri")]
    if not any(redirect.get(k) for k in ("uri", "prefixRewrite", "authority", "scheme",
                                         "port", "derivePort")):
        return [_error(path, "a redirect must set uri, authority, scheme or port",
                       "say where to redirect to")]
    code = redirect.get("redirectCode", 0)
    if isinstance(code, int) and code and not 300 <= code <= 399:
        return [_error((*path, "redirectCode"), f"{code} is not a redirect code",
                       "use a 3xx code, e.g. 301")]
    scheme = redirect.get("scheme")
    if scheme and scheme not in ("http", "https"):
        return [_error((*path, "scheme"), "the redirect scheme must be http or https",
                       "write http or https")]
    port = redirect.get("port", 0)
    if isinstance(port, int) and port > 0:
        return _port_number((*path, "port"), port)
    return []


def _direct_response(path: PathKey, response: Any) -> list[FieldProblem]:
    if response is None:
        return []
    response = mapping(response)
    problems: list[FieldProblem] = []
    body = mapping(response.get("body"))
    size = len(str(body.get("string") or "")) if "string" in body else (
        len(str(body.get("bytes") or "")) * 3 // 4)
    if size > _KB * _KB:
        problems.append(_error((*path, "body"), "a direct response body must be under 1MB",
                               "serve large bodies from a service"))
    elif size > 100 * _KB:
        problems.append(_warning((*path, "body"), "large direct responses may slow the "
                                                  "control plane", "keep the body small"))
    status = response.get("status", 0)
    if isinstance(status, int) and not 200 <= status <= 599:
        problems.append(_error((*path, "status"), f"HTTP status {status} is not in range "
                                                  "200-599", "use a status from 200 to 599"))
    return problems


def _mirrors(path: PathKey, mirrors: list[tuple[int, Any]]) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for i, mirror in mirrors:
        if mirror is None:
            problems.append(_error((*path, i), "a mirror cannot be null", "remove it"))
            continue
        mirror = mapping(mirror)
        if mirror.get("destination") is None:
            problems.append(_error((*path, i), "a mirror needs a destination",
                                   "add destination.host"))
            continue
        problems += _destination((*path, i, "destination"), mirror["destination"])
        problems += _percent((*path, i, "percentage", "value"),
                             mapping(mirror.get("percentage")).get("value"),
                             "mirror percentage")
    return problems


def _rewrite(path: PathKey, rewrite: Any) -> list[FieldProblem]:
    if rewrite is None:
        return []
    rewrite = mapping(rewrite)
    regex = rewrite.get("uriRegexRewrite")
    if rewrite.get("uri") and regex is not None:
        return [_error(path, "a rewrite may set only one of uri and uriRegexRewrite",
                       "keep one of them")]
    if not rewrite.get("uri") and regex is None and not rewrite.get("authority"):
        return [_error(path, "a rewrite must set uri, uriRegexRewrite or authority",
                       "say what to rewrite")]
    if regex is not None:
        regex = mapping(regex)
        if not regex.get("match") or not regex.get("rewrite"):
            return [_error((*path, "uriRegexRewrite"), "uriRegexRewrite needs both match and "
                                                       "rewrite", "set match and rewrite")]
        return _regex((*path, "uriRegexRewrite", "match"), regex["match"])
    return []


def _http_route(path: PathKey, http: dict[str, Any], delegate_vs: bool,
                gateway_semantics: bool) -> list[FieldProblem]:
    problems = _conflicts(path, http, delegate_vs)
    matches = items(http.get("match"))
    for i, match in matches:
        if match is not None:
            problems += _match((*path, "match", i), mapping(match))
    problems += _header_ops((*path, "headers"), http.get("headers"))
    if http.get("corsPolicy") is not None:
        problems += _cors((*path, "corsPolicy"), http["corsPolicy"])
    problems += _fault((*path, "fault"), http.get("fault"))
    if http.get("mirrorPercent") is not None:
        value = http["mirrorPercent"]
        if isinstance(value, int) and value > 100:
            problems.append(_error((*path, "mirrorPercent"), f"mirrorPercent {value} is more "
                                                             "than 100", "use 0 to 100"))
        problems.append(_warning((*path, "mirrorPercent"), "mirrorPercent is deprecated",
                                 "use mirrorPercentage: {value: N}"))
    if http.get("mirrorPercentage") is not None:
        problems += _percent((*path, "mirrorPercentage", "value"),
                             mapping(http["mirrorPercentage"]).get("value"),
                             "mirrorPercentage")
    problems += _destination((*path, "mirror"), http.get("mirror"))
    problems += _mirrors((*path, "mirrors"), items(http.get("mirrors")))
    problems += _redirect((*path, "redirect"), http.get("redirect"), matches)
    problems += _direct_response((*path, "directResponse"), http.get("directResponse"))
    problems += _retries((*path, "retries"), http.get("retries"))
    problems += _rewrite((*path, "rewrite"), http.get("rewrite"))
    problems += _authority_rewrite(path, http)
    problems += _weights((*path, "route"), items(http.get("route")), gateway_semantics,
                         http=True)
    return problems


def _l4_match(path: PathKey, match: Any) -> list[FieldProblem]:
    if match is None:
        return [_error(path, "a match may not be null", "remove the empty entry")]
    match = mapping(match)
    problems: list[FieldProblem] = []
    for i, subnet in items(match.get("destinationSubnets")):
        problems += check_cidr((*path, "destinationSubnets", i), subnet)
    if match.get("port"):  # 0 is unset
        problems += _port_number((*path, "port"), match["port"])
    problems += label_problems((*path, "sourceLabels"), match.get("sourceLabels"))
    problems += gateway_name_problems((*path, "gateways"), match.get("gateways"))
    return problems


def _sni_host(path: PathKey, sni: str, hosts: list[str], bound_to_gateway: bool,
              ) -> list[FieldProblem]:
    problem = (gateway_bound_domain_problem(True, sni) if bound_to_gateway
               else wildcard_domain_problem(sni))
    if problem:
        if is_ip(sni):
            return [_warning(path, f"an IP address ({sni!r}) as SNI goes against the SNI spec "
                                   "and most clients do not send it", "match on a host name")]
        return [_error(path, problem, "write a DNS name, optionally starting with '*.'")]
    if any(host_subset_of(sni, host) for host in hosts):
        return []
    return [_error(path, f"SNI host {sni!r} is not covered by any of the VirtualService's "
                         f"hosts {hosts}", "match SNI names within the hosts")]


def _tls_route(path: PathKey, tls: dict[str, Any], hosts: list[str], bound_to_gateway: bool,
               gateway_semantics: bool) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    matches = items(tls.get("match"))
    if not matches:
        problems.append(_error((*path, "match"), "a TLS route needs at least one match",
                               "match on sniHosts"))
    for i, match in matches:
        here = (*path, "match", i)
        if match is None:
            problems.append(_error(here, "a TLS match may not be null", "remove it"))
            continue
        sni_hosts = items(mapping(match).get("sniHosts"))
        if not sni_hosts:
            problems.append(_error(here, "a TLS match needs at least one SNI host",
                                   "add sniHosts"))
        for j, sni in sni_hosts:
            problems += _sni_host((*here, "sniHosts", j), str(sni), hosts, bound_to_gateway)
        problems += _l4_match(here, match)
    routes = items(tls.get("route"))
    if not routes:
        problems.append(_error((*path, "route"), "a TLS route needs a route",
                               "add a route with a destination"))
    problems += _weights((*path, "route"), routes, gateway_semantics, http=False)
    return problems


def _tcp_route(path: PathKey, tcp: dict[str, Any], gateway_semantics: bool,
               ) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    for i, match in items(tcp.get("match")):
        problems += _l4_match((*path, "match", i), match)
    routes = items(tcp.get("route"))
    if not routes:
        problems.append(_error((*path, "route"), "a TCP route needs a route",
                               "add a route with a destination"))
    problems += _weights((*path, "route"), routes, gateway_semantics, http=False)
    return problems


def _hosts(spec: dict[str, Any], applies_to_gateway: bool, applies_to_mesh: bool,
           ) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    hosts = [(i, str(h)) for i, h in items(spec.get("hosts"))]
    sni = any(mapping(m).get("sniHosts") for _, t in items(spec.get("tls"))
              for _, m in items(mapping(t).get("match")))
    all_valid = True
    for i, host in hosts:
        problem = (gateway_bound_domain_problem(sni, host) if applies_to_gateway
                   else wildcard_domain_problem(host))
        if problem:
            if not is_ip(host):
                problems.append(_error(("spec", "hosts", i), problem,
                                       "write a DNS name, optionally starting with '*.'"))
                all_valid = False
        elif applies_to_mesh and host == "*":
            problems.append(_error(("spec", "hosts", i), "host * is not allowed for a "
                                                         "VirtualService that applies to the "
                                                         "mesh", "name the hosts, or bind the "
                                                                 "VirtualService to gateways"))
            all_valid = False
    if all_valid:
        for n, (_, a) in enumerate(hosts):
            for j, b in hosts[n + 1:]:
                if host_matches(a, b):
                    problems.append(_error(("spec", "hosts", j),
                                           f"duplicate hosts in the VirtualService: {a} and "
                                           f"{b}", "list each host once; a wildcard covers "
                                                   "the names below it"))
    return problems


def check_virtual_service(spec: dict[str, Any], metadata: dict[str, Any],
                          ) -> list[FieldProblem]:
    problems: list[FieldProblem] = []
    annotations = mapping(metadata.get("annotations"))
    gateway_semantics = annotations.get(ROUTE_SEMANTICS) == "gateway"
    hosts = [str(h) for _, h in items(spec.get("hosts"))]
    delegate_vs = not hosts
    if delegate_vs:
        for name in ("gateways", "tls", "tcp"):
            if spec.get(name):
                problems.append(_error(("spec", name), f"a delegate VirtualService (no hosts) "
                                                       f"cannot set {name}",
                                       f"add hosts, or remove {name}"))
    gateways = [str(g) for _, g in items(spec.get("gateways"))]
    applies_to_gateway = bool(gateways) and MESH_GATEWAY not in gateways
    applies_to_mesh = not applies_to_gateway
    if gateways:
        problems += gateway_name_problems(("spec", "gateways"), spec.get("gateways"),
                                          gateway_semantics)
    if not applies_to_gateway:
        for i, http in items(spec.get("http")):
            for j, match in items(mapping(http).get("match")):
                for field in ("headers", "withoutHeaders"):
                    for key in mapping(mapping(match).get(field)):
                        if is_jwt_claim_route(str(key)):
                            problems.append(_error(
                                ("spec", "http", i, "match", j, field, key),
                                "routing on a JWT claim works only on gateways",
                                "bind the VirtualService to a gateway (spec.gateways)"))
    problems += _hosts(spec, applies_to_gateway, applies_to_mesh)
    if not any(spec.get(k) for k in ("http", "tcp", "tls")):
        problems.append(_error(("spec",), "http, tcp or tls must be provided",
                               "add at least one http, tcp or tls route"))
    for i, http in items(spec.get("http")):
        if http is None:
            problems.append(_error(("spec", "http", i), "an http route may not be null",
                                   "remove the empty entry"))
            continue
        problems += _http_route(("spec", "http", i), mapping(http), delegate_vs,
                                gateway_semantics)
    for i, tls in items(spec.get("tls")):
        if tls is not None:
            problems += _tls_route(("spec", "tls", i), mapping(tls), hosts, applies_to_gateway,
                                   gateway_semantics)
    for i, tcp in items(spec.get("tcp")):
        if tcp is not None:
            problems += _tcp_route(("spec", "tcp", i), mapping(tcp), gateway_semantics)
    problems += export_to_problems(("spec", "exportTo"), str(metadata.get("namespace") or
                                                             "default"), spec.get("exportTo"))
    problems += unreachable_rule_warnings(spec)
    return problems
