"""Issuing workload certificates: a self-signed root made on first start (and kept), or an
intermediate plugged in from files, Istio's `cacerts` layout."""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from heddle.ca.identity import Identity

Clock = Callable[[], datetime.datetime]
DEFAULT_LIFETIME = datetime.timedelta(hours=24)
ROOT_LIFETIME = datetime.timedelta(days=3650)
# Istio's plug-in CA files: the signing cert and key, the chain up to the root, the root.
PLUGGED_FILES = ("ca-cert.pem", "ca-key.pem", "cert-chain.pem", "root-cert.pem")


class SigningRefused(Exception):
    """The CSR asks for something the caller may not have."""


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class SignedCertificate:
    cert_chain_pem: bytes  # leaf first, then intermediates
    root_pem: bytes
    not_after: datetime.datetime


class CertificateAuthority:
    def __init__(self, signing_cert: x509.Certificate, signing_key: ec.EllipticCurvePrivateKey,
                 chain: list[x509.Certificate], root: x509.Certificate,
                 trust_domain: str = "cluster.local", clock: Clock = utcnow) -> None:
        self.signing_cert = signing_cert
        self.signing_key = signing_key
        self.chain = chain  # from the signing cert up to (not including) the root
        self.root = root
        self.trust_domain = trust_domain
        self.clock = clock

    @classmethod
    def load_or_create(cls, directory: Path, trust_domain: str = "cluster.local",
                       clock: Clock = utcnow) -> CertificateAuthority:
        """Use plugged-in CA files when all four are there, else the self-signed root kept in
        `directory` (made on first use)."""
        if all((directory / name).exists() for name in PLUGGED_FILES):
            return cls.from_plugged_files(directory, trust_domain, clock)
        cert_path, key_path = directory / "root-cert.pem", directory / "root-key.pem"
        if cert_path.exists() and key_path.exists():
            root = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(root, key, [], root, trust_domain, clock)
        directory.mkdir(parents=True, exist_ok=True)
        key = new_key()
        root = _self_signed_root(key, trust_domain, clock())
        _write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        cert_path.write_bytes(_pem(root))
        return cls(root, key, [], root, trust_domain, clock)

    @classmethod
    def from_plugged_files(cls, directory: Path, trust_domain: str = "cluster.local",
                           clock: Clock = utcnow) -> CertificateAuthority:
        """An intermediate CA from an enterprise PKI: ca-cert/ca-key sign, cert-chain leads
        to root-cert, which workloads trust."""
        cert = x509.load_pem_x509_certificate((directory / "ca-cert.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("ca-key.pem must be an ECDSA key")
        chain = x509.load_pem_x509_certificates((directory / "cert-chain.pem").read_bytes())
        root = x509.load_pem_x509_certificate((directory / "root-cert.pem").read_bytes())
        chain = [c for c in chain if c != root]
        return cls(cert, key, chain or [cert], root, trust_domain, clock)

    @property
    def root_pem(self) -> bytes:
        return _pem(self.root)

    def sign(self, csr_pem: bytes, identity: Identity,
             lifetime: datetime.timedelta = DEFAULT_LIFETIME) -> SignedCertificate:
        """Sign a CSR for exactly `identity`: the CSR must name that SPIFFE id and no other."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise SigningRefused("the CSR's signature does not verify")
        if identity.trust_domain != self.trust_domain:
            raise SigningRefused(f"trust domain {identity.trust_domain} is not "
                                 f"{self.trust_domain}")
        try:
            sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            asked = sans.get_values_for_type(x509.UniformResourceIdentifier)
        except x509.ExtensionNotFound:
            asked = []
        if asked != [identity.spiffe_id]:
            raise SigningRefused(f"the CSR asks for {asked or 'no identity'}, but the caller "
                                 f"may only have {identity.spiffe_id}")
        now = self.clock()
        not_after = min(now + lifetime, self.signing_cert.not_valid_after_utc)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.signing_cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(identity.spiffe_id)]), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, key_encipherment=True, content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False)
            .sign(self.signing_key, hashes.SHA256())
        )
        intermediates = [] if self.signing_cert == self.root else self.chain
        chain = b"".join(_pem(c) for c in [leaf, *intermediates])
        return SignedCertificate(chain, self.root_pem, not_after)

    def issue_server_cert(self, dns_names: list[str], ip: str,
                          lifetime: datetime.timedelta = DEFAULT_LIFETIME,
                          ) -> tuple[bytes, bytes]:
        """A TLS server certificate for the control plane's own endpoint: (chain, key)."""
        key = new_key()
        now = self.clock()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
            .issuer_name(self.signing_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(min(now + lifetime, self.signing_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(
                [*(x509.DNSName(n) for n in dns_names),
                 x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(self.signing_key, hashes.SHA256())
        )
        intermediates = [] if self.signing_cert == self.root else self.chain
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return b"".join(_pem(c) for c in [cert, *intermediates]), key_pem


def _self_signed_root(key: ec.EllipticCurvePrivateKey, trust_domain: str,
                      now: datetime.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Heddle root CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=False, content_commitment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )


def make_csr(key: ec.EllipticCurvePrivateKey, identity: Identity) -> bytes:
    """What an agent sends: a CSR for its identity, signed by its own key."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(identity.spiffe_id)]), critical=True)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)
