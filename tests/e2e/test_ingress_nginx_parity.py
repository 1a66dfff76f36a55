"""`heddle convert ingress` against the NGINX it replaces, side by side: Ingresses of the
corpus (`../shared/corpus/ingress-nginx/`: a plain host, rewrite-target to a full path and
with the `(/|$)(.*)` idiom, app-root, ssl-redirect with its TLS Secret, the docs' canary
pair) and a permanent-redirect are served by a real NGINX with the configuration
ingress-nginx generates for them, and by Heddle's gateway from the converted Gateway and
HTTPRoutes, before the same backends (mesh workloads; NGINX reaches their pod IPs directly,
as ingress-nginx reaches Pod IPs). Every request of a representative set gets the same
status, the same Location, and the same backend with the same path from both, but for
the one difference the conversion lists (a redirect keeps the request's query).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import yaml

from heddle.local.workloads import low_port_offset
from heddle.testing.waiting import wait_for

from .mesh_fixtures import HEDDLE, LocalMesh, running_mesh

CORPUS_FILES = [
    "inputs/kgateway-dev-ingress2gateway/e2e-kgateway/basic.yaml",
    "inputs/kgateway-dev-ingress2gateway/e2e-kgateway/rewrite_target.yaml",
    "inputs/kgateway-dev-ingress2gateway/e2e-kgateway/ssl_redirect.yaml",
    "examples/docs/examples/rewrite/README/01-rewrite-target.yaml",
    "examples/docs/examples/rewrite/README/02-app-root.yaml",
    "examples/docs/examples/canary/README/01-create-ingress-pointing-to-your-main-deployment.yaml",
]
# Beside the corpus: the docs' canary Ingress with its annotations' quoting fixed (in the
# corpus they read `\"true\"`, which ingress-nginx ignores) and a weight of 20, and a
# permanent-redirect, which no corpus Ingress has.
WRITTEN = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: canary
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-weight: "20"
spec:
  ingressClassName: nginx
  rules:
  - host: echo.prod.mydomain.com
    http:
      paths:
      - {pathType: Prefix, path: /, backend: {service: {name: canary, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: moved
  annotations:
    nginx.ingress.kubernetes.io/permanent-redirect: https://www.example.com/new-home
spec:
  ingressClassName: nginx
  rules:
  - host: moved.example.com
    http:
      paths:
      - {pathType: Prefix, path: /, backend: {service: {name: echo-backend, port: {number: 8080}}}}
"""

# The backends the Ingresses name, each a workload answering with its name and the path it
# got (examples/nginx-cutover/apps/service.py); http-svc, production and canary are port 80
# to their targetPort 8080, as the corpus's Services are.
BACKENDS = {"echo-backend": ("SUBNET.2", 8080), "http-svc": ("SUBNET.3", 80),
            "production": ("SUBNET.4", 80), "canary": ("SUBNET.5", 80)}
NGINX_ADDRESS = "SUBNET.200"  # the side-by-side NGINX (not a workload: ingress-nginx's pod)


def services_yaml() -> str:
    docs = []
    for name, (address, port) in BACKENDS.items():
        docs.append(f"""\
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  ports: [{{port: {port}, targetPort: 8080, name: http}}]
  selector: {{app: {name}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: {name}
  annotations:
    heddle.dev/command: SERVICE={name} python3 ../apps/service.py
spec:
  address: {address}
  labels: {{app: {name}}}
  serviceAccount: {name}
""")
    # The converted Gateway's proxy is the only way in.
    docs.append("""\
apiVersion: install.istio.io/v1alpha1
kind: IstioOperator
metadata: {name: installed-state, namespace: istio-system}
spec: {components: {ingressGateways: [{name: istio-ingressgateway, enabled: false}]}}
""")
    return "---\n".join(docs)


