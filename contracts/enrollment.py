"""Enrollment: from a device certificate and a proof of possession to a device on chain.

Off chain, the enrolling tool (``supet device enroll``) or the ledger service checks
what a contract cannot afford to: the X.509 chain to a manufacturer CA, and that the
device holds the certified key (it signs a fresh, single-use challenge). On chain
(issue 12, finding 2), the DeviceRegistry checks the CA is one the consortium trusts
and signed the device's birth attestation (:mod:`device_attestation.birth`: device id,
scheme, key, certificate fingerprint), that the device's key signed a proof of
possession for the enrolling party under the registry's EIP-712 domain, the caller is
an admitted party, the key and id are not taken, and the activation time is not before
the enrollment block's time (less 60 s of clock skew). Both must pass; the off-chain
checks come first, so a refusal costs no gas and says what to fix.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from eth_account.signers.local import LocalAccount

from contracts.chain import TxResult
from contracts.registry import DeviceRegistryClient
from device_attestation.birth import BirthAttestation, sign_possession, verify_possession
from device_attestation.certificates import (
    Challenge,
    VerifiedDevice,
    ca_key_hash,
    certificate_fingerprint,
    challenge_digest,
    new_challenge,
    verify_device_certificate,
    verify_proof_of_possession,
)
from device_attestation.errors import StaleChallenge, UntrustedCA
from device_attestation.keys import DeviceKey, Scheme
from device_attestation.signing import sign_digest


@dataclass(frozen=True, kw_only=True)
class EnrolledDevice:
    """A device enrolled on chain."""

    device_id: str
    scheme: Scheme
    owner: str
    active_from_ms: int
    cert_fingerprint: bytes
    ca_key_hash: bytes
    tx_hash: str
    block_number: int


def registry_audience(registry: DeviceRegistryClient) -> str:
    """The audience of enrollment challenges: ``eip155:<chain id>:<registry address>``."""
    return f"eip155:{registry.chain.chain_id}:{registry.contract.address}"


class ChallengeBook:
    """Issues challenges and accepts each answer once (replayed answers are refused)."""

    def __init__(self, audience: str, *, max_age: dt.timedelta = dt.timedelta(minutes=5)) -> None:
        self.audience = audience
        self.max_age = max_age
        self._open: dict[bytes, Challenge] = {}
        self._lock = threading.Lock()

    def issue(self, now: dt.datetime | None = None) -> Challenge:
        challenge = new_challenge(self.audience, now)
        with self._lock:
            self._prune(challenge.issued_at)
            self._open[challenge.nonce] = challenge
        return challenge

    def redeem(self, nonce: bytes, now: dt.datetime) -> Challenge:
        """Take the open challenge with ``nonce`` out of the book; :class:`StaleChallenge` if none."""
        with self._lock:
            self._prune(now)
            challenge = self._open.pop(nonce, None)
        if challenge is None:
            raise StaleChallenge(
                "unknown, expired or already used challenge: ask for a new challenge and sign it",
                code="pop.unknown_challenge",
            )
        return challenge

    def _prune(self, now: dt.datetime) -> None:
        for nonce in [n for n, c in self._open.items() if now - c.issued_at > self.max_age]:
            del self._open[nonce]


def _send_enrollment(
    registry: DeviceRegistryClient,
    party: LocalAccount,
    verified: VerifiedDevice,
    active_from_ms: int,
    birth_signature: bytes,
    possession_signature: bytes,
) -> TxResult:
    """The registry's ``enrollP256`` or ``enrollSecp256k1`` of ``verified``, sent by ``party``."""
    pub = verified.public_key
    if verified.scheme is Scheme.P256:
        return registry.enroll_p256(
            party,
            device_id=verified.device_id,
            x=pub.x,
            y=pub.y,
            cert_fingerprint=verified.fingerprint,
            ca_key_hash=verified.ca_key_hash,
            active_from_ms=active_from_ms,
            birth_signature=birth_signature,
            possession_signature=possession_signature,
        )
    return registry.enroll_secp256k1(
        party,
        device_id=verified.device_id,
        address=pub.eth_address,
        cert_fingerprint=verified.fingerprint,
        ca_key_hash=verified.ca_key_hash,
        active_from_ms=active_from_ms,
        birth_signature=birth_signature,
        possession_signature=possession_signature,
    )


