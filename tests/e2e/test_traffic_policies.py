"""Traffic management through real sidecars: retries, timeouts, circuit breaking, outlier
detection, mirroring, consistent hashing and TLS origination, each on its own host so the
tests share one mesh without sharing config. The hello backend misbehaves on request
(`fail=P`, `fail_instance=NAME`, `sleep=S`)."""

from __future__ import annotations

import base64
import datetime
import json
import socket
import ssl
import threading
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from heddle.testing.envoy import EnvoyAdmin
from heddle.testing.loopback import free_port
from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("policies")) as running:
        yield running


def request(mesh: LocalMesh, url: str, headers: dict[str, str] | None = None,
            timeout: float = 10) -> tuple[int, dict[str, object]]:
    """From the client workload through its sidecar; (status, JSON body or {})."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://{mesh.subnet}1:15001"}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}),
                         timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, {}


def backend_alias(mesh: LocalMesh, name: str, policies: str = "") -> str:
    """A new host served by the hello backend instances, with its own VirtualService or
    DestinationRule; returns its base URL once the client's sidecar routes it."""
    host = f"{name}.default.svc.cluster.local"
    (mesh.config_dir / f"policy-{name}.yaml").write_text(
        f"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}}}\n"
        f"spec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n"
        f"  ports: [{{number: 9090, name: http, protocol: HTTP}}]\n"
        f"  workloadSelector: {{labels: {{app: backend}}}}\n"
        + policies.replace("HOST", host))
    url = f"http://{host}:9090"
    wait_for(lambda: request(mesh, f"{url}/")[0] == 200, 20, f"{host} routable")
    return url


def subsets() -> str:
    return "  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]\n"


def vs(name: str, http: str) -> str:
    return (f"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
            f"metadata: {{name: {name}}}\nspec:\n  hosts: [HOST]\n  http:\n{http}")


def dr(name: str, body: str) -> str:
    return (f"---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
            f"metadata: {{name: {name}}}\nspec:\n  host: HOST\n{body}")


def logged(mesh: LocalMesh, workload: str, token: str) -> list[str]:
    return [line for line in mesh.envoy_log(workload).splitlines() if token in line]


def test_retries_turn_a_half_failing_backend_into_success(mesh: LocalMesh) -> None:
    retried = backend_alias(mesh, "retried", vs("retried", (
        "  - route: [{destination: {host: HOST}}]\n"
        "    retries: {attempts: 10, retryOn: 5xx, perTryTimeout: 2s}\n")))
    plain = backend_alias(mesh, "unretried", vs("unretried", (
        "  - route: [{destination: {host: HOST}}]\n    retries: {attempts: 0}\n")))
    with_retries = Counter(request(mesh, f"{retried}/?fail=0.5")[0] for _ in range(200))
    without = Counter(request(mesh, f"{plain}/?fail=0.5")[0] for _ in range(200))
    print(f"fail=0.5, 200 requests: with retries {dict(with_retries)}, "
          f"without {dict(without)}")
    assert with_retries[200] >= 198
    assert 50 <= without[503] <= 150 and without[200] + without[503] == 200


def test_a_route_timeout_answers_504_flagged_ut(mesh: LocalMesh) -> None:
    url = backend_alias(mesh, "hurried", vs("hurried", (
        "  - route: [{destination: {host: HOST}}]\n"
        "    timeout: 0.5s\n    retries: {attempts: 0}\n")))
    token = uuid.uuid4().hex
    assert request(mesh, f"{url}/{token}?sleep=3")[0] == 504
    wait_for(lambda: logged(mesh, "client", token), 10, "the request in the client's log")
    line = logged(mesh, "client", token)[0]
    print(line)
    assert " 504 UT " in line


