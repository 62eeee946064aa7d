"""The CPU-bound checks of a submission: shape, digest, signature. Runs in the pipeline's checking
threads (the P-256 verification releases the GIL) or in the calling thread.

Everything here is a pure function of its arguments (its caches are thread-safe), so it can run in any
thread. The result of a check is a plain tuple.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple, TypeGuard

from device_attestation._internal.hexutil import parse_hex
from device_attestation.errors import AttestationError
from device_attestation.keys import DevicePublicKey, Scheme
from device_attestation.reading import (
    MAX_METRICS,
    Domain,
    Reading,
    ReadingFields,
    cached_domain,
    reading_digest,
)
from device_attestation.sdk import Submission
from device_attestation.signing import verify_signature, verify_signatures
from ledger_service.jsonio import dumps_exact

#: The largest ``seq`` the store keeps (signed 64-bit columns); Reading v1 allows up to 2**64 - 1.
INT64_MAX = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: What Reading v1 allows (device_attestation.reading): the fast path accepts only what the model would.
_METRIC_NAME = re.compile(r"[a-z0-9_]{1,32}")
_UINT64_MAX = 2**64 - 1
#: Integer metric values below this magnitude fit int256 after scaling by 10^6 without a check.
_INT_SAFE = 2**200
#: Float metric values below this magnitude fit int256 after scaling (the model's own bound).
_FLOAT_SAFE = 5.7e70
_SUBMISSION_KEYS = frozenset({"reading", "scheme", "signature"})
_READING_KEYS = frozenset({"device_id", "seq", "ts_ms", "lot_id", "metrics"})
_SCHEMES = {s.value: s for s in Scheme}

#: (index, submission object, enrolled key or None)
#: where the key is ("p256", (x, y)) or ("secp256k1", address).
CheckItem = tuple[int, Any, tuple[str, Any] | None]


class Checked(NamedTuple):
    """A submission that passed the checks (fields ready for the store).

    A named tuple: one per submission on the hot path.
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


@lru_cache(maxsize=65_536)
def _p256_key(x: int, y: int) -> DevicePublicKey:
    return DevicePublicKey(scheme=Scheme.P256, x=x, y=y)


class _Parsed(NamedTuple):
    reading: ReadingFields
    scheme: Scheme
    signature: bytes
    digest: bytes


def _text_ok(value: object) -> bool:
    return type(value) is str and 1 <= len(value) <= 64


@lru_cache(maxsize=4096)
def _metric_names_ok(names: tuple[str, ...]) -> bool:
    """Each name is a metric name Reading v1 allows (a device sends the same few sets over and over)."""
    return all(_METRIC_NAME.fullmatch(name) is not None for name in names)


def _metrics_ok(metrics: object) -> TypeGuard[dict[str, int | float]]:
    if type(metrics) is not dict or not 1 <= len(metrics) <= MAX_METRICS:
        return False
    for name, value in metrics.items():
        if type(name) is not str:
            return False
        kind = type(value)
        if kind is int:
            if not -_INT_SAFE < value < _INT_SAFE:
                return False
        elif kind is not float or not math.isfinite(value) or not -_FLOAT_SAFE < value < _FLOAT_SAFE:
            return False
    return _metric_names_ok(tuple(metrics))  # every name a plain str: the cache cannot confuse them


def _parse_fast(obj: Any, domain: Domain) -> _Parsed | None:
    """The submission parsed without the pydantic model when it is plainly well-formed (exact JSON types,
    every field within Reading v1's bounds); ``None`` when anything is unusual: then
    :meth:`Submission.from_json_obj` decides, and names the problem. The digest is the same function's."""
    if type(obj) is not dict or obj.keys() != _SUBMISSION_KEYS:
        return None
    reading, scheme_value, signature_hex = obj["reading"], obj["scheme"], obj["signature"]
    if type(reading) is not dict or type(scheme_value) is not str or not reading.keys() <= _READING_KEYS:
        return None
    scheme = _SCHEMES.get(scheme_value)
    device_id, seq, ts_ms = reading.get("device_id"), reading.get("seq"), reading.get("ts_ms")
    lot_id, metrics = reading.get("lot_id"), reading.get("metrics")
    if (
        scheme is None
        or type(device_id) is not str
        or not 1 <= len(device_id) <= 64
        or type(seq) is not int
        or not 1 <= seq <= _UINT64_MAX
        or type(ts_ms) is not int
        or not 0 <= ts_ms <= _UINT64_MAX
        or (lot_id is not None and not _text_ok(lot_id))
        or not _metrics_ok(metrics)
    ):
        return None
    try:
        signature = parse_hex(signature_hex)
    except ValueError:
        return None
    fields = ReadingFields(device_id, seq, ts_ms, lot_id, metrics)
    return _Parsed(fields, scheme, signature, reading_digest(fields, domain))


