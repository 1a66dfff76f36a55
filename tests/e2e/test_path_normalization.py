"""meshConfig.pathNormalization through real sidecars: for each of Istio's modes, the requests
of Istio's normalization tables and what comes of them, through the client's sidecar and the
backend's: the path the application receives, or the status that stopped the request.

The rows are Istio's own: its integration test of the modes
(tests/integration/security/normalization_test.go) and the examples of istio.io's
"Authorization Policy Normalization" reference and "Security Best Practices" page. A DENY
policy for the path `/admin` (the pattern of Istio's security bulletin ISTIO-SECURITY-2021-005)
is in force throughout: a row whose path normalizes to `/admin` is denied.

Requests are sent as an application's intercepted traffic would be (origin-form, with a Host
header) to the client's sidecar, which routes them to the backend; the bypass requests are
also sent in absolute-form, as an HTTP proxy client sends them.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh
from .test_authorization import allow, deny, op, when, write_policies

NONE, BASE, MERGE, DECODE = "NONE", "BASE", "MERGE_SLASHES", "DECODE_AND_MERGE_SLASHES"
DENIED = 403  # the path normalized to /admin: the DENY policy refused it
INVALID = 400  # Envoy refused the request before any policy

Row = tuple[str, str | int]  # request path -> the path the application receives, or a status

# Istio's integration test, per mode (the `/app#foo` row: see test_a_raw_fragment_is_refused).
ISTIO_ROWS: dict[str, list[Row]] = {
    NONE: [
        ("/", "/"), ("/app/", "/app/"), ("/app/../admin", "/app/../admin"), ("/app", "/app"),
        ("/app//", "/app//"), ("/app/%2f", "/app/%2f"), ("/app%2f/", "/app%2f/"),
        ("/xyz%30..//abc", "/xyz%30..//abc"), ("/app/%2E./admin", "/app/%2E./admin"),
        ("/app\\admin", "/app\\admin"), ("/app/\\/\\/\\admin", "/app/\\/\\/\\admin"),
        ("/%2Fapp%5cadmin%5Cabc", "/%2Fapp%5cadmin%5Cabc"),
        ("/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\\abc", "/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\\abc"),
        ("/app//../admin", "/app//../admin"), ("/app//../../admin", "/app//../../admin"),
    ],
    BASE: [
        ("/", "/"), ("/app/", "/app/"), ("/app/../admin", DENIED), ("/app", "/app"),
        ("/app//", "/app//"), ("/app/%2f", "/app/%2f"), ("/app%2f/", "/app%2f/"),
        ("/xyz%30..//abc", "/xyz0..//abc"), ("/app/%2E./admin", DENIED),
        ("/app\\admin", "/app/admin"), ("/app/\\/\\/\\admin", "/app//////admin"),
        ("/%2Fapp%5cadmin%5Cabc", "/%2Fapp%5cadmin%5Cabc"),
        ("/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\\abc", "/%5Capp%2f%5c%2F..%2fadmin%5c/abc"),
        ("/app//../admin", "/app/admin"), ("/app//../../admin", DENIED),
    ],
    MERGE: [
        ("/", "/"), ("/app/", "/app/"), ("/app/../admin", DENIED), ("/app", "/app"),
        ("/app//", "/app/"), ("/app/%2f", "/app/%2f"), ("/app%2f/", "/app%2f/"),
        ("/xyz%30..//abc", "/xyz0../abc"), ("/app/%2E./admin", DENIED),
        ("/app\\admin", "/app/admin"), ("/app/\\/\\/\\admin", "/app/admin"),
        ("/%2Fapp%5cadmin%5Cabc", "/%2Fapp%5cadmin%5Cabc"),
        ("/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\\abc", "/%5Capp%2f%5c%2F..%2fadmin%5c/abc"),
        ("/app//../admin", "/app/admin"), ("/app//../../admin", DENIED),
    ],
    DECODE: [
        ("/", "/"), ("/app/", "/app/"), ("/app/../admin", DENIED), ("/app", "/app"),
        ("/app//", "/app/"), ("/app/%2f", "/app/"), ("/app%2f/", "/app/"),
        ("/xyz%30..//abc", "/xyz0../abc"), ("/app/%2E./admin", DENIED),
        ("/app\\admin", "/app/admin"), ("/app/\\/\\/\\admin", "/app/admin"),
        ("/%2Fapp%5cadmin%5Cabc", "/app/admin/abc"),
        ("/%5Capp%2f%5c%2F%2e%2e%2fadmin%5c\\abc", "/app/admin/abc"),
        ("/app//../admin", "/app/admin"), ("/app//../../admin", DENIED),
        ("/%c0%2e%c0%2e/admin", "/%c0.%c0./admin"), ("/%c0%2fadmin", "/%c0/admin"),
        ("/admin%00", INVALID),
        # Istio's "NotNormalized" group: none of these is touched, even by the widest mode.
        *((path, path) for path in [
            "/0x2e0x2e/admin", "/0x2e0x2e0x2fadmin", "/0x2e0x2e0x5cadmin", "/0x2f0x2fadmin",
            "/0x5c0x5cadmin", "/%25c0%25ae%25c1%259cadmin", "/%25c0%25ae%25c0%25ae/admin",
            "/%25c0%25afadmin", "/%25c1%259cadmin", "/%252e%252e/admin",
            "/%252e%252e%252fadmin", "/%c1%9cadmin", "/%c0%ae%c0%ae/admin", "/%c0%afadmin",
            "/.../admin", "/..../admin", "/;/admin", "/admin;a=b",
            "/admin;a=b/xyz", "/admin,a=b/xyz", "/Admin", "/ADMIN"]),
        # Istio's test expects `/..;/admin` untouched; Envoy since 1.36.10/1.37.6/1.38.4/1.39.1
        # resolves a dot-dot segment that carries `;` parameters, so it becomes /admin.
        ("/..;/admin", DENIED),
    ],
}

# istio.io: the reference's examples and percent-encoded table, and the best-practices table.
DOCS_ROWS: dict[str, list[Row]] = {
    NONE: [
        ("/some%2fdata/%61%62%63", "/some%2fdata/%61%62%63"), ("/some\\data", "/some\\data"),
        ("/some//data///abc", "/some//data///abc"),
        ("/public/./data/abc/../xyz", "/public/./data/abc/../xyz"),
        ("/a/../b", "/a/../b"), ("/a//b", "/a//b"), ("/a%2fb", "/a%2fb"),
        ("/admin%00", "/admin%00"),  # NONE: "forwarded exactly as-is"
    ],
    BASE: [
        ("/some%2fdata/%61%62%63", "/some%2fdata/abc"), ("/some\\data", "/some/data"),
        ("/some//data///abc", "/some//data///abc"),
        ("/public/./data/abc/../xyz", "/public/data/xyz"),
        ("/a/../b", "/b"), ("/a//b", "/a//b"), ("/a%2fb", "/a%2fb"),
        ("/x%2d%2e%30%39%41%5a%5f%61%7a%7e", "/x-.09AZ_az~"), ("/admin%00", INVALID),
    ],
    MERGE: [
        ("/some%2fdata/%61%62%63", "/some%2fdata/abc"), ("/some\\data", "/some/data"),
        ("/some//data///abc", "/some/data/abc"),
        ("/public/./data/abc/../xyz", "/public/data/xyz"),
        ("/a/../b", "/b"), ("/a//b", "/a/b"), ("/a%2fb", "/a%2fb"), ("/admin%00", INVALID),
    ],
    DECODE: [
        ("/some%2fdata/%61%62%63", "/some/data/abc"), ("/some\\data", "/some/data"),
        ("/some//data///abc", "/some/data/abc"),
        ("/public/./data/abc/../xyz", "/public/data/xyz"),
        ("/a/../b", "/b"), ("/a//b", "/a/b"), ("/a%2fb", "/a/b"), ("/a%5Cb", "/a/b"),
    ],
}

# The best-practices page also shows `\da` and `../%2Fa../b`: a request target that does not
# start with `/` is refused by Envoy's HTTP/1 codec before any normalization, in every mode.
NOT_A_PATH: list[Row] = [("\\da", INVALID), ("../%2Fa../b", INVALID)]


def _decoded(code: int) -> bool:
    """The characters Istio's reference lists as decoded (unreserved, and `/` and `\\`)."""
    return (chr(code).isascii() and chr(code).isalnum()) or code in (0x2d, 0x2e, 0x2f, 0x5c,
                                                                      0x5f, 0x7e)


