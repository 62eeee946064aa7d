"""X.509 helpers shared by the certificate modules (:mod:`device_attestation.certificates`,
:mod:`device_attestation.manufacturer_ca`): clocks, device ids, extensions, key comparison."""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ..errors import CertificateError, CertificateInvalid


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _aware(value: dt.datetime, what: str) -> dt.datetime:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise CertificateError(
            f"{what} must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))",
            code="certificate.naive_time",
        )
    return value


def _check_device_id(device_id: object) -> str:
    if not isinstance(device_id, str) or not 1 <= len(device_id) <= 64:
        raise CertificateInvalid(
            f"device id {device_id!r} is invalid: it must be 1..64 characters, "
            "the serial the device is enrolled under",
            code="certificate.device_id",
        )
    return device_id


def _subject_key_id(cert: x509.Certificate) -> bytes:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


_E = TypeVar("_E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _same_public_key(a: object, b: object) -> bool:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return a.public_bytes(der, fmt) == b.public_bytes(der, fmt)  # type: ignore[attr-defined]


def _common_name(name: x509.Name, what: str) -> str:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1:
        raise CertificateInvalid(
            f"{what} has {len(cns)} common names; it needs exactly one, CN = the device id",
            code="certificate.device_id",
        )
    value = cns[0].value
    return _check_device_id(value if isinstance(value, str) else value.decode("utf-8", "replace"))
