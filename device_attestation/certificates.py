"""X.509 device identity, as Azure DPS and AWS IoT do it.

A manufacturer runs a P-256 CA
(:func:`~device_attestation.manufacturer_ca.create_manufacturer_ca`); the
DeviceRegistry contract trusts the CA by :func:`ca_key_hash`. Each device
makes a CSR for its key (:func:`make_device_csr`, P-256 or secp256k1), the CA
issues a leaf (:func:`~device_attestation.manufacturer_ca.issue_device_certificate`),
and at enrolment the registry side checks the leaf (:func:`verify_device_certificate`)
and that the device holds the key (:func:`verify_proof_of_possession` over a fresh
:class:`Challenge`).

Path validation. ``cryptography.x509.verification`` (a client verifier with a
custom extension policy) accepts leaves with P-256 and secp256k1 keys under a
P-256 CA, so it is the final authority here: it does the RFC 5280 work we
should not hand-roll (critical extensions, name chaining, signature algorithm
policy, DER strictness). It reports every failure as one ``VerificationError``
with a free-text reason, though, and callers need to tell "no registered CA"
from "expired" from "malformed". So the conditions that have their own error
type or advice are checked explicitly first (issuer lookup,
``verify_directly_issued_by``, validity windows, basic constraints, key
usage); anything else the verifier rejects becomes :class:`CertificateInvalid`.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ._internal.hexutil import address_bytes, hex0x
from ._internal.keccak import keccak256
from ._internal.x509util import _aware, _check_device_id, _common_name, _ext, _subject_key_id, _utcnow
from .errors import (
    CertificateError,
    CertificateExpired,
    CertificateInvalid,
    KeyMismatch,
    ProofOfPossessionFailed,
    SignatureError,
    StaleChallenge,
    UntrustedCA,
    WrongKeyType,
)
from .keys import DeviceKey, DevicePublicKey, Scheme
from .signing import PublicKeyOrAddress, sign_digest, verify_signature

__all__ = [
    "POP_TAG",
    "Challenge",
    "VerifiedDevice",
    "ca_key_hash",
    "certificate_fingerprint",
    "challenge_digest",
    "check_key_matches",
    "load_certificate",
    "make_device_csr",
    "new_challenge",
    "prove_possession",
    "verify_device_certificate",
    "verify_proof_of_possession",
]

#: Domain-separation tag of proof-of-possession digests.
POP_TAG: Final = "supET device PoP v1"
_POP_TAG_HASH: Final = keccak256(POP_TAG.encode("ascii"))
_FUTURE_SKEW: Final = dt.timedelta(seconds=30)


def load_certificate(data: bytes) -> x509.Certificate:
    """A certificate from PEM or DER bytes; :class:`CertificateInvalid` for anything else."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise CertificateInvalid(
            f"cannot parse the certificate ({e}); send one PEM or DER X.509 certificate",
            code="certificate.parse",
        ) from e


# --- hashes that identify CAs and certificates -------------------------------------


def ca_key_hash(ca_cert: x509.Certificate) -> bytes:
    """keccak256 of the CA's SubjectPublicKeyInfo DER: the CA's id in the DeviceRegistry."""
    spki = ca_cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return keccak256(spki)


def certificate_fingerprint(cert: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's DER (32 bytes)."""
    return cert.fingerprint(hashes.SHA256())


# --- the device's CSR ---------------------------------------------------------------


def make_device_csr(key: DeviceKey, device_id: str) -> x509.CertificateSigningRequest:
    """A CSR with ``CN = device_id``, signed by the device key (P-256 or secp256k1)."""
    _check_device_id(device_id)
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
        .sign(key.private_key, hashes.SHA256())
    )


# --- verifying ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifiedDevice:
    """What a checked device certificate establishes."""

    device_id: str
    scheme: Scheme
    public_key: DevicePublicKey
    fingerprint: bytes
    ca_key_hash: bytes
    serial_number: int
    not_valid_before: dt.datetime
    not_valid_after: dt.datetime


