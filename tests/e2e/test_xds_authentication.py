"""Who may open ADS: the secure port takes the proxy's identity from its workload
certificate and refuses a node, service account or WorkloadGroup the certificate does not
grant; a stream naming a live proxy (even an unauthenticated one on the plaintext port) is
served beside it and never displaces it, as istiod keys streams by connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf.json_format import ParseDict

from heddle.agent.bootstrap import bootstrap
from heddle.agent.ca_client import CertificateClient
from heddle.agent.certificates import WorkloadCertificate
from heddle.api.loader import load_text
from heddle.ca.authority import CertificateAuthority, make_csr, new_key
from heddle.ca.identity import CONTROL_PLANE_NAMES, Identity
from heddle.ca.service import CertificateService
from heddle.ca.tokens import TokenIssuer
from heddle.config.store import ConfigStore
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.registry.membership import Membership
from heddle.testing.envoy import EnvoyHarness, RunningEnvoy
from heddle.testing.identity import serve_identity
from heddle.testing.loopback import unique_subnet
from heddle.testing.waiting import eventually
from heddle.translate.sidecar import CLUSTER
from heddle.xds.agent_ports import AgentPorts, start_agent_ports
from heddle.xds.server import XdsServer, start_grpc
from heddle.xds.status import SyncState

from .mesh_fixtures import hello_store, hello_text

POOL = """\
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: backend-pool}
spec:
  metadata: {labels: {app: backend, version: v2}}
  template: {serviceAccount: backend}
"""
NO_PROXY = [("grpc.enable_http_proxy", 0)]


@dataclass
class Plane:
    """The control plane's xDS pieces, in process, on free loopback ports."""

    store: ConfigStore
    xds: XdsServer
    membership: Membership
    ca: CertificateAuthority
    tokens: TokenIssuer
    plaintext_port: int
    ports: AgentPorts
    subnet: str
    tmp: Path

    def proxy(self, name: str, host: int, service_account: str, group: str = "") -> Proxy:
        return Proxy(ProxyType.SIDECAR, name, "default", f"{self.subnet}{host}",
                     f"{self.subnet}{host + 100}", (("app", name),), service_account, group)


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[Plane]:
    subnet = unique_subnet()
    store = hello_store(subnet)
    store.put("pool.yaml", load_text(POOL, "pool.yaml"))
    membership = Membership()
    xds = XdsServer(lambda: MeshSnapshot.build(store.version * 1000 + membership.version,
                                               store.resources(), membership.healthy()),
                    membership=membership)
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")  # serve_identity's CA too
    tokens = TokenIssuer.load_or_create(tmp_path / "ca")
    plaintext, plaintext_port = await start_grpc(xds, "127.0.0.1:0")
    ports = await start_agent_ports(xds, ca, CertificateService(ca, tokens),
                                    "127.0.0.1:0", "127.0.0.1:0")
    try:
        yield Plane(store, xds, membership, ca, tokens, plaintext_port, ports, subnet,
                    tmp_path)
    finally:
        await ports.server.stop(grace=None)
        await plaintext.stop(grace=None)


def workload_certificate(ca: CertificateAuthority, namespace: str,
                         service_account: str) -> WorkloadCertificate:
    identity = Identity(namespace, service_account)
    key = new_key()
    signed = ca.sign(make_csr(key, identity), identity)
    leaf = x509.load_pem_x509_certificate(signed.cert_chain_pem)
    return WorkloadCertificate(
        signed.cert_chain_pem,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()),
        signed.root_pem, leaf.not_valid_before_utc, leaf.not_valid_after_utc)


def tls_channel(port: int, root: bytes,
                cert: WorkloadCertificate | None = None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root, cert.key_pem if cert else None, cert.cert_chain_pem if cert else None)
    return grpc.aio.secure_channel(
        f"127.0.0.1:{port}", credentials,
        [("grpc.ssl_target_name_override", CONTROL_PLANE_NAMES[0]), *NO_PROXY])


def node_of(proxy: Proxy, drop: tuple[str, ...] = (), **metadata: str) -> base_pb2.Node:
    """The node an agent's bootstrap announces, with metadata changed or `drop`ped."""
    node = ParseDict(bootstrap(proxy, "127.0.0.1", 1)["node"], base_pb2.Node())
    node.metadata.update(metadata)
    for name in drop:
        del node.metadata.fields[name]
    return node