# Istio's "PercentEncoded" group: /admin%01 .. /admin%ff under DECODE_AND_MERGE_SLASHES.
PERCENT_ROWS: list[Row] = [
    (f"/admin%{code:02x}",
     ("/admin" + chr(code)).replace("\\", "/") if _decoded(code) else f"/admin%{code:02x}")
    for code in range(1, 0x100)]

# What each mode sets on every HTTP connection manager (normalize_path, merge_slashes,
# path_with_escaped_slashes_action), as Istio's listener builder does.
SETTINGS = {
    NONE: (False, False, "KEEP_UNCHANGED"),
    BASE: (True, False, "KEEP_UNCHANGED"),
    MERGE: (True, True, "KEEP_UNCHANGED"),
    DECODE: (True, True, "UNESCAPE_AND_FORWARD"),
}
CLIENT, BACKENDS = "1", ("3", "4")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("normalization")) as running:
        yield running


def path_settings(sidecar: EnvoyAdmin) -> set[tuple[bool, bool, str]]:
    """The path settings of every HTTP connection manager the Envoy serves with now."""
    found = set()
    for listener in sidecar.listeners().values():
        for chain in listener.get("filter_chains", []):
            for filter_ in chain.get("filters", []):
                typed = filter_.get("typed_config", {})
                if typed.get("@type", "").endswith("HttpConnectionManager"):
                    found.add((bool(typed.get("normalize_path", False)),
                               bool(typed.get("merge_slashes", False)),
                               str(typed.get("path_with_escaped_slashes_action", ""))))
    return found


