"""The conformance runner's pure parts: the upstream comparison rules, convergence (3 passes
in a row within 30 s), the scenario tables and the manifests turned into a local mesh."""

from __future__ import annotations

import datetime
import http.server
import ssl
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

from heddle.conformance import manifests
from heddle.conformance.certs import self_signed
from heddle.conformance.compare import Captured, compare, redirect_of
from heddle.conformance.echo import canonical, go_duration, reflect, response_headers
from heddle.conformance.report import conformance_report
from heddle.conformance.runner import Outcome, Sender, converge, distribution_error, go_name
from heddle.conformance.scenarios import (
    Case,
    ScenarioError,
    load_all,
    load_scenario,
)

CORPUS = Path(__file__).resolve().parents[2].parent / "shared/corpus/gateway-api/conformance"
NS = "gateway-conformance-infra"


def case(text: str) -> Case:
    """The first case of a scenario file whose cases are `text`."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.yaml"
        path.write_text(f"name: T\nmanifests: []\ngateway: {NS}/same-namespace\ncases:\n{text}")
        return load_scenario(path).cases[0]


def echoed(**fields: object) -> dict[str, object]:
    base: dict[str, object] = {"path": "/", "host": "", "method": "GET", "namespace": NS,
                               "pod": "infra-backend-v1-0", "headers": {}}
    return {**base, **fields}


def test_request_header_values_are_joined_with_commas_and_names_fold_case() -> None:
    c = case(f"""- request: {{path: /}}
  expectedRequest: {{path: /, headers: {{x-header-add-append: "a,b"}}}}
  backend: infra-backend-v1
  namespace: {NS}""")
    got = Captured(200, {}, echoed(headers={"X-Header-Add-Append": ["a", "b"]}))
    assert compare(c, got) is None
    wrong = Captured(200, {}, echoed(headers={"X-Header-Add-Append": ["a"]}))
    assert compare(c, wrong) == (
        "expected x-header-add-append header to be set to a,b, got a")


def test_408_and_504_are_interchangeable_for_timeouts() -> None:
    c = case("- request: {path: /t}\n  response: {statusCode: 504}")
    assert compare(c, Captured(408, {})) is None
    assert compare(c, Captured(504, {})) is None
    assert compare(c, Captured(503, {})) == (
        "expected status code to be one of [504], got 503")


def test_a_non_2xx_answer_is_compared_on_status_and_location_only() -> None:
    c = case("""- request: {path: /old, unfollowRedirect: true}
  response: {statusCode: 302}
  redirectRequest: {host: example.org, path: /new}""")
    ok = Captured(302, {}, None, "http://example.org/new")
    assert compare(c, ok) is None
    assert compare(c, Captured(302, {}, None, "http://example.org:8080/new")) == (
        "for http scheme, expected redirected port to be 80 or not set, got '8080'")
    assert "redirected path" in str(compare(c, Captured(302, {}, None, "http://example.org/x")))
    plain = case("- request: {path: /missing}\n  response: {statusCode: 404}")
    assert compare(plain, Captured(404, {}, {"pod": "someone-else"})) is None


def test_a_200_must_come_from_the_named_backend_in_its_namespace() -> None:
    c = case(f"- request: {{path: /}}\n  backend: infra-backend-v2\n  namespace: {NS}")
    assert compare(c, Captured(200, {}, echoed(pod="infra-backend-v2-0"))) is None
    assert compare(c, Captured(200, {}, echoed())) == (
        "expected pod name to start with infra-backend-v2, got infra-backend-v1-0")
    assert compare(c, Captured(200, {}, echoed(pod="infra-backend-v2-0", namespace="x"))) == (
        f"expected namespace to be {NS}, got x")


def test_response_headers_and_absent_headers() -> None:
    c = case(f"""- request: {{path: /}}
  response: {{headers: {{x-set: v}}, absentHeaders: [x-gone]}}
  backend: infra-backend-v1
  namespace: {NS}""")
    assert compare(c, Captured(200, {"x-set": ("v",)}, echoed())) is None
    assert "x-gone header to not be set" in str(compare(
        c, Captured(200, {"x-set": ("v",), "x-gone": ("1",)}, echoed())))


def test_redirect_location_is_read_relative_to_the_request() -> None:
    assert redirect_of("/elsewhere", "http", "/here").path == "/elsewhere"
    assert redirect_of("https://a.example:8443/p", "http", "/").port == "8443"


def test_a_case_passes_when_it_passes_three_times_in_a_row() -> None:
    now = [0.0]
    answers = iter([None, "flaky", None, None, None, "never asked"])
    assert converge(lambda: next(answers), clock=lambda: now[0],
                    sleep=lambda s: now.__setitem__(0, now[0] + s)) is None
    assert next(answers) == "never asked"


def test_a_case_fails_when_it_does_not_converge_within_30_seconds() -> None:
    now = [0.0]
    why = converge(lambda: "wrong backend", clock=lambda: now[0],
                   sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert why is not None and why.endswith("wrong backend") and "timeout after" in why
    assert now[0] >= 30.0


def test_every_http_and_grpc_route_scenario_of_the_corpus_has_a_table() -> None:
    scenarios = load_all()
    manifests_used = {m for s in scenarios for m in s.manifests}
    corpus = {str(p.relative_to(CORPUS)) for p in (CORPUS / "tests").rglob("*.yaml")
              if p.name.startswith(("httproute-", "grpcroute-"))}
    assert len(corpus) > 80  # the gateway scenarios' and the mesh (GAMMA) ones
    assert corpus - manifests_used == set()
    for scenario in scenarios:
        assert scenario.skip or scenario.cases or scenario.conditions, scenario.name
        for manifest in scenario.manifests:
            assert (CORPUS / manifest).is_file(), (scenario.name, manifest)


def test_a_scenario_that_checks_nothing_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("name: Empty\nmanifests: []\ncases: []\n")
    with pytest.raises(ScenarioError, match="no cases, no conditions and no skip reason"):
        load_scenario(path)


def test_deployments_of_the_echo_image_become_workload_entries_running_the_echo() -> None:
    pods = manifests.Pods("127.0.77.")
    converted = manifests.convert((CORPUS / "base" / "manifests.yaml").read_text(), pods,
                                  "/venv/bin/python", max_replicas=2)
    entries = {(d["metadata"]["namespace"], d["metadata"]["name"]): d
               for d in converted.documents if d["kind"] == "WorkloadEntry"}
    v1 = entries[(NS, "infra-backend-v1-0")]
    assert (NS, "infra-backend-v1-1") in entries  # replicas: 2
    assert v1["spec"]["labels"] == {"app": "infra-backend-v1"}
    assert v1["spec"]["address"].startswith("127.0.77.")
    command = v1["metadata"]["annotations"]["heddle.dev/command"]
    assert "POD_NAME=infra-backend-v1-0" in command and f"NAMESPACE={NS}" in command
    assert "SERVICE_NAME=infra-backend-v1" in command
    assert "ECHO_PORTS=3000,3001" in command  # the Service's target ports
    assert command.endswith("/venv/bin/python -m heddle.conformance.echo")
    addresses = [e["spec"]["address"] for e in entries.values()]
    assert len(set(addresses)) == len(addresses)
    kinds = {d["kind"] for d in converted.documents}
    assert "Deployment" not in kinds and "Gateway" in kinds and "Service" in kinds
    assert not any("{GATEWAY_CLASS_NAME}" in yaml.safe_dump(d) for d in converted.documents)
    assert any("coredns" in line and "not an echo image" in line
               for line in converted.left_out)


def test_the_echo_reflects_a_request_as_echo_basic_does() -> None:
    body = reflect("GET", "/p?q=1", [("host", "example.org"), ("x-a", "1"), ("x-a", "2")],
                   "1.1", {"NAMESPACE": NS, "POD_NAME": "infra-backend-v1-0"})
    assert body["path"] == "/p?q=1" and body["host"] == "example.org"
    assert body["headers"] == {"X-A": ["1", "2"]} and body["proto"] == "HTTP/1.1"
    assert body["pod"] == "infra-backend-v1-0" and body["namespace"] == NS
    assert canonical("x-echo-set-header") == "X-Echo-Set-Header"
    assert response_headers([("X-Echo-Set-Header", "a:1,b: 2")]) == [("a", "1"), ("b", "2")]
    assert go_duration("1s") == 1.0 and go_duration("1m30s") == 90.0
    assert go_duration("soon") is None


def test_a_traffic_split_must_be_within_5_points_of_each_weight() -> None:
    weights = (("infra-backend-v1", 0.7), ("infra-backend-v2", 0.3), ("infra-backend-v3", 0.0))
    assert distribution_error(["infra-backend-v1-0"] * 340 + ["infra-backend-v2-0"] * 160,
                              weights) is None
    assert distribution_error(["infra-backend-v1-0"] * 250 + ["infra-backend-v2-0"] * 250,
                              weights) == (
        "backend 'infra-backend-v1' weighted traffic of 0.500 not within tolerance 0.7 (+/-0.05)"
        "; backend 'infra-backend-v2' weighted traffic of 0.500 not within tolerance 0.3 "
        "(+/-0.05)")
    zero = distribution_error(["infra-backend-v1-0"] * 349 + ["infra-backend-v2-0"] * 150
                              + ["infra-backend-v3-0"], weights)
    assert zero == "expected 2 backends to receive traffic, but got 3"


def test_certificate_names_match_as_gos_client_matches_them() -> None:
    assert go_name("*.org", "example.org") and go_name("*.wildcard.org", "a.wildcard.org")
    assert not go_name("*.org", "a.b.org") and not go_name("*.org", "org")
    assert go_name("Example.org", "example.org") and not go_name("*", "example.org")


def test_the_report_counts_core_and_extended_and_infers_supported_features() -> None:
    scenarios = {s.name: s for s in load_all()}
    chosen = [scenarios[n] for n in ("HTTPRouteMatching", "HTTPRouteTimeoutRequest",
                                     "HTTPRouteRetryWithTimeouts", "HTTPRouteBackendURLRewrite")]
    outcomes = [Outcome("HTTPRouteMatching", "pass"), Outcome("HTTPRouteTimeoutRequest", "pass"),
                Outcome("HTTPRouteRetryWithTimeouts", "skip", "not ported"),
                Outcome("HTTPRouteBackendURLRewrite", "fail", "Accepted is False")]
    report = yaml.safe_load(conformance_report(chosen, outcomes))
    http = report["profiles"][0]
    assert http["name"] == "GATEWAY-HTTP" and http["core"]["statistics"] == {
        "Passed": 1, "Failed": 0, "Skipped": 0}
    extended = http["extended"]
    assert extended["statistics"] == {"Passed": 1, "Failed": 1, "Skipped": 1}
    assert "HTTPRouteRequestTimeout" in extended["supportedFeatures"]  # a skip does not undo it
    assert extended["unsupportedFeatures"] == ["HTTPRouteBackendURLRewrite"]
    assert "HTTPRouteRetry" in extended["untestedFeatures"]


def test_each_server_name_gets_its_own_tls_connection() -> None:
    """As the upstream roundtripper (a transport per request): a connection made with one
    SNI never carries a request for another, which a gateway would route by the first's
    filter chain (HTTPRouteHTTPSListener's second-example.org answered by the catch-all)."""
    certificate = self_signed("sni-test", ("*.org",), datetime.datetime.now(datetime.UTC))
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "cert.pem").write_bytes(certificate.cert_pem)
        (Path(folder) / "key.pem").write_bytes(certificate.key_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(Path(folder) / "cert.pem", Path(folder) / "key.pem")
    handshakes: list[str | None] = []

    def record(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        handshakes.append(name)

    context.sni_callback = record

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the client may reuse the connection

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    sender = Sender({"suite": certificate.cert_pem})
    try:
        for host in ("example.org", "second-example.org", "example.org"):
            got = sender.send(case(f"- request: {{host: {host}, path: /, protocol: HTTPS}}\n"
                                   "  response: {statusCode: 200}\n"),
                              "127.0.0.1", server.server_address[1])
            assert got.status == 200
    finally:
        sender.close()
        server.shutdown()
        server.server_close()
        thread.join()
    assert handshakes == ["example.org", "second-example.org"]
