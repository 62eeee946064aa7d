"""The private helpers: fast keccak and EIP-55 addresses."""

from __future__ import annotations

import threading

import pytest
from eth_hash.auto import keccak as eth_keccak
from eth_utils import to_checksum_address as eth_checksum
from hypothesis import given
from hypothesis import strategies as st

from device_attestation._internal import keccak as keccak_module
from device_attestation._internal.hexutil import address_bytes, parse_hex, to_checksum_address
from device_attestation._internal.keccak import keccak256, keccak256_reference


@pytest.mark.parametrize(
    ("data", "digest"),
    [
        (b"", "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"),
        (b"abc", "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"),
    ],
)
def test_known_answers(data: bytes, digest: str) -> None:
    assert keccak256(data).hex() == digest
    assert keccak256_reference(data).hex() == digest


def test_fast_path_is_in_use() -> None:
    # safe-pysha3 (via eth-hash) and pycryptodome's cffi backend are installed here; losing the
    # native path costs each reading's digest about 2 us, losing both is a 3x regression.
    assert keccak_module._native is not None
    assert keccak_module._fast is not None
    assert keccak256 is keccak_module._native


@given(st.binary(max_size=600))
def test_fast_keccak_matches_eth_hash(data: bytes) -> None:
    assert keccak_module._native is not None and keccak_module._fast is not None
    want = keccak256_reference(data)
    assert keccak256(data) == eth_keccak(data) == want
    assert keccak_module._native(data) == keccak_module._fast(data) == want


def test_fast_keccak_is_thread_safe() -> None:
    inputs = [bytes([i]) * (i + 1) for i in range(200)]
    want = [keccak256_reference(x) for x in inputs]
    failures: list[int] = []

    def work() -> None:
        for _ in range(200):
            for x, w in zip(inputs, want, strict=True):
                if keccak256(x) != w:
                    failures.append(1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


@given(st.binary(min_size=20, max_size=20))
def test_checksum_matches_eth_utils(raw: bytes) -> None:
    checksummed = to_checksum_address(raw)
    assert checksummed == eth_checksum(raw)
    assert address_bytes(checksummed) == raw
    assert address_bytes(checksummed.lower()) == raw
    assert address_bytes("0x" + checksummed[2:].upper()) == raw


@pytest.mark.parametrize(
    ("text", "length", "fragment"),
    [
        ("1234", None, "0x-prefixed"),
        ("0x123", None, "not valid hex"),
        ("0xzz", None, "not valid hex"),
        ("0x1234", 3, "expected 3 bytes, got 2"),
    ],
)
def test_parse_hex_refuses(text: str, length: int | None, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_hex(text, length=length)


def test_bad_checksum_is_refused() -> None:
    good = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    with pytest.raises(ValueError, match="invalid EIP-55 checksum"):
        address_bytes(good.replace("F", "f", 1))
    with pytest.raises(ValueError, match="20 bytes"):
        address_bytes(b"\x01" * 19)