def write_mesh_config(mesh: LocalMesh, mesh_yaml: str | None) -> None:
    path = mesh.config_dir / "mesh-config.yaml"
    if mesh_yaml is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_suffix(".tmp")  # not YAML: the watcher ignores it until renamed
    tmp.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\n"
        "data:\n  mesh: |\n" + "".join(f"    {line}\n" for line in mesh_yaml.splitlines()))
    tmp.replace(path)


def apply(mesh: LocalMesh, name: str, mode: str, policies: list[dict[str, Any]],
          mesh_yaml: str | None = None) -> None:
    """Put the mode (or `mesh_yaml`) and the policies in force, and wait until the client's
    sidecar and both backends serve every new connection with them."""
    if mesh_yaml is None and mode != BASE:
        mesh_yaml = f"pathNormalization:\n  normalization: {mode}"
    write_mesh_config(mesh, mesh_yaml)
    marker = write_policies(mesh, name, policies)
    proxies = [EnvoyAdmin(f"{mesh.subnet}{n}") for n in (CLIENT, *BACKENDS)]
    seen: dict[str, object] = {}

    def in_force() -> bool:
        for proxy in proxies:
            seen[proxy.host] = (path_settings(proxy), proxy.nothing_draining(),
                                proxy is proxies[0]
                                or f"policy[{marker}]" in json.dumps(proxy.listeners()))
        return all(s == ({SETTINGS[mode]}, True, True) for s in seen.values())

    try:
        wait_for(in_force, 30, f"{name}: {mode} and the policies in force")
    except AssertionError as err:
        raise AssertionError(f"{err}; last seen (settings, nothing draining, marker): {seen}")\
            from None