def enroll_device(
    *,
    registry: DeviceRegistryClient,
    party: LocalAccount,
    certificate: x509.Certificate,
    ca_certificates: Sequence[x509.Certificate],
    challenge: Challenge,
    pop_signature: bytes,
    birth: BirthAttestation,
    possession_signature: bytes,
    now: dt.datetime,
    active_from_ms: int | None = None,
) -> EnrolledDevice:
    """Check the certificate chain, the proofs of possession and the birth attestation, then enroll.

    ``pop_signature`` answers the off-chain ``challenge``; ``possession_signature`` is the device's
    on-chain proof for ``party`` (:func:`device_attestation.birth.sign_possession`); ``birth`` is the
    CA's attestation of ``certificate``. ``active_from_ms`` defaults to ``now`` (0: the block's time).

    Raises the certificate errors of :mod:`device_attestation.certificates`,
    :class:`UntrustedCA` when the issuing CA is not trusted on chain, or a
    :class:`contracts.errors.ContractRevert` naming the registry's refusal. Nothing is
    written unless every check passes.
    """
    verified = verify_device_certificate(certificate, trusted_cas=ca_certificates, at=now)
    ca_cert = next(ca for ca in ca_certificates if ca_key_hash(ca) == verified.ca_key_hash)
    birth.check_certificate(certificate)
    birth.verify(ca_cert)
    if not registry.is_trusted_ca(verified.ca_key_hash):
        raise UntrustedCA(
            f"the CA 0x{verified.ca_key_hash.hex()} that issued {verified.device_id}'s certificate "
            "is not trusted on chain: the consortium operator must register it (`supet ca register`)"
        )
    verify_proof_of_possession(
        cert=certificate,
        challenge=challenge,
        signature=pop_signature,
        now=now,
        expected_audience=registry_audience(registry),
    )
    verify_possession(
        verified.public_key,
        possession_signature,
        device_id=verified.device_id,
        owner=party.address,
        chain_id=registry.chain.chain_id,
        registry=registry.contract.address,
    )
    active_from = active_from_ms if active_from_ms is not None else int(now.timestamp() * 1000)
    result = _send_enrollment(registry, party, verified, active_from, birth.signature, possession_signature)
    if active_from == 0:
        active_from = registry.device(verified.device_id).active_from_ms
    return EnrolledDevice(
        device_id=verified.device_id,
        scheme=verified.scheme,
        owner=party.address,
        active_from_ms=active_from,
        cert_fingerprint=verified.fingerprint,
        ca_key_hash=verified.ca_key_hash,
        tx_hash=result.tx_hash,
        block_number=result.block_number,
    )


def answer_challenge(device_key: DeviceKey, challenge: Challenge, certificate: x509.Certificate) -> bytes:
    """What the device does: sign the challenge digest for its certificate."""
    return sign_digest(device_key, challenge_digest(challenge, certificate_fingerprint(certificate)))


def enroll_with_device_key(
    *,
    registry: DeviceRegistryClient,
    party: LocalAccount,
    certificate: x509.Certificate,
    ca_certificates: Sequence[x509.Certificate],
    device_key: DeviceKey,
    birth: BirthAttestation,
    now: dt.datetime,
    active_from_ms: int | None = None,
) -> EnrolledDevice:
    """Enroll with the device key at hand (the factory floor, the demo): challenge, answer, prove
    possession for ``party`` at this registry, enroll with the CA's ``birth`` attestation."""
    book = ChallengeBook(registry_audience(registry))
    challenge = book.issue(now)
    signature = answer_challenge(device_key, challenge, certificate)
    possession = sign_possession(
        device_key,
        device_id=birth.device_id,
        owner=party.address,
        chain_id=registry.chain.chain_id,
        registry=registry.contract.address,
    )
    return enroll_device(
        registry=registry,
        party=party,
        certificate=certificate,
        ca_certificates=ca_certificates,
        challenge=book.redeem(challenge.nonce, now),
        pop_signature=signature,
        birth=birth,
        possession_signature=possession,
        now=now,
        active_from_ms=active_from_ms,
    )
