"""The embedded chain's P256VERIFY precompile (EIP-7951, at ``0x100``, as Osaka and anvil have it).

py-evm's Prague rules have no P-256 precompile, so OpenZeppelin's ``P256.verify`` fell back to its
Solidity verifier there: a few hundred thousand gas of EVM run in Python for each device signature
(an enrollment's proof of possession, a QC reading checked at certification). The embedded chain now
answers at ``0x100`` as an Osaka node does, with the verification done by ``cryptography`` (OpenSSL),
so the contracts run the same path on the embedded chain and on anvil (``--hardfork osaka``).

EIP-7951's rules: the input is exactly 160 bytes, ``h || r || s || qx || qy``; the call costs 6,900 gas
whatever the input; the output is the 32-byte word 1 for a valid signature and empty otherwise (a
wrong length, ``r`` or ``s`` not in ``[1, n)``, a public key off the curve or not reduced mod ``p``, or
a signature that does not verify). ``h`` is taken as it is, not hashed again.
"""

from __future__ import annotations

import functools
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

__all__ = ["P256VERIFY_ADDRESS", "P256VERIFY_GAS", "p256verify", "p256verify_output", "vm_with_p256verify"]

#: EIP-7951's address: the same as RIP-7212's, so OpenZeppelin's P256 library finds it.
P256VERIFY_ADDRESS = (0x100).to_bytes(20, "big")
#: EIP-7951's gas (RIP-7212 had 3,450).
P256VERIFY_GAS = 6_900

_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_VALID = (1).to_bytes(32, "big")


def p256verify_output(data: bytes) -> bytes:
    """The precompile's output for ``data``: the word 1 when it is a valid P-256 signature, else empty."""
    if len(data) != 160:
        return b""
    h = data[0:32]
    r, s, qx, qy = (int.from_bytes(data[i : i + 32], "big") for i in range(32, 160, 32))
    if not (0 < r < _N and 0 < s < _N and qx < _P and qy < _P):
        return b""
    try:
        key = ec.EllipticCurvePublicNumbers(qx, qy, ec.SECP256R1()).public_key()
    except ValueError:  # not on the curve (the point at infinity has no affine form here either)
        return b""
    try:
        key.verify(encode_dss_signature(r, s), h, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return b""
    return _VALID


def p256verify(computation: Any) -> Any:
    """py-evm precompile: charge EIP-7951's gas, then answer :func:`p256verify_output`."""
    computation.consume_gas(P256VERIFY_GAS, reason="P256VERIFY precompile (EIP-7951)")
    computation.output = p256verify_output(computation.msg.data_as_bytes)
    return computation


@functools.cache
def vm_with_p256verify() -> type:
    """py-evm's Prague VM with :func:`p256verify` at ``0x100`` (warm like every precompile, EIP-2929)."""
    from eth.vm.forks.prague import PragueVM
    from eth.vm.forks.prague.computation import PragueComputation
    from eth.vm.forks.prague.state import PragueState

    precompiles: dict[Any, Any] = {**PragueComputation.get_precompiles(), P256VERIFY_ADDRESS: p256verify}
    computation = type("PragueP256Computation", (PragueComputation,), {"_precompiles": precompiles})
    state = type("PragueP256State", (PragueState,), {"computation_class": computation})
    return type("PragueP256VM", (PragueVM,), {"_state_class": state})
