"""gRPC through the mesh: a grpcio client told of its sidecar as a proxy (it tunnels with
CONNECT) reaches a gRPC server behind its own sidecar over mTLS; the server's sidecar speaks
HTTP/2 to it, as a `protocol: GRPC` port asks."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import grpc
import pytest

from heddle.testing.waiting import wait_for

from .mesh_fixtures import LocalMesh, running_mesh

# A server with one unary method on raw bytes: no generated code needed.
GREETER_APP = """\
import json, os
from concurrent import futures

import grpc


def say(request, context):
    metadata = dict(context.invocation_metadata())
    return json.dumps({"instance": os.environ.get("HEDDLE_WORKLOAD", ""),
                       "got": request.decode(),
                       "peer": metadata.get("x-forwarded-client-cert", "")}).encode()


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "hello.Greeter", {"Say": grpc.unary_unary_rpc_method_handler(say)}),))
server.add_insecure_port(os.environ["HEDDLE_APP_ADDRESS"] + ":50051")
server.start()
print("greeter listening", flush=True)
server.wait_for_termination()
"""


def greeter_config(subnet: str) -> str:
    return f"""\
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: greeter}}
spec:
  hosts: [greeter.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 50051, name: grpc, protocol: GRPC}}]
  workloadSelector: {{labels: {{app: greeter}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: greeter
  annotations:
    heddle.dev/command: {sys.executable} apps/greeter.py
spec:
  address: {subnet}40
  labels: {{app: greeter}}
  serviceAccount: greeter
"""


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    with running_mesh(tmp_path_factory.mktemp("grpc")) as running:
        (running.config_dir / "apps" / "greeter.py").write_text(GREETER_APP)
        (running.config_dir / "greeter.yaml").write_text(greeter_config(running.subnet))
        yield running


def say(mesh: LocalMesh, text: str) -> dict[str, str]:
    """One call from the client workload, through its sidecar."""
    options = [("grpc.http_proxy", f"http://{mesh.subnet}1:15001"),
               ("grpc.enable_retries", 0)]
    with grpc.insecure_channel("greeter:50051", options=options) as channel:
        call = channel.unary_unary("/hello.Greeter/Say")
        answer: bytes = call(text.encode(), timeout=5)
    return dict(json.loads(answer))


def test_a_grpc_call_crosses_two_sidecars_over_mutual_tls(mesh: LocalMesh) -> None:
    def answered() -> bool:
        try:
            return say(mesh, "ping")["got"] == "ping"
        except grpc.RpcError:
            return False

    wait_for(answered, 30, "the greeter answering through the mesh")
    answer = say(mesh, "hello")
    assert answer["instance"] == "greeter"
    assert "URI=spiffe://cluster.local/ns/default/sa/client" in answer["peer"]
    # The server's sidecar parsed the calls as HTTP/2 and logged them with their gRPC path.
    wait_for(lambda: "/hello.Greeter/Say" in mesh.envoy_log("greeter"), 10,
             "the call in the greeter sidecar's access log")
