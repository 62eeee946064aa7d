"""Hex and Ethereum-address helpers (EIP-55), kept free of web3 and eth-utils."""

from __future__ import annotations

from .keccak import keccak256

__all__ = ["address_bytes", "hex0x", "parse_hex", "to_checksum_address"]


def hex0x(data: bytes) -> str:
    """``0x``-prefixed lower-case hex of ``data``."""
    return "0x" + data.hex()


def parse_hex(text: str, *, length: int | None = None) -> bytes:
    """Bytes of a ``0x``-prefixed hex string; raises ValueError with a reason."""
    if not isinstance(text, str) or not text.startswith(("0x", "0X")):
        raise ValueError("expected a 0x-prefixed hex string")
    body = text[2:]
    try:
        data = bytes.fromhex(body)
    except ValueError:
        raise ValueError("not valid hex (use an even number of 0-9a-f digits after 0x)") from None
    if length is not None and len(data) != length:
        raise ValueError(f"expected {length} bytes, got {len(data)}")
    return data


def to_checksum_address(address: bytes) -> str:
    """EIP-55 mixed-case form of a 20-byte address."""
    if len(address) != 20:
        raise ValueError(f"an address has 20 bytes, got {len(address)}")
    lower = address.hex()
    hashed = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(h, 16) >= 8 else c for c, h in zip(lower, hashed[:40], strict=True)
    )


def address_bytes(address: str | bytes) -> bytes:
    """The 20 bytes of an address given as bytes or as a hex string.

    A mixed-case string must carry a valid EIP-55 checksum; an all-lower or
    all-upper string is taken as is. Raises ValueError with a reason.
    """
    if isinstance(address, bytes | bytearray):
        if len(address) != 20:
            raise ValueError(f"an address has 20 bytes, got {len(address)}")
        return bytes(address)
    raw = parse_hex(address, length=20)
    body = address[2:]
    if body != body.lower() and body != body.upper() and to_checksum_address(raw)[2:] != body:
        raise ValueError("the address has an invalid EIP-55 checksum; copy it again from its source")
    return raw