# What ingress-nginx's nginx.tmpl makes of these Ingresses, its Lua parts (the balancer, the
# SSL redirect) written as the plain directives they amount to. Every server of a host with
# rewrite-target or use-regex has regex locations (`~*`, case-insensitive, anchored at the
# start); a host without `/` gets ingress-nginx's default backend there (404), as does a host
# no Ingress names (the default server `_`).
NGINX_CONF = """\
worker_processes 1;
error_log stderr notice;
pid @DIR@/nginx.pid;
events { worker_connections 256; }
http {
    access_log @DIR@/access.log;
    client_body_temp_path @DIR@/tmp/client_body;
    proxy_temp_path @DIR@/tmp/proxy;
    fastcgi_temp_path @DIR@/tmp/fastcgi;
    uwsgi_temp_path @DIR@/tmp/uwsgi;
    scgi_temp_path @DIR@/tmp/scgi;
    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header Connection "";
    upstream default-echo-backend-8080 { server @ECHO_BACKEND@:8080; keepalive 8; }
    upstream default-http-svc-80 { server @HTTP_SVC@:8080; keepalive 8; }
    upstream default-production-80 { server @PRODUCTION@:8080; keepalive 8; }
    upstream default-canary-80 { server @CANARY@:8080; keepalive 8; }
    # The canary's 20 percent (the balancer's canary-weight, by a random draw per request).
    split_clients "$request_id" $echo_prod_upstream {
        20% default-canary-80;
        * default-production-80;
    }

    server {  # the default server: hosts no Ingress names
        listen @ADDRESS@:@HTTP_PORT@ default_server;
        server_name _;
        location / { return 404; }
    }
    server {  # basic.yaml
        listen @ADDRESS@:@HTTP_PORT@;
        server_name demo.localdev.me;
        location / { proxy_pass http://default-echo-backend-8080; }
    }
    server {  # rewrite_target.yaml: rewrite-target /after/rewrite
        listen @ADDRESS@:@HTTP_PORT@;
        server_name rewrite.localdev.me;
        location ~* "^/before/rewrite" {
            rewrite "(?i)/before/rewrite" /after/rewrite break;
            proxy_pass http://default-echo-backend-8080;
        }
        location ~* "^/" { return 404; }
    }
    server {  # ssl_redirect.yaml: a TLS host, ssl-redirect (308, ingress-nginx's default code)
        listen @ADDRESS@:@HTTP_PORT@;
        listen @ADDRESS@:@HTTPS_PORT@ ssl;
        server_name ssl-redirect.localdev.me;
        ssl_certificate @DIR@/ssl-redirect-tls.crt;
        ssl_certificate_key @DIR@/ssl-redirect-tls.key;
        location / {
            if ($scheme = http) { return 308 https://$host$request_uri; }
            proxy_pass http://default-echo-backend-8080;
        }
    }
    server {  # 01-rewrite-target.yaml: use-regex, rewrite-target /$2
        listen @ADDRESS@:@HTTP_PORT@;
        server_name rewrite.bar.com;
        location ~* "^/something(/|$)(.*)" {
            rewrite "(?i)/something(/|$)(.*)" /$2 break;
            proxy_pass http://default-http-svc-80;
        }
        location ~* "^/" { return 404; }
    }
    server {  # 02-app-root.yaml: app-root /app1
        listen @ADDRESS@:@HTTP_PORT@;
        server_name approot.bar.com;
        if ($uri = /) { return 302 $scheme://$http_host/app1; }
        location / { proxy_pass http://default-http-svc-80; }
    }
    server {  # the canary pair: production, and canary at canary-weight 20
        listen @ADDRESS@:@HTTP_PORT@;
        server_name echo.prod.mydomain.com;
        location / { proxy_pass http://$echo_prod_upstream; }
    }
    server {  # moved: permanent-redirect (301, its default code)
        listen @ADDRESS@:@HTTP_PORT@;
        server_name moved.example.com;
        location / { return 301 https://www.example.com/new-home; }
    }
}
"""

