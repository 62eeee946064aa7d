"""A manufacturer's CA: creating it and issuing device certificates from CSRs.

The other side, checking a device certificate and its proof of possession, is
:mod:`device_attestation.certificates`; the device makes its CSR with
:func:`device_attestation.certificates.make_device_csr`.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ._internal.x509util import _aware, _common_name, _ext, _same_public_key, _subject_key_id, _utcnow
from .errors import CertificateError, CertificateInvalid, KeyMismatch, WrongKeyType
from .keys import DevicePublicKey

__all__ = ["create_manufacturer_ca", "issue_device_certificate"]

_BACKDATE: Final = dt.timedelta(minutes=5)


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def create_manufacturer_ca(
    *,
    common_name: str,
    organization: str,
    valid_days: int,
    key: ec.EllipticCurvePrivateKey | None = None,
    not_before: dt.datetime | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed P-256 manufacturer CA that may issue device certificates only.

    BasicConstraints ``CA:TRUE, pathlen:0`` and KeyUsage ``keyCertSign,
    cRLSign`` (both critical), and a SubjectKeyIdentifier. Validity starts at
    ``not_before`` (default: five minutes ago, for clock skew) and lasts
    ``valid_days``. A fresh key is generated unless ``key`` is given.
    """
    if key is None:
        key = ec.generate_private_key(ec.SECP256R1())
    elif not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise WrongKeyType(
            "a manufacturer CA key must be a P-256 private key; generate one with "
            "ec.generate_private_key(ec.SECP256R1())"
        )
    if valid_days < 1:
        raise CertificateError(
            f"valid_days must be at least 1, got {valid_days}", code="certificate.validity"
        )
    start = _aware(not_before, "not_before") if not_before is not None else _utcnow() - _BACKDATE
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_device_certificate(
    *,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    valid_days: int,
    not_before: dt.datetime | None = None,
    serial: int | None = None,
) -> x509.Certificate:
    """Issue a device (leaf) certificate for a CSR; CN = the CSR's device id.

    Checks the CSR's self-signature and that ``ca_key`` belongs to
    ``ca_cert``. The leaf has BasicConstraints ``CA:FALSE`` and KeyUsage
    ``digitalSignature`` (both critical), ExtendedKeyUsage ``clientAuth``,
    and Authority and Subject Key Identifiers. Validity starts at
    ``not_before`` (default: five minutes ago, for clock skew) and lasts
    ``valid_days``; ``serial`` defaults to a random 159-bit number.
    """
    if not csr.is_signature_valid:
        raise CertificateInvalid(
            "the CSR's signature does not verify with its own key; have the device make a "
            "new CSR with make_device_csr",
            code="certificate.csr_signature",
        )
    device_id = _common_name(csr.subject, "the CSR")
    try:
        public = DevicePublicKey.from_cryptography(csr.public_key())
    except UnsupportedAlgorithm as e:  # pragma: no cover - cryptography parses EC/RSA/EdDSA
        raise WrongKeyType(f"unsupported CSR key ({e})") from e
    if not _same_public_key(ca_key.public_key(), ca_cert.public_key()):
        raise KeyMismatch(
            "ca_key is not the private key of ca_cert; pass the CA certificate that belongs to this key",
            code="certificate.ca_key_mismatch",
        )
    ca_bc = _ext(ca_cert, x509.BasicConstraints)
    if ca_bc is None or not ca_bc.ca:
        raise CertificateInvalid(
            "ca_cert is not a CA certificate (basicConstraints CA:TRUE missing); "
            "issue from a manufacturer CA made by create_manufacturer_ca",
            code="certificate.issuer_not_ca",
        )
    if valid_days < 1:
        raise CertificateError(
            f"valid_days must be at least 1, got {valid_days}", code="certificate.validity"
        )
    start = _aware(not_before, "not_before") if not_before is not None else _utcnow() - _BACKDATE
    device_key = public.to_cryptography()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(device_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(
                key_identifier=_subject_key_id(ca_cert),
                authority_cert_issuer=None,
                authority_cert_serial_number=None,
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(device_key), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
