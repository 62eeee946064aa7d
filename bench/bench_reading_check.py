"""How fast can the ledger check P-256 readings? (digest, digest + verify, bare verify)

Usage::

    .venv/bin/python bench/bench_reading_check.py                 # one core
    .venv/bin/python bench/bench_reading_check.py --procs 2       # and a 2-process pool

Generates ``--readings`` signed P-256 readings (from ``--devices`` device keys,
three metrics each), then measures on the same data:

* ``reading_digest``: the EIP-712 digest alone;
* ``check_reading``: digest + P-256 signature check, what ingest does per reading;
* ``parse + check_reading``: the same from the decoded JSON object (``Reading.from_json_obj``);
* ``bare cryptography verify``: ``EllipticCurvePublicKey.verify`` on pre-encoded DER
  signatures and pre-loaded keys -- the ceiling the library allows.

With ``--procs N`` each measurement is repeated over a fork-based pool of N
processes, each checking a contiguous share of the readings; the time is from
handing out the work to the last result (pool start-up excluded). Each figure
is the best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cryptography
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

from device_attestation import (
    DeviceKey,
    DevicePublicKey,
    Domain,
    Reading,
    Scheme,
    check_reading,
    reading_digest,
    sign_digest,
)

TARGET_PER_S = 15_000  # digest + P-256 check over 2 cores (the ingest budget)


@dataclass
class Data:
    domain: Domain
    readings: list[Reading]
    json_objs: list[dict[str, Any]]
    signatures: list[bytes]
    publics: list[DevicePublicKey]
    digests: list[bytes]
    der: list[bytes]
    crypto_keys: list[ec.EllipticCurvePublicKey]


_DATA: Data | None = None  # set before the pool forks, so workers inherit it


def generate(n: int, devices: int, seed: int) -> Data:
    rng = random.Random(seed)
    domain = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")
    keys = [DeviceKey.generate(Scheme.P256) for _ in range(devices)]
    crypto_by_device = [k.public_key.to_cryptography() for k in keys]
    data = Data(domain, [], [], [], [], [], [], [])
    seqs = [0] * devices
    t0 = 1_764_400_000_000
    for i in range(n):
        d = i % devices
        seqs[d] += 1
        reading = Reading(
            device_id=f"SN-P256-{d:05d}",
            seq=seqs[d],
            ts_ms=t0 + i * 10,
            lot_id=f"LOT-{i // 1000:04d}" if rng.random() < 0.8 else None,
            metrics={
                "temp_c": round(rng.uniform(-20.0, 60.0), 2),
                "pressure_kpa": round(rng.uniform(95.0, 105.0), 3),
                "good_units": rng.randint(0, 500),
            },
        )
        digest = reading_digest(reading, domain)
        sig = sign_digest(keys[d], digest)
        data.readings.append(reading)
        data.json_objs.append(reading.to_json_obj())
        data.signatures.append(sig)
        data.publics.append(keys[d].public_key)
        data.digests.append(digest)
        data.der.append(
            encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
        )
        data.crypto_keys.append(crypto_by_device[d])
    return data


# --- the measured loops (module level, so pool workers can run them) -------------

_ALG = ec.ECDSA(Prehashed(hashes.SHA256()))


def run_digest(lo: int, hi: int) -> int:
    assert _DATA is not None
    readings, domain = _DATA.readings, _DATA.domain
    for i in range(lo, hi):
        reading_digest(readings[i], domain)
    return hi - lo


def run_check(lo: int, hi: int) -> int:
    assert _DATA is not None
    d = _DATA
    for i in range(lo, hi):
        check_reading(d.readings[i], Scheme.P256, d.signatures[i], d.publics[i], d.domain)
    return hi - lo


def run_parse_check(lo: int, hi: int) -> int:
    assert _DATA is not None
    d = _DATA
    for i in range(lo, hi):
        reading = Reading.from_json_obj(d.json_objs[i])
        check_reading(reading, "p256", d.signatures[i], d.publics[i], d.domain)
    return hi - lo


def run_bare_verify(lo: int, hi: int) -> int:
    assert _DATA is not None
    d = _DATA
    for i in range(lo, hi):
        d.crypto_keys[i].verify(d.der[i], d.digests[i], _ALG)
    return hi - lo


def _noop(_: int) -> int:
    return os.getpid()


def _star(args: tuple[Callable[[int, int], int], int, int]) -> int:
    fn, lo, hi = args
    return fn(lo, hi)


def best_rate(measure: Callable[[], int], repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        t0 = time.perf_counter()
        done = measure()
        elapsed = time.perf_counter() - t0
        best = max(best, done / elapsed)
    return best


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    global _DATA
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--procs", type=int, default=1, help="also measure with a pool of N processes")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    _DATA = generate(args.readings, args.devices, args.seed)
    n = args.readings
    print(
        f"generated {n:,} signed P-256 readings from {args.devices} devices "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    print(
        f"{cpu_model()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"cryptography {cryptography.__version__}; load average before: "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (other load on the machine skews the pooled figures)"
    )

    rows: list[tuple[str, Callable[[int, int], int]]] = [
        ("reading_digest", run_digest),
        ("check_reading (digest + P-256 verify)", run_check),
        ("parse + check_reading (from JSON obj)", run_parse_check),
        ("bare cryptography P-256 verify", run_bare_verify),
    ]
    single = {name: best_rate(lambda fn=fn: fn(0, n), args.repeat) for name, fn in rows}  # type: ignore[misc]

    pooled: dict[str, float] = {}
    if args.procs > 1:
        ctx = mp.get_context("fork")
        with ctx.Pool(args.procs) as pool:
            pool.map(_noop, range(args.procs * 4))  # start the workers before timing
            bounds = [(n * k // args.procs, n * (k + 1) // args.procs) for k in range(args.procs)]
            for name, fn in rows:
                jobs = [(fn, lo, hi) for lo, hi in bounds]
                pooled[name] = best_rate(lambda jobs=jobs: sum(pool.map(_star, jobs)), args.repeat)  # type: ignore[misc]

    width = max(len(name) for name, _ in rows)
    header = f"{'measurement':<{width}}  {'1 process':>12}"
    if pooled:
        header += f"  {f'{args.procs} processes':>12}  {'scaling':>7}"
    print()
    print(header)
    print("-" * len(header))
    for name, _ in rows:
        line = f"{name:<{width}}  {single[name]:>10,.0f}/s"
        if pooled:
            line += f"  {pooled[name]:>10,.0f}/s  {pooled[name] / single[name]:>6.2f}x"
        print(line)
    check_name = rows[1][0]
    best_check = pooled.get(check_name, single[check_name])
    procs = args.procs if pooled else 1
    verdict = "meets" if best_check >= TARGET_PER_S else "MISSES"
    print(
        f"\ndigest + P-256 check: {best_check:,.0f}/s on {procs} process(es) "
        f"{verdict} the {TARGET_PER_S:,}/s ingest target"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
