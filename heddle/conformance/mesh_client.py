"""GAMMA cases, sent from a pod inside the mesh as the upstream's MeshPod sends them.

Upstream execs the echo client in the `app=echo,version=v1` pod of the mesh namespace (or of
the consumer namespace) and reads the echo's answer; here the request leaves that pod's own
data path: it goes to the pod's sidecar as its application's requests do, to the outbound
HTTP proxy on the pod IP's port 15001 (the `http_proxy` its agent sets), so the routes whose
parentRef is a Service (GAMMA) decide where it goes. The URL's host is the request's `host`
("echo" when empty, `:80` dropped as the upstream's CalculateHost does), its headers the
case's (a `Host` among them overrides the header, not where the sidecar sends: as a client
connecting to the URL's Service address). `{podIP:SELECTOR}` in a host stands for the address
of the mesh namespace's first pod with those labels (`app=echo,version=v2`).

The comparison is the MeshPod's (`compare_mesh`), which checks less than the gateway
runner's: the status, the request headers the backend saw when an expected request is
written, the absent ones, the response headers, and the pod by the backend's name as prefix.
Where a redirect is expected its Location is checked too, by the gateway runner's rules:
upstream's mesh client does not, so Heddle's check is the stricter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from types import TracebackType

import httpx

from heddle.conformance.compare import REDIRECTS, Captured, compare
from heddle.conformance.mesh_base import MESH_NAMESPACE
from heddle.conformance.scenarios import Case
from heddle.local.state import MeshState, WorkloadState

CLIENT_LABELS = {"app": "echo", "version": "v1"}  # MeshAppEchoV1
DEFAULT_HOST = "echo"
OUTBOUND_PROXY_PORT = 15001
REQUEST_TIMEOUT = 10.0
_POD_IP = re.compile(r"\{podIP:([^}]*)\}")


class NoClientPod(LookupError):
    pass


def _selector(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    return {k.strip(): v.strip() for k, v in pairs}


def find_pod(state: MeshState, namespace: str, labels: Mapping[str, str]) -> WorkloadState:
    """The first (by name) sidecar workload of `namespace` with `labels`."""
    found = sorted((w for w in state.workloads.values()
                    if w.namespace == namespace and w.proxy_type == "sidecar"
                    and all(w.labels.get(k) == v for k, v in labels.items())),
                   key=lambda w: w.name)
    if not found:
        wanted = ",".join(f"{k}={v}" for k, v in labels.items())
        raise NoClientPod(f"no pod {wanted} runs in namespace {namespace}")
    return found[0]


def authority(host: str, state: MeshState) -> str:
    """The URL's host[:port]: pod IP placeholders filled in, `:80` dropped."""
    host = _POD_IP.sub(
        lambda m: find_pod(state, MESH_NAMESPACE, _selector(m.group(1))).address,
        host or DEFAULT_HOST)
    return host.removesuffix(":80")


class MeshSender:
    """Sends cases from one client pod through its sidecar; a connection pool to it."""

    def __init__(self, state: MeshState, namespace: str = "") -> None:
        self.state = state
        self.pod = find_pod(state, namespace or MESH_NAMESPACE, CLIENT_LABELS)
        self.client = httpx.Client(
            proxy=f"http://{self.pod.address}:{OUTBOUND_PROXY_PORT}", trust_env=False,
            timeout=REQUEST_TIMEOUT, follow_redirects=False)

    def __enter__(self) -> MeshSender:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.client.close()

    def send(self, case: Case) -> Captured:
        request = case.request
        url = f"http://{authority(request.host, self.state)}{request.path}"
        response = self.client.request(request.method, url, headers=list(request.headers),
                                       content=request.body or None)
        headers = {name.lower(): tuple(response.headers.get_list(name))
                   for name in response.headers}
        echoed = None
        if response.headers.get("content-type") == "application/json":
            try:
                body = json.loads(response.content)
                echoed = body if isinstance(body, dict) else None
            except ValueError:
                echoed = None
        return Captured(response.status_code, headers, echoed,
                        response.headers.get("location", ""), response.http_version)


def _lower(headers: object) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    if isinstance(headers, Mapping):
        for name, values in headers.items():
            vals = values if isinstance(values, list) else [values]
            found.setdefault(str(name).lower(), []).extend(str(v) for v in vals)
    return found


def compare_mesh(case: Case, got: Captured) -> str | None:
    """None when `got` meets `case` by the upstream MeshPod's rules (and its Location, when
    a redirect is expected); otherwise what differs, as the upstream says it."""
    codes = case.response.status_codes
    if got.status not in codes:
        return f"wanted status code to be one of {list(codes)}, got {got.status}"
    want = case.expected_request
    seen = _lower((got.echoed or {}).get("headers"))
    if want.headers and not want.implied:
        if got.echoed is None:
            return f"no headers captured, expected {len(want.headers)}"
        for name, value in want.headers:
            if name.lower() not in seen:
                return f"expected {name} header to be set, actual headers: {seen}"
            actual = ",".join(seen[name.lower()])
            if actual != value:
                return f"expected {name} header to be set to {value}, got {actual}"
    for name in want.absent_headers:
        if name.lower() in seen:
            return f"expected {name} header to not be set, got {seen[name.lower()]}"
    for name in case.response.absent_headers:
        if got.headers.get(name.lower()):
            return f"expected no header {name!r}, got {list(got.headers[name.lower()])}"
    for name, value in case.response.headers:
        values = got.headers.get(name.lower()) or ("",)
        if values[-1] != value:
            return f"expected header {name}={value}, got {values[-1]}"
    pod = str((got.echoed or {}).get("pod", ""))
    if not pod.startswith(case.backend):
        return f"expected pod name to start with {case.backend}, got {pod}"
    if case.redirect is not None and got.status in REDIRECTS:
        return compare(case, got, "http")
    return None
