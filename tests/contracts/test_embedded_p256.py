"""The embedded chain's P256VERIFY precompile answers as an Osaka node (anvil) does (EIP-7951)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from contracts.chain import Chain
from contracts.embedded_p256 import P256VERIFY_GAS, p256verify_output

_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_PRECOMPILE = "0x" + "00" * 18 + "0100"


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def _signed(message: bytes = b"reading") -> tuple[bytes, int, int, int, int]:
    key = ec.generate_private_key(ec.SECP256R1())
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    pub = key.public_key().public_numbers()
    return hashlib.sha256(message).digest(), r, s, pub.x, pub.y


def _input(h: bytes, r: int, s: int, x: int, y: int) -> bytes:
    return h + _word(r) + _word(s) + _word(x) + _word(y)


def _cases() -> dict[str, tuple[bytes, bool]]:
    h, r, s, x, y = _signed()
    valid = _input(h, r, s, x, y)
    return {
        "valid": (valid, True),
        # ECDSA malleability: (r, n - s) verifies too; EIP-7951 does not require a low s
        "valid, high s": (_input(h, r, _N - s, x, y), True),
        "another digest": (_input(hashlib.sha256(b"other").digest(), r, s, x, y), False),
        "r = 0": (_input(h, 0, s, x, y), False),
        "s = n": (_input(h, r, _N, x, y), False),
        "key off the curve": (_input(h, r, s, x, (y + 1) % _P), False),
        "key coordinate = p": (_input(h, r, s, _P, y), False),
        "the point (0, 0)": (_input(h, r, s, 0, 0), False),
        "159 bytes": (valid[:-1], False),
        "161 bytes": (valid + b"\x00", False),
        "empty": (b"", False),
    }


@pytest.mark.parametrize("name", list(_cases()))
def test_output_follows_eip7951(name: str) -> None:
    data, ok = _cases()[name]
    assert p256verify_output(data) == (_word(1) if ok else b"")


def test_the_embedded_chain_answers_as_anvil_does(chain: Chain) -> None:
    """Same inputs, same answers, same gas on both chains: the contracts take one path on both."""
    for name, (data, ok) in _cases().items():
        answer = bytes(chain.w3.eth.call({"to": _PRECOMPILE, "data": "0x" + data.hex()}))
        assert answer == (_word(1) if ok else b""), name
    data, _ = _cases()["valid"]
    gas = chain.w3.eth.estimate_gas({"to": _PRECOMPILE, "data": "0x" + data.hex()})
    calldata = sum(16 if b else 4 for b in data)
    assert gas - 21_000 - calldata == P256VERIFY_GAS
