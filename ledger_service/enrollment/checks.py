"""The off-chain checks of an enrollment, made before any gas is spent, each refusing with a message
that says what to fix: the device certificate's chain to a CA the registry trusts, the CA's birth
attestation and the device's proof of possession for the party (both checked again on chain), the
activation time, and hex fields."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from contracts.registry import DeviceRegistryClient
from device_attestation.birth import BirthAttestation, verify_possession
from device_attestation.certificates import (
    VerifiedDevice,
    load_certificate,
    verify_device_certificate,
)
from device_attestation.errors import CertificateError, UntrustedCA
from ledger_service.enrollment.errors import EnrollmentRefused, refused

__all__ = [
    "Attested",
    "CheckedCertificate",
    "check_active_from",
    "check_attestation",
    "hex_bytes",
    "verify_certificate",
]


def hex_bytes(value: str, what: str, *, length: int | None = None, code: str) -> bytes:
    """``value`` (0x-hex) as bytes, of ``length`` when given; refused under ``code`` otherwise."""
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError as e:
        raise EnrollmentRefused(f"{what} is not hex; send it 0x-hex encoded", code=code) from e
    if length is not None and len(raw) != length:
        raise EnrollmentRefused(f"{what} must be {length} bytes, got {len(raw)}", code=code)
    return raw


@dataclass(frozen=True, slots=True)
class CheckedCertificate:
    """A device certificate verified against its issuing CA, which the registry trusts."""

    cert: x509.Certificate
    ca: x509.Certificate
    verified: VerifiedDevice


@dataclass(frozen=True, slots=True)
class Attested:
    """The signatures an enrollment carries to the chain: the CA's birth attestation, the device's proof."""

    birth: bytes
    proof: bytes


def verify_certificate(
    registry: DeviceRegistryClient, certificate_pem: str, ca_certificate_pem: str, now: dt.datetime
) -> CheckedCertificate:
    """The device certificate checked against the CA certificate sent along (validity, profile, path
    validation), and that CA trusted by the registry; ``certificate.*`` refusals."""
    try:
        cert = load_certificate(certificate_pem.encode("utf-8"))
        ca = load_certificate(ca_certificate_pem.encode("utf-8"))
        verified = verify_device_certificate(cert, trusted_cas=[ca], at=now)
    except CertificateError as e:
        raise refused(e) from e
    if not registry.is_trusted_ca(verified.ca_key_hash):
        raise refused(
            UntrustedCA(
                f"the CA 0x{verified.ca_key_hash.hex()} that issued {verified.device_id}'s certificate is "
                "not trusted on chain: the consortium operator must register it (`supet ca register`)"
            )
        )
    return CheckedCertificate(cert=cert, ca=ca, verified=verified)


def check_attestation(
    checked: CheckedCertificate,
    party: str,
    birth_attestation: dict[str, Any],
    possession_signature: str,
    *,
    chain_id: int,
    registry_address: str,
) -> Attested:
    """The CA's birth attestation of the certificate and the device's proof of possession for
    ``party`` at this registry, as the registry will check them (refused here first: no gas, a
    message that says what to fix); ``birth.*`` and ``pop.on_chain`` refusals."""
    verified = checked.verified
    try:
        birth = BirthAttestation.from_json(birth_attestation)
        birth.check_certificate(checked.cert)
        birth.verify(checked.ca)
        proof = hex_bytes(possession_signature, "possession_signature", code="pop.on_chain")
        verify_possession(
            verified.public_key,
            proof,
            device_id=verified.device_id,
            owner=party,
            chain_id=chain_id,
            registry=registry_address,
        )
    except CertificateError as e:  # birth.* and pop.on_chain included
        raise refused(e) from e
    return Attested(birth=birth.signature, proof=proof)


def check_active_from(verified: VerifiedDevice, active_from_ms: int | None) -> int:
    """The activation the registry call carries: 0 (the enrollment block's time) when None; a given
    time must not be before the certificate's notBefore (``enroll.active_from``)."""
    not_before_ms = int(verified.not_valid_before.timestamp() * 1000)
    active_from = 0 if active_from_ms is None else active_from_ms  # 0: the block's time
    if active_from_ms is not None and active_from < not_before_ms:
        raise EnrollmentRefused(
            f"active_from_ms {active_from} is before the certificate's notBefore ({not_before_ms}): "
            "readings cannot count from before the key was certified",
            code="enroll.active_from",
        )
    return active_from