def _trusted_list(
    trusted_cas: Iterable[x509.Certificate] | Mapping[bytes, x509.Certificate],
) -> list[x509.Certificate]:
    if isinstance(trusted_cas, Mapping):
        out = []
        for key_hash, ca in trusted_cas.items():
            if bytes(key_hash) != ca_key_hash(ca):
                raise CertificateError(
                    f"trusted CA {ca.subject.rfc4514_string()} is filed under key hash "
                    f"{hex0x(bytes(key_hash))} but its key hash is {hex0x(ca_key_hash(ca))}; "
                    "key the mapping by ca_key_hash(ca)",
                    code="certificate.trust_store",
                )
            out.append(ca)
        return out
    return list(trusted_cas)


def _find_issuer(cert: x509.Certificate, trusted: list[x509.Certificate]) -> x509.Certificate:
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    key_id = aki.key_identifier if aki is not None else None
    candidates = [
        ca
        for ca in trusted
        if ca.subject == cert.issuer and (key_id is None or _subject_key_id(ca) == key_id)
    ]
    issuer = cert.issuer.rfc4514_string()
    if not candidates:
        kid = f" (key id {key_id.hex()})" if key_id else ""
        raise UntrustedCA(
            f"the certificate was issued by {issuer!r}{kid}, which is not a registered "
            "manufacturer CA; register that CA's key hash in the DeviceRegistry or have "
            "the device re-certified by a registered CA"
        )
    for ca in candidates:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            continue
        return ca
    raise CertificateInvalid(
        f"the certificate names registered CA {issuer!r} as issuer but its signature does "
        "not verify with that CA's key; it was altered or forged, re-issue it",
        code="certificate.signature",
    )


def _check_window(cert: x509.Certificate, at: dt.datetime, *, what: str, ca: bool) -> None:
    prefix = "certificate.ca_" if ca else "certificate."
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if at < start:
        raise CertificateExpired(
            f"{what} is not valid before {start.isoformat()} (checked at {at.isoformat()}); "
            "check the clocks, or wait until it becomes valid",
            code=prefix + "not_yet_valid",
        )
    if at > end:
        renew = "renew the manufacturer CA" if ca else "issue the device a new certificate"
        raise CertificateExpired(
            f"{what} expired at {end.isoformat()} (checked at {at.isoformat()}); {renew}",
            code=prefix + "expired",
        )


def _check_ca_profile(ca: x509.Certificate) -> None:
    subject = ca.subject.rfc4514_string()
    bc = _ext(ca, x509.BasicConstraints)
    if bc is None or not bc.ca:
        raise CertificateInvalid(
            f"issuer {subject!r} is not a CA certificate (basicConstraints CA:TRUE missing); "
            "re-issue its device certificates from a proper CA certificate",
            code="certificate.issuer_not_ca",
        )
    ku = _ext(ca, x509.KeyUsage)
    if ku is None or not ku.key_cert_sign:
        raise CertificateInvalid(
            f"issuer {subject!r} lacks keyUsage keyCertSign, so it may not sign certificates; "
            "re-create the CA certificate with keyCertSign",
            code="certificate.issuer_key_usage",
        )


def _check_leaf_profile(cert: x509.Certificate) -> None:
    bc = _ext(cert, x509.BasicConstraints)
    if bc is None or bc.ca:
        raise CertificateInvalid(
            "a device certificate needs basicConstraints CA:FALSE "
            f"({'missing' if bc is None else 'it says CA:TRUE'}); re-issue it with "
            "issue_device_certificate",
            code="certificate.leaf_basic_constraints",
        )
    ku = _ext(cert, x509.KeyUsage)
    if ku is None or not ku.digital_signature:
        raise CertificateInvalid(
            "a device certificate needs keyUsage digitalSignature, since the device signs "
            "readings; re-issue it with issue_device_certificate",
            code="certificate.leaf_key_usage",
        )


def _leaf_key_usage(_policy: Policy, _cert: x509.Certificate, ku: x509.KeyUsage) -> None:
    if not ku.digital_signature:
        raise ValueError("keyUsage lacks digitalSignature")


def _leaf_basic_constraints(_policy: Policy, _cert: x509.Certificate, bc: x509.BasicConstraints) -> None:
    if bc.ca:
        raise ValueError("basicConstraints says CA:TRUE")


