"""The CPU-bound checks of a submission: shape, digest, signature. Runs in worker processes.

Everything here is a pure function of its arguments, so it can run in any
process. The result of a check is a plain tuple (cheap to pickle back).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from device_attestation.errors import AttestationError
from device_attestation.keys import DevicePublicKey, Scheme
from device_attestation.reading import Domain
from device_attestation.sdk import Submission
from device_attestation.signing import verify_signature
from ledger_service.jsonio import dumps_exact

#: The largest ``seq`` the store keeps (signed 64-bit columns); Reading v1 allows up to 2**64 - 1.
INT64_MAX = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: (index, submission object, enrolled key or None)
#: where the key is ("p256", (x, y)) or ("secp256k1", address).
CheckItem = tuple[int, Any, tuple[str, Any] | None]


class Checked(NamedTuple):
    """A submission that passed the checks (fields ready for the store).

    A named tuple: thousands cross the process boundary per request, and tuples pickle cheaply.
    """

    digest: bytes
    device_id: str
    seq: int
    ts_ms: int
    lot_id: str | None
    scheme: str
    signature: bytes
    reading_json: str


#: (index, Checked) on success, (index, (code, message)) on failure.
CheckResult = tuple[int, Checked | tuple[str, str]]


@lru_cache(maxsize=16)
def _domain(chain_id: int, verifying_contract: str) -> Domain:
    return Domain(chain_id=chain_id, verifying_contract=verifying_contract)


@lru_cache(maxsize=65_536)
def _p256_key(x: int, y: int) -> DevicePublicKey:
    return DevicePublicKey(scheme=Scheme.P256, x=x, y=y)


def check_one(domain: Domain, index: int, obj: Any, key: tuple[str, Any] | None) -> CheckResult:
    """Shape, digest and signature of one submission against the enrolled key."""
    try:
        sub = Submission.from_json_obj(obj, domain=domain)
    except AttestationError as e:
        return index, (e.code if e.code != "supet.error" else "reading.invalid", e.message)
    reading = sub.reading
    if reading.seq > INT64_MAX:
        return index, (
            "reading.seq_too_large",
            f"seq {reading.seq} exceeds {INT64_MAX}, the largest sequence number this ledger stores: "
            "number readings from 1 upwards",
        )
    for name, text in (("device_id", reading.device_id), ("lot_id", reading.lot_id)):
        if text is not None and _CONTROL.search(text):
            return index, (
                "reading.invalid",
                f"reading.{name}: control characters (U+0000..U+001F, U+007F) are not allowed in ids",
            )
    if key is None:
        return index, (
            "device.unknown",
            f"device {reading.device_id!r} is not enrolled in the registry: enroll it "
            "(certificate + proof of possession) before it sends readings",
        )
    scheme, material = key
    if sub.scheme.value != scheme:
        return index, (
            "signature.scheme_mismatch",
            f"device {reading.device_id!r} is enrolled with a {scheme} key, but the submission says "
            f"{sub.scheme.value}: sign with the enrolled key",
        )
    public = _p256_key(*material) if scheme == "p256" else material
    try:
        verify_signature(sub.scheme, public, sub.digest, sub.signature)
    except AttestationError as e:
        return index, (e.code, e.message)
    return index, Checked(
        digest=sub.digest,
        device_id=reading.device_id,
        seq=reading.seq,
        ts_ms=reading.ts_ms,
        lot_id=reading.lot_id,
        scheme=scheme,
        signature=sub.signature,
        reading_json=dumps_exact(reading.to_json_obj()).decode(),
    )


def check_chunk(chain_id: int, verifying_contract: str, items: Sequence[CheckItem]) -> list[CheckResult]:
    """Check a chunk of submissions (the unit of work sent to a worker process)."""
    domain = _domain(chain_id, verifying_contract)
    return [check_one(domain, index, obj, key) for index, obj, key in items]
