"""Server certificates for tests of TLS at a gateway: a throwaway CA, certificates it signs
for DNS names (server or client; a client's may carry URI SANs, such as a SPIFFE id), and the
Secret a `credentialName` names, as YAML."""

from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes

    @property
    def serial(self) -> int:
        return x509.load_pem_x509_certificate(self.cert_pem).serial_number


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestCA:
    """A self-signed CA (P-256) that signs leaf certificates for DNS names (and URIs)."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str = "heddle test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                                  False, False), True)
                     .sign(self.key, hashes.SHA256()))

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, *names: str, client: bool = False, uris: tuple[str, ...] = ()) -> Issued:
        """A certificate for DNS `names` (the first is its common name), with `uris` as URI
        SANs before them, as a SPIFFE certificate has its id."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=3650))
                .add_extension(x509.SubjectAlternativeName(
                    [*(x509.UniformResourceIdentifier(u) for u in uris),
                     *(x509.DNSName(n) for n in names)]), False)
                .add_extension(x509.ExtendedKeyUsage([usage]), False)
                .sign(self.key, hashes.SHA256()))
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def tls_secret_yaml(name: str, namespace: str, issued: Issued, ca_pem: bytes = b"") -> str:
    """A `kubernetes.io/tls` Secret holding `issued` (and `ca.crt` when given)."""
    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()
    ca = f"  ca.crt: {b64(ca_pem)}\n" if ca_pem else ""
    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
            f"type: kubernetes.io/tls\ndata:\n  tls.crt: {b64(issued.cert_pem)}\n"
            f"  tls.key: {b64(issued.key_pem)}\n{ca}")
