"""The scenario tables, ported as data from the upstream Go tests (`scenarios/*.yaml`, one
file per scenario, fields named as the Go structs' in lowerCamelCase), and their loader.

A scenario names its manifests (relative to the corpus's conformance folder), the Gateway
its requests go to, the routes that must be Accepted before any is sent, the status
conditions it expects, and its cases: each an `http.ExpectedResponse` of the upstream suite,
or a `grpc.ExpectedResponse` (a case naming `echoRequest`, `echoTwoRequest` or
`echoThreeRequest`: one call of the gRPC echo service). `skip` says why a scenario is not run
here. A `mesh` (GAMMA) scenario names no Gateway: its cases are sent from a pod inside the
mesh, through that pod's sidecar.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SCENARIOS = Path(__file__).with_name("scenarios")


class ScenarioError(ValueError):
    """A scenario file that does not say what the runner needs."""


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in (value or {}).items())


@dataclass(frozen=True)
class Request:
    host: str = ""
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    unfollow_redirect: bool = False
    protocol: str = "HTTP"  # or HTTPS; H2C (HTTP/2 prior knowledge), H2 (over TLS), WS
    body: str = ""


@dataclass(frozen=True)
class ExpectedRequest:
    host: str = ""
    method: str = "GET"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    absent_headers: tuple[str, ...] = ()
    # Not written: the request itself, as the upstream's gateway runner assumes (its mesh
    # client then checks no request header).
    implied: bool = False


@dataclass(frozen=True)
class Response:
    status_codes: tuple[int, ...] = (200,)
    headers: tuple[tuple[str, str], ...] = ()
    valid_header_values: tuple[tuple[str, tuple[str, ...]], ...] = ()
    absent_headers: tuple[str, ...] = ()
    ignore_whitespace: bool = False


@dataclass(frozen=True)
class Redirect:
    scheme: str = ""
    host: str = ""
    port: str = ""
    path: str = ""


GRPC_METHODS = {"echoRequest": "Echo", "echoTwoRequest": "EchoTwo",
                "echoThreeRequest": "EchoThree"}
GRPC_ECHO_SERVICE = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"
# The gRPC status codes by their Go names (codes.Code), as the tables write them.
GRPC_CODES = {"OK": 0, "Canceled": 1, "Unknown": 2, "InvalidArgument": 3,
              "DeadlineExceeded": 4, "NotFound": 5, "AlreadyExists": 6, "PermissionDenied": 7,
              "ResourceExhausted": 8, "FailedPrecondition": 9, "Aborted": 10,
              "OutOfRange": 11, "Unimplemented": 12, "Internal": 13, "Unavailable": 14,
              "DataLoss": 15, "Unauthenticated": 16}


@dataclass(frozen=True)
class Rpc:
    """A gRPC case's call: the echo service's method, the :authority (the gateway's address
    when empty) and the outgoing metadata; the status code it must end with."""

    method: str  # Echo, EchoTwo, EchoThree
    authority: str = ""
    metadata: tuple[tuple[str, str], ...] = ()
    code: str = "OK"


@dataclass(frozen=True)
class Case:
    name: str
    request: Request
    expected_request: ExpectedRequest
    response: Response
    backend: str = ""
    namespace: str = ""
    redirect: Redirect | None = None
    backend_set_response_headers: tuple[tuple[str, str], ...] = ()
    mirrored_to: tuple[str, ...] = ()  # ns/name of each mirror backend
    gateway: str = ""  # ns/name; the scenario's when empty
    port: int | None = None  # the gateway listener's; its first HTTP(S) listener's when unset
    server_name: str = ""  # SNI and the name the certificate is checked for (HTTPS)
    expect_failure: bool = False  # MakeRequestAndExpectFailure: anything but 200
    # Resources ("Kind ns/name") the scenario deletes before this case, as some upstream
    # tests do mid-way; this case and the ones after it run once they are gone.
    delete_before: tuple[str, ...] = ()
    # weight.TestWeightedDistribution: once the case passes, the share of requests each
    # backend answers must be within 5 points of these (500 requests, up to 10 tries).
    weights: tuple[tuple[str, float], ...] = ()
    rpc: Rpc | None = None  # a gRPC case: `request` and `response` are then unused
    # GAMMA: the namespace of the pod the request is sent from (app=echo,version=v1, as the
    # upstream's MeshAppEchoV1); the mesh namespace when empty.
    client_namespace: str = ""
    # echo-basic's retry simulation (`responseCode`, `succeedAfter`, `delayRetry`): query
    # values sent with a fresh `uuid` on every attempt, so each counts its own failures.
    retry_simulation: tuple[tuple[str, str], ...] = ()
    # Percentage mirrors (ns/name, percent): once the case passes, 500 requests with a fresh
    # request id, and each mirror's share of them within 3 binomial deviations (5 tries).
    mirror_percents: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Condition:
    """A status condition the scenario expects: on a route's parent (`parent` ns/name), or on
    a Gateway (`listener` empty: the Gateway's own)."""

    kind: str  # HTTPRoute, GRPCRoute, Gateway
    name: str  # ns/name
    type: str
    status: str
    reason: str = ""
    parent: str = ""
    listener: str = ""
    attached_routes: int | None = None  # a listener's attachedRoutes


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    features: tuple[str, ...]
    manifests: tuple[str, ...]
    gateway: str
    routes: tuple[tuple[str, str], ...]  # (route ns/name, its parent ns/name) to be Accepted
    cases: tuple[Case, ...]
    conditions: tuple[Condition, ...] = ()
    skip: str = ""
    provisional: bool = False
    mesh: bool = False
    file: str = ""
    route_kind: str = "HTTPRoute"
    extra: Mapping[str, Any] = field(default_factory=dict)


def _request(raw: Mapping[str, Any]) -> Request:
    return Request(host=str(raw.get("host", "")), method=str(raw.get("method") or "GET"),
                   path=str(raw.get("path") or "/"), headers=_pairs(raw.get("headers")),
                   unfollow_redirect=bool(raw.get("unfollowRedirect", False)),
                   protocol=str(raw.get("protocol") or "HTTP"), body=str(raw.get("body", "")))


def _grpc_case(raw: Mapping[str, Any], index: int, where: str) -> Case:
    methods = [GRPC_METHODS[k] for k in GRPC_METHODS if k in raw]
    if len(methods) != 1:  # validateExpectedResponse
        raise ScenarioError(f"{where}: case {index} names {len(methods)} gRPC requests, "
                            "not one")
    meta = raw.get("requestMetadata") or {}
    code = str((raw.get("response") or {}).get("code") or "OK")
    if code not in GRPC_CODES:
        raise ScenarioError(f"{where}: case {index}: {code!r} is no gRPC status code")
    rpc = Rpc(method=methods[0], authority=str(meta.get("authority") or ""),
              metadata=_pairs(meta.get("metadata")), code=code)
    name = str(raw.get("testCaseName") or "")
    if not name:  # GetTestCaseName
        headers = ",".join(f"{k}:{v}" for k, v in sorted(rpc.metadata))
        label = f"{index} request to '{rpc.authority}/{GRPC_ECHO_SERVICE}/{rpc.method}'" + (
            f" with headers '{{{headers}}}'" if rpc.metadata else "")
        name = (f"{label} should go to {raw['backend']}" if raw.get("backend") else
                f"{label} should receive a {code} ({GRPC_CODES[code]})")
    return Case(name=name, request=Request(), expected_request=ExpectedRequest(),
                response=Response(), backend=str(raw.get("backend", "")),
                namespace=str(raw.get("namespace", "")), gateway=str(raw.get("gateway", "")),
                port=int(raw["port"]) if raw.get("port") else None,
                weights=tuple((str(k), float(v)) for k, v in (raw.get("weights") or {}).items()),
                rpc=rpc)


def _case(raw: Mapping[str, Any], index: int, where: str) -> Case:
    if isinstance(raw, Mapping) and any(k in raw for k in GRPC_METHODS):
        return _grpc_case(raw, index, where)
    if not isinstance(raw, Mapping) or "request" not in raw:
        raise ScenarioError(f"{where}: case {index} has no request")
    request = _request(raw["request"])
    exp_raw = raw.get("expectedRequest")
    if isinstance(exp_raw, Mapping) and isinstance(exp_raw.get("request"), Mapping):
        # Go's ExpectedRequest embeds a Request: its fields sit under `request`
        exp_raw = {**exp_raw["request"], **{k: v for k, v in exp_raw.items() if k != "request"}}
    if exp_raw is None:
        expected = ExpectedRequest(request.host, request.method, request.path, request.headers,
                                   implied=True)
    else:
        expected = ExpectedRequest(
            host=str(exp_raw.get("host", "")), method=str(exp_raw.get("method") or "GET"),
            path=str(exp_raw.get("path") or ""),  # Go's zero value, as the upstream compares
            headers=_pairs(exp_raw.get("headers")),
            absent_headers=tuple(exp_raw.get("absentHeaders") or ()))
    resp = raw.get("response") or {}
    codes = [int(c) for c in resp.get("statusCodes") or []]
    if resp.get("statusCode") and int(resp["statusCode"]) not in codes:
        codes.append(int(resp["statusCode"]))
    response = Response(
        status_codes=tuple(codes or [200]), headers=_pairs(resp.get("headers")),
        valid_header_values=tuple((str(k), tuple(map(str, v))) for k, v in
                                  (resp.get("validHeaderValues") or {}).items()),
        absent_headers=tuple(resp.get("absentHeaders") or ()),
        ignore_whitespace=bool(resp.get("ignoreWhitespace", False)))
    redirect_raw = raw.get("redirectRequest")
    redirect = None if redirect_raw is None else Redirect(
        **{k: str(redirect_raw.get(k, "")) for k in ("scheme", "host", "port", "path")})
    def mirror_name(entry: Mapping[str, Any]) -> str:
        ref = entry.get("backendRef", entry)
        return f"{ref.get('namespace') or raw.get('namespace', '')}/{ref['name']}"

    mirroring = list(raw.get("mirroredTo") or ())
    mirrors = tuple(mirror_name(m) for m in mirroring if m.get("percent") is None)
    percents = tuple((mirror_name(m), float(m["percent"])) for m in mirroring
                     if m.get("percent") is not None)
    name = str(raw.get("testCaseName") or "")
    if not name:
        label = f"{index} request to '{request.host}{request.path}'" + (
            " with headers" if request.headers else "")
        name = (f"{label} should go to {raw['backend']}" if raw.get("backend") else
                f"{label} should receive one of {list(response.status_codes)}")
    return Case(
        name=name, request=request, expected_request=expected, response=response,
        backend=str(raw.get("backend", "")), namespace=str(raw.get("namespace", "")),
        redirect=redirect,
        backend_set_response_headers=_pairs(raw.get("backendSetResponseHeaders")),
        mirrored_to=mirrors, gateway=str(raw.get("gateway", "")),
        port=int(raw["port"]) if raw.get("port") else None,
        server_name=str(raw.get("serverName", "")),
        expect_failure=bool(raw.get("expectFailure", False)),
        delete_before=tuple(map(str, raw.get("deleteBefore") or ())),
        weights=tuple((str(k), float(v)) for k, v in (raw.get("weights") or {}).items()),
        client_namespace=str(raw.get("clientNamespace", "")),
        retry_simulation=_pairs(raw.get("retrySimulation")), mirror_percents=percents)


def _condition(raw: Mapping[str, Any]) -> Condition:
    attached = raw.get("attachedRoutes")
    return Condition(kind=str(raw["kind"]), name=str(raw["name"]), type=str(raw["type"]),
                     status=str(raw.get("status", "True")), reason=str(raw.get("reason", "")),
                     parent=str(raw.get("parent", "")), listener=str(raw.get("listener", "")),
                     attached_routes=int(attached) if attached is not None else None)


def _route(raw: Any, gateway: str) -> tuple[str, str]:
    if isinstance(raw, Mapping):
        return str(raw["name"]), str(raw.get("parent") or gateway)
    return str(raw), gateway


def load_scenario(path: Path) -> Scenario:
    """One scenario file; a scenario that would check nothing (no case, no condition, no
    `skip`) is an error, so that none passes by having nothing to fail."""
    where = path.name
    try:
        raw = yaml.safe_load(path.read_text())
        if not (raw.get("cases") or raw.get("conditions") or raw.get("skip")):
            raise ScenarioError(f"{where}: no cases, no conditions and no skip reason")
        scenario = Scenario(
            name=str(raw["name"]), description=str(raw.get("description", "")),
            features=tuple(map(str, raw.get("features") or ())),
            manifests=tuple(map(str, raw.get("manifests") or ())),
            gateway=str(raw.get("gateway", "")),
            routes=tuple(_route(r, str(raw.get("gateway", ""))) for r in raw.get("routes") or ()),
            cases=tuple(_case(c, i, where) for i, c in enumerate(raw.get("cases") or ())),
            conditions=tuple(_condition(c) for c in raw.get("conditions") or ()),
            skip=str(raw.get("skip", "")), provisional=bool(raw.get("provisional", False)),
            mesh=bool(raw.get("mesh", False)), file=where,
            route_kind=str(raw.get("routeKind", "HTTPRoute")),
            extra=dict(raw.get("extra") or {}))
        for case in scenario.cases:
            if not (case.gateway or scenario.gateway or scenario.mesh):
                raise ScenarioError(f"{where}: case {case.name!r} names no gateway")
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as err:
        if isinstance(err, ScenarioError):
            raise
        raise ScenarioError(f"{where}: {err}") from err
    return scenario


def load_all(folder: Path = SCENARIOS) -> list[Scenario]:
    return [load_scenario(p) for p in sorted(folder.glob("*.yaml"))]