_EE_POLICY: Final = (
    ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    .require_present(x509.KeyUsage, Criticality.AGNOSTIC, _leaf_key_usage)
    .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _leaf_basic_constraints)
)
_CA_POLICY: Final = ExtensionPolicy.webpki_defaults_ca()


def _path_validate(cert: x509.Certificate, ca: x509.Certificate, at: dt.datetime) -> None:
    verifier = (
        PolicyBuilder()
        .store(Store([ca]))
        .time(at)
        .max_chain_depth(0)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    try:
        verifier.verify(cert, [])
    except VerificationError as e:
        raise CertificateInvalid(
            f"the certificate fails X.509 path validation: {e}; re-issue it with "
            "issue_device_certificate from the registered CA",
            code="certificate.path_validation",
        ) from e


def verify_device_certificate(
    cert: x509.Certificate,
    *,
    trusted_cas: Iterable[x509.Certificate] | Mapping[bytes, x509.Certificate],
    at: dt.datetime,
) -> VerifiedDevice:
    """Check a device certificate against the registered manufacturer CAs at time ``at``.

    The leaf must be issued directly by one of ``trusted_cas`` (no
    intermediates: manufacturer CAs have ``pathlen:0``).

    ``trusted_cas`` is a collection of CA certificates, or a mapping from
    :func:`ca_key_hash` to CA certificate. Raises :class:`UntrustedCA` (no
    registered CA issued it), :class:`CertificateExpired` (leaf or CA outside
    its validity window at ``at``) or :class:`CertificateInvalid` (bad
    signature, wrong extensions, unsupported key, bad device id).
    """
    at = _aware(at, "at")
    ca = _find_issuer(cert, _trusted_list(trusted_cas))
    _check_window(ca, at, what=f"manufacturer CA {ca.subject.rfc4514_string()!r}", ca=True)
    _check_window(cert, at, what="the device certificate", ca=False)
    _check_ca_profile(ca)
    _check_leaf_profile(cert)
    device_id = _common_name(cert.subject, "the device certificate")
    public = _cert_public_key(cert)
    _path_validate(cert, ca, at)
    return VerifiedDevice(
        device_id=device_id,
        scheme=public.scheme,
        public_key=public,
        fingerprint=certificate_fingerprint(cert),
        ca_key_hash=ca_key_hash(ca),
        serial_number=cert.serial_number,
        not_valid_before=cert.not_valid_before_utc,
        not_valid_after=cert.not_valid_after_utc,
    )


def _cert_public_key(cert: x509.Certificate) -> DevicePublicKey:
    try:
        return DevicePublicKey.from_cryptography(cert.public_key())
    except (WrongKeyType, UnsupportedAlgorithm) as e:
        raise CertificateInvalid(
            f"the certificate's key cannot sign readings: {e}", code="certificate.key_type"
        ) from e


def check_key_matches(cert: x509.Certificate, public_key: PublicKeyOrAddress) -> None:
    """Check that ``cert`` holds ``public_key`` (or, for secp256k1, that address)."""
    held = _cert_public_key(cert)
    if isinstance(public_key, DevicePublicKey):
        if public_key == held:
            return
        claimed = f"{public_key.scheme} key ({public_key.x:#x}, ...)"
    else:
        try:
            claimed_raw = address_bytes(public_key)
        except ValueError as e:
            raise KeyMismatch(f"claimed address {public_key!r} is malformed: {e}") from e
        if held.scheme is Scheme.SECP256K1 and held.eth_address.lower() == hex0x(claimed_raw):
            return
        claimed = f"address {hex0x(claimed_raw)}"
    raise KeyMismatch(
        f"the certificate holds a {held.scheme} key ({held.x:#x}, ...), not the claimed "
        f"{claimed}; enrol the key that is in the certificate, or send the right certificate"
    )


# --- proof of possession ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Challenge:
    """A registry's one-time challenge: the device proves it holds its certified key.

    ``audience`` names who asked, e.g. ``"eip155:31337:0x5FbD..."`` (chain id
    and DeviceRegistry address), so a proof cannot be replayed elsewhere.
    ``issued_at`` is whole seconds, timezone-aware.
    """

    nonce: bytes
    issued_at: dt.datetime
    audience: str

    def __post_init__(self) -> None:
        if not isinstance(self.nonce, bytes) or len(self.nonce) != 32:
            raise CertificateError(
                "a challenge nonce is 32 random bytes; create challenges with new_challenge",
                code="pop.bad_challenge",
            )
        _aware(self.issued_at, "issued_at")
        if not isinstance(self.audience, str) or not self.audience:
            raise CertificateError(
                "a challenge needs a non-empty audience (e.g. 'eip155:<chain id>:<registry>')",
                code="pop.bad_challenge",
            )


def new_challenge(audience: str, now: dt.datetime | None = None) -> Challenge:
    """A fresh challenge with 32 random bytes, issued at ``now`` (whole seconds)."""
    issued = _utcnow() if now is None else _aware(now, "now").replace(microsecond=0)
    return Challenge(nonce=secrets.token_bytes(32), issued_at=issued, audience=audience)


def challenge_digest(challenge: Challenge, cert_fingerprint: bytes) -> bytes:
    """The 32-byte digest a device signs to answer ``challenge`` for one certificate.

    ``keccak256(keccak256("supET device PoP v1") || keccak256(utf8(audience)) ||
    nonce || uint256(issued_at unix seconds) || cert_fingerprint)``: fixed
    32-byte words, so no two inputs share an encoding, and the tag keeps it
    apart from reading digests (which start with 0x1901).
    """
    if len(cert_fingerprint) != 32:
        raise CertificateError(
            f"a certificate fingerprint is 32 bytes (SHA-256), got {len(cert_fingerprint)}; "
            "pass certificate_fingerprint(cert)",
            code="pop.bad_fingerprint",
        )
    seconds = math.floor(challenge.issued_at.timestamp())
    return keccak256(
        _POP_TAG_HASH
        + keccak256(challenge.audience.encode("utf-8"))
        + challenge.nonce
        + seconds.to_bytes(32, "big", signed=True)
        + bytes(cert_fingerprint)
    )


def prove_possession(key: DeviceKey, *, cert: x509.Certificate, challenge: Challenge) -> bytes:
    """The device side: sign ``challenge`` for ``cert`` with the device key."""
    return sign_digest(key, challenge_digest(challenge, certificate_fingerprint(cert)))


def verify_proof_of_possession(
    *,
    cert: x509.Certificate,
    challenge: Challenge,
    signature: bytes,
    now: dt.datetime,
    expected_audience: str,
    max_age: dt.timedelta = dt.timedelta(minutes=5),
) -> None:
    """Check that the holder of ``cert``'s key answered ``challenge``; ``None`` or raise.

    Raises :class:`ProofOfPossessionFailed` when the challenge was for another
    audience or the signature is not by the certificate's key, and
    :class:`StaleChallenge` when the challenge is older than ``max_age`` or
    dated more than 30 s in the future. Check the certificate itself with
    :func:`verify_device_certificate`.
    """
    now = _aware(now, "now")
    if challenge.audience != expected_audience:
        raise ProofOfPossessionFailed(
            f"the challenge was issued for {challenge.audience!r}, not {expected_audience!r}; "
            "answer a challenge from this registry",
            code="pop.audience",
        )
    age = now - challenge.issued_at
    if age > max_age:
        raise StaleChallenge(
            f"the challenge is {int(age.total_seconds())} s old (limit "
            f"{int(max_age.total_seconds())} s); request a new challenge and answer it promptly",
            code="pop.stale",
        )
    if -age > _FUTURE_SKEW:
        raise StaleChallenge(
            f"the challenge is dated {int(-age.total_seconds())} s in the future (limit "
            f"{int(_FUTURE_SKEW.total_seconds())} s); check the clocks and request a new one",
            code="pop.future",
        )
    public = _cert_public_key(cert)
    digest = challenge_digest(challenge, certificate_fingerprint(cert))
    try:
        verify_signature(public.scheme, public, digest, signature)
    except SignatureError as e:
        raise ProofOfPossessionFailed(
            f"the proof of possession is not a signature by the certificate's key ({e.message}); "
            "the device must sign challenge_digest(challenge, fingerprint) with its own key"
        ) from e