class Ads:
    """A raw SotW ADS stream, as a probe (or an agent's Envoy) opens one."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(
            channel).StreamAggregatedResources()

    async def ask(self, node: base_pb2.Node, type_url: str = CLUSTER,
                  ) -> discovery_pb2.DiscoveryResponse:
        await self.call.write(discovery_pb2.DiscoveryRequest(node=node, type_url=type_url))
        response: discovery_pb2.DiscoveryResponse = await asyncio.wait_for(self.call.read(),
                                                                           10)
        return response


async def refusal(channel: grpc.aio.Channel, node: base_pb2.Node) -> grpc.aio.AioRpcError:
    async with channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await Ads(channel).ask(node)
    return refused.value


def refusals(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records
                     if r.name == "heddle.xds.server" and r.levelno >= logging.WARNING)


async def test_ads_without_a_workload_certificate_is_refused(
        plane: Plane, caplog: pytest.LogCaptureFixture) -> None:
    frontend = node_of(plane.proxy("frontend", 2, "frontend"))
    secure = await refusal(tls_channel(plane.ports.secure_port, plane.ca.root_pem), frontend)
    assert secure.code() == grpc.StatusCode.UNAVAILABLE  # the handshake wants a certificate
    join = await refusal(tls_channel(plane.ports.join_port, plane.ca.root_pem), frontend)
    assert join.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "no client certificate" in join.details()
    assert "refused an ADS stream" in refusals(caplog)
    assert plane.xds.statuses == {}


async def test_a_certificate_from_another_ca_is_refused_at_the_handshake(
        plane: Plane) -> None:
    other = CertificateAuthority.load_or_create(plane.tmp / "other-ca")
    forged = workload_certificate(other, "default", "frontend")
    refused = await refusal(tls_channel(plane.ports.secure_port, plane.ca.root_pem, forged),
                            node_of(plane.proxy("frontend", 2, "frontend")))
    assert refused.code() == grpc.StatusCode.UNAVAILABLE
    assert plane.xds.statuses == {}


async def test_a_workload_certificate_opens_ads_for_its_own_proxy(plane: Plane) -> None:
    proxy = plane.proxy("frontend", 2, "frontend")
    cert = workload_certificate(plane.ca, "default", "frontend")
    async with tls_channel(plane.ports.secure_port, plane.ca.root_pem, cert) as channel:
        response = await Ads(channel).ask(node_of(proxy))
        assert any(b"backend.default.svc.cluster.local" in r.value for r in response.resources)
        status = plane.xds.status_of(proxy.id)
        assert status is not None
        assert status.identity == "spiffe://cluster.local/ns/default/sa/frontend"


async def test_a_certificate_for_one_account_cannot_fetch_another_accounts_config(
        plane: Plane, caplog: pytest.LogCaptureFixture) -> None:
    client = workload_certificate(plane.ca, "default", "client")
    frontend = plane.proxy("frontend", 2, "frontend")
    claims = {
        "SERVICE_ACCOUNT metadata": node_of(frontend),
        # no claim: the WorkloadEntry `frontend` says which account runs it
        "WorkloadEntry": node_of(frontend, drop=("SERVICE_ACCOUNT",)),
        "namespace": node_of(Proxy(ProxyType.SIDECAR, "x", "other", f"{plane.subnet}9",
                                   f"{plane.subnet}109"), SERVICE_ACCOUNT="client"),
        "NAMESPACE metadata": node_of(plane.proxy("x", 9, "client"), NAMESPACE="other"),
    }
    for what, node in claims.items():
        refused = await refusal(
            tls_channel(plane.ports.secure_port, plane.ca.root_pem, client), node)
        assert refused.code() == grpc.StatusCode.PERMISSION_DENIED, what
    logged = refusals(caplog)
    who = "with identity spiffe://cluster.local/ns/default/sa/client"
    assert f"node {frontend.id} from ipv4:127.0.0.1:" in logged and who in logged
    assert "service account frontend is not the certificate's" in logged
    assert "WorkloadEntry default/frontend runs as service account frontend" in logged
    assert "names namespace other" in logged
    assert plane.xds.statuses == {}


async def test_a_certificate_for_one_account_cannot_join_another_accounts_workload_group(
        plane: Plane, caplog: pytest.LogCaptureFixture) -> None:
    intruder = plane.proxy("backend-pool-1", 7, "client", group="backend-pool")
    client = workload_certificate(plane.ca, "default", "client")
    refused = await refusal(tls_channel(plane.ports.secure_port, plane.ca.root_pem, client),
                            node_of(intruder))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert ("WorkloadGroup default/backend-pool is for service account default/backend, "
            "not the certificate's (spiffe://cluster.local/ns/default/sa/client)"
            in refusals(caplog))
    assert plane.membership.members() == {}
    # The group's own account may join: as an instance that is unhealthy until probed.
    backend = workload_certificate(plane.ca, "default", "backend")
    member = plane.proxy("backend-pool-1", 7, "backend", group="backend-pool")
    async with tls_channel(plane.ports.secure_port, plane.ca.root_pem, backend) as channel:
        await Ads(channel).ask(node_of(member))
        [(workload, healthy)] = plane.membership.members().values()
        assert (workload.address, workload.service_account, healthy) == (
            f"{plane.subnet}7", "backend", False)


async def test_the_plaintext_port_serves_config_but_registers_no_endpoint(
        plane: Plane, caplog: pytest.LogCaptureFixture) -> None:
    """As istiod's 15010: unauthenticated (and loopback only); as its auto-registration,
    joining a WorkloadGroup needs a verified identity."""
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{plane.plaintext_port}", NO_PROXY)
    async with channel:
        response = await Ads(channel).ask(node_of(plane.proxy("frontend", 2, "frontend")))
        assert response.resources
    member = plane.proxy("backend-pool-1", 7, "backend", group="backend-pool")
    refused = await refusal(
        grpc.aio.insecure_channel(f"127.0.0.1:{plane.plaintext_port}", NO_PROXY),
        node_of(member))
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "needs a verified identity" in refusals(caplog)
    assert plane.membership.members() == {}


async def test_renewal_is_by_the_current_certificate_and_only_for_its_identity(
        plane: Plane, caplog: pytest.LogCaptureFixture) -> None:
    identity = Identity("default", "frontend")
    token = plane.tokens.create("default", "frontend")
    address = f"127.0.0.1:{plane.ports.secure_port}"
    join = f"127.0.0.1:{plane.ports.join_port}"
    first = await CertificateClient(address, plane.ca.root_pem, token, join).request(identity)
    renewed = await CertificateClient(address, plane.ca.root_pem, "", join).request(
        identity, current=first)  # no token: the certificate is the proof
    assert renewed.cert_chain_pem != first.cert_chain_pem
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await CertificateClient(address, plane.ca.root_pem, "", join).request(
            Identity("default", "backend"), current=renewed)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert ("refused a certificate for a client certificate bound to "
            "spiffe://cluster.local/ns/default/sa/frontend") in caplog.text


async def route_weights(envoy: RunningEnvoy) -> list[int]:
    """The weights of the backend route's clusters in the Envoy's active routes."""
    dump = await envoy.config_dump("dynamic_route_configs")
    weights: list[int] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            if "backend.default.svc.cluster.local" in str(value.get("name", "")) and \
                    "weight" in value:
                weights.append(int(value["weight"]))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(dump)
    return sorted(weights)


async def test_an_unauthenticated_stream_naming_a_live_proxy_does_not_disturb_it(
        plane: Plane, caplog: pytest.LogCaptureFixture) -> None:
    """A real Envoy on the secure port (mTLS, its certificate from its SDS socket); a probe
    naming its node id on the plaintext port gets a stream of its own, and once the probe
    has gone a weight change still reaches the Envoy."""
    proxy = plane.proxy("frontend", 2, "frontend")
    sds_server, sds_socket = await serve_identity(plane.tmp, "default", "frontend")
    try:
        async with EnvoyHarness(bootstrap(proxy, "127.0.0.1", plane.ports.secure_port,
                                          sds_socket=str(sds_socket), xds_mtls=True),
                                plane.tmp / "envoy") as envoy:
            real = plane.xds.status_of(proxy.id)
            assert real is not None and real.identity.endswith("/ns/default/sa/frontend")
            assert await route_weights(envoy) == [50, 50]
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{plane.plaintext_port}", NO_PROXY)
            async with channel:
                probe = Ads(channel)
                assert (await probe.ask(node_of(proxy))).resources  # 15010 is unauthenticated
                assert f"another stream for {proxy.id}" in refusals(caplog)
                assert plane.xds.status_of(proxy.id) is not real  # the newest is the probe's
            # The probe has gone: the Envoy's stream is the node's only one, and still served.
            await eventually(lambda: plane.xds.status_of(proxy.id) is real, 5,
                             "only the Envoy's stream left")
            text = (hello_text(plane.subnet)
                    .replace("subset: v1}, weight: 50", "subset: v1}, weight: 80")
                    .replace("subset: v2}, weight: 50", "subset: v2}, weight: 20"))
            plane.store.put("hello.yaml", load_text(text, "hello.yaml"))
            await plane.xds.push_all()

            async def new_weights() -> bool:
                return await route_weights(envoy) == [20, 80]

            await eventually(new_weights, 10, "the weight change in the Envoy")
            # Envoy applies the routes before its ACK reaches the control plane.
            await eventually(lambda: real.connected and all(
                t.state is SyncState.SYNCED for t in real.types.values()), 5,
                "the Envoy's stream synced on every type")
    finally:
        await sds_server.stop(grace=None)