# (scheme, host, path): the requests both must answer alike.
REQUESTS = [
    ("http", "demo.localdev.me", "/"),
    ("http", "demo.localdev.me", "/any/deep/path?x=1&y=2"),
    ("http", "rewrite.localdev.me", "/before/rewrite"),
    ("http", "rewrite.localdev.me", "/before/rewrite/more?q=1"),
    ("http", "rewrite.localdev.me", "/before/rewritten"),
    ("http", "rewrite.localdev.me", "/other"),
    ("http", "ssl-redirect.localdev.me", "/"),
    ("http", "ssl-redirect.localdev.me", "/secure/page?x=1"),
    ("https", "ssl-redirect.localdev.me", "/secure/page?x=1"),
    ("http", "rewrite.bar.com", "/something"),
    ("http", "rewrite.bar.com", "/something/"),
    ("http", "rewrite.bar.com", "/something/new?x=1"),
    ("http", "rewrite.bar.com", "/somethingelse"),
    ("http", "rewrite.bar.com", "/"),
    ("http", "approot.bar.com", "/"),
    ("http", "approot.bar.com", "/?lang=en"),
    ("http", "approot.bar.com", "/app1"),
    ("http", "approot.bar.com", "/app1/page?x=1"),
    ("http", "approot.bar.com", "/other"),
    ("http", "moved.example.com", "/"),
    ("http", "moved.example.com", "/some/page?x=1"),
    ("http", "unknown.example.com", "/"),
]
# The one known difference, which `heddle convert ingress` notes for app-root and
# permanent-redirect: NGINX's `return` drops the request's query, Envoy's redirect keeps it
# (a Gateway API redirect cannot say otherwise).
QUERY_KEPT = {("http", "approot.bar.com", "/?lang=en"): "lang=en",
              ("http", "moved.example.com", "/some/page?x=1"): "x=1"}
CANARY_REQUESTS = 1000
CANARY_TOLERANCE = 5.0  # points around 20; the binomial spread at 1,000 is 1.3


def port(number: int) -> int:
    """Where a listener of port `number` is: moved 8000 up when this user may not bind it,
    for NGINX as for Heddle's gateway."""
    return number + low_port_offset() if number < 1024 else number


@dataclass(frozen=True)
class Answer:
    status: int
    location: str
    served_by: str  # the backend, for an answer from one
    path: str  # the path and query the backend got

    @staticmethod
    def of(response: httpx.Response) -> Answer:
        body = response.json() if response.headers.get("content-type") == \
            "application/json" else {}
        return Answer(response.status_code, response.headers.get("location", ""),
                      str(body.get("served_by", "")), str(body.get("path", "")))


def ask(client: httpx.Client, address: str, scheme: str, host: str, path: str) -> Answer:
    number = port(443 if scheme == "https" else 80)
    response = client.get(f"{scheme}://{address}:{number}{path}", headers={"host": host},
                          extensions={"sni_hostname": host})
    return Answer.of(response)


def converted_gateway_api(corpus: Path, tmp: Path) -> tuple[str, str]:
    """`heddle convert ingress` of the Ingresses, each in namespace default as `kubectl apply
    -n default` puts them: its output and what it listed on stderr, after checking that it
    converted everything."""
    inputs = tmp / "ingresses"
    inputs.mkdir()
    for i, name in enumerate(CORPUS_FILES):
        docs = [d for d in yaml.safe_load_all((corpus / "ingress-nginx" / name).read_text()) if d]
        for doc in docs:
            doc["metadata"].setdefault("namespace", "default")
        (inputs / f"{i:02}-{Path(name).name}").write_text(yaml.safe_dump_all(docs))
    docs = list(yaml.safe_load_all(WRITTEN))
    for doc in docs:
        doc["metadata"]["namespace"] = "default"
    (inputs / "99-written.yaml").write_text(yaml.safe_dump_all(docs))
    out = subprocess.run([HEDDLE, "convert", "ingress", "-f", str(inputs)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "0 with something not converted" in out.stderr, out.stderr
    return out.stdout, out.stderr


def tls_secret(corpus: Path) -> dict[str, bytes]:
    """ssl_redirect.yaml's Secret: its certificate and key."""
    text = (corpus / "ingress-nginx" / CORPUS_FILES[2]).read_text()
    secret = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "Secret")
    return {key: base64.b64decode(secret["data"][key]) for key in ("tls.crt", "tls.key")}


def secret_yaml(corpus: Path) -> str:
    text = (corpus / "ingress-nginx" / CORPUS_FILES[2]).read_text()
    secret = next(d for d in yaml.safe_load_all(text) if d and d["kind"] == "Secret")
    return yaml.safe_dump(secret)


@dataclass
class SideBySide:
    mesh: LocalMesh
    nginx: str  # NGINX's address
    gateway: str  # the converted Gateway's proxy's address
    listed: str  # what the conversion listed on stderr


def nginx_binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.access(found, os.X_OK), "the tests need Debian's nginx (apt-get install nginx)"
    return found


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory: pytest.TempPathFactory,
                 corpus: Path) -> Iterator[SideBySide]:
    base = tmp_path_factory.mktemp("ingress-parity")
    converted, listed = converted_gateway_api(corpus, base)
    extra = {"parity/backends.yaml": services_yaml(), "parity/gateway-api.yaml": converted,
             "parity/secret.yaml": secret_yaml(corpus)}
    with running_mesh(base, example="nginx-cutover", target="parity",
                      extra=extra) as mesh:
        folder = base / "nginx"
        (folder / "tmp").mkdir(parents=True)
        for key, data in tls_secret(corpus).items():
            (folder / key.replace("tls.", "ssl-redirect-tls.")).write_bytes(data)
        address = NGINX_ADDRESS.replace("SUBNET.", mesh.subnet)
        conf = NGINX_CONF.replace("@DIR@", str(folder)).replace("@ADDRESS@", address)
        conf = conf.replace("@HTTP_PORT@", str(port(80))).replace("@HTTPS_PORT@", str(port(443)))
        for name, (backend, _) in BACKENDS.items():
            conf = conf.replace(f"@{name.upper().replace('-', '_')}@",
                                backend.replace("SUBNET.", mesh.subnet))
        (folder / "nginx.conf").write_text(conf)
        log = (folder / "error.log").open("wb")
        nginx = subprocess.Popen(
            [nginx_binary(), "-e", "stderr", "-p", str(folder), "-c", str(folder / "nginx.conf"),
             "-g", "daemon off;"], stdout=log, stderr=log, start_new_session=True)
        try:
            wait_for(lambda: nginx.poll() is not None or accepts(address, port(80)), 10,
                     "NGINX listening")
            assert nginx.poll() is None, (folder / "error.log").read_text()
            gateway = mesh.state().workloads["nginx-heddle.default"].address
            yield SideBySide(mesh, address, gateway, listed)
        finally:
            os.killpg(nginx.pid, signal.SIGTERM)
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(nginx.pid, signal.SIGKILL)
                nginx.wait(5)
            log.close()


