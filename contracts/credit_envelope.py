"""Envelopes: a credit record encrypted to one bank's secp256k1 account key (ECIES).

The analytics oracle delivers each record, with its salt, on chain to every bank with a standing
consent (``CreditRegistry.CreditEnvelope`` logs), encrypted to the bank's account key, so the bank reads
its records from its own node and nobody else can. The scheme (docs/credit-commitments.md):

* a fresh ephemeral secp256k1 key per envelope (``coincurve``, the libsecp256k1 binding web3 already
  uses); ECDH with the bank's public key, libsecp256k1's default hash (SHA-256 of the compressed shared
  point);
* HKDF-SHA256 of that secret (salt: the ephemeral public key, compressed; info:
  ``supet.credit.envelope.v1`` and the bank's public key, compressed) to a 256-bit key;
* AES-256-GCM (``cryptography``) with a random 96-bit nonce, the associated data binding the envelope
  to one chain, registry, factory, bank and record commitment (:func:`envelope_aad`): an envelope copied
  to another record or bank does not open.

Wire format: ``0x01 || ephemeral public key (33) || nonce (12) || ciphertext || tag (16)``.
"""

from __future__ import annotations

import secrets
from typing import Final

from coincurve import PrivateKey, PublicKey
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_utils import keccak, to_canonical_address

from contracts.errors import ContractsError

__all__ = [
    "ENVELOPE_INFO",
    "ENVELOPE_VERSION",
    "EnvelopeError",
    "envelope_aad",
    "open_envelope",
    "public_key_of",
    "seal",
]

ENVELOPE_VERSION: Final = 1
ENVELOPE_INFO: Final = b"supet.credit.envelope.v1"
_EPHEMERAL: Final = 33
_NONCE: Final = 12
_TAG: Final = 16


class EnvelopeError(ContractsError):
    """An envelope cannot be sealed or does not open (wrong key, altered, for another record or bank)."""

    code = "credit.envelope"


def public_key_of(private_key: bytes) -> bytes:
    """The 64-byte uncompressed public key (x || y, no 0x04) of a secp256k1 private key: what
    ``CreditRegistry.registerEnvelopeKey`` takes (its keccak gives the account's address)."""
    return bytes(PrivateKey(bytes(private_key)).public_key.format(compressed=False)[1:])


def _public(public_key: bytes) -> PublicKey:
    raw = bytes(public_key)
    if len(raw) == 64:
        raw = b"\x04" + raw
    try:
        return PublicKey(raw)
    except ValueError as e:
        raise EnvelopeError(f"not a secp256k1 public key ({len(public_key)} bytes): {e}") from e


def envelope_aad(chain_id: int, registry: str, factory: str, bank: str, record_commitment: bytes) -> bytes:
    """The associated data of an envelope: the version tag, chain id (32 bytes), registry, factory and
    bank addresses (20 bytes each) and the record commitment (32 bytes)."""
    if len(record_commitment) != 32:
        raise EnvelopeError("a record commitment is 32 bytes")
    return (
        ENVELOPE_INFO
        + chain_id.to_bytes(32, "big")
        + to_canonical_address(registry)
        + to_canonical_address(factory)
        + to_canonical_address(bank)
        + bytes(record_commitment)
    )


def _key(secret: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral, info=ENVELOPE_INFO + recipient)
    return hkdf.derive(secret)


def seal(plaintext: bytes, public_key: bytes, aad: bytes) -> bytes:
    """``plaintext`` encrypted to ``public_key`` (64 or 65 bytes uncompressed, or 33 compressed)."""
    recipient = _public(public_key)
    ephemeral = PrivateKey()
    eph_pub = ephemeral.public_key.format(compressed=True)
    key = _key(ephemeral.ecdh(recipient.format(compressed=True)), eph_pub, recipient.format(compressed=True))
    nonce = secrets.token_bytes(_NONCE)
    return bytes([ENVELOPE_VERSION]) + eph_pub + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_envelope(envelope: bytes, private_key: bytes, aad: bytes) -> bytes:
    """The plaintext of ``envelope`` with the recipient's ``private_key``; :class:`EnvelopeError` when it
    does not open (another key, altered bytes, other associated data)."""
    data = bytes(envelope)
    if len(data) < 1 + _EPHEMERAL + _NONCE + _TAG or data[0] != ENVELOPE_VERSION:
        raise EnvelopeError(f"not a version-{ENVELOPE_VERSION} envelope ({len(data)} bytes)")
    eph_pub = data[1 : 1 + _EPHEMERAL]
    nonce = data[1 + _EPHEMERAL : 1 + _EPHEMERAL + _NONCE]
    me = PrivateKey(bytes(private_key))
    try:
        secret = me.ecdh(eph_pub)
    except ValueError as e:
        raise EnvelopeError(f"the envelope's ephemeral key is not a curve point: {e}") from e
    key = _key(secret, eph_pub, me.public_key.format(compressed=True))
    try:
        return AESGCM(key).decrypt(nonce, data[1 + _EPHEMERAL + _NONCE :], aad)
    except InvalidTag as e:
        raise EnvelopeError(
            "the envelope does not open with this key for this record: another bank's, another "
            "record's, or altered"
        ) from e


def address_of(public_key: bytes) -> str:
    """The account address of a 64-byte public key (keccak's last 20 bytes), 0x-hex lower case."""
    raw = _public(public_key).format(compressed=False)[1:]
    return "0x" + keccak(raw)[-20:].hex()
