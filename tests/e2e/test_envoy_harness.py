"""The testing kit's Envoy harness: it runs the real Envoy against an xDS server, its admin
API on an ephemeral loopback port, and always stops it; an Envoy that cannot start fails
with what Envoy said."""

from __future__ import annotations

import http.client
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from heddle.agent.bootstrap import bootstrap
from heddle.model import ports
from heddle.model.proxy import Proxy, ProxyType
from heddle.model.snapshot import MeshSnapshot
from heddle.testing.envoy import (
    CLUSTERS,
    LISTENERS,
    EnvoyFailed,
    EnvoyHarness,
    validate_bootstrap,
)
from heddle.testing.identity import serve_identity
from heddle.testing.loopback import unique_subnet
from heddle.xds.server import XdsServer, start_grpc

from .mesh_fixtures import hello_store

BACKEND = "outbound|9090||backend.default.svc.cluster.local"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def direct_response_bootstrap(body: str) -> dict[str, Any]:
    """No xDS: one static listener on an ephemeral loopback port that answers `body`."""
    return {"static_resources": {"listeners": [{
        "name": "hello",
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network."
                         "http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "hello",
                "route_config": {"virtual_hosts": [{
                    "name": "any", "domains": ["*"], "routes": [{
                        "match": {"prefix": "/"},
                        "direct_response": {"status": 200, "body": {"inline_string": body}},
                    }]}]},
                "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                    "@type": "type.googleapis.com/"
                             "envoy.extensions.filters.http.router.v3.Router"}}],
            },
        }]}],
    }]}}


@pytest.fixture
async def xds_address(tmp_path: Path) -> AsyncIterator[tuple[Proxy, int, Path]]:
    """An in-process xDS server for the hello mesh, and the frontend's SDS socket."""
    subnet = unique_subnet()
    store = hello_store(subnet)
    xds = XdsServer(lambda: MeshSnapshot.of(store))
    server, port = await start_grpc(xds, "127.0.0.1:0")
    sds, sds_socket = await serve_identity(tmp_path, "default", "frontend")
    proxy = Proxy(ProxyType.SIDECAR, "frontend", "default", f"{subnet}2", f"{subnet}102",
                  (("app", "frontend"), ("version", "v1")), "frontend")
    try:
        yield proxy, port, sds_socket
    finally:
        await server.stop(grace=None)
        await sds.stop(grace=None)


async def test_envoy_runs_against_the_xds_server_and_is_stopped_on_leaving(
        tmp_path: Path, xds_address: tuple[Proxy, int, Path]) -> None:
    proxy, port, sds_socket = xds_address
    config = bootstrap(proxy, "127.0.0.1", port, sds_socket=str(sds_socket))
    async with EnvoyHarness(config, tmp_path / "envoy") as envoy:
        assert envoy.running
        assert envoy.admin.host == proxy.address and envoy.admin.port != ports.ADMIN
        assert envoy.admin.ready() == "LIVE"  # every initial fetch done
        cluster = await envoy.wait_for_resource(CLUSTERS, BACKEND)
        assert cluster.version and cluster.body["name"] == BACKEND
        assert await envoy.cluster_hosts(BACKEND) == {f"{proxy.address[:-1]}3:9090",
                                                      f"{proxy.address[:-1]}4:9090"}
        assert f"{proxy.address}_8080" in await envoy.listeners()
        assert (await envoy.resources(LISTENERS))["virtualOutbound"].version
        assert await envoy.stats("^server.live$") == {"server.live": 1}
        pid = envoy.pid
    assert envoy.process.returncode is not None and gone(pid)
    assert config["admin"]["address"]["socket_address"]["port_value"] == ports.ADMIN  # a copy


def test_a_blocking_test_gets_the_same_envoy_and_can_send_it_traffic(tmp_path: Path) -> None:
    with EnvoyHarness(direct_response_bootstrap("hello from envoy"), tmp_path) as envoy:
        host, _, port = envoy.admin.listener_addresses()["hello"].rpartition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, b"hello from envoy")
        finally:
            connection.close()
        assert envoy.admin.stats("^http.hello.downstream_rq_2xx$") == {
            "http.hello.downstream_rq_2xx": 1}
    assert not envoy.running and gone(envoy.pid)


def static_cluster(address: str) -> dict[str, Any]:
    return {"static_resources": {"clusters": [{
        "name": "backend", "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "backend", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": address,
                                                         "port_value": 80}}}}]}]}}]}}


async def test_a_bad_bootstrap_fails_with_envoys_own_message(tmp_path: Path) -> None:
    harness = EnvoyHarness(static_cluster("not-an-ip"), tmp_path)
    with pytest.raises(EnvoyFailed) as failed:
        async with harness:
            pass
    assert "envoy exited with status 1 before it was ready" in str(failed.value)
    assert "malformed IP address: not-an-ip" in failed.value.envoy_says
    assert failed.value.envoy_says in str(failed.value)
    assert harness.process is not None and harness.process.returncode == 1
    with pytest.raises(EnvoyFailed, match="no_such_field"):  # a field Envoy does not know
        EnvoyHarness({"no_such_field": 1}, tmp_path / "unknown").start()


async def test_an_envoy_that_never_gets_ready_is_stopped_and_says_where_it_waits(
        tmp_path: Path) -> None:
    """Its ADS server accepts the connection and never answers: Envoy stays initializing."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    proxy = Proxy(ProxyType.SIDECAR, "frontend", "default", "127.0.0.1", "127.0.0.1")
    harness = EnvoyHarness(bootstrap(proxy, "127.0.0.1", silent.getsockname()[1]), tmp_path,
                           ready_timeout=1.0)
    try:
        with pytest.raises(EnvoyFailed, match=r"not ready after 1.0s \(/ready says "
                                              r"(PRE_)?INITIALIZING"):
            await harness.start_async()
    finally:
        silent.close()
    assert harness.process is not None and harness.process.returncode is not None


def test_an_admin_address_off_loopback_is_refused(tmp_path: Path) -> None:
    config = {"admin": {"address": {"socket_address": {"address": "10.1.2.3",
                                                       "port_value": 15000}}}}
    with pytest.raises(ValueError, match="loopback"):
        EnvoyHarness(config, tmp_path)


def test_validate_bootstrap_says_ok_or_why_not() -> None:
    good = validate_bootstrap(direct_response_bootstrap("hi"))
    assert good.returncode == 0 and "OK" in good.stdout, good.stderr
    bad = validate_bootstrap(static_cluster("not-an-ip"))
    assert bad.returncode != 0 and "malformed IP address: not-an-ip" in bad.stderr
