"""The JSON questions `heddle describe` and `heddle explain` ask (of the control plane's
debug API, or of a snapshot loaded from files) and their answers: (HTTP status, body)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from heddle.explain.describe import describe
from heddle.explain.subjects import NotFound, find_service, services_of, workload_named
from heddle.explain.traffic import Call
from heddle.explain.why import explain_entry, explain_request
from heddle.model.snapshot import MeshSnapshot

Answer = tuple[int, dict[str, Any]]


def describe_answer(snapshot: MeshSnapshot, name: str, namespace: str = "default") -> Answer:
    try:
        return 200, describe(snapshot, name, namespace or "default").to_json()
    except NotFound as err:
        return 404, {"error": str(err)}


def _call(request: dict[str, Any]) -> Call:
    host = str(request.get("host") or "")
    if not host:
        raise ValueError("the request needs a host (--host)")
    port = request.get("port")
    if not port:  # the service's first port, as a client names a service without one
        port = 80
    headers = request.get("headers") or {}
    if not isinstance(headers, dict):
        raise ValueError("headers must be a mapping of name to value")
    return Call(host=host, port=int(port), path=str(request.get("path") or "/"),
                method=str(request.get("method") or "GET").upper(),
                headers={str(k): str(v) for k, v in headers.items()})


def explain_answer(snapshot: MeshSnapshot, question: dict[str, Any]) -> Answer:
    """`{"workload", "namespace", "entry": {access log fields}}`: why that logged request
    failed; `{"workload", "namespace", "request": {method, host, port, path, headers},
    "source"}`: what would happen to the request, sent by `source` to `workload` (with
    no source: sent by `workload` itself)."""
    namespace = str(question.get("namespace") or "default")
    try:
        workload = workload_named(snapshot, str(question.get("workload") or ""), namespace)
        entry = question.get("entry")
        if isinstance(entry, dict):
            return 200, explain_entry(snapshot, workload,
                                      {str(k): str(v) for k, v in entry.items()}).to_json()
        request = question.get("request")
        if not isinstance(request, dict):
            return 400, {"error": "ask about an access log entry or a request"}
        if question.get("source") and not request.get("host"):
            # A request to the workload: addressed to the first service it serves.
            served = services_of(snapshot, workload)
            if not served:
                raise ValueError(f"{workload.name} serves no service; name one with --host")
            request = {**request, "host": served[0].hostname}
        call = _call(request)
        if not request.get("port"):
            call = _with_service_port(snapshot, call, namespace)
        if question.get("source"):
            source = workload_named(snapshot, str(question["source"]), namespace)
            return 200, explain_request(snapshot, source, call, workload).to_json()
        return 200, explain_request(snapshot, workload, call).to_json()
    except NotFound as err:
        return 404, {"error": str(err)}
    except ValueError as err:
        return 400, {"error": str(err)}


def _with_service_port(snapshot: MeshSnapshot, call: Call, namespace: str) -> Call:
    """A host that names a service and no port: the service's first port."""
    service = find_service(snapshot, call.host, namespace)
    if service is None or not service.ports or service.port(80) is not None:
        return call
    return replace(call, port=service.ports[0].number)
