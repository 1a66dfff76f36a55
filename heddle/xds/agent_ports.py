"""The control plane's ports for agents: ADS and the CA over TLS, with a serving certificate
from the mesh CA (agents trust the root they were given).

- The secure port (15012) is mutual TLS: the handshake requires a client certificate that
  chains to the mesh root. Envoy's ADS comes here with the workload certificate, and so do
  renewals, authenticated by the current certificate as Istio renews.
- The join port (15013) is server-side TLS: an agent's first CSR comes here with its join
  token. ADS is served here too only to refuse it (UNAUTHENTICATED, logged): no client
  certificate is ever asked for on this port.

Two ports, where istiod has one, because grpcio's server credentials either require a
client certificate or never request one (`require_client_auth=False` is gRPC core's
DONT_REQUEST_CLIENT_CERTIFICATE); Python cannot ask for istiod's "verify if given" (Go's
`tls.VerifyClientCertIfGiven`), which lets one port take both a token-only CSR and an
authenticated stream.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import grpc

from heddle.ca.authority import CertificateAuthority
from heddle.ca.identity import CONTROL_PLANE_NAMES
from heddle.ca.service import CertificateService
from heddle.xds.server import EXCLUSIVE_PORTS, XdsServer, add_ads_servicer


@dataclass(frozen=True)
class AgentPorts:
    server: grpc.aio.Server
    secure_port: int
    join_port: int


async def start_agent_ports(xds: XdsServer, ca: CertificateAuthority,
                            certificates: CertificateService, secure_address: str,
                            join_address: str) -> AgentPorts:
    """Listen on both addresses (port 0: any free one) with one gRPC server."""
    host = secure_address.rsplit(":", 1)[0].strip("[]")
    chain, key = ca.issue_server_cert(list(CONTROL_PLANE_NAMES), host,
                                      lifetime=datetime.timedelta(days=365))
    server = grpc.aio.server(options=EXCLUSIVE_PORTS)
    server.add_generic_rpc_handlers((certificates.handler(),))
    add_ads_servicer(xds, server)
    secure_port = server.add_secure_port(secure_address, grpc.ssl_server_credentials(
        [(key, chain)], root_certificates=ca.root_pem, require_client_auth=True))
    join_port = server.add_secure_port(join_address,
                                       grpc.ssl_server_credentials([(key, chain)]))
    await server.start()
    return AgentPorts(server, secure_port, join_port)
