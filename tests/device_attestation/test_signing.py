"""Signatures over reading digests: the vectors, malleability and tampering."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from eth_account import Account

from device_attestation import (
    BadSignature,
    DeviceKey,
    DevicePublicKey,
    Domain,
    HighSSignature,
    PublicKeyOrAddress,
    Reading,
    Scheme,
    SignatureError,
    SignatureLengthError,
    UnknownScheme,
    WrongKeyType,
    check_reading,
    reading_digest,
    sign_digest,
    verify_signature,
)
from device_attestation.signing import P256_N, SECP256K1_N

DIGEST = bytes(range(32))
OTHER_DIGEST = bytes(range(1, 33))


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


def enrolled_key(vectors: dict[str, Any], device_id: str) -> PublicKeyOrAddress:
    device = next(d for d in vectors["devices"] if d["device_id"] == device_id)
    if device["scheme"] == "p256":
        return DevicePublicKey(
            scheme=Scheme.P256,
            x=int(device["public_key_x"], 16),
            y=int(device["public_key_y"], 16),
        )
    return str(device["address"])


@pytest.fixture(scope="module")
def p256_key() -> DeviceKey:
    return DeviceKey.generate(Scheme.P256)


@pytest.fixture(scope="module")
def k1_key() -> DeviceKey:
    return DeviceKey.generate(Scheme.SECP256K1)


# --- the vectors ------------------------------------------------------------------


def test_vector_signature_checks(
    reading_vector: dict[str, Any], vectors: dict[str, Any], domain: Domain
) -> None:
    reading = Reading.from_json_obj(reading_vector["reading"])
    key = enrolled_key(vectors, reading.device_id)
    signature = h(reading_vector["signature"])
    digest = check_reading(reading, reading_vector["scheme"], signature, key, domain)
    assert digest == h(reading_vector["digest"])


def test_vector_signature_fails_under_another_domain(
    reading_vector: dict[str, Any], vectors: dict[str, Any], domain: Domain
) -> None:
    reading = Reading.from_json_obj(reading_vector["reading"])
    key = enrolled_key(vectors, reading.device_id)
    signature = h(reading_vector["signature"])
    for other in (
        Domain(chain_id=1, verifying_contract=domain.verifying_contract),
        Domain(chain_id=domain.chain_id, verifying_contract="0x" + "22" * 20),
    ):
        with pytest.raises(BadSignature, match="this chain id and anchor contract"):
            check_reading(reading, reading_vector["scheme"], signature, key, other)


def test_vector_signature_fails_for_another_reading(
    reading_vector: dict[str, Any], vectors: dict[str, Any], domain: Domain
) -> None:
    obj = dict(reading_vector["reading"])
    obj["seq"] += 1000
    reading = Reading.from_json_obj(obj)
    key = enrolled_key(vectors, reading.device_id)
    with pytest.raises(BadSignature, match=r"does not|recovers to another address"):
        check_reading(reading, reading_vector["scheme"], h(reading_vector["signature"]), key, domain)


def test_vector_p256_high_s_twin_is_refused(vectors: dict[str, Any]) -> None:
    rv = next(r for r in vectors["readings"] if r["scheme"] == "p256")
    key = enrolled_key(vectors, rv["reading"]["device_id"])
    assert isinstance(key, DevicePublicKey)
    sig = h(rv["signature"])
    r, s = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big")
    twin = r.to_bytes(32, "big") + (P256_N - s).to_bytes(32, "big")
    # the twin is a mathematically valid ECDSA signature ...
    key.to_cryptography().verify(
        encode_dss_signature(r, P256_N - s), h(rv["digest"]), ec.ECDSA(Prehashed(hashes.SHA256()))
    )
    # ... that the ledger refuses as malleable
    with pytest.raises(HighSSignature, match="s > n/2") as caught:
        verify_signature("p256", key, h(rv["digest"]), twin)
    assert caught.value.code == "signature.high_s"


# --- round trips ------------------------------------------------------------------


@pytest.mark.parametrize("scheme", list(Scheme))
def test_round_trip(scheme: Scheme) -> None:
    for _ in range(20):
        key = DeviceKey.generate(scheme)
        sig = sign_digest(key, DIGEST)
        assert len(sig) == (64 if scheme is Scheme.P256 else 65)
        n = P256_N if scheme is Scheme.P256 else SECP256K1_N
        assert int.from_bytes(sig[32:64], "big") <= n // 2
        verify_signature(scheme, key.public_key, DIGEST, sig)
        verify_signature(scheme.value, key.public_key, bytearray(DIGEST), bytearray(sig))  # type: ignore[arg-type]


def test_secp256k1_signature_is_what_ecrecover_expects(k1_key: DeviceKey) -> None:
    sig = sign_digest(k1_key, DIGEST)
    assert sig[64] in (27, 28)
    assert Account._recover_hash(DIGEST, signature=sig) == k1_key.public_key.eth_address
    for address in (
        k1_key.public_key.eth_address,
        k1_key.public_key.eth_address.lower(),
        bytes.fromhex(k1_key.public_key.eth_address[2:]),
    ):
        verify_signature(Scheme.SECP256K1, address, DIGEST, sig)


def test_p256_signature_is_plain_ecdsa(p256_key: DeviceKey) -> None:
    sig = sign_digest(p256_key, DIGEST)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    p256_key.public_key.to_cryptography().verify(der, DIGEST, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_sign_needs_a_32_byte_digest(p256_key: DeviceKey) -> None:
    with pytest.raises(SignatureError, match="a digest is 32 bytes, got 31 bytes") as caught:
        sign_digest(p256_key, DIGEST[:31])
    assert caught.value.code == "signature.digest_length"


# --- tampering --------------------------------------------------------------------


def flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("scheme", list(Scheme))
def test_other_digest_fails(scheme: Scheme) -> None:
    key = DeviceKey.generate(scheme)
    sig = sign_digest(key, DIGEST)
    with pytest.raises(BadSignature):
        verify_signature(scheme, key.public_key, OTHER_DIGEST, sig)
    for bit in (0, 100, 255):
        with pytest.raises(BadSignature):
            verify_signature(scheme, key.public_key, flip(DIGEST, bit), sig)


@pytest.mark.parametrize("bit", [0, 7, 200, 255, 256, 300, 504, 511])
def test_flipped_signature_bit_fails_p256(p256_key: DeviceKey, bit: int) -> None:
    sig = sign_digest(p256_key, DIGEST)
    with pytest.raises((BadSignature, HighSSignature)):
        verify_signature(Scheme.P256, p256_key.public_key, DIGEST, flip(sig, bit))


@pytest.mark.parametrize("bit", [0, 7, 200, 255, 256, 300, 504, 511])
def test_flipped_signature_bit_fails_secp256k1(k1_key: DeviceKey, bit: int) -> None:
    sig = sign_digest(k1_key, DIGEST)
    with pytest.raises((BadSignature, HighSSignature)):
        verify_signature(Scheme.SECP256K1, k1_key.public_key.eth_address, DIGEST, flip(sig, bit))


def test_another_key_fails(p256_key: DeviceKey, k1_key: DeviceKey) -> None:
    sig = sign_digest(p256_key, DIGEST)
    with pytest.raises(BadSignature, match="does not verify"):
        verify_signature(Scheme.P256, DeviceKey.generate(Scheme.P256).public_key, DIGEST, sig)
    sig = sign_digest(k1_key, DIGEST)
    other = DeviceKey.generate(Scheme.SECP256K1).public_key
    with pytest.raises(BadSignature, match="recovers to another address"):
        verify_signature(Scheme.SECP256K1, other.eth_address, DIGEST, sig)
    with pytest.raises(BadSignature, match="recovers to another address"):
        verify_signature(Scheme.SECP256K1, other, DIGEST, sig)


def test_secp256k1_high_s_twin_is_refused(k1_key: DeviceKey) -> None:
    sig = sign_digest(k1_key, DIGEST)
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    # ecrecover itself would accept the twin ...
    assert Account._recover_hash(DIGEST, signature=twin) == k1_key.public_key.eth_address
    # ... OpenZeppelin ECDSA.recover (and we) do not
    with pytest.raises(HighSSignature, match="flip v between 27 and 28"):
        verify_signature(Scheme.SECP256K1, k1_key.public_key.eth_address, DIGEST, twin)


@pytest.mark.parametrize("v", [0, 1, 26, 29, 255])
def test_secp256k1_v_must_be_27_or_28(k1_key: DeviceKey, v: int) -> None:
    sig = sign_digest(k1_key, DIGEST)
    if v in (0, 1):  # the same signature with a raw recovery id: still refused
        v = sig[64] - 27
    with pytest.raises(BadSignature, match="v must be 27 or 28") as caught:
        verify_signature(Scheme.SECP256K1, k1_key.public_key.eth_address, DIGEST, sig[:64] + bytes([v]))
    assert caught.value.code == "signature.bad_v"


@pytest.mark.parametrize(
    ("scheme", "length"),
    [
        (Scheme.P256, 0),
        (Scheme.P256, 63),
        (Scheme.P256, 65),
        (Scheme.P256, 72),  # DER-sized
        (Scheme.SECP256K1, 64),  # EIP-2098 short form: ECDSA.recover in OZ 5 refuses it
        (Scheme.SECP256K1, 66),
    ],
)
def test_wrong_lengths(scheme: Scheme, length: int) -> None:
    key = DeviceKey.generate(scheme)
    sig = (sign_digest(key, DIGEST) * 2)[:length]
    target: PublicKeyOrAddress = key.public_key if scheme is Scheme.P256 else key.public_key.eth_address
    want = "64 bytes" if scheme is Scheme.P256 else "65 bytes"
    with pytest.raises(SignatureLengthError, match=f"{want}.*got {length}") as caught:
        verify_signature(scheme, target, DIGEST, sig)
    assert caught.value.code == "signature.length"


@pytest.mark.parametrize(
    ("r", "s"),
    [(0, 1), (1, 0), (P256_N, 1), (1, P256_N), (2**256 - 1, 1)],
)
def test_p256_r_s_out_of_range(p256_key: DeviceKey, r: int, s: int) -> None:
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    with pytest.raises(BadSignature, match=r"outside \[1, n-1\]") as caught:
        verify_signature(Scheme.P256, p256_key.public_key, DIGEST, sig)
    assert caught.value.code == "signature.out_of_range"


@pytest.mark.parametrize(("r", "s"), [(0, 1), (1, 0), (SECP256K1_N, 1)])
def test_secp256k1_r_s_out_of_range(k1_key: DeviceKey, r: int, s: int) -> None:
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big") + b"\x1b"
    with pytest.raises(BadSignature, match=r"outside \[1, n-1\]"):
        verify_signature(Scheme.SECP256K1, k1_key.public_key.eth_address, DIGEST, sig)


def test_secp256k1_unrecoverable_signature(k1_key: DeviceKey) -> None:
    # r = 5 is in range but no curve point has x = 5 on secp256k1: nothing to recover
    sig = (5).to_bytes(32, "big") + (1).to_bytes(32, "big") + b"\x1b"
    with pytest.raises(BadSignature, match=r"does not recover|recovers to another"):
        verify_signature(Scheme.SECP256K1, k1_key.public_key.eth_address, DIGEST, sig)


# --- keys and schemes that do not fit ---------------------------------------------


def test_key_of_another_curve(p256_key: DeviceKey, k1_key: DeviceKey) -> None:
    p_sig = sign_digest(p256_key, DIGEST)
    k_sig = sign_digest(k1_key, DIGEST)
    with pytest.raises(WrongKeyType, match="is a secp256k1 key but the signature says p256"):
        verify_signature(Scheme.P256, k1_key.public_key, DIGEST, p_sig)
    with pytest.raises(WrongKeyType, match="is a p256 key but the signature says secp256k1"):
        verify_signature(Scheme.SECP256K1, p256_key.public_key, DIGEST, k_sig)
    with pytest.raises(WrongKeyType, match="not an address"):
        verify_signature(Scheme.P256, k1_key.public_key.eth_address, DIGEST, p_sig)


def test_malformed_address(k1_key: DeviceKey) -> None:
    sig = sign_digest(k1_key, DIGEST)
    with pytest.raises(WrongKeyType, match="is malformed") as caught:
        verify_signature(Scheme.SECP256K1, "0x1234", DIGEST, sig)
    assert caught.value.code == "key.address"


@pytest.mark.parametrize("scheme", ["ed25519", "P256", ""])
def test_unknown_scheme(p256_key: DeviceKey, scheme: str) -> None:
    with pytest.raises(UnknownScheme, match="use one of: p256, secp256k1"):
        verify_signature(scheme, p256_key.public_key, DIGEST, bytes(64))


def test_digest_and_signature_types(p256_key: DeviceKey) -> None:
    sig = sign_digest(p256_key, DIGEST)
    with pytest.raises(SignatureError, match="got a str"):
        verify_signature(Scheme.P256, p256_key.public_key, DIGEST.hex(), sig)  # type: ignore[arg-type]
    with pytest.raises(SignatureLengthError, match="decode a 0x-hex signature first"):
        verify_signature(Scheme.P256, p256_key.public_key, DIGEST, "0x" + sig.hex())  # type: ignore[arg-type]


def test_check_reading_returns_the_digest(p256_key: DeviceKey, domain: Domain) -> None:
    reading = Reading(device_id="SN-1", seq=1, ts_ms=0, metrics={"temp_c": 20.25})
    digest = reading_digest(reading, domain)
    sig = sign_digest(p256_key, digest)
    assert check_reading(reading, "p256", sig, p256_key.public_key, domain) == digest


def test_verify_signatures_decides_as_verify_signature_each(p256_key: DeviceKey, k1_key: DeviceKey) -> None:
    """The batch form answers each signature as verify_signature does: None, or the same error."""
    from device_attestation.signing import verify_signatures

    p256_pub, k1_pub = p256_key.public_key, k1_key.public_key
    good = sign_digest(p256_key, DIGEST)
    r, s = int.from_bytes(good[:32], "big"), int.from_bytes(good[32:], "big")
    high_s = good[:32] + (P256_N - s).to_bytes(32, "big")
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    k1_good = sign_digest(k1_key, DIGEST)
    cases: list[tuple[Any, Any, Any, Any]] = [
        (Scheme.P256, p256_pub, DIGEST, good),
        ("p256", p256_pub, DIGEST, good),
        (Scheme.P256, p256_pub, OTHER_DIGEST, good),  # does not verify
        (Scheme.P256, p256_pub, DIGEST, flipped),
        (Scheme.P256, p256_pub, DIGEST, high_s),
        (Scheme.P256, p256_pub, DIGEST, good[:63]),
        (Scheme.P256, p256_pub, DIGEST, bytearray(good)),  # taken as bytes
        (Scheme.P256, p256_pub, DIGEST, bytes(32) + good[32:]),  # r = 0
        (Scheme.P256, p256_pub, DIGEST, r.to_bytes(32, "big") + P256_N.to_bytes(32, "big")),
        (Scheme.P256, p256_pub, DIGEST[:31], good),
        (Scheme.P256, k1_pub, DIGEST, good),  # a key of another curve
        (Scheme.P256, "0x" + "11" * 20, DIGEST, good),  # an address
        (Scheme.SECP256K1, k1_pub, DIGEST, k1_good),
        (Scheme.SECP256K1, k1_pub, OTHER_DIGEST, k1_good),
        ("ed25519", p256_pub, DIGEST, good),
        (Scheme.P256, p256_pub, DIGEST, good),  # a good one after the failures
    ]
    got = verify_signatures(cases)
    assert len(got) == len(cases)
    for case, error in zip(cases, got, strict=True):
        try:
            verify_signature(*case)
        except SignatureError as e:
            assert error is not None, case
            assert (type(error), error.code, error.message) == (type(e), e.code, e.message)
        else:
            assert error is None, case
    ok = [e is None for e in got]
    assert ok == [True, True, False, False, False, False, True] + [False] * 5 + [True, False, False, True]
    assert verify_signatures([]) == []
