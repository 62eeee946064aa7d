"""The error hierarchy: one base, stable codes, carried values."""

from __future__ import annotations

import inspect

import pytest

import device_attestation
from device_attestation import errors
from supet_base.errors import SupetError

ERROR_CLASSES = [
    obj
    for _, obj in inspect.getmembers(errors, inspect.isclass)
    if issubclass(obj, Exception) and obj.__module__ == errors.__name__
]


def test_every_error_is_a_supet_error() -> None:
    assert len(ERROR_CLASSES) == len(errors.__all__)
    for cls in ERROR_CLASSES:
        assert issubclass(cls, errors.AttestationError)
        assert issubclass(cls, SupetError)
        assert getattr(device_attestation, cls.__name__) is cls


def test_codes_are_distinct_and_dotted() -> None:
    codes = [cls.code for cls in ERROR_CLASSES]  # type: ignore[attr-defined]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert "." in code and code == code.lower()


@pytest.mark.parametrize(
    ("child", "parent"),
    [
        (errors.SignatureLengthError, errors.SignatureError),
        (errors.HighSSignature, errors.SignatureError),
        (errors.BadSignature, errors.SignatureError),
        (errors.UnknownScheme, errors.SignatureError),
        (errors.WrongKeyType, errors.SignatureError),
        (errors.UntrustedCA, errors.CertificateError),
        (errors.CertificateExpired, errors.CertificateError),
        (errors.CertificateInvalid, errors.CertificateError),
        (errors.KeyMismatch, errors.CertificateError),
        (errors.StaleChallenge, errors.CertificateError),
        (errors.ProofOfPossessionFailed, errors.CertificateError),
        (errors.ProofMismatch, errors.MerkleError),
    ],
)
def test_hierarchy(child: type[Exception], parent: type[Exception]) -> None:
    assert issubclass(child, parent)


def test_code_can_be_refined_per_raise() -> None:
    err = errors.CertificateExpired("not yet", code="certificate.not_yet_valid")
    assert err.code == "certificate.not_yet_valid"
    assert errors.CertificateExpired.code == "certificate.expired"
    assert err.message == "not yet"


def test_proof_mismatch_carries_both_roots() -> None:
    err = errors.ProofMismatch(expected=b"\x01" * 32, computed=b"\x02" * 32)
    assert (err.expected, err.computed) == (b"\x01" * 32, b"\x02" * 32)
    assert "expected 0x" + "01" * 32 in err.message
    assert "computed 0x" + "02" * 32 in err.message


def test_invalid_reading_carries_its_path() -> None:
    err = errors.InvalidReading("metrics.t: bad", path="metrics.t")
    assert err.path == "metrics.t"
    assert err.code == "reading.invalid"
