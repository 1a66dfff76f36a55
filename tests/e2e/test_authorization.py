"""AuthorizationPolicy through real sidecars: each case is the policies in force, who calls,
what they ask for, and the status Istio gives. The target is the hello backend (both
instances); callers are the client and frontend workloads (mTLS identities
.../sa/client and .../sa/frontend) and a plaintext client outside the mesh."""

from __future__ import annotations

import http.client
import itertools
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from ruamel.yaml import YAML

from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

FRONTEND_SA = "cluster.local/ns/default/sa/frontend"
CLIENT_SA = "cluster.local/ns/default/sa/client"
BACKEND = {"matchLabels": {"app": "backend"}}
ECHO = {"matchLabels": {"app": "echo"}}


@dataclass
class Case:
    name: str
    policies: list[dict[str, Any]]
    expected: int | str  # an HTTP status, or "echo" / "closed" for TCP
    caller: str = "client"  # client | frontend | outside
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    tcp: bool = False
    host: str = "backend:9090"  # the authority asked for (the Host header)


def allow(*rules: dict[str, Any], selector: dict[str, Any] | None = None,
          **extra: Any) -> dict[str, Any]:
    return {"spec": {"selector": selector or BACKEND, "rules": list(rules)}, **extra}


def deny(*rules: dict[str, Any], selector: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"spec": {"selector": selector or BACKEND, "action": "DENY", "rules": list(rules)}}


def src(**fields: Any) -> dict[str, Any]:
    return {"from": [{"source": fields}]}


def op(**fields: Any) -> dict[str, Any]:
    return {"to": [{"operation": fields}]}


def when(key: str, values: list[str] | None = None,
         not_values: list[str] | None = None) -> dict[str, Any]:
    condition: dict[str, Any] = {"key": key}
    if values:
        condition["values"] = values
    if not_values:
        condition["notValues"] = not_values
    return {"when": [condition]}