def test_connection_pool_overflow_answers_503_flagged_uo(mesh: LocalMesh) -> None:
    url = backend_alias(mesh, "pooled", vs("pooled", (
        "  - route: [{destination: {host: HOST}}]\n    retries: {attempts: 0}\n"))
        + dr("pooled", (
            "  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n"
            "      http: {http1MaxPendingRequests: 1, http2MaxRequests: 1}\n")))
    token = uuid.uuid4().hex
    with ThreadPoolExecutor(10) as pool:
        statuses = Counter(pool.map(lambda i: request(mesh, f"{url}/{token}/{i}?sleep=1")[0],
                                    range(10)))
    print(f"10 concurrent 1s requests, 1 connection + 1 pending allowed: {dict(statuses)}")
    assert statuses[200] >= 1 and statuses[503] >= 5
    wait_for(lambda: len(logged(mesh, "client", token)) == 10, 10, "10 requests logged")
    flags = Counter(line.split('" ', 1)[1].split()[1] for line in logged(mesh, "client", token)
                    if '" 503 ' in line)
    print(f"503 flags: {dict(flags)}")
    assert set(flags) == {"UO"}


def test_outlier_detection_ejects_the_failing_instance(mesh: LocalMesh) -> None:
    url = backend_alias(mesh, "guarded", vs("guarded", (
        "  - route: [{destination: {host: HOST}}]\n    retries: {attempts: 0}\n"))
        + dr("guarded", (
            "  trafficPolicy:\n    outlierDetection:\n"
            "      {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 5m, "
            "maxEjectionPercent: 100}\n")))
    served = [request(mesh, f"{url}/?fail_instance=backend-1") for _ in range(60)]
    failures = sum(status != 200 for status, _ in served)
    last = Counter(str(body.get("instance")) for _, body in served[-40:])
    print(f"60 requests, backend-1 always failing: {failures} failed; last 40 served by "
          f"{dict(last)}")
    assert failures <= 4 and last == {"backend-2": 40}
    stats = EnvoyAdmin(f"{mesh.subnet}1").get(
        "/stats?filter=guarded.*outlier_detection.ejections_enforced_total")
    print(stats.strip())
    assert stats.strip().endswith(": 1")


def test_mirroring_copies_requests_to_the_mirror_only(mesh: LocalMesh) -> None:
    url = backend_alias(mesh, "mirrored", vs("mirrored", (
        "  - route: [{destination: {host: HOST, subset: v1}}]\n"
        "    mirror: {host: HOST, subset: v2}\n")) + dr("mirrored", subsets()))
    token = uuid.uuid4().hex
    answers = [request(mesh, f"{url}/{token}/{i}") for i in range(20)]
    assert {(status, body.get("instance")) for status, body in answers} == {
        (200, "backend-1")}

    def all_logged() -> bool:  # access logs reach the files a little later
        return (len(logged(mesh, "backend-2", token)) >= 20
                and len(logged(mesh, "backend-1", token)) >= 20)

    wait_for(all_logged, 10, "20 requests in backend-1's log and 20 copies in backend-2's")
    copies = logged(mesh, "backend-2", token)
    print(f"20 requests to v1: backend-1 answered all, backend-2 saw {len(copies)} copies, "
          f"e.g. {copies[0]}")
    assert len(copies) == 20 and all("-shadow" in line for line in copies)
    assert len(logged(mesh, "backend-1", token)) == 20


def test_consistent_hash_keeps_a_user_on_one_instance(mesh: LocalMesh) -> None:
    url = backend_alias(mesh, "sticky", dr("sticky", (
        "  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}\n")))

    def instances(user: str, count: int) -> set[str]:
        return {str(request(mesh, f"{url}/", {"x-user": user})[1].get("instance"))
                for _ in range(count)}

    alice = instances("alice", 50)
    by_user = {f"user-{i}": instances(f"user-{i}", 3) for i in range(20)}
    spread = Counter(next(iter(s)) for s in by_user.values())
    print(f"alice, 50 requests: {alice}; 20 users, 3 requests each: {dict(spread)}")
    assert len(alice) == 1
    assert all(len(s) == 1 for s in by_user.values()) and len(spread) == 2


