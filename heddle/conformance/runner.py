"""Running the scenarios: a local mesh of the base manifests (`heddle up --detach` on a
generated directory, with its own HEDDLE_HOME, ports and /24), then per scenario its
manifests written beside them, the routes and Gateways waited for, and each case sent to the
gateway until it passes 3 times in a row (30 s at most), as the upstream runner does; a GAMMA
scenario's cases from the mesh's client pod instead (`mesh_client`).
"""

from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from heddle.conformance import certs, manifests, mesh_base, probes
from heddle.conformance.compare import Captured, compare, compare_rpc
from heddle.conformance.mesh_client import MeshSender, NoClientPod, compare_mesh
from heddle.conformance.rpc import RpcSender
from heddle.conformance.scenarios import Case, Condition, Scenario
from heddle.local.state import MeshState

GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
CONSECUTIVE = 3  # RequiredConsecutiveSuccesses
MAX_TIME_TO_CONSISTENCY = 30.0
POLL_INTERVAL = 0.1  # DefaultPollInterval
REQUEST_TIMEOUT = 10.0
STATUS_TIMEOUT = 60.0  # HTTPRouteMustHaveCondition, GatewayMustHaveCondition (180 s upstream)
PARALLEL_CASES = 8
WEIGHT_REQUESTS, WEIGHT_CONCURRENCY, WEIGHT_TRIES, WEIGHT_TOLERANCE = 500, 10, 10, 0.05
MIRROR_LOG = "Echoing back request made to {path} to client"


@dataclass(frozen=True)
class Outcome:
    scenario: str
    result: str  # pass, fail, skip
    reason: str = ""
    cases: tuple[tuple[str, str], ...] = ()  # (case, "" or why it failed)
    seconds: float = 0.0


class ScenarioFailed(Exception):
    pass


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _heddle() -> list[str]:
    return [sys.executable, "-m", "heddle"]


