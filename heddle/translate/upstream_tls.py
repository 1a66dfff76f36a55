"""TLS origination from a DestinationRule (`tls.mode` SIMPLE or MUTUAL): the client sidecar
opens TLS to the destination itself, as Istio does for egress to HTTPS services.

Certificates come from files on the proxy's host (`caCertificates`, `clientCertificate`,
`privateKey`) or from a Secret named by `credentialName` in the rule's namespace (keys
`tls.crt`, `tls.key`, `ca.crt`), whose bytes are inlined. Istio's sidecars fetch
credentialName over SDS and only for rules with a workloadSelector; Heddle has no per-pod
secret access control to protect, so it inlines the Secret for any rule.
Without `caCertificates`, the system's trust store verifies the server, as in Istio.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2

from heddle.api.models import SecretSpec
from heddle.api.models.destination_rule_parts import ClientTLS
from heddle.api.specs import spec_of
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.mtls import sds_secret
from heddle.translate.traffic_policy import ProtocolOptions, is_http2

SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"
TLS_SOCKET = "envoy.transport_sockets.tls"


def san_matcher(san: str) -> common_pb2.SubjectAltNameMatcher:
    if "://" in san:
        kind = common_pb2.SubjectAltNameMatcher.URI
    else:
        try:
            ipaddress.ip_address(san)
            kind = common_pb2.SubjectAltNameMatcher.IP_ADDRESS
        except ValueError:
            kind = common_pb2.SubjectAltNameMatcher.DNS
    return common_pb2.SubjectAltNameMatcher(san_type=kind,
                                            matcher=string_pb2.StringMatcher(exact=san))


def _secret_bytes(snapshot: MeshSnapshot, namespace: str, name: str, key: str) -> bytes | None:
    """One key of a Secret's data (base64) or stringData; the `NAME-cacert` Secret also holds
    the CA, as Istio allows."""
    for secret_name in ((name, f"{name}-cacert") if key == "ca.crt" else (name,)):
        secret = snapshot.get("", "Secret", namespace, secret_name)
        if secret is None:
            continue
        spec = spec_of(secret, SecretSpec)
        if key in (spec.stringData or {}):
            return (spec.stringData or {})[key].encode()
        raw = (spec.data or {}).get(key)
        if raw is not None:
            try:
                return base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                return None
    return None


def _data(filename: str = "", inline: bytes | None = None) -> base_pb2.DataSource:
    if inline is not None:
        return base_pb2.DataSource(inline_bytes=inline)
    return base_pb2.DataSource(filename=filename)


def origination_socket(snapshot: MeshSnapshot, tls: ClientTLS, rule_namespace: str,
                       options: ProtocolOptions) -> base_pb2.TransportSocket:
    """The UpstreamTlsContext for SIMPLE or MUTUAL; without `sni` Envoy takes the SNI from
    the request's host (auto_sni) and, without subjectAltNames, checks the certificate
    against it (auto_san_validation), as Istio sets them."""
    mutual = tls.mode == "MUTUAL"
    context = tls_pb2.UpstreamTlsContext(sni=tls.sni or "")
    common = context.common_tls_context
    sans = tls.subjectAltNames or []
    skip_verify = bool(tls.insecureSkipVerify)
    credential = tls.credentialName or ""
    ca: base_pb2.DataSource | None
    if credential:
        # Missing from the config, the secret is asked of the agent by Istio's name for it:
        # the cluster fails closed (no handshake succeeds) rather than failing the push.
        ca_bytes = _secret_bytes(snapshot, rule_namespace, credential, "ca.crt")
        ca = _data(inline=ca_bytes) if ca_bytes else None
        if ca is None and not skip_verify:
            common.validation_context_sds_secret_config.CopyFrom(
                sds_secret(f"kubernetes://{credential}-cacert"))
        if mutual:
            chain = _secret_bytes(snapshot, rule_namespace, credential, "tls.crt")
            key = _secret_bytes(snapshot, rule_namespace, credential, "tls.key")
            if chain and key:
                common.tls_certificates.add(certificate_chain=_data(inline=chain),
                                            private_key=_data(inline=key))
            else:
                common.tls_certificate_sds_secret_configs.append(
                    sds_secret(f"kubernetes://{credential}"))
    else:
        ca = _data(tls.caCertificates or SYSTEM_CA)
        if mutual:
            common.tls_certificates.add(certificate_chain=_data(tls.clientCertificate or ""),
                                        private_key=_data(tls.privateKey or ""))
    if ca is not None and not skip_verify:
        validation = common.validation_context
        validation.trusted_ca.CopyFrom(ca)
        validation.match_typed_subject_alt_names.extend(san_matcher(s) for s in sans)
    if not context.sni:
        options.upstream_http_protocol_options.auto_sni = True
    if not context.sni and not sans and not skip_verify:
        options.upstream_http_protocol_options.auto_san_validation = True
    if is_http2(options):
        common.alpn_protocols.append("h2")
    packed = any_pb2.Any()
    packed.Pack(context)
    return base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=packed)
