"""The refusals of device enrollment. Each is an :class:`EnrollmentRefused` with a dotted ``code``;
its HTTP status comes from the one map, :mod:`ledger_service.api.errors`, by class:
:class:`EnrollmentRefused` 422, :class:`EnrollmentConflict` 409, :class:`EnrollmentForbidden` 403,
:class:`TooManyChallenges` 429."""

from __future__ import annotations

from contracts.errors import ContractRevert
from device_attestation.errors import CertificateError
from ledger_service.auth import ENROLLER, RoleRequired
from ledger_service.errors import LedgerError

__all__ = [
    "EnrollmentConflict",
    "EnrollmentForbidden",
    "EnrollmentRefused",
    "TooManyChallenges",
    "refused",
    "revert_refusal",
]


class EnrollmentRefused(LedgerError):
    """An enrollment step was refused as asked: the certificate, the birth attestation, a proof of
    possession, the activation time or the transaction (``certificate.*``, ``birth.*``, ``pop.*``,
    ``enroll.*``)."""

    code = "enroll.refused"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


class EnrollmentConflict(EnrollmentRefused):
    """The enrollment conflicts with the registry's or the desk's state: ``enroll.device_exists``,
    ``enroll.key_in_use``, ``enroll.not_prepared``, ``enroll.pending``."""


class EnrollmentForbidden(EnrollmentRefused):
    """The transaction to confirm is another party's: ``enroll.not_yours``."""


class TooManyChallenges(EnrollmentRefused):
    """The party holds too many open challenges: ``enroll.too_many_challenges``."""


def refused(e: CertificateError) -> EnrollmentRefused:
    """A certificate, birth attestation or proof-of-possession refusal, under its own code."""
    return EnrollmentRefused(e.message, code=e.code)


def revert_refusal(e: ContractRevert, party: str, device_id: str) -> LedgerError:
    """The registry's refusal of an enrollment (dry run or mined), as the API answers it."""
    name = e.error_name
    if name == "DeviceRegistryNotAdmitted":
        return RoleRequired(
            e.hint or f"the DeviceRegistry does not admit {party} to enroll devices: {ENROLLER.advice}",
            role=ENROLLER.name,
            party=party,
        )
    if name == "DeviceRegistryDeviceExists":
        return EnrollmentConflict(
            f"device {device_id!r} is already enrolled on chain; a serial is enrolled once (revoke "
            "the old record only if it is the same device, and enroll replacements under a new serial)",
            code="enroll.device_exists",
        )
    if name == "DeviceRegistryKeyInUse":
        return EnrollmentConflict(
            f"the certificate's key is already enrolled for device {e.error_args.get('deviceId')}; "
            "every device needs its own key: have the device generate a new one and be re-certified",
            code="enroll.key_in_use",
        )
    if name == "DeviceRegistryActiveFromInPast":
        return EnrollmentRefused(
            f"active_from_ms {e.error_args.get('activeFromMs')} is before the enrollment block's time less "
            f"60 s ({e.error_args.get('earliestMs')}): readings cannot count from before the enrollment; "
            "omit active_from_ms (the block's time) or give a time from now on",
            code="enroll.active_from",
        )
    if name == "DeviceRegistryInvalidBirthAttestation":
        return EnrollmentRefused(
            "the DeviceRegistry refuses the birth attestation: it is not the trusted CA's signature of "
            "this device, key and certificate; send the attestation the CA issued with the certificate",
            code="birth.signature",
        )
    if name == "DeviceRegistryInvalidPossessionProof":
        return EnrollmentRefused(
            f"the DeviceRegistry refuses the proof of possession: it is not the device key's signature "
            f"for {party} at this registry; have the device sign possession_digest for your address",
            code="pop.on_chain",
        )
    if name == "DeviceRegistryUntrustedCA":
        return EnrollmentRefused(
            f"the issuing CA {e.error_args.get('caKeyHash')} is not trusted on chain: the consortium "
            "operator must register it (`supet ca register`)",
            code="certificate.untrusted_ca",
        )
    return EnrollmentRefused(f"the DeviceRegistry refuses the enrollment: {e.message}", code="enroll.refused")