def send(mesh: LocalMesh, path: str, absolute: bool = False,
         headers: list[tuple[str, str]] | None = None) -> str | int:
    """GET `path` on the backend from the client workload: the path the application
    received, or the status when it was not answered by the application."""
    conn = http.client.HTTPConnection(f"{mesh.subnet}{CLIENT}", 15001, timeout=10)
    try:
        conn.putrequest("GET", f"http://backend:9090{path}" if absolute else path,
                        skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", "backend:9090")
        for name, value in headers or []:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            return response.status
        return str(json.loads(body)["path"])
    finally:
        conn.close()


def send_raw(mesh: LocalMesh, head: bytes) -> int:
    """A request written byte for byte (what http.client refuses to send): its status."""
    with socket.create_connection((f"{mesh.subnet}{CLIENT}", 15001), timeout=10) as conn:
        conn.sendall(head + b"Host: backend:9090\r\nConnection: close\r\n\r\n")
        status = conn.makefile("rb").readline()
    return int(status.split()[1])


DENY_ADMIN = [deny(op(paths=["/admin"]))]
MODES = [NONE, BASE, MERGE, DECODE]


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_gives_the_application_what_istio_does(mesh: LocalMesh, mode: str) -> None:
    apply(mesh, "table-" + mode.lower().replace("_", "-"), mode, DENY_ADMIN)
    rows = ISTIO_ROWS[mode] + DOCS_ROWS[mode] + NOT_A_PATH
    assert [(path, send(mesh, path)) for path, _ in rows] == rows


def test_decode_and_merge_slashes_decodes_only_what_istio_lists(mesh: LocalMesh) -> None:
    apply(mesh, "percent-encoded", DECODE, DENY_ADMIN)
    assert [(path, send(mesh, path)) for path, _ in PERCENT_ROWS] == PERCENT_ROWS


BYPASSES = ["/public/../private", "/public/%2e%2e/private", "/public/%2E/%2E%2E/private"]


@pytest.mark.parametrize("absolute", [False, True], ids=["intercepted", "http-proxy"])
def test_by_default_paths_that_leave_an_allowed_prefix_are_denied(mesh: LocalMesh,
                                                                   absolute: bool) -> None:
    """No pathNormalization in mesh config means BASE: `..` cannot climb out of `/public`."""
    apply(mesh, f"bypass-{str(absolute).lower()}", BASE, [allow(op(paths=["/public*"]))])
    assert [send(mesh, path, absolute) for path in BYPASSES] == [DENIED] * 3
    assert send(mesh, "/public/./a/../page", absolute) == "/public/page"
    assert send(mesh, "/public/page", absolute) == "/public/page"


def test_without_normalization_the_same_paths_pass_unchanged(mesh: LocalMesh) -> None:
    """The vulnerability NONE keeps (Istio's table: "vulnerable to CVE-2021-31920")."""
    apply(mesh, "bypass-none", NONE, [allow(op(paths=["/public*"]))])
    assert [send(mesh, path) for path in BYPASSES] == BYPASSES


def test_a_policy_path_ignores_the_query_and_the_application_still_gets_it(
        mesh: LocalMesh) -> None:
    apply(mesh, "query", BASE, [allow(op(paths=["/foo"]))])
    assert send(mesh, "/foo?v=1") == "/foo?v=1"
    assert send(mesh, "/foo/?v=1") == DENIED


def test_a_repeated_header_cannot_hide_a_denied_value(mesh: LocalMesh) -> None:
    """Istio's reference says repeated headers are matched joined (`foo,bar`); the Envoy
    both Istio and Heddle drive matches a rule against each of the values instead, so a
    denied value is caught wherever it is repeated."""
    apply(mesh, "repeated-header", BASE, [deny(when("request.headers[x-header]", ["bar"]))])
    assert send(mesh, "/", headers=[("x-header", "foo"), ("x-header", "bar")]) == DENIED
    assert send(mesh, "/", headers=[("x-header", "bar"), ("x-header", "foo")]) == DENIED
    assert send(mesh, "/", headers=[("x-header", "foo")]) == "/"


def test_requests_envoy_cannot_read_safely_are_refused(mesh: LocalMesh) -> None:
    """The reference's method and header rules (a lower-case method, white space in a header
    name) and a raw fragment (clients strip it: Istio's `/app#foo` -> `/app` row is the Go
    client's doing; sent as is, Envoy refuses it)."""
    apply(mesh, "refused", BASE, [])
    assert send_raw(mesh, b"get / HTTP/1.1\r\n") == INVALID
    assert send_raw(mesh, b"GET / HTTP/1.1\r\nx bad: 1\r\n") == INVALID
    assert send(mesh, "/app#foo") == INVALID


def test_an_unknown_mode_leaves_the_default(mesh: LocalMesh) -> None:
    """A typo in mesh config must not turn normalization off, nor stop translation."""
    apply(mesh, "typo", BASE, DENY_ADMIN, mesh_yaml="pathNormalization:\n  normalization: NON")
    assert send(mesh, "/app/../admin") == DENIED