CASES = [
    Case("no-policy-allows", [], 200),
    Case("allow-nothing", [{"spec": {"selector": BACKEND}}], 403),
    Case("allow-all", [allow({})], 200),
    Case("deny-all", [deny({})], 403),
    Case("deny-beats-allow", [deny({}), allow({})], 403),
    Case("principals-other-caller", [allow(src(principals=[FRONTEND_SA]))], 403),
    Case("principals-matching-caller", [allow(src(principals=[FRONTEND_SA]))], 200,
         caller="frontend"),
    Case("not-principals-excludes", [allow(src(notPrincipals=[CLIENT_SA]))], 403),
    Case("not-principals-others-pass", [allow(src(notPrincipals=[CLIENT_SA]))], 200,
         caller="frontend"),
    Case("any-principal-rejects-plaintext", [allow(src(principals=["*"]))], 403,
         caller="outside"),
    Case("any-principal-accepts-mtls", [allow(src(principals=["*"]))], 200),
    Case("principal-suffix", [allow(src(principals=["*/sa/client"]))], 200),
    Case("principal-prefix", [allow(src(principals=["cluster.local/ns/default/*"]))], 200),
    Case("namespaces-match", [allow(src(namespaces=["default"]))], 200),
    Case("namespaces-other", [allow(src(namespaces=["payments"]))], 403),
    Case("not-namespaces", [allow(src(notNamespaces=["default"]))], 403),
    Case("service-accounts-match", [allow(src(serviceAccounts=["default/client"]))], 200),
    Case("service-accounts-other", [allow(src(serviceAccounts=["default/frontend"]))], 403),
    # An account named without its namespace is the policy's namespace's (Istio's reading).
    Case("service-accounts-name-in-policy-namespace", [allow(src(serviceAccounts=["client"]))],
         200),
    Case("service-accounts-name-not-in-other-namespace",
         [{"namespace": "istio-system", "spec": {"rules": [src(serviceAccounts=["client"])]}}],
         403),
    Case("ip-blocks-match", [allow(src(ipBlocks=["127.0.0.0/8"]))], 200),
    Case("ip-blocks-other", [allow(src(ipBlocks=["10.0.0.0/8"]))], 403),
    Case("not-ip-blocks", [allow(src(notIpBlocks=["127.0.0.0/8"]))], 403),
    Case("remote-ip-blocks", [allow(src(remoteIpBlocks=["127.0.0.0/8"]))], 200),
    Case("deny-remote-ip-blocks", [deny(src(remoteIpBlocks=["127.0.0.0/8"]))], 403),
    Case("paths-prefix-match", [allow(op(paths=["/api/*"]))], 200, path="/api/items"),
    Case("paths-prefix-other", [allow(op(paths=["/api/*"]))], 403, path="/other"),
    Case("paths-exact", [allow(op(paths=["/healthz"]))], 200, path="/healthz"),
    Case("not-paths", [allow(op(notPaths=["/admin*"]))], 403, path="/admin/users"),
    Case("path-template-one-segment", [allow(op(paths=["/api/{*}/items"]))], 200,
         path="/api/42/items"),
    Case("path-template-not-two-segments", [allow(op(paths=["/api/{*}/items"]))], 403,
         path="/api/42/x/items"),
    Case("path-template-rest", [allow(op(paths=["/files/{**}"]))], 200, path="/files/a/b/c"),
    Case("methods-other", [allow(op(methods=["GET"]))], 403, method="POST"),
    Case("not-methods", [allow(op(notMethods=["DELETE"]))], 200),
    # Istio matches the authority as sent: exact, `prefix*` or `*suffix`, ignoring case, and
    # a host without a port implies none ("Writing Host Match Policies": write `host:*`).
    Case("hosts-without-port-refuse-host-with-port", [allow(op(hosts=["backend"]))], 403),
    Case("hosts-port-wildcard", [allow(op(hosts=["backend:*"]))], 200),
    Case("hosts-exact-with-port", [allow(op(hosts=["backend:9090"]))], 200),
    Case("hosts-ignore-case", [allow(op(hosts=["BACKEND:*"]))], 200),
    Case("hosts-fqdn-without-port-refuse-fqdn-with-port",
         [allow(op(hosts=["backend.default.svc.cluster.local"]))], 403,
         host="backend.default.svc.cluster.local:9090"),
    Case("hosts-fqdn-port-wildcard", [allow(op(hosts=["backend.default.svc.cluster.local:*"]))],
         200, host="backend.default.svc.cluster.local:9090"),
    Case("hosts-suffix", [allow(op(hosts=["*.svc.cluster.local:9090"]))], 200,
         host="backend.default.svc.cluster.local:9090"),
    Case("hosts-without-port-match-host-without-port", [allow(op(hosts=["backend"]))], 200,
         caller="outside", host="backend"),
    Case("hosts-other", [allow(op(hosts=["shop.example.com"]))], 403),
    Case("not-hosts", [allow(op(notHosts=["backend*"]))], 403),
    Case("not-hosts-without-port-pass-host-with-port", [allow(op(notHosts=["backend"]))], 200),
    Case("deny-hosts-without-port-spare-host-with-port",
         [deny(op(hosts=["backend"])), allow({})], 200),
    Case("deny-hosts-port-wildcard", [deny(op(hosts=["backend:*"])), allow({})], 403),
    Case("ports-match", [allow(op(ports=["9090"]))], 200),
    Case("ports-other", [allow(op(ports=["1234"]))], 403),
    Case("not-ports", [allow(op(notPorts=["9090"]))], 403),
    Case("when-header-present", [allow(when("request.headers[x-team]", ["blue"]))], 200,
         headers={"x-team": "blue"}),
    Case("when-header-name-ignores-case", [allow(when("request.headers[X-Team]", ["blue"]))],
         200, headers={"x-team": "blue"}),
    Case("when-header-missing", [allow(when("request.headers[x-team]", ["blue"]))], 403),
    Case("deny-when-header-not-values", [deny(when("request.headers[x-team]", None, ["blue"]))],
         403, headers={"x-team": "red"}),
    Case("when-source-namespace", [allow(when("source.namespace", ["default"]))], 200),
    Case("when-source-principal", [allow(when("source.principal", [FRONTEND_SA]))], 403),
    Case("when-source-ip", [allow(when("source.ip", ["127.0.0.0/8"]))], 200),
    Case("when-remote-ip-not", [allow(when("remote.ip", None, ["127.0.0.0/8"]))], 403),
    Case("when-destination-port", [allow(when("destination.port", ["9090"]))], 200),
    Case("when-destination-ip", [allow(when("destination.ip", ["127.0.0.0/8"]))], 200),
    Case("when-destination-ip-other", [allow(when("destination.ip", ["10.0.0.0/8"]))], 403),
    Case("when-sni", [allow(when("connection.sni", ["outbound_.9090_*"]))], 200),
    Case("when-sni-other", [allow(when("connection.sni", ["nope*"]))], 403),
    Case("audit-does-not-deny", [{"spec": {"selector": BACKEND, "action": "AUDIT",
                                           "rules": [{}]}}], 200),
    Case("dry-run-deny-is-not-enforced",
         [{**deny({}), "metadata": {"annotations": {"istio.io/dry-run": "true"}}}], 200),
    Case("dry-run-allow-nothing-is-not-enforced",
         [{"spec": {"selector": BACKEND},
           "metadata": {"annotations": {"istio.io/dry-run": "true"}}}], 200),
    Case("deny-path-with-allow-all", [deny(op(paths=["/admin*"])), allow({})], 403,
         path="/admin"),
    Case("second-allow-policy-matches",
         [allow(src(principals=[FRONTEND_SA])), allow(op(paths=["/public/*"]))], 200,
         path="/public/page"),
    Case("mesh-wide-deny-in-root-namespace",
         [{"namespace": "istio-system", "spec": {"action": "DENY", "rules": [{}]}}], 403),
    Case("selector-for-other-workloads", [{"spec": {"selector": {"matchLabels":
                                                                 {"app": "other"}}}}], 200),
    Case("tcp-allow-principal", [allow(src(principals=[CLIENT_SA]), selector=ECHO)], "echo",
         tcp=True),
    Case("tcp-allow-other-principal", [allow(src(principals=[FRONTEND_SA]), selector=ECHO)],
         "closed", tcp=True),
    Case("tcp-allow-with-http-only-field", [allow(op(methods=["GET"]), selector=ECHO)],
         "closed", tcp=True),
    Case("tcp-deny-with-http-only-field-denies-all", [deny(op(methods=["GET"]), selector=ECHO)],
         "closed", tcp=True),
    # Literal segments may follow {**} (Istio forbids only another operator after it).
    Case("path-template-rest-then-literal", [allow(op(paths=["/store/{**}/cart"]))], 200,
         path="/store/a/b/cart"),
    Case("path-template-rest-then-other-literal", [allow(op(paths=["/store/{**}/cart"]))], 403,
         path="/store/a/b/other"),
]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("authz")) as running:
        yield running


