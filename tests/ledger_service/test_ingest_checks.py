"""The checking workers' fast parse decides exactly as the Reading v1 model does.

``checks._parse_fast`` accepts only plainly well-formed submissions and leaves everything else to
``Submission.from_json_obj``; these tests compare the outcome of :func:`check_one` with and without
the fast path on a valid submission and on many malformed or boundary variants of it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from device_attestation import DeviceKey
from device_attestation.reading import Domain
from device_attestation.sdk import DeviceSigner, Submission
from ledger_service.ingest import checks
from ledger_service.ingest.checks import Checked, check_one

DOMAIN = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")


def _signed(scheme: str) -> tuple[dict[str, Any], tuple[str, Any]]:
    key = DeviceKey.generate(scheme)
    signer = DeviceSigner(device_id="DEV-CHECK-1", key=key, domain=DOMAIN, start_seq=7)
    sub = signer.sign(
        {"temp_c": 21.5, "good_units": 12, "big": 2**70}, ts_ms=1_700_000_000_000, lot_id="LOT-1"
    )
    public = key.public_key
    enrolled: tuple[str, Any] = (
        ("p256", (public.x, public.y)) if scheme == "p256" else ("secp256k1", signer_address(key))
    )
    return sub.to_json_obj(), enrolled


def signer_address(key: DeviceKey) -> str:
    from device_attestation._internal.keccak import keccak256

    return "0x" + keccak256(key.public_key.uncompressed[1:])[12:].hex()


def _slow(obj: Any, key: tuple[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(checks, "_parse_fast", lambda _obj, _domain: None)
        return check_one(DOMAIN, 0, obj, key)


def _set(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        target = obj
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _drop(path: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def change(obj: dict[str, Any]) -> None:
        target = obj
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]

    return change


VARIANTS: dict[str, Callable[[dict[str, Any]], None]] = {
    "as signed": lambda obj: None,
    "seq bool": _set(("reading", "seq"), True),
    "seq float": _set(("reading", "seq"), 7.0),
    "seq zero": _set(("reading", "seq"), 0),
    "seq uint64 max": _set(("reading", "seq"), 2**64 - 1),
    "seq beyond uint64": _set(("reading", "seq"), 2**64),
    "seq beyond int64": _set(("reading", "seq"), 2**63),
    "seq string": _set(("reading", "seq"), "7"),
    "ts negative": _set(("reading", "ts_ms"), -1),
    "ts zero": _set(("reading", "ts_ms"), 0),
    "device empty": _set(("reading", "device_id"), ""),
    "device 64": _set(("reading", "device_id"), "D" * 64),
    "device 65": _set(("reading", "device_id"), "D" * 65),
    "device control": _set(("reading", "device_id"), "DEV\x01"),
    "device int": _set(("reading", "device_id"), 5),
    "lot none": _set(("reading", "lot_id"), None),
    "lot absent": _drop(("reading", "lot_id")),
    "lot empty": _set(("reading", "lot_id"), ""),
    "lot control": _set(("reading", "lot_id"), "LOT\x7f"),
    "reading extra": _set(("reading", "extra"), 1),
    "reading no metrics": _drop(("reading", "metrics")),
    "reading no seq": _drop(("reading", "seq")),
    "reading a list": _set(("reading",), [1, 2]),
    "metrics empty": _set(("reading", "metrics"), {}),
    "metrics 33": _set(("reading", "metrics"), {f"m{i}": i for i in range(33)}),
    "metrics 32": _set(("reading", "metrics"), {f"m{i}": i for i in range(32)}),
    "metric name upper": _set(("reading", "metrics", "Temp"), 1),
    "metric name 33 chars": _set(("reading", "metrics", "m" * 33), 1),
    "metric name newline": _set(("reading", "metrics", "temp\n"), 1),
    "metric bool": _set(("reading", "metrics", "temp_c"), True),
    "metric nan": _set(("reading", "metrics", "temp_c"), float("nan")),
    "metric inf": _set(("reading", "metrics", "temp_c"), float("inf")),
    "metric huge float": _set(("reading", "metrics", "temp_c"), 1e71),
    "metric large float": _set(("reading", "metrics", "temp_c"), 5.6e70),
    "metric int256 edge": _set(("reading", "metrics", "big"), 2**255 // 10**6),
    "metric beyond int256": _set(("reading", "metrics", "big"), 2**255),
    "metric string": _set(("reading", "metrics", "temp_c"), "21.5"),
    "metric null": _set(("reading", "metrics", "temp_c"), None),
    "scheme unknown": _set(("scheme",), "ed25519"),
    "scheme other": _set(("scheme",), "secp256k1"),
    "scheme int": _set(("scheme",), 1),
    "signature no prefix": lambda obj: obj.update(signature=obj["signature"][2:]),
    "signature upper prefix": lambda obj: obj.update(signature="0X" + obj["signature"][2:]),
    "signature spaces": lambda obj: obj.update(signature="0x " + obj["signature"][2:]),
    "signature odd": lambda obj: obj.update(signature=obj["signature"] + "0"),
    "signature short": lambda obj: obj.update(signature=obj["signature"][:-2]),
    "signature int": _set(("signature",), 5),
    "submission extra": _set(("extra",), 1),
    "submission no scheme": _drop(("scheme",)),
}


@pytest.mark.parametrize("scheme", ["p256", "secp256k1"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fast_parse_decides_as_the_model(scheme: str, variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    obj, key = _signed(scheme)
    changed = copy.deepcopy(obj)
    VARIANTS[variant](changed)
    assert check_one(DOMAIN, 0, changed, key) == _slow(changed, key, monkeypatch)


@pytest.mark.parametrize("scheme", ["p256", "secp256k1"])
def test_a_well_formed_submission_takes_the_fast_path_and_is_accepted(scheme: str) -> None:
    obj, key = _signed(scheme)
    parsed = checks._parse_fast(obj, DOMAIN)
    assert parsed is not None
    assert parsed.digest == Submission.from_json_obj(obj, domain=DOMAIN).digest
    _index, outcome = check_one(DOMAIN, 0, obj, key)
    assert isinstance(outcome, Checked)
    assert outcome.seq == 7 and outcome.lot_id == "LOT-1"


def test_non_submissions_are_refused_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    obj, key = _signed("p256")
    for value in (None, [obj], "text", 5, {"reading": obj["reading"]}):
        assert check_one(DOMAIN, 0, value, key) == _slow(value, key, monkeypatch)


def test_a_chunk_decides_each_submission_as_check_one_does() -> None:
    """check_chunk verifies a chunk's signatures in one pass after the other checks: the outcome of
    each submission, in order, is still check_one's (refusals, bad signatures and acceptances mixed)."""
    items: list[tuple[int, Any, tuple[str, Any] | None]] = []
    for scheme in ("p256", "secp256k1"):
        obj, key = _signed(scheme)
        for n, variant in enumerate(sorted(VARIANTS)):
            changed = copy.deepcopy(obj)
            VARIANTS[variant](changed)
            items.append((len(items), changed, key))
            if n % 7 == 0:
                items.append((len(items), changed, None))  # not enrolled
        tampered = copy.deepcopy(obj)
        tampered["reading"]["seq"] += 1  # the signature no longer verifies
        items.append((len(items), tampered, key))
        items.append((len(items), obj, key))
    items.reverse()  # indexes are carried, not positions
    got = checks.check_chunk(DOMAIN.chain_id, DOMAIN.verifying_contract, items)
    assert got == [check_one(DOMAIN, index, obj, key) for index, obj, key in items]
    outcomes = [outcome for _, outcome in got]
    assert sum(isinstance(o, Checked) for o in outcomes) >= 4
    codes = {o[0] for o in outcomes if not isinstance(o, Checked)}
    assert {"signature.bad", "device.unknown", "signature.scheme_mismatch", "reading.invalid"} <= codes
