"""Signing and verifying reading digests (spec section 3).

* ``p256``: 64 bytes ``r || s``, big-endian, low-S (``s <= n/2``); ECDSA over
  the 32-byte digest taken as the message hash. What OpenZeppelin
  ``P256.verify`` accepts.
* ``secp256k1``: 65 bytes ``r || s || v`` with ``v`` in {27, 28} and low-S;
  ``ecrecover(digest)`` must give the enrolled address. What OpenZeppelin
  ``ECDSA.recover`` accepts (it refuses ``v`` of 0/1 and 64-byte signatures).

Verifiers return ``None`` and raise a :class:`SignatureError` subclass.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final, TypeAlias

import coincurve
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)

from ._internal.hexutil import address_bytes
from ._internal.keccak import keccak256
from .errors import (
    BadSignature,
    HighSSignature,
    SignatureError,
    SignatureLengthError,
    WrongKeyType,
)
from .keys import DeviceKey, DevicePublicKey, Scheme, parse_scheme
from .reading import Domain, Reading, reading_digest

__all__ = [
    "P256_N",
    "SECP256K1_N",
    "PublicKeyOrAddress",
    "check_reading",
    "sign_digest",
    "verify_signature",
    "verify_signatures",
]

#: Order of the P-256 group.
P256_N: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
#: Order of the secp256k1 group.
SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_P256_HALF_N: Final = P256_N // 2
_K1_HALF_N: Final = SECP256K1_N // 2
_PREHASHED: Final = ec.ECDSA(Prehashed(hashes.SHA256()))
_P256: Final = ec.SECP256R1()

#: What a signature is checked against: a public key (either scheme) or, for
#: secp256k1, the enrolled Ethereum address (hex string or 20 bytes).
PublicKeyOrAddress: TypeAlias = DevicePublicKey | str | bytes

_P256_DOES_NOT_VERIFY: Final = (
    "p256 signature does not verify for this digest and the enrolled key; check that "
    "the device signed this exact reading for this chain id and anchor contract"
)


def _as_digest(digest: bytes) -> bytes:
    if type(digest) is bytes and len(digest) == 32:
        return digest
    if isinstance(digest, bytes | bytearray | memoryview) and len(digest) == 32:
        return bytes(digest)
    size = (
        f"{len(digest)} bytes"
        if isinstance(digest, bytes | bytearray | memoryview)
        else (f"a {type(digest).__name__}")
    )
    raise SignatureError(
        f"a digest is 32 bytes, got {size}; pass reading_digest(...)'s result",
        code="signature.digest_length",
    )


# --- signing ----------------------------------------------------------------------


def sign_digest(key: DeviceKey, digest: bytes) -> bytes:
    """Sign a 32-byte digest: 64 bytes for p256, 65 for secp256k1, always low-S."""
    digest = _as_digest(digest)
    if key.scheme is Scheme.P256:
        der = key.private_key.sign(digest, _PREHASHED)
        r, s = decode_dss_signature(der)
        if s > _P256_HALF_N:
            s = P256_N - s
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    signer = key._coincurve
    assert signer is not None  # set for every secp256k1 key
    raw = signer.sign_recoverable(digest, hasher=None)  # r || s || recid, low-S
    return raw[:64] + bytes([raw[64] + 27])


# --- verifying --------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _p256_verifier(x: int, y: int) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicNumbers(x, y, _P256).public_key()


def _verify_p256(key: PublicKeyOrAddress, digest: bytes, signature: bytes) -> None:
    if not isinstance(key, DevicePublicKey):
        raise WrongKeyType(
            "a p256 signature is checked against the device's public key (x, y), "
            "not an address; pass the enrolled DevicePublicKey"
        )
    if key.scheme is not Scheme.P256:
        raise WrongKeyType(
            f"the enrolled key is a {key.scheme} key but the signature says p256; "
            "sign with the device's enrolled key and scheme"
        )
    if len(signature) != 64:
        raise SignatureLengthError(
            f"a p256 signature is 64 bytes (r || s), got {len(signature)}; send raw r || s, not DER"
        )
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (0 < r < P256_N and 0 < s < P256_N):
        raise BadSignature(
            "p256 signature r or s is outside [1, n-1]; the signature is corrupt",
            code="signature.out_of_range",
        )
    if s > _P256_HALF_N:
        raise HighSSignature(
            "p256 signature has s > n/2 (malleable high-S form); normalise it before sending: s := n - s"
        )
    try:
        _p256_verifier(key.x, key.y).verify(encode_dss_signature(r, s), digest, _PREHASHED)
    except InvalidSignature:
        raise BadSignature(_P256_DOES_NOT_VERIFY) from None


def _verify_secp256k1(key: PublicKeyOrAddress, digest: bytes, signature: bytes) -> None:
    if isinstance(key, DevicePublicKey):
        if key.scheme is not Scheme.SECP256K1:
            raise WrongKeyType(
                f"the enrolled key is a {key.scheme} key but the signature says secp256k1; "
                "sign with the device's enrolled key and scheme"
            )
        expected = keccak256(key.uncompressed[1:])[12:]
    else:
        try:
            expected = address_bytes(key)
        except ValueError as e:
            raise WrongKeyType(
                f"enrolled secp256k1 address {key!r} is malformed: {e}", code="key.address"
            ) from e
    if len(signature) != 65:
        raise SignatureLengthError(f"a secp256k1 signature is 65 bytes (r || s || v), got {len(signature)}")
    v = signature[64]
    if v not in (27, 28):
        raise BadSignature(
            f"secp256k1 signature has v = {v}; v must be 27 or 28 "
            "(add 27 to a 0/1 recovery id), as OpenZeppelin ECDSA.recover requires",
            code="signature.bad_v",
        )
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise BadSignature(
            "secp256k1 signature r or s is outside [1, n-1]; the signature is corrupt",
            code="signature.out_of_range",
        )
    if s > _K1_HALF_N:
        raise HighSSignature(
            "secp256k1 signature has s > n/2 (malleable high-S form); "
            "normalise it: s := n - s and flip v between 27 and 28"
        )
    try:
        recovered = coincurve.PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), digest, hasher=None
        )
    except Exception as e:  # coincurve raises plain Exception/ValueError
        raise BadSignature("secp256k1 signature does not recover to any key; the signature is corrupt") from e
    if keccak256(recovered.format(compressed=False)[1:])[12:] != expected:
        raise BadSignature(
            "secp256k1 signature recovers to another address than the enrolled one; check "
            "that the device signed this exact reading for this chain id and anchor contract"
        )


def verify_signature(
    scheme: Scheme | str,
    public_key_or_address: PublicKeyOrAddress,
    digest: bytes,
    signature: bytes,
) -> None:
    """Check ``signature`` over ``digest`` by the enrolled key; ``None`` or raise.

    ``public_key_or_address`` is the enrolled :class:`DevicePublicKey`, or for
    secp256k1 also its address. Raises :class:`UnknownScheme`,
    :class:`WrongKeyType`, :class:`SignatureLengthError`,
    :class:`HighSSignature` or :class:`BadSignature`.
    """
    digest = _as_digest(digest)
    if type(signature) is not bytes:
        if not isinstance(signature, bytes | bytearray | memoryview):
            raise SignatureLengthError(
                f"a signature is bytes, got a {type(signature).__name__}; decode a 0x-hex signature first"
            )
        signature = bytes(signature)
    if scheme is Scheme.P256 or scheme == "p256":
        _verify_p256(public_key_or_address, digest, signature)
    elif parse_scheme(scheme) is Scheme.SECP256K1:
        _verify_secp256k1(public_key_or_address, digest, signature)


#: One signature to check: (scheme, enrolled key or address, digest, signature), as
#: :func:`verify_signature` takes them.
SignatureCheck: TypeAlias = tuple[Scheme | str, PublicKeyOrAddress, bytes, bytes]


def verify_signatures(checks: Sequence[SignatureCheck]) -> list[SignatureError | None]:
    """:func:`verify_signature` of each, in order: ``None`` where it verifies, else the error it raises.

    For many signatures at once (the ingest workers' chunks). The P-256 verifications run back to back
    in one loop, after every other step: interleaved with the Python work of the rest, each took about
    a tenth longer (OpenSSL's code and tables are evicted from the CPU caches between verifications).
    A signature that is not plainly well-formed (length, range, low-S, the key's type) goes through
    :func:`verify_signature` itself, so the errors are its errors.
    """
    out: list[SignatureError | None] = [None] * len(checks)
    ready: list[tuple[int, ec.EllipticCurvePublicKey, bytes, bytes]] = []
    for i, (scheme, key, digest, signature) in enumerate(checks):
        if (
            (scheme is Scheme.P256 or scheme == "p256")
            and type(key) is DevicePublicKey
            and key.scheme is Scheme.P256
            and type(digest) is bytes
            and len(digest) == 32
            and type(signature) is bytes
            and len(signature) == 64
        ):
            r = int.from_bytes(signature[:32], "big")
            s = int.from_bytes(signature[32:], "big")
            if 0 < r < P256_N and 0 < s <= _P256_HALF_N:
                ready.append((i, _p256_verifier(key.x, key.y), encode_dss_signature(r, s), digest))
                continue
        try:
            verify_signature(scheme, key, digest, signature)
        except SignatureError as e:
            out[i] = e
    for i, verifier, der, digest in ready:
        try:
            verifier.verify(der, digest, _PREHASHED)
        except InvalidSignature:
            out[i] = BadSignature(_P256_DOES_NOT_VERIFY)
    return out


def check_reading(
    reading: Reading,
    scheme: Scheme | str,
    signature: bytes,
    public_key_or_address: PublicKeyOrAddress,
    domain: Domain,
) -> bytes:
    """Compute ``reading``'s digest under ``domain``, verify the signature, return the digest."""
    digest = reading_digest(reading, domain)
    verify_signature(scheme, public_key_or_address, digest, signature)
    return digest