def _tls_files(tmp: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for `names`, as PEM files: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "heddle test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = (tmp / "ca.pem", tmp / "server.pem", tmp / "server-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture
def https_server(mesh: LocalMesh, tmp_path: Path) -> Iterator[tuple[str, int, Path, list[str]]]:
    """An HTTPS server on a loopback address of the mesh's subnet; yields (address, port,
    CA file, the SNI names its handshakes carried)."""
    ca, cert, key = _tls_files(tmp_path, ["secure.example.test", "vault.example.test"])
    seen: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: seen.append(str(name)) or None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"tls": isinstance(self.connection, ssl.SSLSocket),
                               "host": self.headers.get("host", "")}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    address = f"{mesh.subnet}50"
    server = ThreadingHTTPServer((address, free_port()), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield address, server.server_address[1], ca, seen
    finally:
        server.shutdown()
        server.server_close()


def test_tls_origination_reaches_an_https_server_over_plain_http(
        mesh: LocalMesh, https_server: tuple[str, int, Path, list[str]]) -> None:
    address, port, ca, seen = https_server
    secret = ("---\napiVersion: v1\nkind: Secret\nmetadata: {name: vault-ca}\n"
              f"type: Opaque\ndata:\n  ca.crt: {base64.b64encode(ca.read_bytes()).decode()}\n")
    for host, tls, extra in (
        ("secure.example.test", f"{{mode: SIMPLE, sni: secure.example.test, "
                                f"caCertificates: {ca}}}", ""),
        ("vault.example.test", "{mode: SIMPLE, sni: vault.example.test, "
                               "credentialName: vault-ca}", secret),
    ):
        (mesh.config_dir / f"egress-{host}.yaml").write_text(
            f"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n"
            f"metadata: {{name: {host.split('.')[0]}}}\n"
            f"spec:\n  hosts: [{host}]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n"
            f"  ports: [{{number: {port}, name: http, protocol: HTTP}}]\n"
            f"  endpoints: [{{address: {address}}}]\n---\n"
            f"apiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
            f"metadata: {{name: {host.split('.')[0]}}}\n"
            f"spec:\n  host: {host}\n  trafficPolicy:\n    tls: {tls}\n{extra}")
        url = f"http://{host}:{port}/"
        wait_for(lambda url=url: request(mesh, url)[0] == 200, 20, f"{host} answers")
        status, body = request(mesh, url)
        print(f"{url} -> {status} {body}; SNI seen by the server: {sorted(set(seen))}")
        assert status == 200 and body["tls"] is True and host in seen


def test_locality_failover_prefers_the_clients_region_until_it_fails(mesh: LocalMesh) -> None:
    """Two instances in two regions; the client in the first. With outlier detection, all
    traffic stays in the client's locality; when that instance fails it is ejected and
    traffic fails over to the other region (Istio's default locality load balancing)."""
    mesh_yaml = mesh.config_dir / "mesh.yaml"
    mesh_yaml.write_text(mesh_yaml.read_text().replace(
        "  labels: {app: client}\n", "  labels: {app: client}\n  locality: eu/zone-1/rack-1\n"))
    entries = "".join(
        f"---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n"
        f"  name: regional-{region}\n  annotations:\n"
        f"    heddle.dev/command: VERSION=v1 python3 apps/backend.py\n"
        f"spec:\n  address: {mesh.subnet}{octet}\n  labels: {{app: regional}}\n"
        f"  serviceAccount: backend\n  locality: {region}/zone-1/rack-1\n"
        for region, octet in (("eu", 21), ("us", 22)))
    host = "regional.default.svc.cluster.local"
    (mesh.config_dir / "policy-regional.yaml").write_text(
        f"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: regional}}\n"
        f"spec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n"
        f"  ports: [{{number: 9090, name: http, protocol: HTTP}}]\n"
        f"  workloadSelector: {{labels: {{app: regional}}}}\n" + entries
        + vs("regional", "  - route: [{destination: {host: HOST}}]\n"
                         "    retries: {attempts: 0}\n").replace("HOST", host))
    url = f"http://{host}:9090/"
    # Both instances up first: a request to one still starting would count as its failure.
    seen: set[str] = set()

    def both_answered() -> bool:
        seen.add(str(request(mesh, url)[1].get("instance")))
        return {"regional-eu", "regional-us"} <= seen

    wait_for(both_answered, 40, "both regional instances serving")
    (mesh.config_dir / "policy-regional-dr.yaml").write_text(dr("regional", (
        "  trafficPolicy:\n    outlierDetection:\n"
        "      {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 5m, "
        "maxEjectionPercent: 100}\n")).replace("HOST", host))

    def eu_preferred() -> bool:
        answers = [request(mesh, url) for _ in range(10)]
        return all(s == 200 and b.get("instance") == "regional-eu" for s, b in answers)

    wait_for(eu_preferred, 20, "regional-eu serving every request")
    healthy = Counter(str(request(mesh, url)[1].get("instance")) for _ in range(30))
    served = [request(mesh, f"{url}?fail_instance=regional-eu") for _ in range(30)]
    failures = sum(status != 200 for status, _ in served)
    last = Counter(str(body.get("instance")) for _, body in served[-20:])
    stats = EnvoyAdmin(f"{mesh.subnet}1").get(
        "/stats?filter=regional.*(outlier_detection.ejections_enforced_total|healthy|priority)")
    print(f"client in eu: 30 requests served by {dict(healthy)}; regional-eu failing: "
          f"{failures} of 30 failed, last 20 served by {dict(last)}\n{stats}")
    assert healthy == {"regional-eu": 30}
    assert failures <= 3 and last == {"regional-us": 20}


def preflight(mesh: LocalMesh, url: str, origin: str) -> tuple[int, dict[str, str]]:
    """A CORS preflight from the client workload: (status, response headers)."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://{mesh.subnet}1:15001"}))
    req = urllib.request.Request(url, method="OPTIONS", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST"})
    try:
        with opener.open(req, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}


def test_cors_preflights_are_answered_by_the_sidecar(mesh: LocalMesh) -> None:
    url = backend_alias(mesh, "shared", vs("shared", (
        "  - route: [{destination: {host: HOST}}]\n"
        "    corsPolicy:\n      allowOrigins: [{exact: https://shop.example.com}]\n"
        "      allowMethods: [GET, POST]\n      maxAge: 1h\n")))
    status, headers = preflight(mesh, f"{url}/", "https://shop.example.com")
    print(f"preflight from an allowed origin: {status} {headers}")
    assert status == 200
    assert headers.get("access-control-allow-origin") == "https://shop.example.com"
    assert headers.get("access-control-allow-methods") == "GET,POST"
    assert headers.get("access-control-max-age") == "3600"
    _, denied = preflight(mesh, f"{url}/", "https://evil.example.com")
    assert "access-control-allow-origin" not in denied


def test_a_delegate_virtual_service_routes_the_requests_its_root_hands_over(
        mesh: LocalMesh) -> None:
    delegate = ("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
                "metadata: {name: team-routes}\nspec:\n  http:\n"
                "  - match: [{uri: {prefix: /team/v2}}]\n"
                "    route: [{destination: {host: HOST, subset: v2}}]\n"
                "  - route: [{destination: {host: HOST, subset: v1}}]\n")
    url = backend_alias(mesh, "delegated", vs("delegated", (
        "  - match: [{uri: {prefix: /team}}]\n    delegate: {name: team-routes}\n"
        "  - route: [{destination: {host: HOST, subset: v2}}]\n"))
        + dr("delegated", subsets()) + delegate)

    def served_by(path: str) -> set[str]:
        return {str(request(mesh, f"{url}{path}")[1].get("instance")) for _ in range(10)}

    wait_for(lambda: served_by("/team/a") == {"backend-1"}, 10, "the delegate's v1 route")
    assert served_by("/team/v2/x") == {"backend-2"}  # the delegate's narrower match
    assert served_by("/other") == {"backend-2"}  # the root's own rule


def tunnel_instance(mesh: LocalMesh, authority: str) -> str:
    """A CONNECT tunnel through the client's sidecar to `authority` (how apps reach TCP
    ports), then an HTTP request inside it: which backend instance answered."""
    with socket.create_connection((f"{mesh.subnet}1", 15001), timeout=10) as conn:
        conn.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        reply = conn.recv(4096).decode(errors="replace")
        assert " 200" in reply.split("\r\n")[0], reply
        conn.sendall(f"GET / HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
                     .encode())
        return str(json.loads(_http_body(conn)).get("instance"))


def _http_body(conn: socket.socket) -> bytes:
    """The body of one HTTP response read from `conn`, by its content-length (the tunnel
    may stay open after it)."""
    data = b""
    while True:
        head, _, body = data.partition(b"\r\n\r\n")
        lengths = [int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")]
        if lengths and len(body) >= lengths[0]:
            return body[:lengths[0]]
        chunk = conn.recv(65536)
        if not chunk:
            return body
        data += chunk


def test_tcp_routes_send_tunnels_to_the_subsets_their_weights_name(mesh: LocalMesh) -> None:
    host = "ledger.default.svc.cluster.local"
    policy = mesh.config_dir / "policy-ledger.yaml"

    def write(weights: tuple[int, int]) -> None:
        policy.write_text(
            f"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ledger}}\n"
            f"spec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n"
            f"  ports: [{{number: 9090, name: tcp, protocol: TCP}}]\n"
            f"  workloadSelector: {{labels: {{app: backend}}}}\n"
            + (dr("ledger", subsets()) + "---\napiVersion: networking.istio.io/v1\n"
               "kind: VirtualService\nmetadata: {name: ledger}\nspec:\n  hosts: [HOST]\n"
               "  tcp:\n  - route:\n"
               f"    - {{destination: {{host: HOST, subset: v1}}, weight: {weights[0]}}}\n"
               f"    - {{destination: {{host: HOST, subset: v2}}, weight: {weights[1]}}}\n")
            .replace("HOST", host))

    def served(count: int) -> set[str]:
        found = set()
        for _ in range(count):
            try:
                found.add(tunnel_instance(mesh, f"{host}:9090"))
            except (OSError, AssertionError, ValueError):
                found.add("failed")
        return found

    write((0, 100))
    wait_for(lambda: served(5) == {"backend-2"}, 20, "tunnels to ledger going to v2")
    assert served(20) == {"backend-2"}
    write((100, 0))
    wait_for(lambda: served(5) == {"backend-1"}, 20, "tunnels to ledger going to v1")
    assert served(20) == {"backend-1"}
    policy.unlink()


def test_without_headers_takes_requests_that_lack_the_header(mesh: LocalMesh) -> None:
    """As in Istio, `withoutHeaders` matches a request whose header is absent or another
    value; only a request carrying the named value goes on to the next rule."""
    url = backend_alias(mesh, "stable", dr("stable", subsets()) + vs("stable", (
        "  - match: [{withoutHeaders: {x-canary: {exact: \"yes\"}}}]\n"
        "    route: [{destination: {host: HOST, subset: v1}}]\n"
        "  - route: [{destination: {host: HOST, subset: v2}}]\n")))

    def version(headers: dict[str, str]) -> object:
        status, body = request(mesh, f"{url}/", headers)
        assert status == 200
        return body["version"]

    assert version({}) == "v1"
    assert version({"x-canary": "no"}) == "v1"
    assert version({"x-canary": "yes"}) == "v2"
