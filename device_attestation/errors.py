"""Errors raised by :mod:`device_attestation`.

Every error derives from :class:`supet_base.errors.SupetError` through
:class:`AttestationError`, carries a stable dotted ``code`` (a class default
that a raise site may refine, e.g. ``"certificate.not_yet_valid"`` on a
:class:`CertificateExpired`) and a message that says what to fix.
"""

from __future__ import annotations

from supet_base.errors import SupetError

__all__ = [
    "AttestationError",
    "BadSignature",
    "CertificateError",
    "CertificateExpired",
    "CertificateInvalid",
    "HighSSignature",
    "InvalidDomain",
    "InvalidReading",
    "KeyFileError",
    "KeyMismatch",
    "MerkleError",
    "ProofMismatch",
    "ProofOfPossessionFailed",
    "SignatureError",
    "SignatureLengthError",
    "StaleChallenge",
    "UnknownScheme",
    "UntrustedCA",
    "WrongKeyType",
]


class AttestationError(SupetError):
    """Base of every error about readings, device keys, certificates and proofs."""

    code = "attestation.error"


# --- readings -----------------------------------------------------------------


class InvalidReading(AttestationError):
    """A reading does not follow Reading v1 (spec section 1).

    ``path`` names the offending field, dotted (``"metrics.temp_c"``), or is
    ``""`` when the problem is the object as a whole.
    """

    code = "reading.invalid"

    def __init__(self, message: str, *, path: str = "", code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.path = path


class InvalidDomain(AttestationError):
    """An EIP-712 domain is malformed (bad chain id or contract address)."""

    code = "domain.invalid"


# --- signatures -----------------------------------------------------------------


class SignatureError(AttestationError):
    """A signature could not be accepted."""

    code = "signature.error"


class SignatureLengthError(SignatureError):
    """A signature has the wrong number of bytes for its scheme."""

    code = "signature.length"


class HighSSignature(SignatureError):
    """A signature's ``s`` is above n/2: a malleable form the ledger never accepts."""

    code = "signature.high_s"


class BadSignature(SignatureError):
    """A signature does not verify for the digest and the enrolled key."""

    code = "signature.bad"


class UnknownScheme(SignatureError):
    """A signature scheme other than ``p256`` or ``secp256k1``."""

    code = "signature.unknown_scheme"


class WrongKeyType(SignatureError):
    """A key of another curve or kind than the scheme needs."""

    code = "key.wrong_type"


# --- key files --------------------------------------------------------------------


class KeyFileError(AttestationError):
    """A key file cannot be read or written (garbage, wrong password, ...)."""

    code = "key.file"


# --- certificates -----------------------------------------------------------------


class CertificateError(AttestationError):
    """A device certificate or proof of possession could not be accepted."""

    code = "certificate.error"


class UntrustedCA(CertificateError):
    """No registered manufacturer CA issued the certificate."""

    code = "certificate.untrusted_ca"


class CertificateExpired(CertificateError):
    """A certificate is outside its validity window (expired or not yet valid)."""

    code = "certificate.expired"


class CertificateInvalid(CertificateError):
    """A certificate is malformed, badly signed or has the wrong extensions."""

    code = "certificate.invalid"


class KeyMismatch(CertificateError):
    """A certificate's key is not the key the caller expected."""

    code = "certificate.key_mismatch"


class StaleChallenge(CertificateError):
    """A proof-of-possession challenge is too old or dated in the future."""

    code = "pop.stale_challenge"


class ProofOfPossessionFailed(CertificateError):
    """A proof-of-possession signature is not by the certificate's key."""

    code = "pop.failed"


# --- Merkle proofs ----------------------------------------------------------------


class MerkleError(AttestationError):
    """A Merkle tree cannot be built or a proof has malformed input."""

    code = "merkle.error"


class ProofMismatch(MerkleError):
    """An inclusion proof leads to another root than the expected one.

    Carries both roots, as Trillian's ``verify_inclusion`` does.
    """

    code = "merkle.proof_mismatch"

    def __init__(self, expected: bytes, computed: bytes) -> None:
        super().__init__(
            f"inclusion proof does not match the root: expected 0x{expected.hex()}, "
            f"computed 0x{computed.hex()}. Check that the proof belongs to this digest "
            "and to the batch whose root you compare against."
        )
        self.expected = expected
        self.computed = computed
