"""X.509 device identity: CA, CSR, issuance, verification and proof of possession."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from device_attestation import (
    POP_TAG,
    CertificateError,
    CertificateExpired,
    CertificateInvalid,
    Challenge,
    DeviceKey,
    HighSSignature,
    KeyMismatch,
    ProofOfPossessionFailed,
    Scheme,
    StaleChallenge,
    UntrustedCA,
    WrongKeyType,
    ca_key_hash,
    certificate_fingerprint,
    challenge_digest,
    check_key_matches,
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
from device_attestation.signing import P256_N

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=0)
AUDIENCE = "eip155:31337:0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture(scope="module")
def ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    # Valid from a day before NOW (taken at import): a long suite may build this fixture minutes later.
    return create_manufacturer_ca(
        common_name="Acme Device CA",
        organization="Acme",
        valid_days=365,
        not_before=NOW - dt.timedelta(days=1),
    )


@pytest.fixture(scope="module", params=list(Scheme), ids=lambda s: s.value)
def device(
    request: pytest.FixtureRequest, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
) -> tuple[DeviceKey, x509.Certificate]:
    key = DeviceKey.generate(request.param)
    ca_key, ca_cert = ca
    csr = make_device_csr(key, f"SN-{request.param}-0001")
    cert = issue_device_certificate(
        ca_key=ca_key, ca_cert=ca_cert, csr=csr, valid_days=30, not_before=NOW - dt.timedelta(hours=1)
    )
    return key, cert


def ku(*, ds: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=ds,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def build_cert(
    *,
    signer: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    subject: x509.Name,
    public_key: Any,
    extensions: list[tuple[x509.ExtensionType, bool]],
    not_before: dt.datetime = NOW - dt.timedelta(days=1),
    days: int = 30,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(signer, hashes.SHA256())


def cn(value: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, value)])


LEAF_BC = x509.BasicConstraints(ca=False, path_length=None)


def leaf_extensions(
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    bc: x509.BasicConstraints | None = LEAF_BC,
    key_usage: x509.KeyUsage | None = None,
    extra: tuple[tuple[x509.ExtensionType, bool], ...] = (),
) -> list[tuple[x509.ExtensionType, bool]]:
    exts: list[tuple[x509.ExtensionType, bool]] = [
        (key_usage if key_usage is not None else ku(ds=True), True),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
    ]
    if bc is not None:
        exts.append((bc, True))
    return exts + list(extra)


def hand_made_leaf(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], **kwargs: Any
) -> x509.Certificate:
    ca_key, ca_cert = ca
    device_public = kwargs.pop("public_key", DeviceKey.generate(Scheme.P256).public_key.to_cryptography())
    subject = kwargs.pop("subject", cn("SN-HAND-1"))
    if callable(subject):
        subject = subject()
    return build_cert(
        signer=ca_key,
        issuer=ca_cert.subject,
        subject=subject,
        public_key=device_public,
        extensions=leaf_extensions(ca_key, **kwargs),
    )


# --- the CA and issued certificates -----------------------------------------------


def test_manufacturer_ca_profile(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key, cert = ca
    assert isinstance(key.curve, ec.SECP256R1)
    cert.verify_directly_issued_by(cert)
    exts = cert.extensions
    bc = exts.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    usage = exts.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert exts.get_extension_for_class(x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    )
    assert cert.subject.rfc4514_string() == "O=Acme,CN=Acme Device CA"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=365)


def test_ca_key_must_be_p256() -> None:
    with pytest.raises(WrongKeyType, match="must be a P-256 private key"):
        create_manufacturer_ca(
            common_name="x", organization="y", valid_days=1, key=ec.generate_private_key(ec.SECP256K1())
        )


def test_issued_certificate_profile(
    device: tuple[DeviceKey, x509.Certificate],
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    key, cert = device
    _, ca_cert = ca
    cert.verify_directly_issued_by(ca_cert)
    assert cert.subject == cn(f"SN-{key.scheme}-0001")
    assert cert.issuer == ca_cert.subject
    exts = cert.extensions
    bc = exts.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    usage = exts.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = exts.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    aki = exts.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert exts.get_extension_for_class(x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(key.public_key.to_cryptography())
    )


def test_issue_with_explicit_serial_and_start(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    ca_key, ca_cert = ca
    start = dt.datetime(2026, 1, 1, tzinfo=UTC)
    csr = make_device_csr(DeviceKey.generate(Scheme.P256), "SN-7")
    cert = issue_device_certificate(
        ca_key=ca_key, ca_cert=ca_cert, csr=csr, valid_days=10, not_before=start, serial=4242
    )
    assert cert.serial_number == 4242
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == start + dt.timedelta(days=10)


def test_hashes(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    _, ca_cert = ca
    spki = ca_cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert ca_key_hash(ca_cert) == keccak256(spki)
    der = ca_cert.public_bytes(serialization.Encoding.DER)
    assert certificate_fingerprint(ca_cert) == hashlib.sha256(der).digest()


# --- verification: the happy path -------------------------------------------------


def test_verify_device_certificate(
    device: tuple[DeviceKey, x509.Certificate],
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    key, cert = device
    _, ca_cert = ca
    _, other_ca = create_manufacturer_ca(common_name="Other", organization="O", valid_days=9)
    for trusted in ([other_ca, ca_cert], {ca_key_hash(ca_cert): ca_cert}):
        verified = verify_device_certificate(cert, trusted_cas=trusted, at=NOW)
        assert verified.device_id == f"SN-{key.scheme}-0001"
        assert verified.scheme is key.scheme
        assert verified.public_key == key.public_key
        assert verified.fingerprint == certificate_fingerprint(cert)
        assert verified.ca_key_hash == ca_key_hash(ca_cert)
        assert verified.serial_number == cert.serial_number
        assert verified.not_valid_after == cert.not_valid_after_utc


def test_trust_store_mapping_must_be_keyed_by_key_hash(
    device: tuple[DeviceKey, x509.Certificate],
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    _, cert = device
    with pytest.raises(CertificateError, match=r"key the mapping by ca_key_hash\(ca\)") as caught:
        verify_device_certificate(cert, trusted_cas={bytes(32): ca[1]}, at=NOW)
    assert caught.value.code == "certificate.trust_store"


def test_naive_time_is_refused(device: tuple[DeviceKey, x509.Certificate], ca: Any) -> None:
    with pytest.raises(CertificateError, match="timezone-aware") as caught:
        verify_device_certificate(device[1], trusted_cas=[ca[1]], at=dt.datetime(2026, 1, 1))
    assert caught.value.code == "certificate.naive_time"


# --- verification: failures -------------------------------------------------------


def test_untrusted_ca(device: tuple[DeviceKey, x509.Certificate]) -> None:
    _, cert = device
    _, stranger = create_manufacturer_ca(common_name="Stranger CA", organization="S", valid_days=9)
    with pytest.raises(UntrustedCA, match="not a registered manufacturer CA") as caught:
        verify_device_certificate(cert, trusted_cas=[stranger], at=NOW)
    assert "CN=Acme Device CA" in caught.value.message
    assert caught.value.code == "certificate.untrusted_ca"
    with pytest.raises(UntrustedCA, match="register that CA's key hash"):
        verify_device_certificate(cert, trusted_cas=[], at=NOW)


def test_ca_with_the_same_name_but_another_key(device: tuple[DeviceKey, x509.Certificate]) -> None:
    _, cert = device
    _, twin = create_manufacturer_ca(common_name="Acme Device CA", organization="Acme", valid_days=9)
    with pytest.raises(UntrustedCA, match=r"\(key id [0-9a-f]{40}\)"):
        verify_device_certificate(cert, trusted_cas=[twin], at=NOW)


def test_forged_signature(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    ca_key, ca_cert = ca
    forger = ec.generate_private_key(ec.SECP256R1())
    forged = build_cert(
        signer=forger,
        issuer=ca_cert.subject,
        subject=cn("SN-FORGED"),
        public_key=DeviceKey.generate(Scheme.P256).public_key.to_cryptography(),
        extensions=leaf_extensions(ca_key),  # claims the real CA's key id
    )
    with pytest.raises(CertificateInvalid, match="signature does not verify") as caught:
        verify_device_certificate(forged, trusted_cas=[ca_cert], at=NOW)
    assert caught.value.code == "certificate.signature"


@pytest.mark.parametrize(
    ("start", "days", "code", "fragment"),
    [
        (NOW - dt.timedelta(days=10), 1, "certificate.expired", "issue the device a new certificate"),
        (NOW + dt.timedelta(days=1), 10, "certificate.not_yet_valid", "is not valid before"),
        (NOW + dt.timedelta(seconds=1), 10, "certificate.not_yet_valid", "check the clocks"),
    ],
    ids=["expired", "not-yet-valid", "one-second-early"],
)
def test_leaf_validity_window(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    start: dt.datetime,
    days: int,
    code: str,
    fragment: str,
) -> None:
    ca_key, ca_cert = ca
    csr = make_device_csr(DeviceKey.generate(Scheme.P256), "SN-TIME")
    cert = issue_device_certificate(
        ca_key=ca_key, ca_cert=ca_cert, csr=csr, valid_days=days, not_before=start
    )
    with pytest.raises(CertificateExpired, match=fragment) as caught:
        verify_device_certificate(cert, trusted_cas=[ca_cert], at=NOW)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("ca_start", "code", "fragment"),
    [
        (NOW - dt.timedelta(days=10), "certificate.ca_expired", "renew the manufacturer CA"),
        (NOW + dt.timedelta(days=1), "certificate.ca_not_yet_valid", "is not valid before"),
    ],
)
def test_ca_validity_window(ca_start: dt.datetime, code: str, fragment: str) -> None:
    ca_key, ca_cert = create_manufacturer_ca(
        common_name="Short CA", organization="S", valid_days=2, not_before=ca_start
    )
    csr = make_device_csr(DeviceKey.generate(Scheme.P256), "SN-CA-TIME")
    cert = issue_device_certificate(
        ca_key=ca_key, ca_cert=ca_cert, csr=csr, valid_days=30, not_before=NOW - dt.timedelta(days=20)
    )
    with pytest.raises(CertificateExpired, match=fragment) as caught:
        verify_device_certificate(cert, trusted_cas=[ca_cert], at=NOW)
    assert caught.value.code == code
    assert "manufacturer CA 'O=S,CN=Short CA'" in caught.value.message


def _fake_ca(
    *, bc: x509.BasicConstraints | None, usage: x509.KeyUsage | None
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = cn("Not Really A CA")
    exts: list[tuple[x509.ExtensionType, bool]] = [
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    ]
    if bc is not None:
        exts.append((bc, True))
    if usage is not None:
        exts.append((usage, True))
    return key, build_cert(
        signer=key, issuer=name, subject=name, public_key=key.public_key(), extensions=exts
    )


@pytest.mark.parametrize(
    ("bc", "usage", "code", "fragment"),
    [
        (
            x509.BasicConstraints(ca=False, path_length=None),
            ku(ds=True, cert_sign=True),
            "certificate.issuer_not_ca",
            "is not a CA certificate",
        ),
        (None, ku(cert_sign=True), "certificate.issuer_not_ca", "basicConstraints CA:TRUE missing"),
        (
            x509.BasicConstraints(ca=True, path_length=0),
            ku(ds=True),
            "certificate.issuer_key_usage",
            "lacks keyUsage keyCertSign",
        ),
        (
            x509.BasicConstraints(ca=True, path_length=0),
            None,
            "certificate.issuer_key_usage",
            "lacks keyUsage keyCertSign",
        ),
    ],
    ids=["ca-false", "no-basic-constraints", "no-keycertsign", "no-key-usage"],
)
def test_issuer_that_is_not_a_ca(
    bc: x509.BasicConstraints | None, usage: x509.KeyUsage | None, code: str, fragment: str
) -> None:
    fake = _fake_ca(bc=bc, usage=usage)
    leaf = hand_made_leaf(fake)
    with pytest.raises(CertificateInvalid, match=fragment) as caught:
        verify_device_certificate(leaf, trusted_cas=[fake[1]], at=NOW)
    assert caught.value.code == code
    # and we refuse to issue from it in the first place
    if bc is None or not bc.ca:
        csr = make_device_csr(DeviceKey.generate(Scheme.P256), "SN-X")
        with pytest.raises(CertificateInvalid, match="ca_cert is not a CA certificate"):
            issue_device_certificate(ca_key=fake[0], ca_cert=fake[1], csr=csr, valid_days=1)


@pytest.mark.parametrize(
    ("kwargs", "code", "fragment"),
    [
        ({"key_usage": ku(cert_sign=True)}, "certificate.leaf_key_usage", "keyUsage digitalSignature"),
        (
            {"bc": x509.BasicConstraints(ca=True, path_length=None)},
            "certificate.leaf_basic_constraints",
            "it says CA:TRUE",
        ),
        ({"bc": None}, "certificate.leaf_basic_constraints", r"CA:FALSE \(missing\)"),
        (
            {"extra": ((x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),)},
            "certificate.path_validation",
            "fails X.509 path validation",
        ),
        (
            {
                "extra": (
                    (
                        x509.UnrecognizedExtension(ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"),
                        True,
                    ),
                )
            },
            "certificate.path_validation",
            "fails X.509 path validation",
        ),
        (
            {"subject": x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme")])},
            "certificate.device_id",
            "has 0 common names",
        ),
        (
            {
                "subject": x509.Name(
                    [
                        x509.NameAttribute(NameOID.COMMON_NAME, "SN-A"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "SN-B"),
                    ]
                )
            },
            "certificate.device_id",
            "has 2 common names",
        ),
        (
            {  # built lazily: cryptography warns about the over-long CN when it is made
                "subject": lambda: x509.Name(
                    [x509.NameAttribute(NameOID.COMMON_NAME, "x" * 65, _validate=False)]
                )
            },
            "certificate.device_id",
            "1..64 characters",
        ),
        (
            {"public_key": ec.generate_private_key(ec.SECP384R1()).public_key()},
            "certificate.key_type",
            "curve secp384r1",
        ),
    ],
    ids=[
        "no-digital-signature",
        "leaf-is-ca",
        "no-basic-constraints",
        "server-auth-only",
        "unknown-critical-extension",
        "no-cn",
        "two-cns",
        "long-cn",
        "p384-key",
    ],
)
@pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")
def test_bad_leaves(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
    kwargs: dict[str, Any],
    code: str,
    fragment: str,
) -> None:
    leaf = hand_made_leaf(ca, **kwargs)
    with pytest.raises(CertificateInvalid, match=fragment) as caught:
        verify_device_certificate(leaf, trusted_cas=[ca[1]], at=NOW)
    assert caught.value.code == code


def test_hand_made_good_leaf_passes(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    # the control for test_bad_leaves: the same builder without the defect verifies
    verified = verify_device_certificate(hand_made_leaf(ca), trusted_cas=[ca[1]], at=NOW)
    assert verified.device_id == "SN-HAND-1"


# --- issuing: refusals --------------------------------------------------------------


def test_issue_refuses_a_tampered_csr(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    der = bytearray(
        make_device_csr(DeviceKey.generate(Scheme.P256), "SN-1").public_bytes(serialization.Encoding.DER)
    )
    der[-1] ^= 1
    csr = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(CertificateInvalid, match="CSR's signature does not verify") as caught:
        issue_device_certificate(ca_key=ca[0], ca_cert=ca[1], csr=csr, valid_days=1)
    assert caught.value.code == "certificate.csr_signature"


def test_issue_refuses_a_foreign_ca_key(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    csr = make_device_csr(DeviceKey.generate(Scheme.P256), "SN-1")
    with pytest.raises(KeyMismatch, match="ca_key is not the private key of ca_cert"):
        issue_device_certificate(
            ca_key=ec.generate_private_key(ec.SECP256R1()), ca_cert=ca[1], csr=csr, valid_days=1
        )


def test_issue_refuses_other_curves(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(cn("SN-384")).sign(p384, hashes.SHA256())
    with pytest.raises(WrongKeyType, match="curve secp384r1"):
        issue_device_certificate(ca_key=ca[0], ca_cert=ca[1], csr=csr, valid_days=1)


@pytest.mark.parametrize("device_id", ["", "x" * 65])
def test_csr_device_id_is_checked(device_id: str) -> None:
    with pytest.raises(CertificateInvalid, match=r"1\.\.64 characters"):
        make_device_csr(DeviceKey.generate(Scheme.P256), device_id)


def test_load_certificate(device: tuple[DeviceKey, x509.Certificate]) -> None:
    _, cert = device
    assert load_certificate(cert.public_bytes(serialization.Encoding.PEM)) == cert
    assert load_certificate(cert.public_bytes(serialization.Encoding.DER)) == cert
    with pytest.raises(CertificateInvalid, match="cannot parse the certificate") as caught:
        load_certificate(b"not a certificate")
    assert caught.value.code == "certificate.parse"


# --- key matching -----------------------------------------------------------------


def test_check_key_matches(device: tuple[DeviceKey, x509.Certificate]) -> None:
    key, cert = device
    check_key_matches(cert, key.public_key)
    other = DeviceKey.generate(key.scheme).public_key
    with pytest.raises(KeyMismatch, match="not the claimed") as caught:
        check_key_matches(cert, other)
    assert caught.value.code == "certificate.key_mismatch"
    if key.scheme is Scheme.SECP256K1:
        check_key_matches(cert, key.public_key.eth_address)
        check_key_matches(cert, key.public_key.eth_address.lower())
        with pytest.raises(KeyMismatch, match="not the claimed address"):
            check_key_matches(cert, other.eth_address)
    else:
        with pytest.raises(KeyMismatch, match="holds a p256 key"):
            check_key_matches(cert, DeviceKey.generate(Scheme.SECP256K1).public_key.eth_address)


# --- proof of possession ----------------------------------------------------------


def test_proof_of_possession(device: tuple[DeviceKey, x509.Certificate]) -> None:
    key, cert = device
    challenge = new_challenge(AUDIENCE, now=NOW)
    signature = prove_possession(key, cert=cert, challenge=challenge)
    verify_proof_of_possession(
        cert=cert,
        challenge=challenge,
        signature=signature,
        now=NOW + dt.timedelta(minutes=4),
        expected_audience=AUDIENCE,
    )
    # a little clock skew the other way is fine
    verify_proof_of_possession(
        cert=cert,
        challenge=challenge,
        signature=signature,
        now=NOW - dt.timedelta(seconds=20),
        expected_audience=AUDIENCE,
    )


def pop_case(key: DeviceKey, cert: x509.Certificate, **overrides: Any) -> dict[str, Any]:
    challenge = overrides.pop("challenge", new_challenge(AUDIENCE, now=NOW))
    args = {
        "cert": cert,
        "challenge": challenge,
        "signature": prove_possession(key, cert=cert, challenge=challenge),
        "now": NOW,
        "expected_audience": AUDIENCE,
    }
    args.update(overrides)
    return args


def test_stale_challenge(device: tuple[DeviceKey, x509.Certificate]) -> None:
    key, cert = device
    args = pop_case(key, cert, now=NOW + dt.timedelta(minutes=5, seconds=1))
    with pytest.raises(StaleChallenge, match=r"301 s old \(limit 300 s\); request a new") as caught:
        verify_proof_of_possession(**args)
    assert caught.value.code == "pop.stale"
    args = pop_case(key, cert, now=NOW + dt.timedelta(minutes=2), max_age=dt.timedelta(minutes=1))
    with pytest.raises(StaleChallenge, match="120 s old"):
        verify_proof_of_possession(**args)


def test_challenge_from_the_future(device: tuple[DeviceKey, x509.Certificate]) -> None:
    key, cert = device
    args = pop_case(key, cert, now=NOW - dt.timedelta(seconds=31))
    with pytest.raises(StaleChallenge, match=r"31 s in the future \(limit 30 s\)") as caught:
        verify_proof_of_possession(**args)
    assert caught.value.code == "pop.future"


def test_wrong_audience(device: tuple[DeviceKey, x509.Certificate]) -> None:
    key, cert = device
    args = pop_case(key, cert, expected_audience="eip155:1:0x" + "00" * 20)
    with pytest.raises(ProofOfPossessionFailed, match="was issued for 'eip155:31337") as caught:
        verify_proof_of_possession(**args)
    assert caught.value.code == "pop.audience"


def test_signature_by_another_key(device: tuple[DeviceKey, x509.Certificate]) -> None:
    key, cert = device
    impostor = DeviceKey.generate(key.scheme)
    challenge = new_challenge(AUDIENCE, now=NOW)
    args = pop_case(
        key, cert, challenge=challenge, signature=prove_possession(impostor, cert=cert, challenge=challenge)
    )
    with pytest.raises(ProofOfPossessionFailed, match="not a signature by the certificate's key") as caught:
        verify_proof_of_possession(**args)
    assert caught.value.code == "pop.failed"


def test_signature_for_another_challenge_or_certificate(
    device: tuple[DeviceKey, x509.Certificate],
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    key, cert = device
    old = new_challenge(AUDIENCE, now=NOW)
    args = pop_case(key, cert, signature=prove_possession(key, cert=cert, challenge=old))
    with pytest.raises(ProofOfPossessionFailed):
        verify_proof_of_possession(**args)  # fresh nonce, old answer
    # same key certified twice: an answer for one certificate does not serve the other
    second = issue_device_certificate(
        ca_key=ca[0], ca_cert=ca[1], csr=make_device_csr(key, "SN-AGAIN"), valid_days=1
    )
    challenge = new_challenge(AUDIENCE, now=NOW)
    args = pop_case(
        key, cert, challenge=challenge, signature=prove_possession(key, cert=second, challenge=challenge)
    )
    with pytest.raises(ProofOfPossessionFailed):
        verify_proof_of_possession(**args)


def test_high_s_proof_is_refused(ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]) -> None:
    key = DeviceKey.generate(Scheme.P256)
    cert = issue_device_certificate(
        ca_key=ca[0], ca_cert=ca[1], csr=make_device_csr(key, "SN-HS"), valid_days=1
    )
    challenge = new_challenge(AUDIENCE, now=NOW)
    sig = prove_possession(key, cert=cert, challenge=challenge)
    twin = sig[:32] + (P256_N - int.from_bytes(sig[32:], "big")).to_bytes(32, "big")
    with pytest.raises(ProofOfPossessionFailed, match="s > n/2") as caught:
        verify_proof_of_possession(**pop_case(key, cert, challenge=challenge, signature=twin))
    assert isinstance(caught.value.__cause__, HighSSignature)


def test_challenge_digest_encoding() -> None:
    challenge = Challenge(
        nonce=bytes(range(32)), issued_at=dt.datetime(2026, 11, 29, 12, 0, tzinfo=UTC), audience="aud"
    )
    fingerprint = bytes([7]) * 32
    want = keccak256(
        keccak256(POP_TAG.encode())
        + keccak256(b"aud")
        + bytes(range(32))
        + int(challenge.issued_at.timestamp()).to_bytes(32, "big")
        + fingerprint
    )
    assert challenge_digest(challenge, fingerprint) == want
    for changed in (
        Challenge(nonce=bytes(32), issued_at=challenge.issued_at, audience="aud"),
        Challenge(nonce=challenge.nonce, issued_at=challenge.issued_at, audience="aud2"),
        Challenge(
            nonce=challenge.nonce,
            issued_at=challenge.issued_at + dt.timedelta(seconds=1),
            audience="aud",
        ),
    ):
        assert challenge_digest(changed, fingerprint) != want
    assert challenge_digest(challenge, bytes(32)) != want
    with pytest.raises(CertificateError, match="fingerprint is 32 bytes"):
        challenge_digest(challenge, bytes(20))


def test_new_challenge() -> None:
    a, b = new_challenge(AUDIENCE), new_challenge(AUDIENCE)
    assert a.nonce != b.nonce and len(a.nonce) == 32
    assert a.issued_at.microsecond == 0 and a.issued_at.tzinfo is not None
    assert abs(a.issued_at - dt.datetime.now(UTC)) < dt.timedelta(seconds=5)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"nonce": bytes(31)}, "32 random bytes"),
        ({"audience": ""}, "non-empty audience"),
        ({"issued_at": dt.datetime(2026, 1, 1)}, "timezone-aware"),
    ],
)
def test_bad_challenges(kwargs: dict[str, Any], fragment: str) -> None:
    fields: dict[str, Any] = {"nonce": bytes(32), "issued_at": NOW, "audience": AUDIENCE}
    fields.update(kwargs)
    with pytest.raises(CertificateError, match=fragment):
        Challenge(**fields)
