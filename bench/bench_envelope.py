"""Sealing a credit record for one bank and opening it (issue 14), per record, and the commitment.

    .venv/bin/python bench/bench_envelope.py [N]

A realistic opening (three reasons, about 700 bytes of canonical JSON) is sealed N times to a bank's
secp256k1 key (ECIES: an ephemeral key, ECDH, HKDF-SHA256, AES-256-GCM; contracts/credit_envelope.py)
and opened N times with the bank's key. Prints the median and p95 per record, and the size.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

from eth_account import Account
from eth_utils import keccak

from contracts.credit import model_version
from contracts.credit_envelope import envelope_aad, open_envelope, public_key_of, seal
from contracts.credit_record import CreditOpening, new_salt


def _times(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return sorted(out)


def main(n: int = 2_000) -> int:
    bank = Account.create()
    opening = CreditOpening(
        factory="0x" + "11" * 20,
        oracle="0x" + "22" * 20,
        grade=3,
        pd_ppm=12_500,
        limit=10**8,
        currency="CNY",
        reasons=(
            "On-time-in-full delivery of 62% is low (costs 38 points)",
            "First-pass yield of 91% is low (costs 17 points)",
            "Output trend of -1.2% of capacity a month is weak (costs 9 points)",
        ),
        valid_until=1_800_000_000,
        model_version=model_version("scorecard-2026.11"),
        analytics_commitment=keccak(b"result"),
        salt=new_salt(),
    )
    plain = opening.to_bytes()
    key = public_key_of(bytes(bank.key))
    aad = envelope_aad(31337, "0x" + "33" * 20, opening.factory, bank.address, opening.commitment())
    sealed = seal(plain, key, aad)
    rows = {
        "seal (encrypt) one record": _times(lambda: seal(plain, key, aad), n),
        "open (decrypt) one record": _times(lambda: open_envelope(sealed, bytes(bank.key), aad), n),
        "record commitment (EIP-712 hashStruct)": _times(opening.commitment, n),
    }
    print(f"opening {len(plain)} B -> envelope {len(sealed)} B; {n} runs each")
    for name, t in rows.items():
        p95 = t[int(0.95 * (len(t) - 1))]
        print(f"{name:<42} median {statistics.median(t):8.1f} us   p95 {p95:8.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2_000))
