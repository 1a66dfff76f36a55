"""The conformance runner's gRPC parts: the echo service the grpc backends run (echo-basic
with GRPC_ECHO_SERVER), the client the runner calls the gateway with, the upstream's rules for
comparing a call (compareResponse), and the GRPCRoute case tables."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from heddle.conformance import manifests
from heddle.conformance.compare import RpcCaptured, compare_rpc
from heddle.conformance.grpcecho import server
from heddle.conformance.grpcecho_proto import EchoResponse, full_method
from heddle.conformance.rpc import RpcSender, code_name
from heddle.conformance.scenarios import Case, Rpc, ScenarioError, load_all, load_scenario

CORPUS = Path(__file__).resolve().parents[2].parent / "shared/corpus/gateway-api/conformance"
NS = "gateway-conformance-infra"
ECHO = "/gateway_api_conformance.echo_basic.grpcecho.GrpcEcho/Echo"


def grpc_case(text: str) -> Case:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.yaml"
        path.write_text(f"name: T\nmanifests: []\ngateway: {NS}/same-namespace\ncases:\n{text}")
        return load_scenario(path).cases[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def echo() -> Iterator[tuple[int, RpcSender]]:
    port = free_port()
    srv = server("127.0.0.1", [port], {"NAMESPACE": NS, "POD_NAME": "grpc-infra-backend-v1-0",
                                       "SERVICE_NAME": "grpc-infra-backend-v1"})
    sender = RpcSender(timeout=5)
    try:
        yield port, sender
    finally:
        sender.close()
        srv.stop(0)


def test_the_grpc_echo_reflects_the_call_its_metadata_authority_and_pod(
        echo: tuple[int, RpcSender]) -> None:
    port, sender = echo
    got = sender.send(Rpc("EchoTwo", "bar.com", (("Version", "one"),)), "127.0.0.1", port)
    assert got.code == "OK"
    assert got.full_method == full_method("EchoTwo")
    assert got.authority == "bar.com"
    assert ("version", "one") in got.headers  # gRPC metadata keys are lower case
    assert (":authority", "bar.com") in got.headers
    assert (got.namespace, got.pod) == (NS, "grpc-infra-backend-v1-0")


def test_echo_three_is_unimplemented_as_upstream(echo: tuple[int, RpcSender]) -> None:
    port, sender = echo
    assert sender.send(Rpc("EchoThree"), "127.0.0.1", port).code == "Unimplemented"


def test_a_call_nobody_answers_is_unavailable() -> None:
    sender = RpcSender(timeout=2)
    try:
        got = sender.send(Rpc("Echo"), "127.0.0.1", free_port())
    finally:
        sender.close()
    assert got.code == "Unavailable" and got.details


def test_the_echo_response_is_the_protos_wire_format() -> None:
    # EchoResponse{assertions{fully_qualified_method: "/m", context{pod: "p"}}}: field 1
    # (assertions) holds field 1 (the method) and field 4 (the context, whose field 4 is pod)
    wire = b"\n\x0b\n\x02/m\"\x05\"\x03pod"
    response = EchoResponse.FromString(wire)
    assert response.SerializeToString() == wire
    assert response.assertions.context.pod == "pod"  # type: ignore[attr-defined]


def test_go_names_the_status_codes() -> None:
    assert code_name(grpc.StatusCode.UNIMPLEMENTED) == "Unimplemented"
    assert code_name(grpc.StatusCode.DEADLINE_EXCEEDED) == "DeadlineExceeded"


def test_a_call_is_compared_on_its_code_then_method_namespace_and_pod() -> None:
    c = grpc_case(f"- echoRequest: {{}}\n  backend: grpc-infra-backend-v1\n  namespace: {NS}")
    ok = RpcCaptured("OK", ECHO, NS, "grpc-infra-backend-v1-0")
    assert compare_rpc(c, ok) is None
    assert compare_rpc(c, RpcCaptured("Unimplemented")) == (
        "expected status code to be OK (0), but got Unimplemented (12)")
    assert compare_rpc(c, RpcCaptured("OK", ECHO + "Two", NS, "grpc-infra-backend-v1-0")) == (
        f"expected path to be {ECHO}, got {ECHO}Two")
    assert compare_rpc(c, RpcCaptured("OK", ECHO, "x", "grpc-infra-backend-v1-0")) == (
        f"expected namespace to be {NS}, got x")
    assert compare_rpc(c, RpcCaptured("OK", ECHO, NS, "grpc-infra-backend-v2-0")) == (
        "expected pod name to start with grpc-infra-backend-v1, got grpc-infra-backend-v2-0")


def test_an_expected_failure_code_is_all_that_is_compared() -> None:
    c = grpc_case("- echoThreeRequest: {}\n  response: {code: Unimplemented}")
    assert compare_rpc(c, RpcCaptured("Unimplemented")) is None
    assert compare_rpc(c, RpcCaptured("OK", ECHO, NS, "anyone")) is not None


def test_grpc_cases_are_named_as_the_upstream_names_them() -> None:
    c = grpc_case("""- echoRequest: {}
  requestMetadata: {authority: bar.com, metadata: {Version: two, Color: orange}}
  backend: grpc-infra-backend-v1""")
    assert c.name == ("0 request to 'bar.com/gateway_api_conformance.echo_basic.grpcecho."
                      "GrpcEcho/Echo' with headers '{Color:orange,Version:two}' should go to "
                      "grpc-infra-backend-v1")
    assert c.rpc == Rpc("Echo", "bar.com", (("Version", "two"), ("Color", "orange")), "OK")
    failing = grpc_case("- echoThreeRequest: {}\n  response: {code: Unimplemented}")
    assert failing.name.endswith("GrpcEcho/EchoThree' should receive a Unimplemented (12)")


@pytest.mark.parametrize("text, error", [
    ("- {echoRequest: {}, echoTwoRequest: {}}", "names 2 gRPC requests, not one"),
    ("- {echoRequest: {}, response: {code: Teapot}}", "'Teapot' is no gRPC status code"),
])
def test_a_grpc_case_must_name_one_call_and_a_known_code(text: str, error: str) -> None:
    with pytest.raises(ScenarioError, match=error):
        grpc_case(text)


def test_the_gateway_grpcroute_scenarios_run_with_cases() -> None:
    grpc_scenarios = [s for s in load_all() if s.route_kind == "GRPCRoute" and not s.mesh]
    assert len(grpc_scenarios) == 6
    for scenario in grpc_scenarios:
        assert not scenario.skip and scenario.cases, scenario.name
        assert all(c.rpc is not None for c in scenario.cases), scenario.name


def test_pods_that_set_grpc_echo_server_run_the_grpc_echo() -> None:
    converted = manifests.convert((CORPUS / "base" / "manifests.yaml").read_text(),
                                  manifests.Pods("127.0.77."), "/venv/bin/python")
    commands = {d["metadata"]["name"]: d["metadata"]["annotations"]["heddle.dev/command"]
                for d in converted.documents if d["kind"] == "WorkloadEntry"}
    for name in ("grpc-infra-backend-v1-0", "grpc-infra-backend-v2-0",
                 "grpc-infra-backend-v3-0"):
        assert commands[name].endswith("-m heddle.conformance.grpcecho"), name
        assert "ECHO_PORTS=3000" in commands[name]
    assert commands["infra-backend-v1-0"].endswith("-m heddle.conformance.echo")
