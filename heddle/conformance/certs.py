"""The Secrets the upstream suite creates before it runs (suite.go): self-signed
`kubernetes.io/tls` certificates for the HTTPS listeners of the base Gateways."""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# (namespace, name, DNS names), as the suite's MustCreateSelfSignedCertSecret calls.
SUITE_SECRETS = (
    ("gateway-conformance-web-backend", "certificate", ("*",)),
    ("gateway-conformance-infra", "tls-validity-checks-certificate",
     ("*", "*.org", "*.wildcard.org")),
)


@dataclass(frozen=True)
class Certificate:
    cert_pem: bytes
    key_pem: bytes


def self_signed(common_name: str, names: tuple[str, ...],
                now: datetime.datetime) -> Certificate:
    """A self-signed certificate for `names`; `common_name` tells it apart from the others
    (a client's trust store finds a certificate by its subject: two alike would collide)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Heddle conformance"),
                         x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return Certificate(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption()))


def tls_secret(namespace: str, name: str, certificate: Certificate) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace},
            "data": {"tls.crt": base64.b64encode(certificate.cert_pem).decode(),
                     "tls.key": base64.b64encode(certificate.key_pem).decode()}}


def suite_secrets(now: datetime.datetime) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """The Secrets, and each one's certificate (PEM) by `namespace/name`, for the client to
    trust."""
    secrets, trusted = [], {}
    for namespace, name, names in SUITE_SECRETS:
        certificate = self_signed(f"{namespace}/{name}", names, now)
        secrets.append(tls_secret(namespace, name, certificate))
        trusted[f"{namespace}/{name}"] = certificate.cert_pem
    return secrets, trusted
