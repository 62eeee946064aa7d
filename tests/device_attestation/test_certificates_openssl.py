"""Certificates and keys made by the OpenSSL command line work with our code (and back)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from device_attestation import (
    CertificateInvalid,
    DeviceKey,
    KeyFileError,
    Scheme,
    ca_key_hash,
    create_manufacturer_ca,
    issue_device_certificate,
    load_certificate,
    make_device_csr,
    new_challenge,
    prove_possession,
    verify_device_certificate,
    verify_proof_of_possession,
)
from device_attestation._internal.keccak import keccak256

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")

OPENSSL_CNF = """\
[req]
distinguished_name = dn
[dn]
[v3_ca]
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always,issuer
basicConstraints = critical,CA:true,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
[v3_device]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
[v3_no_digital_signature]
basicConstraints = critical,CA:false
keyUsage = critical,keyAgreement
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

CURVES = {Scheme.P256: "prime256v1", Scheme.SECP256K1: "secp256k1"}
AUDIENCE = "eip155:31337:0x5FbDB2315678afecb367f032d93F642f64180aa3"


def openssl(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"openssl {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("openssl")
    (d / "openssl.cnf").write_text(OPENSSL_CNF)
    openssl(d, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    openssl(
        d, "req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "30",
        "-subj", "/CN=OpenSSL Test CA/O=Acme", "-config", "openssl.cnf",
        "-extensions", "v3_ca", "-out", "ca.pem",
    )  # fmt: skip
    return d


def issue_with_openssl(d: Path, name: str, csr: str, extensions: str = "v3_device") -> Path:
    out = d / f"{name}.pem"
    openssl(
        d, "x509", "-req", "-in", csr, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "10", "-sha256", "-extfile", "openssl.cnf", "-extensions", extensions,
        "-out", out.name,
    )  # fmt: skip
    return out


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_openssl_is_openssl_3(workdir: Path) -> None:
    assert openssl(workdir, "version").startswith("OpenSSL 3")


@pytest.mark.parametrize("scheme", list(Scheme))
def test_openssl_made_device(workdir: Path, scheme: Scheme) -> None:
    d = workdir
    key_file = f"dev-{scheme}.key"
    # `ecparam -genkey` writes an EC PARAMETERS block, then a SEC1 EC PRIVATE KEY block
    openssl(d, "ecparam", "-name", CURVES[scheme], "-genkey", "-out", key_file)
    text = (d / key_file).read_text()
    assert "-----BEGIN EC PARAMETERS-----" in text
    assert "-----BEGIN EC PRIVATE KEY-----" in text
    openssl(
        d, "req", "-new", "-key", key_file, "-subj", f"/CN=SN-OSSL-{scheme}", "-config",
        "openssl.cnf", "-out", f"dev-{scheme}.csr",
    )  # fmt: skip
    cert_path = issue_with_openssl(d, f"dev-{scheme}", f"dev-{scheme}.csr")

    key = DeviceKey.load(d / key_file)
    assert key.scheme is scheme
    ca_cert = load_certificate((d / "ca.pem").read_bytes())
    cert = load_certificate(cert_path.read_bytes())
    verified = verify_device_certificate(cert, trusted_cas=[ca_cert], at=now())
    assert verified.device_id == f"SN-OSSL-{scheme}"
    assert verified.scheme is scheme
    assert verified.public_key == key.public_key

    challenge = new_challenge(AUDIENCE)
    verify_proof_of_possession(
        cert=cert,
        challenge=challenge,
        signature=prove_possession(key, cert=cert, challenge=challenge),
        now=now(),
        expected_audience=AUDIENCE,
    )


def test_openssl_leaf_without_digital_signature_is_refused(workdir: Path) -> None:
    d = workdir
    openssl(d, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "nods.key")
    openssl(
        d, "req", "-new", "-key", "nods.key", "-subj", "/CN=SN-NODS", "-config", "openssl.cnf",
        "-out", "nods.csr",
    )  # fmt: skip
    cert = load_certificate(issue_with_openssl(d, "nods", "nods.csr", "v3_no_digital_signature").read_bytes())
    ca_cert = load_certificate((d / "ca.pem").read_bytes())
    with pytest.raises(CertificateInvalid, match="keyUsage digitalSignature"):
        verify_device_certificate(cert, trusted_cas=[ca_cert], at=now())


def test_openssl_signs_our_csr_and_verifies_our_certificate(workdir: Path) -> None:
    d = workdir
    key = DeviceKey.generate(Scheme.SECP256K1)
    (d / "ours.csr").write_bytes(make_device_csr(key, "SN-OURS").public_bytes(serialization.Encoding.PEM))
    openssl(d, "req", "-in", "ours.csr", "-verify", "-noout")
    cert = load_certificate(issue_with_openssl(d, "ours", "ours.csr").read_bytes())
    ca_cert = load_certificate((d / "ca.pem").read_bytes())
    assert verify_device_certificate(cert, trusted_cas=[ca_cert], at=now()).public_key == (key.public_key)

    # and the other way: our CA and leaf pass `openssl verify`
    ca_key, our_ca = create_manufacturer_ca(common_name="Our CA", organization="Acme", valid_days=5)
    leaf = issue_device_certificate(
        ca_key=ca_key, ca_cert=our_ca, csr=make_device_csr(key, "SN-OURS-2"), valid_days=5
    )
    (d / "our-ca.pem").write_bytes(our_ca.public_bytes(serialization.Encoding.PEM))
    (d / "our-leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    out = openssl(d, "verify", "-purpose", "sslclient", "-CAfile", "our-ca.pem", "our-leaf.pem")
    assert out.strip() == "our-leaf.pem: OK"


def test_ca_key_hash_is_keccak_of_openssl_spki(workdir: Path) -> None:
    d = workdir
    openssl(d, "ec", "-in", "ca.key", "-pubout", "-outform", "DER", "-out", "ca.spki.der")
    ca_cert = load_certificate((d / "ca.pem").read_bytes())
    assert ca_key_hash(ca_cert) == keccak256((d / "ca.spki.der").read_bytes())


@pytest.mark.parametrize("scheme", list(Scheme))
def test_openssl_encrypted_key_files(workdir: Path, scheme: Scheme) -> None:
    d = workdir
    plain = f"enc-{scheme}.key"
    openssl(d, "ecparam", "-name", CURVES[scheme], "-genkey", "-noout", "-out", plain)
    expected = DeviceKey.load(d / plain)
    # PKCS#8, encrypted
    openssl(
        d, "pkcs8", "-topk8", "-in", plain, "-out", f"{plain}.p8", "-passout", "pass:hunter2",
    )  # fmt: skip
    assert DeviceKey.load(d / f"{plain}.p8", password="hunter2") == expected
    # traditional SEC1 with a Proc-Type: ENCRYPTED header
    openssl(
        d, "ec", "-in", plain, "-aes256", "-out", f"{plain}.enc", "-passout", "pass:hunter2",
    )  # fmt: skip
    assert "Proc-Type: 4,ENCRYPTED" in (d / f"{plain}.enc").read_text()
    assert DeviceKey.load(d / f"{plain}.enc", password="hunter2") == expected
    with pytest.raises(KeyFileError, match="password is wrong"):
        DeviceKey.load(d / f"{plain}.p8", password="wrong")
    with pytest.raises(KeyFileError, match="encrypted; pass its password"):
        DeviceKey.load(d / f"{plain}.enc")


def test_openssl_reads_our_key_files(workdir: Path) -> None:
    d = workdir
    key = DeviceKey.generate(Scheme.SECP256K1)
    key.save(d / "ours.key", password="pw")
    text = openssl(
        d, "pkey", "-in", "ours.key", "-passin", "pass:pw", "-noout", "-text_pub",
    )  # fmt: skip
    assert "secp256k1" in text