@dataclass
class ConformanceMesh:
    """One `heddle up` of the base manifests; `apply_scenario` swaps the scenario file."""

    corpus: Path
    workdir: Path
    subnet: str
    max_replicas: int = 1
    log: Callable[[str], None] = print
    gamma: bool = True  # run the GAMMA scenarios' pods too (`mesh_base`)
    pods: manifests.Pods = field(init=False)
    trusted: dict[str, bytes] = field(default_factory=dict, init=False)
    debug_port: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.pods = manifests.Pods(self.subnet)
        self.config_dir = self.workdir / "mesh"
        self.home = self.workdir / "home"

    @property
    def env(self) -> dict[str, str]:
        """The mesh's environment: its own HEDDLE_HOME, and this Heddle importable by the
        echo servers (they run from the mesh's directory, where a relative PYTHONPATH is not)."""
        source = str(Path(__file__).resolve().parents[2])
        paths = [str(Path(p).resolve()) for p in os.environ.get("PYTHONPATH", "").split(
            os.pathsep) if p]
        return {**os.environ, "HEDDLE_HOME": str(self.home),
                "PYTHONPATH": os.pathsep.join(dict.fromkeys([source, *paths]))}

    def heddle(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_heddle(), *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=False)

    def _convert(self, text: str, extra: list[dict[str, Any]] | None = None) -> str:
        converted = manifests.convert(text, self.pods, sys.executable,
                                      max_replicas=self.max_replicas, extra=extra or [])
        for line in converted.left_out:
            self.log(f"  left out {line}")
        return converted.text()

    def up(self, timeout: float = 240) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        secrets, self.trusted = certs.suite_secrets(datetime.datetime.now(datetime.UTC))
        base = (self.corpus / "base" / "manifests.yaml").read_text()
        if self.gamma:
            base += "\n---\n" + mesh_base.manifests(self.corpus)
        (self.config_dir / "base.yaml").write_text(
            self._convert(base, [manifests.NO_INGRESS, *secrets]))
        xds, debug, ca, join, rate_limits = free_ports(5)
        self.debug_port = debug
        out = self.heddle("up", str(self.config_dir), "--detach", "--xds-port", str(xds),
                          "--debug-port", str(debug), "--ca-port", str(ca), "--join-port",
                          str(join), "--ratelimit-port", str(rate_limits), "--timeout",
                          str(timeout), timeout=timeout + 60)
        if out.returncode != 0:
            self.down()
            raise RuntimeError(f"heddle up failed: {out.stdout}{out.stderr}")

    def down(self) -> None:
        out = self.heddle("down", timeout=120)
        if out.returncode != 0 and "no mesh" not in (out.stdout + out.stderr).lower():
            self.log(f"heddle down: {out.stdout}{out.stderr}".strip())

    def apply_scenario(self, scenario: Scenario, deleted: frozenset[str] = frozenset(),
                       update: Mapping[str, Any] | None = None) -> None:
        """Write the scenario's manifests beside the base ones, less the resources named in
        `deleted` ("Kind ns/name"), with `update`'s changes (`resource`: "Kind ns/name",
        `set`: dotted path -> value) made, as a client's patch."""
        text = "\n---\n".join((self.corpus / m).read_text() for m in scenario.manifests)
        converted = manifests.convert(text, self.pods, sys.executable,
                                      max_replicas=self.max_replicas)
        documents = [d for d in converted.documents if manifests.describe(d) not in deleted]
        if update is not None:
            documents = probes.patched(documents, str(update["resource"]),
                                       dict(update["set"]), manifests.describe)
        path = self.config_dir / "scenario.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(manifests.Converted(documents, []).text())
        tmp.rename(path)

    def clear_scenario(self) -> None:
        (self.config_dir / "scenario.yaml").unlink(missing_ok=True)

    # What the running mesh says

    def resources(self) -> list[dict[str, Any]]:
        with httpx.Client(trust_env=False, timeout=10) as client:
            found: list[dict[str, Any]] = client.get(
                f"http://127.0.0.1:{self.debug_port}/debug/resources").json()["resources"]
        return found

    def state(self) -> MeshState:
        state = MeshState.load(self.home / "mesh")
        if state is None:
            raise RuntimeError("the mesh is not running")
        return state

    def gateway_address(self, gateway: str) -> str:
        namespace, name = gateway.split("/", 1)
        for workload in self.state().workloads.values():
            if workload.namespace == namespace and workload.labels.get(
                    GATEWAY_NAME_LABEL) == name:
                return workload.address
        raise ScenarioFailed(f"no gateway proxy runs for Gateway {gateway}")

    def app_logs(self, namespace: str, prefix: str) -> str:
        found = []
        for workload in self.state().workloads.values():
            if workload.namespace == namespace and workload.name.startswith(prefix):
                log = Path(workload.workdir) / "app.log"
                if log.exists():
                    found.append(log.read_text(errors="replace"))
        return "\n".join(found)


def _object(resources: list[dict[str, Any]], kind: str, ref: str) -> dict[str, Any] | None:
    namespace, name = ref.split("/", 1)
    for entry in resources:
        key = entry["key"]
        if key["kind"] == kind and key["namespace"] == namespace and key["name"] == name:
            obj: dict[str, Any] = entry["object"]
            return obj
    return None


