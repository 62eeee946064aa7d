"""Fast keccak-256 (the Ethereum hash, not SHA3-256).

``eth_hash`` and ``Crypto.Hash.keccak.new`` build a Python hash object per
call (about 250,000 short hashes/s). Readings and Merkle trees need millions.
First choice: the C extension of ``safe-pysha3`` (installed with ``eth-hash``),
one call per hash (about 1,200,000/s: each reading's digest takes three). Else
pycryptodome's compiled keccak driven directly through its cffi handle, with
one reusable state per thread (about 650,000/s: four calls through cffi a hash).
Where neither is available (pycryptodome on its ctypes backend, or a future
version that renames the handle), ``Crypto.Hash.keccak.new``; the tests check
every path against each other and against known answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from Crypto.Hash import keccak as _pycryptodome_keccak

__all__ = ["keccak256", "keccak256_reference"]


def keccak256_reference(data: bytes) -> bytes:
    """keccak-256 through pycryptodome's public API (slow, always available)."""
    return bytes(_pycryptodome_keccak.new(digest_bits=256, data=data).digest())


def _make_fast() -> Callable[[bytes], bytes] | None:
    try:
        from Crypto.Hash.keccak import _raw_keccak_lib as lib  # type: ignore[attr-defined]
        from Crypto.Util._raw_api import ffi

        init = lib.keccak_init
        reset = lib.keccak_reset
        absorb = lib.keccak_absorb
        digest = lib.keccak_digest
        destroy = lib.keccak_destroy
        new = ffi.new
        gc = ffi.gc
        buffer = ffi.buffer
    except (ImportError, AttributeError):  # pragma: no cover - depends on the install
        return None

    class _State(threading.local):
        state: Any
        out: Any
        view: Any

        def __init__(self) -> None:
            holder = new("void **")
            # capacity 64 bytes (keccak-256), 24 rounds, as Crypto.Hash.keccak does.
            if init(holder, 64, 24):
                raise RuntimeError("pycryptodome keccak_init failed")
            self.state = gc(holder[0], destroy)
            self.out = new("uint8_t[32]")
            self.view = buffer(self.out)

    local = _State()

    def keccak256(data: bytes) -> bytes:
        t = local
        s = t.state
        reset(s)
        absorb(s, data, len(data))
        digest(s, t.out, 32, 1)  # padding 0x01: keccak, not SHA3's 0x06
        return t.view[:]

    try:
        ok = keccak256(b"") == keccak256_reference(b"") and keccak256(b"abc" * 50) == keccak256_reference(
            b"abc" * 50
        )
    except Exception:  # pragma: no cover - a broken binding: use the slow path
        return None
    return keccak256 if ok else None


def _make_native() -> Callable[[bytes], bytes] | None:
    try:
        from _pysha3 import keccak_256  # safe-pysha3's C extension
    except ImportError:  # pragma: no cover - depends on the install
        return None

    def keccak256(data: bytes) -> bytes:
        return keccak_256(data).digest()

    try:
        ok = keccak256(b"") == keccak256_reference(b"") and keccak256(b"abc" * 50) == keccak256_reference(
            b"abc" * 50
        )
    except Exception:  # pragma: no cover - a broken extension: use another path
        return None
    return keccak256 if ok else None


_fast = _make_fast()
_native = _make_native()

#: keccak-256 of ``data`` (32 bytes). Thread-safe.
keccak256: Callable[[bytes], bytes] = _native or _fast or keccak256_reference
