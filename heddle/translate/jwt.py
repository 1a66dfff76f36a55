"""RequestAuthentication -> Envoy's jwt_authn filter (and the clusters for remote JWKS).

As in Istio: a request without a token passes unauthenticated (require one with an
AuthorizationPolicy `requestPrincipals: ["*"]`); a token that fails verification gets 401
(a wrong audience gets 403, which is what Envoy, and so Istio, answers). A verified token's
claims are put in dynamic metadata, where AuthorizationPolicy rules read them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, base_pb2, http_uri_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from google.protobuf import any_pb2, duration_pb2

from heddle.api.models import RequestAuthenticationSpec
from heddle.api.models._generated.security_requestauthentication import (
    RequestAuthenticationSpecJwtRule,
)
from heddle.api.resource import Resource
from heddle.api.specs import spec_of
from heddle.model.proxy import Proxy
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.authz import JWT_FILTER, JWT_PAYLOAD, applicable_policies

DEFAULT_HEADER = "Authorization"
DEFAULT_PREFIX = "Bearer "
DEFAULT_PARAM = "access_token"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def applicable(snapshot: MeshSnapshot, proxy: Proxy) -> list[Resource[Any]]:
    return applicable_policies(snapshot, proxy, "RequestAuthentication")


def jwks_cluster_name(uri: str) -> str:
    parsed = urlparse(uri)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return f"jwks|{parsed.hostname}|{port}"


def _jwt_rules(policy: Resource[Any]) -> list[RequestAuthenticationSpecJwtRule]:
    return spec_of(policy, RequestAuthenticationSpec).jwtRules or []


def _provider(rule: RequestAuthenticationSpecJwtRule) -> jwt.JwtProvider:
    provider = jwt.JwtProvider(
        issuer=rule.issuer or "",
        audiences=[a.root for a in rule.audiences or []],
        forward=bool(rule.forwardOriginalToken),
        payload_in_metadata=JWT_PAYLOAD,
    )
    if rule.jwks is not None:
        provider.local_jwks.inline_string = rule.jwks
    elif rule.jwksUri is not None:
        uri = rule.jwksUri
        provider.remote_jwks.http_uri.CopyFrom(http_uri_pb2.HttpUri(
            uri=uri, cluster=jwks_cluster_name(uri), timeout=duration_pb2.Duration(seconds=5)))
        provider.remote_jwks.cache_duration.seconds = 300
    headers = [(h.name, h.prefix or "") for h in rule.fromHeaders or []]
    params = [p.root for p in rule.fromParams or []]
    cookies = [c.root for c in rule.fromCookies or []]
    if not headers and not params and not cookies:  # Istio's default token locations
        headers = [(DEFAULT_HEADER, DEFAULT_PREFIX)]
        params = [DEFAULT_PARAM]
    for name, prefix in headers:
        provider.from_headers.add(name=name, value_prefix=prefix)
    provider.from_params.extend(params)
    provider.from_cookies.extend(cookies)
    if rule.outputPayloadToHeader:
        provider.forward_payload_header = rule.outputPayloadToHeader
    for claim in rule.outputClaimToHeaders or []:
        provider.claim_to_headers.add(header_name=claim.header, claim_name=claim.claim)
    return provider


def jwt_filter(snapshot: MeshSnapshot, proxy: Proxy) -> list[tuple[str, jwt.JwtAuthentication]]:
    """The jwt_authn filter for an inbound HTTP chain, or nothing without RequestAuthentication."""
    config = jwt.JwtAuthentication()
    names = []
    for policy in applicable(snapshot, proxy):
        for i, rule in enumerate(_jwt_rules(policy)):
            name = f"origins-{policy.namespace}-{policy.name}-{i}"
            config.providers[name].CopyFrom(_provider(rule))
            names.append(name)
    if not names:
        return []
    requirement = config.rules.add()
    requirement.match.prefix = "/"
    anyof = requirement.requires.requires_any
    for name in names:
        anyof.requirements.add(provider_name=name)
    anyof.requirements.add(allow_missing={})
    return [(JWT_FILTER, config)]


def jwks_clusters(snapshot: MeshSnapshot, proxy: Proxy) -> list[cluster_pb2.Cluster]:
    """Clusters through which Envoy fetches remote JWKS (TLS with the system roots for https)."""
    clusters: dict[str, cluster_pb2.Cluster] = {}
    for policy in applicable(snapshot, proxy):
        for rule in _jwt_rules(policy):
            uri = rule.jwksUri
            if not uri or rule.jwks is not None:
                continue
            parsed = urlparse(uri)
            name = jwks_cluster_name(uri)
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
            cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STRICT_DNS,
                                          connect_timeout=duration_pb2.Duration(seconds=5))
            cluster.dns_lookup_family = cluster_pb2.Cluster.V4_ONLY
            cluster.load_assignment.cluster_name = name
            endpoint = cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint
            endpoint.address.CopyFrom(address_pb2.Address(socket_address=address_pb2.SocketAddress(
                address=str(parsed.hostname), port_value=port)))
            if parsed.scheme == "https":
                context = tls_pb2.UpstreamTlsContext(sni=str(parsed.hostname))
                validation = common_pb2.CertificateValidationContext()
                validation.trusted_ca.filename = SYSTEM_CA_BUNDLE
                context.common_tls_context.validation_context.CopyFrom(validation)
                packed = any_pb2.Any()
                packed.Pack(context)
                cluster.transport_socket.CopyFrom(base_pb2.TransportSocket(
                    name="envoy.transport_sockets.tls", typed_config=packed))
            clusters[name] = cluster
    return list(clusters.values())