_markers = itertools.count(1)


def write_policies(mesh: LocalMesh, name: str, policies: list[dict[str, Any]]) -> str:
    """The policies, plus a marker: an AUDIT policy whose rule never matches and whose name,
    once in a proxy's active listeners, shows that this version of the file is in force."""
    marker = f"marker-{next(_markers)}"
    docs: list[dict[str, Any]] = [{
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": marker, "namespace": "default"},
        "spec": {"action": "AUDIT",
                 "rules": [{"from": [{"source": {"principals": ["nobody/ever"]}}]}]}}]
    for i, policy in enumerate(policies):
        metadata = {"name": f"{name}-{i}", "namespace": policy.get("namespace", "default"),
                    **policy.get("metadata", {})}
        docs.append({"apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
                     "metadata": metadata, "spec": policy["spec"]})
    path = mesh.config_dir / "authz.yaml"
    tmp = path.with_suffix(".tmp")  # not YAML: the watcher ignores it until renamed
    with tmp.open("w") as fh:
        YAML().dump_all(docs, fh)
    tmp.replace(path)
    return marker


def http_status(mesh: LocalMesh, case: Case) -> int:
    if case.caller == "outside":
        conn = http.client.HTTPConnection(f"{mesh.subnet}3", 9090, timeout=10)
        target = case.path
        headers = {"Host": case.host, **case.headers}
    else:
        sidecar = f"{mesh.subnet}1" if case.caller == "client" else f"{mesh.subnet}2"
        conn = http.client.HTTPConnection(sidecar, 15001, timeout=10)
        target = f"http://{case.host}{case.path}"
        headers = case.headers
    try:
        conn.request(case.method, target, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status == 403 and case.name != "custom":
            assert body == b"RBAC: access denied", body
        return response.status
    finally:
        conn.close()


def tcp_outcome(mesh: LocalMesh) -> str:
    with socket.create_connection((f"{mesh.subnet}1", 15001), timeout=10) as conn:
        conn.sendall(b"CONNECT echo:9000 HTTP/1.1\r\nHost: echo:9000\r\n\r\n")
        reply = conn.makefile("rb")
        status = reply.readline()
        if not status.startswith(b"HTTP/1.1 200"):
            return "closed"
        while reply.readline() not in (b"\r\n", b""):
            pass
        try:
            conn.sendall(b"ping\n")
            line = reply.readline()
        except OSError:
            return "closed"
        return "echo" if line == b"echo: ping\n" else "closed"


def outcome(mesh: LocalMesh, case: Case) -> int | str:
    return tcp_outcome(mesh) if case.tcp else http_status(mesh, case)


def apply(mesh: LocalMesh, case: Case, name: str, policies: list[dict[str, Any]]) -> None:
    """Write the policies and wait until every target proxy serves every connection with
    them: the marker is in its active listeners and no replaced filter chain is draining."""
    marker = write_policies(mesh, name, policies)
    targets = [f"{mesh.subnet}6"] if case.tcp else [f"{mesh.subnet}3", f"{mesh.subnet}4"]
    sidecars = [EnvoyAdmin(t) for t in targets]
    wait_for(lambda: all(f"policy[{marker}]" in json.dumps(s.listeners()) and s.nothing_draining()
                         for s in sidecars), 30, f"{name}: policies in force")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_authorization(mesh: LocalMesh, case: Case) -> None:
    apply(mesh, case, case.name, case.policies)
    assert outcome(mesh, case) == case.expected


def test_a_denial_is_logged_with_the_policy_rule_that_decided(mesh: LocalMesh) -> None:
    case = Case("logged-deny", [deny(op(paths=["/secret*"])), allow({})], 403, path="/secret")
    apply(mesh, case, case.name, case.policies)
    assert outcome(mesh, case) == 403
    expected = "rbac_access_denied_matched_policy[ns[default]-policy[logged-deny-0]-rule[0]]"
    wait_for(lambda: expected in mesh.envoy_log("backend-1") + mesh.envoy_log("backend-2"), 10,
             "the deciding policy in the backend's access log")


def test_a_dry_run_policy_records_what_it_would_have_done(mesh: LocalMesh) -> None:
    case = Case("dry-run-logged", [{**deny(op(paths=["/shadow*"])),
                                    "metadata": {"annotations": {"istio.io/dry-run": "true"}}}],
                200, path="/shadow")
    apply(mesh, case, case.name, case.policies)
    assert outcome(mesh, case) == 200
    expected = "dry_run_deny=ns[default]-policy[dry-run-logged-0]-rule[0]:denied"
    wait_for(lambda: expected in mesh.envoy_log("backend-1") + mesh.envoy_log("backend-2"), 10,
             "the shadow decision in the access log")


class ExtAuthzServer:
    """An external authorizer: allows requests carrying `x-ext-authz: allow`, counts checks."""

    def __init__(self, address: str) -> None:
        self.checks = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.checks += 1
                allowed = self.headers.get("x-ext-authz") == "allow"
                body = b"" if allowed else b"denied by ext-authz"
                self.send_response(200 if allowed else 403)
                self.send_header("x-ext-authz-check-result", "allowed" if allowed else "denied")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, fmt: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_custom_action_asks_the_extension_provider(mesh: LocalMesh) -> None:
    authorizer = ExtAuthzServer(f"{mesh.subnet}60")
    provider = mesh.config_dir / "ext-authz.yaml"
    provider.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
        "data:\n  mesh: |\n    extensionProviders:\n    - name: ext-authz-http\n"
        "      envoyExtAuthzHttp:\n        service: ext-authz.default.svc.cluster.local\n"
        f"        port: {authorizer.port}\n        includeRequestHeadersInCheck: [x-ext-authz]\n"
        "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
        "metadata: {name: ext-authz}\nspec:\n"
        "  hosts: [ext-authz.default.svc.cluster.local]\n  location: MESH_EXTERNAL\n"
        f"  resolution: STATIC\n  ports: [{{number: {authorizer.port}, name: http, "
        f"protocol: HTTP}}]\n  endpoints: [{{address: {mesh.subnet}60}}]\n")
    custom = {"spec": {"selector": BACKEND, "action": "CUSTOM",
                       "provider": {"name": "ext-authz-http"},
                       "rules": [{"to": [{"operation": {"paths": ["/protected*"]}}]}]}}
    try:
        case = Case("custom", [custom], 403, path="/protected")
        apply(mesh, case, case.name, case.policies)
        assert http_status(mesh, case) == 403
        allowed = Case("custom", [custom], 200, path="/protected",
                       headers={"x-ext-authz": "allow"})
        assert http_status(mesh, allowed) == 200
        checks = authorizer.checks
        assert checks >= 2
        public = Case("custom", [custom], 200, path="/public")
        assert http_status(mesh, public) == 200  # no rule matched: the provider is not asked
        assert authorizer.checks == checks
    finally:
        provider.unlink()
        authorizer.close()
