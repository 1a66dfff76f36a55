"""The CA signs exactly the identity a join token is bound to, and nothing else."""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from heddle.ca.authority import CertificateAuthority, SigningRefused, make_csr, new_key
from heddle.ca.identity import Identity
from heddle.ca.tokens import InvalidToken, TokenIssuer

X = Identity("a", "x")
Y = Identity("a", "y")


def leaf(chain_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain_pem)[0]


def test_root_is_made_once_and_kept(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path)
    again = CertificateAuthority.load_or_create(tmp_path)
    assert first.root_pem == again.root_pem
    assert oct((tmp_path / "root-key.pem").stat().st_mode & 0o777) == "0o600"


def test_workload_certificate_is_p256_with_the_spiffe_id_for_24h(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path)
    key = new_key()
    signed = ca.sign(make_csr(key, X), X)
    cert = leaf(signed.cert_chain_pem)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/a/sa/x"]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(hours=24) <= lifetime <= datetime.timedelta(hours=24, minutes=1)
    assert cert.public_key() == key.public_key()  # the key never left the agent


def test_a_csr_for_another_identity_is_refused(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path)
    with pytest.raises(SigningRefused, match="sa/y"):
        ca.sign(make_csr(new_key(), Y), X)


def test_a_token_for_ns_a_sa_x_cannot_get_sa_y(tmp_path: Path) -> None:
    issuer = TokenIssuer.load_or_create(tmp_path)
    ca = CertificateAuthority.load_or_create(tmp_path)
    bound = issuer.verify(issuer.create("a", "x"))
    assert bound == X
    with pytest.raises(SigningRefused):
        ca.sign(make_csr(new_key(), Y), bound)


def test_forged_and_expired_tokens_are_rejected(tmp_path: Path) -> None:
    issuer = TokenIssuer.load_or_create(tmp_path)
    other = TokenIssuer(b"not-the-key" * 4)
    with pytest.raises(InvalidToken):
        issuer.verify(other.create("a", "x"))
    with pytest.raises(InvalidToken):
        issuer.verify(issuer.create("a", "x", ttl=datetime.timedelta(seconds=-1)))


def test_plugged_in_intermediate_signs_and_chains_to_the_enterprise_root(tmp_path: Path) -> None:
    enterprise = CertificateAuthority.load_or_create(tmp_path / "enterprise")
    # The enterprise root issues an intermediate for the mesh (as `cacerts` would hold).
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = new_key()
    now = datetime.datetime.now(datetime.UTC)
    intermediate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mesh intermediate")]))
        .issuer_name(enterprise.root.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(enterprise.signing_key, hashes.SHA256()))
    plugged = tmp_path / "cacerts"
    plugged.mkdir()
    pem = intermediate.public_bytes(serialization.Encoding.PEM)
    (plugged / "ca-cert.pem").write_bytes(pem)
    (plugged / "ca-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (plugged / "cert-chain.pem").write_bytes(pem + enterprise.root_pem)
    (plugged / "root-cert.pem").write_bytes(enterprise.root_pem)
    ca = CertificateAuthority.load_or_create(plugged)
    signed = ca.sign(make_csr(new_key(), X), X)
    chain = x509.load_pem_x509_certificates(signed.cert_chain_pem)
    assert [c.issuer for c in chain] == [intermediate.subject, enterprise.root.subject]
    (tmp_path / "chain.pem").write_bytes(signed.cert_chain_pem)
    (tmp_path / "root.pem").write_bytes(signed.root_pem)
    # openssl, independently of our code, accepts the chain up to the enterprise root.
    (tmp_path / "leaf.pem").write_bytes(signed.cert_chain_pem.split(b"-----END CERTIFICATE-----")[0]
                                        + b"-----END CERTIFICATE-----\n")
    out = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "root.pem"),
                          "-untrusted", str(tmp_path / "chain.pem"), str(tmp_path / "leaf.pem")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_token_create_cli_prints_a_token_bound_to_the_identity(tmp_path: Path) -> None:
    import sys

    heddle = str(Path(sys.executable).with_name("heddle"))
    out = subprocess.run([heddle, "token", "create", "--namespace", "shop",
                          "--service-account", "cart", "--ca-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert TokenIssuer.load_or_create(tmp_path).verify(out.stdout.strip()) == Identity(
        "shop", "cart")
