"""Helpers shared inside the auditor package (not part of its public surface)."""

from __future__ import annotations


def hex0x(data: bytes) -> str:
    """``data`` as 0x-prefixed lower-case hex."""
    return "0x" + data.hex()
