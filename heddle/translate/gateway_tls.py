"""TLS on a gateway's servers: the DownstreamTlsContext of each TLS mode, and the
`credentialName` Secrets it names, served over SDS by the control plane.

As istiod does, the control plane serves a credential over the proxy's ADS stream (the
context names it with an `ads` config source): `kubernetes://NAME` holds the certificate
and key, `kubernetes://NAME-cacert` the CA that MUTUAL and OPTIONAL_MUTUAL verify clients
with. Both are read from Secret NAME in the gateway's own namespace (keys `tls.crt`,
`tls.key`, `ca.crt` of a `kubernetes.io/tls` Secret, or `cert`, `key`, `cacert` of a
generic one); the CA may also come from Secret `NAME-cacert`. A Secret that changes is
pushed again on the open stream, so Envoy serves the new certificate without a restart.
ISTIO_MUTUAL serves the gateway's own workload certificate from its agent (`default`,
`ROOTCA`), as a sidecar does.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from google.protobuf import any_pb2

from heddle.api.models import SecretSpec
from heddle.api.models._generated.networking_gateway import GatewaySpecServerTls
from heddle.api.specs import spec_of
from heddle.model.snapshot import MeshSnapshot
from heddle.translate.mtls import ROOT_SECRET, WORKLOAD_SECRET, sds_secret
from heddle.translate.upstream_tls import san_matcher

CREDENTIAL_PREFIX = "kubernetes://"
CA_SUFFIX = "-cacert"
TLS_SOCKET = "envoy.transport_sockets.tls"
HTTPS_ALPNS = ("h2", "http/1.1")
MUTUAL_MODES = ("MUTUAL", "OPTIONAL_MUTUAL")
_VERSIONS = {"TLS_AUTO": common_pb2.TlsParameters.TLS_AUTO,
             "TLSV1_0": common_pb2.TlsParameters.TLSv1_0,
             "TLSV1_1": common_pb2.TlsParameters.TLSv1_1,
             "TLSV1_2": common_pb2.TlsParameters.TLSv1_2,
             "TLSV1_3": common_pb2.TlsParameters.TLSv1_3}
# Istio's key names: a kubernetes.io/tls Secret's, then a generic Secret's.
_CERT_KEYS, _KEY_KEYS, _CA_KEYS = ("tls.crt", "cert"), ("tls.key", "key"), ("ca.crt", "cacert")


def credential_sds_name(credential: str) -> str:
    return f"{CREDENTIAL_PREFIX}{credential}"


def ca_sds_name(credential: str) -> str:
    return f"{CREDENTIAL_PREFIX}{credential}{CA_SUFFIX}"


def ads_secret(name: str) -> secret_pb2.SdsSecretConfig:
    """A secret the proxy fetches from the control plane, over its ADS stream."""
    return secret_pb2.SdsSecretConfig(name=name, sds_config=config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(),
        resource_api_version=config_source_pb2.V3))


@dataclass
class ServerTls:
    """A server's TLS: the transport socket, and the credentials it asks the control plane
    for (by credentialName), to be served with the listeners."""

    socket: base_pb2.TransportSocket
    credentials: list[tuple[str, bool]] = field(default_factory=list)  # (name, needs the CA)


def server_tls(tls: GatewaySpecServerTls, http: bool) -> ServerTls:
    """The DownstreamTlsContext for a terminating mode (SIMPLE, MUTUAL, OPTIONAL_MUTUAL,
    ISTIO_MUTUAL); `http`: the server speaks HTTP inside (ALPN h2 and http/1.1)."""
    mode = tls.mode.value if tls.mode is not None else "SIMPLE"
    context = tls_pb2.DownstreamTlsContext()
    common = context.common_tls_context
    credentials: list[tuple[str, bool]] = []
    validation: common_pb2.CertificateValidationContext | None = None
    if mode == "ISTIO_MUTUAL":
        common.tls_certificate_sds_secret_configs.append(sds_secret(WORKLOAD_SECRET))
        combined = common.combined_validation_context
        combined.validation_context_sds_secret_config.CopyFrom(sds_secret(ROOT_SECRET))
        validation = combined.default_validation_context
    else:
        names = list(tls.credentialNames or []) or ([tls.credentialName]
                                                    if tls.credentialName else [])
        for i, name in enumerate(names):
            common.tls_certificate_sds_secret_configs.append(
                ads_secret(credential_sds_name(name)))
            credentials.append((name, mode in MUTUAL_MODES and i == 0))
        if not names:
            pairs = [(p.serverCertificate, p.privateKey) for p in tls.tlsCertificates or []]
            for cert, key in pairs or [(tls.serverCertificate, tls.privateKey)]:
                common.tls_certificates.add(
                    certificate_chain=base_pb2.DataSource(filename=cert or ""),
                    private_key=base_pb2.DataSource(filename=key or ""))
        if mode in MUTUAL_MODES:
            if names:
                combined = common.combined_validation_context
                combined.validation_context_sds_secret_config.CopyFrom(
                    ads_secret(ca_sds_name(names[0])))
                validation = combined.default_validation_context
            else:
                validation = common.validation_context
                validation.trusted_ca.filename = tls.caCertificates or ""
    if validation is not None:
        validation.match_typed_subject_alt_names.extend(
            san_matcher(san) for san in tls.subjectAltNames or [])
        validation.verify_certificate_hash.extend(tls.verifyCertificateHash or [])
        validation.verify_certificate_spki.extend(tls.verifyCertificateSpki or [])
    context.require_client_certificate.value = mode in ("MUTUAL", "ISTIO_MUTUAL")
    params = common.tls_params
    if tls.minProtocolVersion is not None:
        params.tls_minimum_protocol_version = _VERSIONS[tls.minProtocolVersion.value]
    if tls.maxProtocolVersion is not None:
        params.tls_maximum_protocol_version = _VERSIONS[tls.maxProtocolVersion.value]
    params.cipher_suites.extend(tls.cipherSuites or [])
    params.ecdh_curves.extend(tls.ecdhCurves or [])
    if http:
        common.alpn_protocols.extend(HTTPS_ALPNS)
    packed = any_pb2.Any()
    packed.Pack(context)
    return ServerTls(base_pb2.TransportSocket(name=TLS_SOCKET, typed_config=packed),
                     credentials)


class CredentialProblem(ValueError):
    """A credentialName that names no usable Secret: the message says which and why."""


def _value(spec: SecretSpec, keys: tuple[str, ...]) -> tuple[str, bytes] | None:
    for key in keys:
        if key in (spec.stringData or {}):
            return key, (spec.stringData or {})[key].encode()
        raw = (spec.data or {}).get(key)
        if raw is not None:
            try:
                return key, base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as err:
                raise CredentialProblem(f"data.{key} is not base64 ({err})") from err
    return None


def _certificates(where: str, data: bytes) -> None:
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError as err:
        raise CredentialProblem(f"{where} is not a PEM certificate ({err})") from err


def _secret(snapshot: MeshSnapshot, namespace: str, name: str) -> SecretSpec | None:
    found = snapshot.get("", "Secret", namespace, name)
    return spec_of(found, SecretSpec) if found is not None else None


def _credential(snapshot: MeshSnapshot, namespace: str, name: str,
                ) -> dict[str, secret_pb2.Secret]:
    ref = f"Secret {namespace}/{name}"
    spec = _secret(snapshot, namespace, name)
    if spec is None:
        raise CredentialProblem(f"{ref} does not exist (credentialName is read from the "
                                f"gateway's namespace, {namespace}; create it there with "
                                "keys tls.crt and tls.key)")
    try:
        cert, key = _value(spec, _CERT_KEYS), _value(spec, _KEY_KEYS)
    except CredentialProblem as err:
        raise CredentialProblem(f"{ref}: {err}") from err
    if cert is None or key is None:
        raise CredentialProblem(f"{ref} has no {'tls.crt' if cert is None else 'tls.key'} "
                                "(a kubernetes.io/tls Secret needs tls.crt and tls.key; a "
                                "generic one cert and key)")
    try:
        _certificates(f"data.{cert[0]}", cert[1])
        try:
            serialization.load_pem_private_key(key[1], password=None)
        except (ValueError, TypeError) as err:
            raise CredentialProblem(f"data.{key[0]} is not an unencrypted PEM private key "
                                    f"({err})") from err
    except CredentialProblem as err:
        raise CredentialProblem(f"{ref}: {err}") from err
    secret = secret_pb2.Secret(name=credential_sds_name(name))
    secret.tls_certificate.certificate_chain.inline_bytes = cert[1]
    secret.tls_certificate.private_key.inline_bytes = key[1]
    return {secret.name: secret}


def _ca(snapshot: MeshSnapshot, namespace: str, name: str) -> dict[str, secret_pb2.Secret]:
    for secret_name in (name, f"{name}{CA_SUFFIX}"):
        spec = _secret(snapshot, namespace, secret_name)
        if spec is None:
            continue
        ref = f"Secret {namespace}/{secret_name}"
        try:
            found = _value(spec, _CA_KEYS)
            if found is None:
                continue
            _certificates(f"data.{found[0]}", found[1])
        except CredentialProblem as err:
            raise CredentialProblem(f"{ref}: {err}") from err
        secret = secret_pb2.Secret(name=ca_sds_name(name))
        secret.validation_context.trusted_ca.inline_bytes = found[1]
        return {secret.name: secret}
    raise CredentialProblem(f"Secret {namespace}/{name} has no ca.crt, and there is no Secret "
                            f"{namespace}/{name}{CA_SUFFIX} holding one (MUTUAL verifies "
                            "clients with it: add ca.crt)")


def credential_secrets(snapshot: MeshSnapshot, namespace: str, name: str, with_ca: bool,
                       ) -> dict[str, secret_pb2.Secret]:
    """The SDS secrets for credentialName `name`, read from the gateway's `namespace`;
    CredentialProblem says what is missing or wrong. Checked once per snapshot."""
    def compute() -> dict[str, secret_pb2.Secret] | CredentialProblem:
        try:
            return {**_credential(snapshot, namespace, name),
                    **(_ca(snapshot, namespace, name) if with_ca else {})}
        except CredentialProblem as err:
            return err
    found = snapshot.memo(("gateway_credential", namespace, name, with_ca), compute)
    if isinstance(found, CredentialProblem):
        raise found
    return found