def accepts(address: str, number: int) -> bool:
    try:
        socket.create_connection((address, number), timeout=1).close()
        return True
    except OSError:
        return False


def test_the_converted_routes_answer_every_request_as_nginx_does(
        side_by_side: SideBySide) -> None:
    with httpx.Client(trust_env=False, verify=False, timeout=5) as client:
        wait_for(lambda: ask(client, side_by_side.gateway, "http", "demo.localdev.me",
                             "/").status == 200, 30, "the gateway serving the routes")
        nginx = {r: ask(client, side_by_side.nginx, *r) for r in REQUESTS}
        heddle = {r: ask(client, side_by_side.gateway, *r) for r in REQUESTS}
    for request in REQUESTS:
        print(f"{' '.join(request)}: nginx {nginx[request]} heddle {heddle[request]}")
    expected = {r: replace(a, location=f"{a.location}?{QUERY_KEPT[r]}") if r in QUERY_KEPT
                else a for r, a in nginx.items()}
    assert {r: a for r, a in heddle.items() if a != expected[r]} == {}
    notes = [line for line in side_by_side.listed.splitlines()
             if ": note: " in line and "drops the query" in line]
    assert [n.split(": note: ")[0].rsplit(" ", 1)[1] for n in notes] == [
        "default/approot", "default/moved"], side_by_side.listed
    # Not alike by accident: the set has each kind of answer.
    statuses = Counter(a.status for a in nginx.values())
    assert set(statuses) == {200, 301, 302, 308, 404}, statuses
    assert nginx[("http", "rewrite.bar.com", "/something/new?x=1")] == Answer(
        200, "", "http-svc", "/new?x=1")


def test_the_canary_gets_its_weight_from_both(side_by_side: SideBySide) -> None:
    shares = {}
    with httpx.Client(trust_env=False, timeout=5) as client:
        for name, address in (("nginx", side_by_side.nginx), ("heddle", side_by_side.gateway)):
            counts = Counter(ask(client, address, "http", "echo.prod.mydomain.com", "/").served_by
                             for _ in range(CANARY_REQUESTS))
            assert set(counts) == {"production", "canary"}, (name, counts)
            shares[name] = 100 * counts["canary"] / CANARY_REQUESTS
    print(f"canary share of {CANARY_REQUESTS} requests: {shares}")
    assert all(abs(share - 20) <= CANARY_TOLERANCE for share in shares.values()), shares