def _reading_json(reading: ReadingFields | Reading) -> str:
    """The reading's canonical JSON as stored (``Reading.to_json_obj``'s fields, in its order)."""
    obj = {
        "device_id": reading.device_id,
        "seq": reading.seq,
        "ts_ms": reading.ts_ms,
        "lot_id": reading.lot_id,
        "metrics": dict(reading.metrics),
    }
    return dumps_exact(obj).decode()


class _Ready(NamedTuple):
    """A submission that passed every check but its signature's."""

    sub: _Parsed | Submission
    scheme: str
    public: DevicePublicKey | str


def _precheck(domain: Domain, obj: Any, key: tuple[str, Any] | None) -> _Ready | tuple[str, str]:
    """Every check of :func:`check_one` before the signature's: ready to verify, or a refusal."""
    sub: _Parsed | Submission | None = _parse_fast(obj, domain)
    if sub is None:
        try:
            sub = Submission.from_json_obj(obj, domain=domain)
        except AttestationError as e:
            return (e.code if e.code != "supet.error" else "reading.invalid", e.message)
    reading = sub.reading
    if reading.seq > INT64_MAX:
        return (
            "reading.seq_too_large",
            f"seq {reading.seq} exceeds {INT64_MAX}, the largest sequence number this ledger stores: "
            "number readings from 1 upwards",
        )
    for name, text in (("device_id", reading.device_id), ("lot_id", reading.lot_id)):
        if text is not None and _CONTROL.search(text):
            return (
                "reading.invalid",
                f"reading.{name}: control characters (U+0000..U+001F, U+007F) are not allowed in ids",
            )
    if key is None:
        return (
            "device.unknown",
            f"device {reading.device_id!r} is not enrolled in the registry: enroll it "
            "(certificate + proof of possession) before it sends readings",
        )
    scheme, material = key
    if sub.scheme.value != scheme:
        return (
            "signature.scheme_mismatch",
            f"device {reading.device_id!r} is enrolled with a {scheme} key, but the submission says "
            f"{sub.scheme.value}: sign with the enrolled key",
        )
    return _Ready(sub, scheme, _p256_key(*material) if scheme == "p256" else material)


def _checked(ready: _Ready) -> Checked:
    sub = ready.sub
    reading = sub.reading
    return Checked(
        digest=sub.digest,
        device_id=reading.device_id,
        seq=reading.seq,
        ts_ms=reading.ts_ms,
        lot_id=reading.lot_id,
        scheme=ready.scheme,
        signature=sub.signature,
        reading_json=_reading_json(reading),
    )


def check_one(domain: Domain, index: int, obj: Any, key: tuple[str, Any] | None) -> CheckResult:
    """Shape, digest and signature of one submission against the enrolled key."""
    ready = _precheck(domain, obj, key)
    if not isinstance(ready, _Ready):
        return index, ready
    sub = ready.sub
    try:
        verify_signature(sub.scheme, ready.public, sub.digest, sub.signature)
    except AttestationError as e:
        return index, (e.code, e.message)
    return index, _checked(ready)


def check_chunk(chain_id: int, verifying_contract: str, items: Sequence[CheckItem]) -> list[CheckResult]:
    """Check a chunk of submissions: :func:`check_one` of each, its signatures verified in one pass
    (:func:`verify_signatures`)."""
    domain = cached_domain(chain_id, verifying_contract)
    outcomes: list[_Ready | tuple[str, str]] = []
    ready: list[_Ready] = []
    for _index, obj, key in items:
        outcome = _precheck(domain, obj, key)
        if isinstance(outcome, _Ready):
            ready.append(outcome)
        outcomes.append(outcome)
    errors = iter(verify_signatures([(r.sub.scheme, r.public, r.sub.digest, r.sub.signature) for r in ready]))
    out: list[CheckResult] = []
    for (index, _obj, _key), outcome in zip(items, outcomes, strict=True):
        if isinstance(outcome, _Ready):
            error = next(errors)
            out.append((index, _checked(outcome) if error is None else (error.code, error.message)))
        else:
            out.append((index, outcome))
    return out