def _conditions(block: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    return {str(c.get("type")): c for c in (block or {}).get("conditions") or []}


def check_condition(resources: list[dict[str, Any]], want: Condition) -> str | None:
    """None when the mesh's status has the condition; otherwise what it has instead."""
    obj = _object(resources, want.kind, want.name)
    if obj is None:
        return f"{want.kind} {want.name} not found"
    status = obj.get("status") or {}
    if want.kind == "Gateway":
        block: Mapping[str, Any] | None = status
        if want.listener:
            listeners = [lst for lst in status.get("listeners") or []
                         if want.listener in ("*", lst.get("name"))]
            if not listeners:
                return f"Gateway {want.name} has no status for listener {want.listener}"
            for listener in listeners:
                if want.attached_routes is not None and \
                        listener.get("attachedRoutes") != want.attached_routes:
                    return (f"listener {listener.get('name')} of Gateway {want.name}: "
                            f"attachedRoutes {listener.get('attachedRoutes')}, expected "
                            f"{want.attached_routes}")
            block = listeners[0]
    else:
        block = next((p for p in status.get("parents") or []
                      if _parent_ref(p, want.name) == want.parent), None)
        if block is None:
            return f"{want.kind} {want.name} has no status for parent {want.parent}"
    if not want.type:
        return None
    found = _conditions(block).get(want.type)
    if found is None:
        return f"{want.kind} {want.name}: no {want.type} condition"
    if str(found.get("status")) != want.status or (want.reason and
                                                   found.get("reason") != want.reason):
        return (f"{want.kind} {want.name}: {want.type} is {found.get('status')} "
                f"({found.get('reason')}), expected {want.status}"
                + (f" ({want.reason})" if want.reason else ""))
    return None


def _parent_ref(parent: Mapping[str, Any], route: str) -> str:
    ref = parent.get("parentRef") or {}
    return f"{ref.get('namespace') or route.split('/', 1)[0]}/{ref.get('name')}"


def route_accepted(kind: str, route: str, gateway: str) -> Condition:
    return Condition(kind, route, "Accepted", "True", parent=gateway)


def wait_for(check: Callable[[], str | None], timeout: float, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    why: str | None = "not checked"
    while time.monotonic() < deadline:
        try:
            why = check()
        except (httpx.HTTPError, OSError, ValueError, ScenarioFailed) as err:
            why = str(err)
        if why is None:
            return
        time.sleep(interval)
    raise ScenarioFailed(why or "timed out")


def _listener_port(resources: list[dict[str, Any]], gateway: str, protocol: str) -> int:
    obj = _object(resources, "Gateway", gateway)
    if obj is None:
        raise ScenarioFailed(f"Gateway {gateway} not found")
    listeners = (obj.get("spec") or {}).get("listeners") or []
    if not listeners:
        raise ScenarioFailed(f"Gateway {gateway} has no listeners")
    for listener in listeners:  # the upstream takes the first; one of the request's scheme
        if str(listener.get("protocol")) == protocol:
            return int(listener["port"])
    return int(listeners[0]["port"])


def _accepts(address: str, port: int) -> str | None:
    try:
        with socket.create_connection((address, port), timeout=1):
            return None
    except OSError as err:
        return f"the gateway does not accept connections on {address}:{port}: {err}"


def go_name(pattern: str, host: str) -> bool:
    """Go's crypto/x509 name check: case-insensitive, a `*` only as the whole first label,
    standing for exactly one label."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if not pattern.startswith("*."):
        return pattern == host
    first, dot, rest = host.partition(".")
    return bool(first) and bool(dot) and rest == pattern[2:]


class Sender:
    """One round trip, captured as the upstream roundtripper does."""

    def __init__(self, trusted: Mapping[str, bytes]) -> None:
        self.plain = httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT,
                                  follow_redirects=False)
        context = ssl.create_default_context()
        for pem in trusted.values():  # the suite's certificates, as the upstream trusts them
            context.load_verify_locations(cadata=pem.decode())
        # The chain is verified here, the name after the handshake by Go's rules (`go_name`):
        # OpenSSL refuses the suite's `*.org`, which Go's client accepts.
        context.check_hostname = False
        self.context = context
        # A TLS client per server name: a pooled connection is reused by address alone, and
        # one made with another SNI would reach that name's filter chain on the gateway
        # (the upstream roundtripper makes a transport, so a connection, per request).
        self.tls: dict[str, httpx.Client] = {}
        self.rpc = RpcSender(REQUEST_TIMEOUT)
        self.h2c: httpx.Client | None = None

    def tls_client(self, server_name: str) -> httpx.Client:
        client = self.tls.get(server_name)
        if client is None:
            client = self.tls[server_name] = httpx.Client(
                trust_env=False, timeout=REQUEST_TIMEOUT, verify=self.context,
                follow_redirects=False)
        return client

    def h2c_client(self) -> httpx.Client:
        """HTTP/2 with prior knowledge on plaintext (the upstream's H2C_PRIOR_KNOWLEDGE)."""
        if self.h2c is None:
            self.h2c = httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT,
                                    follow_redirects=False, http1=False, http2=True)
        return self.h2c

    def close(self) -> None:
        self.plain.close()
        if self.h2c is not None:
            self.h2c.close()
        for client in self.tls.values():
            client.close()
        self.tls.clear()
        self.rpc.close()

    def send(self, case: Case, address: str, port: int) -> Captured:
        if case.request.protocol != "H2":
            return self._send(case, address, port, None)
        # HTTP/2 over TLS: a connection per request, as the upstream's transport per request
        # (an HTTP/2 connection is what a client reuses across names; 421 answers that).
        with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT, verify=self.context,
                          follow_redirects=False, http1=False, http2=True) as client:
            return self._send(case, address, port, client)

    def _send(self, case: Case, address: str, port: int, client: httpx.Client | None,
              ) -> Captured:
        protocol = case.request.protocol
        https = protocol in ("HTTPS", "H2")
        scheme = "https" if https else "http"
        default = 443 if https else 80
        authority = address if port == default else f"{address}:{port}"
        headers = [(k, v) for k, v in case.request.headers]
        headers.append(("X-Echo-Set-Header", ",".join(
            f"{k}:{v}" for k, v in case.backend_set_response_headers)))
        if case.request.host:
            headers.append(("Host", case.request.host))
        server_name = case.server_name or case.request.host
        if client is None:
            client = (self.tls_client(server_name) if https
                      else self.h2c_client() if protocol == "H2C" else self.plain)
        extensions = {}
        if https:
            extensions["sni_hostname"] = server_name
        request = client.build_request(case.request.method, f"{scheme}://{authority}"
                                       f"{case.request.path}", headers=headers,
                                       content=case.request.body or None,
                                       extensions=extensions)
        response = client.send(request)
        if https:
            stream = response.extensions.get("network_stream")
            tls = stream.get_extra_info("ssl_object") if stream is not None else None
            cert = tls.getpeercert() if tls is not None else None
            names = [v for k, v in (cert or {}).get("subjectAltName", ()) if k == "DNS"]
            wanted = case.server_name or case.request.host
            if not any(go_name(pattern, wanted) for pattern in names):
                response.close()
                raise httpx.ConnectError(f"certificate is valid for {names}, not {wanted!r}")
        by_name: dict[str, tuple[str, ...]] = {}
        for name in response.headers:
            by_name[name.lower()] = tuple(response.headers.get_list(name))
        echoed = None
        if response.headers.get("content-type") == "application/json":
            try:
                body = json.loads(response.content)
                echoed = body if isinstance(body, dict) else None
            except ValueError:
                echoed = None
        return Captured(response.status_code, by_name, echoed,
                        response.headers.get("location", ""), response.http_version)


def converge(attempt: Callable[[], str | None], *, consecutive: int = CONSECUTIVE,
             timeout: float = MAX_TIME_TO_CONSISTENCY, interval: float = POLL_INTERVAL,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> str | None:
    """AwaitConvergence: None once `attempt` passes `consecutive` times in a row within
    `timeout`; otherwise the last failure. A failure waits `interval`, a pass does not."""
    start = clock()
    passes, attempts, last = 0, 0, "no attempt"
    while clock() - start < timeout:
        why = attempt()
        attempts += 1
        if why is None:
            passes += 1
            if passes >= consecutive:
                return None
            continue
        passes, last = 0, why
        sleep(interval)
    return f"timeout after {attempts} attempts ({passes}/{consecutive} passes): {last}"


def _listener_protocol(request_protocol: str) -> str:
    """The listener protocol a request's goes to: HTTP/2 over TLS to HTTPS, h2c and
    WebSocket to HTTP."""
    return "HTTPS" if request_protocol in ("HTTPS", "H2") else "HTTP"


def run_case(mesh: ConformanceMesh, sender: Sender, scenario: Scenario, case: Case,
             resources: list[dict[str, Any]]) -> str | None:
    if scenario.mesh:
        return run_mesh_case(mesh, case)
    gateway = case.gateway or scenario.gateway
    protocol = case.request.protocol
    listener = _listener_protocol(protocol)
    port = case.port or _listener_port(resources, gateway, listener)
    if protocol == "WS":
        return converge(lambda: probes.websocket_echo(
            mesh.gateway_address(gateway), port, case.request.path, case.request.host,
            f"ws://gateway/{scenario.name}/{case.name}"))
    if case.rpc is not None:
        return run_rpc_case(mesh, sender.rpc, case, gateway, port)

    def once() -> str | None:
        # a retry simulation's attempt is a new request: the backend counts it from nothing
        sent = probes.with_retry_id(case, str(uuid.uuid4())) if case.retry_simulation \
            else case
        try:
            got = sender.send(sent, mesh.gateway_address(gateway), port)
        except httpx.HTTPError as err:
            return f"request failed: {type(err).__name__}: {err}"
        except ScenarioFailed as err:
            return str(err)
        if case.expect_failure:
            if got.status in (408, 504):
                return f"timeout status {got.status}"
            return "expected a failure, got 200" if got.status == 200 else None
        return compare(sent, got, "https" if listener == "HTTPS" else "http")

    def pod() -> str:
        got = sender.send(case, mesh.gateway_address(gateway), port)
        why = compare(case, got)
        if why is not None:
            raise ScenarioFailed(f"response expectation failed: {why}")
        return str((got.echoed or {}).get("pod", ""))

    why = converge(once)
    if why is None and case.mirror_percents:
        return percentage_mirrored(mesh, lambda c: sender.send(c, mesh.gateway_address(
            gateway), port), case)
    if why is None and case.weights:
        return weighted(pod, case)
    if why is None and case.mirrored_to:
        path = case.request.path
        pattern = re.compile(re.escape(MIRROR_LOG.format(path=path)))
        for mirror in case.mirrored_to:
            namespace, name = mirror.split("/", 1)
            try:
                wait_for(partial(_mirrored, mesh, pattern, namespace, name), REQUEST_TIMEOUT,
                         0.5)
            except ScenarioFailed as err:
                return str(err)
    return why


def run_rpc_case(mesh: ConformanceMesh, sender: RpcSender, case: Case, gateway: str,
                 port: int) -> str | None:
    """grpc.MakeRequestAndExpectEventuallyConsistentResponse, then for a case with weights
    the distribution check (each sample a call that must end OK)."""
    assert case.rpc is not None
    rpc = case.rpc

    def once() -> str | None:
        return compare_rpc(case, sender.send(rpc, mesh.gateway_address(gateway), port))

    def pod() -> str:
        # AddEntropy: metadata unique to each call, so that nothing answers from a cache
        got = sender.send(rpc, mesh.gateway_address(gateway), port,
                          (("x-jitter", secrets.token_hex(8)),))
        if got.code != "OK":
            raise ScenarioFailed(f"expected OK response, got {got.code}")
        return got.pod

    why = converge(once)
    if why is None and case.weights:
        return weighted(pod, case)
    return why


def run_mesh_case(mesh: ConformanceMesh, case: Case) -> str | None:
    """A GAMMA case: sent from the client pod through its sidecar (`mesh_client`)."""
    try:
        sender = MeshSender(mesh.state(), case.client_namespace)
    except NoClientPod as err:
        return str(err)
    with sender:
        def once() -> str | None:
            try:
                return compare_mesh(case, sender.send(case))
            except httpx.HTTPError as err:
                return f"request failed: {type(err).__name__}: {err}"

        why = converge(once)
        if why is None and case.weights:
            return weighted(partial(_checked_pod, partial(sender.send, case), case, compare_mesh),
                            case)
        return why


def distribution_error(pods: list[str], weights: tuple[tuple[str, float], ...],
                       tolerance: float = WEIGHT_TOLERANCE) -> str | None:
    """The upstream's check of a traffic split: each backend's share of `pods` (the pods that
    answered, a backend's by its name's prefix) within `tolerance` of its weight, and only
    backends of a weight above 0 answering."""
    names = sorted((name for name, _ in weights), key=len, reverse=True)
    seen: dict[str, int] = {}
    for pod in pods:
        backend = next((n for n in names if pod.startswith(n)), None)
        if backend is None:
            return f"request was handled by an unexpected pod {pod!r}"
        seen[backend] = seen.get(backend, 0) + 1
    errors = []
    active = sum(1 for _, w in weights if w > 0)
    if len(seen) != active:
        errors.append(f"expected {active} backends to receive traffic, but got {len(seen)}")
    for backend, want in weights:
        got = seen.get(backend, 0) / max(len(pods), 1)
        if abs(got - want) > tolerance:
            errors.append(f"backend {backend!r} weighted traffic of {got:.3f} not within "
                          f"tolerance {want} (+/-{tolerance})")
    return "; ".join(sorted(errors)) or None


def _checked_pod(send: Callable[[], Captured], case: Case,
                 check: Callable[[Case, Captured], str | None]) -> str:
    """Send one request; the pod that answered, once the answer meets the case."""
    got = send()
    why = check(case, got)
    if why is not None:
        raise ScenarioFailed(f"response expectation failed: {why}")
    return str((got.echoed or {}).get("pod", ""))


def weighted(pod: Callable[[], str], case: Case) -> str | None:
    """Up to WEIGHT_TRIES rounds of WEIGHT_REQUESTS requests (`pod` sends one and names the
    pod that answered), WEIGHT_CONCURRENCY at a time; None once a round's split matches the
    case's weights."""
    why: str | None = "no round"
    for _ in range(WEIGHT_TRIES):
        try:
            with ThreadPoolExecutor(max_workers=WEIGHT_CONCURRENCY) as pool:
                pods = list(pool.map(lambda _: pod(), range(WEIGHT_REQUESTS)))
        except (httpx.HTTPError, ScenarioFailed) as err:
            why = f"error while sending requests: {err}"
            continue
        why = distribution_error(pods, case.weights)
        if why is None:
            return None
    return f"traffic distribution: {why}"


def _mirror_counts(mesh: ConformanceMesh, path: str, mirrors: list[str]) -> dict[str, int]:
    pattern = re.compile(re.escape(MIRROR_LOG.format(path=path)) + " ")
    return {mirror: len(pattern.findall(mesh.app_logs(*mirror.split("/", 1))))
            for mirror in mirrors}


def percentage_mirrored(mesh: ConformanceMesh, send: Callable[[Case], Captured],
                        case: Case) -> str | None:
    """The upstream's distribution check of a percentage mirror: up to MIRROR_CHECKS rounds
    of MIRROR_REQUESTS requests carrying a fresh request id, MIRROR_CONCURRENCY at a time;
    None once each mirror logged its share of a round within the binomial band."""
    mirrors = [name for name, _ in case.mirror_percents]
    why: str | None = "no round"
    for _ in range(probes.MIRROR_CHECKS):
        sent = probes.with_query(case, {probes.REQUEST_ID: str(uuid.uuid4())})

        def one(_: int, sent: Case = sent) -> str | None:
            got = send(sent)
            return compare(sent, got)

        try:
            with ThreadPoolExecutor(max_workers=probes.MIRROR_CONCURRENCY) as pool:
                failures = [w for w in pool.map(one, range(probes.MIRROR_REQUESTS)) if w]
        except httpx.HTTPError as err:
            why = f"error while sending requests: {err}"
            continue
        if failures:
            why = f"{len(failures)} requests failed; first: {failures[0]}"
            continue
        # Mirrored copies are sent on the side: wait until the logs stop growing.
        counts, deadline = _mirror_counts(mesh, sent.request.path, mirrors), \
            time.monotonic() + REQUEST_TIMEOUT
        while time.monotonic() < deadline:
            time.sleep(0.5)
            latest = _mirror_counts(mesh, sent.request.path, mirrors)
            if latest == counts:
                break
            counts = latest
        why = probes.mirror_share_error(counts, case.mirror_percents)
        if why is None:
            return None
        mesh.log(f"  {case.name}: {why}")
    return f"percentage mirror: {why}"


def _mirrored(mesh: ConformanceMesh, pattern: re.Pattern[str], namespace: str,
              name: str) -> str | None:
    """The mirror backend's log proves the mirroring (as the upstream reads the pod's)."""
    if pattern.search(mesh.app_logs(namespace, name)):
        return None
    return f"no mirrored request in the log of {namespace}/{name}"


def _status(mesh: ConformanceMesh, condition: Condition) -> str | None:
    return check_condition(mesh.resources(), condition)


def _latest(mesh: ConformanceMesh, kind: str, ref: str, not_generation: object = None,
            ) -> str | None:
    obj = _object(mesh.resources(), kind, ref)
    if obj is None:
        return f"{kind} {ref} not found"
    generation = (obj.get("metadata") or {}).get("generation")
    if not_generation is not None and generation == not_generation:
        return f"{kind} {ref}: generation still {generation} after the update"
    return probes.stale_conditions(obj)


def generation_bump(mesh: ConformanceMesh, scenario: Scenario,
                    update: Mapping[str, Any]) -> str | None:
    """The upstream's observedGeneration check: the route's conditions observe its
    generation; after `update` (a spec change) it has a new generation, is Accepted with its
    refs resolved again, and every condition observes the new one."""
    kind, ref = str(update["resource"]).split(" ", 1)
    try:
        wait_for(partial(_latest, mesh, kind, ref), STATUS_TIMEOUT)
        obj = _object(mesh.resources(), kind, ref) or {}
        before = (obj.get("metadata") or {}).get("generation")
        mesh.apply_scenario(scenario, update=update)
        wait_for(partial(_latest, mesh, kind, ref, before), STATUS_TIMEOUT)
        for route, parent in scenario.routes:
            for condition in ("Accepted", "ResolvedRefs"):
                wait_for(partial(_status, mesh, Condition(kind, route, condition, "True",
                                                          parent=parent)), STATUS_TIMEOUT)
        wait_for(partial(_latest, mesh, kind, ref, before), STATUS_TIMEOUT)
    except ScenarioFailed as err:
        return str(err)
    return None


def _listening(mesh: ConformanceMesh, gateway: str, port: int) -> str | None:
    return _accepts(mesh.gateway_address(gateway), port)


def _case_result(mesh: ConformanceMesh, sender: Sender, scenario: Scenario,
                 resources: list[dict[str, Any]], case: Case) -> str:
    try:
        return run_case(mesh, sender, scenario, case, resources) or ""
    except ScenarioFailed as err:
        return str(err)


def run_scenario(mesh: ConformanceMesh, scenario: Scenario, sender: Sender) -> Outcome:
    start = time.monotonic()
    if scenario.skip:
        return Outcome(scenario.name, "skip", scenario.skip)
    mesh.apply_scenario(scenario)
    try:
        wanted = [route_accepted(scenario.route_kind, route, parent)
                  for route, parent in scenario.routes]
        if scenario.gateway:
            wanted.insert(0, Condition("Gateway", scenario.gateway, "Programmed", "True"))
        wanted += scenario.conditions
        for condition in wanted:
            wait_for(partial(_status, mesh, condition), STATUS_TIMEOUT)
        resources = mesh.resources()
        gateways = {c.gateway or scenario.gateway for c in scenario.cases}
        for gateway in sorted(g for g in gateways if g):
            for case in scenario.cases:
                if (case.gateway or scenario.gateway) == gateway:
                    port = case.port or _listener_port(resources, gateway, _listener_protocol(
                        case.request.protocol))
                    wait_for(partial(_listening, mesh, gateway, port), STATUS_TIMEOUT)
    except ScenarioFailed as err:
        return Outcome(scenario.name, "fail", f"not ready: {err}",
                       seconds=time.monotonic() - start)
    update = scenario.extra.get("update")
    if isinstance(update, Mapping):
        why = generation_bump(mesh, scenario, update)
        return Outcome(scenario.name, "fail" if why else "pass", why or "",
                       (("observedGeneration should increment", why or ""),),
                       time.monotonic() - start)
    # The upstream runs a scenario's cases in parallel (t.Parallel()): each converges apart;
    # a case that deletes something first starts a new phase once it is gone.
    phases: list[list[Case]] = []
    for case in scenario.cases:
        if case.delete_before or not phases:
            phases.append([])
        phases[-1].append(case)
    deleted: frozenset[str] = frozenset()
    whys: list[str] = []
    for phase in phases:
        if phase[0].delete_before:
            deleted |= frozenset(phase[0].delete_before)
            mesh.apply_scenario(scenario, deleted)
        with ThreadPoolExecutor(max_workers=PARALLEL_CASES) as pool:
            whys += pool.map(partial(_case_result, mesh, sender, scenario, resources), phase)
    results = [(case.name, why) for case, why in zip(scenario.cases, whys, strict=True)]
    failed = [(n, w) for n, w in results if w]
    reason = f"{len(failed)}/{len(results)} cases failed; first: {failed[0][0]}: " \
             f"{failed[0][1]}" if failed else ""
    return Outcome(scenario.name, "fail" if failed else "pass", reason, tuple(results),
                   time.monotonic() - start)


@contextmanager
def conformance_mesh(corpus: Path, subnet: str, workdir: Path | None = None,
                     log: Callable[[str], None] = print,
                     gamma: bool = True) -> Iterator[ConformanceMesh]:
    with tempfile.TemporaryDirectory(prefix="heddle-conformance-") as tmp:
        mesh = ConformanceMesh(corpus, workdir or Path(tmp), subnet, log=log, gamma=gamma)
        mesh.up()
        try:
            yield mesh
        finally:
            mesh.down()


def run(scenarios: list[Scenario], corpus: Path, subnet: str,
        log: Callable[[str], None] = print, workdir: Path | None = None) -> list[Outcome]:
    outcomes = []
    runnable = [s for s in scenarios if not s.skip]
    if not runnable:
        return [Outcome(s.name, "skip", s.skip) for s in scenarios]
    gamma = any(s.mesh for s in runnable)
    with conformance_mesh(corpus, subnet, workdir, log, gamma) as mesh:
        sender = Sender(mesh.trusted)
        try:
            for scenario in scenarios:
                try:
                    outcome = run_scenario(mesh, scenario, sender)
                except (httpx.HTTPError, OSError, ValueError, KeyError) as err:
                    outcome = Outcome(scenario.name, "fail", f"the runner failed: {err!r}")
                log(f"{outcome.result.upper():4} {scenario.name}"
                    + (f": {outcome.reason}" if outcome.reason else "")
                    + (f" ({outcome.seconds:.1f}s)" if outcome.result != "skip" else ""))
                outcomes.append(outcome)
        finally:
            sender.close()
            mesh.clear_scenario()
    return outcomes
