"""Sequence rules of the writer: gaps, late fills, order against time, idempotency, equivocation."""

from __future__ import annotations

import time

import pytest
from sqlmodel import Session, select
from support import TestConsortium

from ledger_service.ingest.pipeline import ItemResult
from ledger_service.service import LedgerService
from ledger_service.store.models import DeviceHeadRow, EquivocationRow, ReadingRow


@pytest.fixture(autouse=True)
def _started(ledger: LedgerService) -> None:
    ledger.start()


def submit(ledger: LedgerService, *subs) -> list[ItemResult]:  # type: ignore[no-untyped-def]
    return ledger.pipeline.submit([s.to_json_obj() for s in subs], source="http")


def head(ledger: LedgerService, device_id: str) -> DeviceHeadRow:
    with Session(ledger.engine) as s:
        row = s.get(DeviceHeadRow, device_id)
        assert row is not None
        return row


def count(ledger: LedgerService, model: type) -> int:
    with Session(ledger.engine) as s:
        return len(s.exec(select(model)).all())


def test_gap_reported_then_filled_by_late_readings(ledger: LedgerService, consortium: TestConsortium) -> None:
    signer = consortium.enroll("SN-SEQ-1")
    t = int(time.time() * 1000) - 100_000
    subs = {seq: _sign(signer, seq, t + seq * 1000) for seq in (1, 2, 3, 4, 5, 6)}
    (r1,) = submit(ledger, subs[1])
    (r5,) = submit(ledger, subs[5])
    assert r1.receipt is not None and r1.receipt.gap is None
    assert r5.receipt is not None and r5.receipt.gap == (2, 4)
    h = head(ledger, "SN-SEQ-1")
    assert (h.last_seq, h.gaps, h.missing, h.readings) == (5, 1, 3, 2)
    # store-and-forward: 3 and 2 arrive late, in any order, and are accepted
    results = submit(ledger, subs[3], subs[2], subs[6])
    assert all(r.accepted for r in results), results
    h = head(ledger, "SN-SEQ-1")
    assert (h.last_seq, h.gaps, h.missing, h.readings) == (6, 1, 1, 5)


def test_order_must_agree_with_time(ledger: LedgerService, consortium: TestConsortium) -> None:
    signer = consortium.enroll("SN-SEQ-2")
    t = int(time.time() * 1000) - 100_000
    assert all(r.accepted for r in submit(ledger, _sign(signer, 1, t), _sign(signer, 5, t + 5000)))
    before = count(ledger, ReadingRow)
    cases = [
        (_sign(signer, 6, t + 4000), "comes after seq 5"),  # a higher seq measured earlier
        (_sign(signer, 3, t - 1), "comes after seq 1"),  # a late fill earlier than seq 1
        (_sign(signer, 4, t + 6000), "comes before seq 5"),  # a late fill later than seq 5
    ]
    for sub, fragment in cases:
        (r,) = submit(ledger, sub)
        assert r.code == "reading.out_of_order", r
        assert fragment in (r.message or "")
    assert count(ledger, ReadingRow) == before


def test_identical_resubmission_and_equivocation(ledger: LedgerService, consortium: TestConsortium) -> None:
    signer = consortium.enroll("SN-SEQ-3")
    t = int(time.time() * 1000) - 10_000
    original = _sign(signer, 7, t)
    twin = _sign(signer, 7, t, temp=99.0)  # same seq, other content
    first = submit(ledger, original)[0]
    again = submit(ledger, original, original)
    # the same receipt (the gap before seq 7 is reported once, when it is first seen)
    assert first.receipt is not None and first.receipt.gap == (1, 6)
    same = [
        (r.receipt.digest, r.receipt.device_id, r.receipt.seq, r.receipt.status) for r in again if r.receipt
    ]
    assert same == [(original.digest, "SN-SEQ-3", 7, "accepted")] * 2
    refused = submit(ledger, twin, twin)
    assert [r.code for r in refused] == ["reading.equivocation"] * 2
    assert f"0x{original.digest.hex()}" in (refused[0].message or "")
    with Session(ledger.engine) as s:
        evidence = s.exec(select(EquivocationRow)).all()
    assert len(evidence) == 1  # the same conflicting reading is not recorded twice
    assert evidence[0].accepted_digest == original.digest and evidence[0].conflicting_digest == twin.digest
    assert count(ledger, ReadingRow) == 1


def _sign(signer, seq: int, ts: int, temp: float = 21.0):  # type: ignore[no-untyped-def]
    from device_attestation.reading import Reading, reading_digest
    from device_attestation.sdk import Submission
    from device_attestation.signing import sign_digest

    reading = Reading(device_id=signer.device_id, seq=seq, ts_ms=ts, metrics={"temp_c": temp})
    digest = reading_digest(reading, signer.domain)
    return Submission(
        reading=reading, scheme=signer.key.scheme, signature=sign_digest(signer.key, digest), digest=digest
    )


def test_any_arrival_order_of_an_honest_device_is_accepted(
    ledger: LedgerService, consortium: TestConsortium
) -> None:
    """An honest device (ts growing with seq) is accepted whatever order its readings arrive in, split
    over several requests: late readings fill the gaps, nothing is refused, the counters end clean."""
    import random

    rng = random.Random(7)
    signer = consortium.enroll("SN-SEQ-4")
    t = int(time.time() * 1000) - 1_000_000
    subs = [_sign(signer, seq, t + seq * 10) for seq in range(1, 121)]
    rng.shuffle(subs)
    groups = [subs[i : i + 17] for i in range(0, len(subs), 17)]
    for g in groups:
        results = submit(ledger, *g)
        assert all(r.accepted for r in results), [r.code for r in results if not r.accepted]
    h = head(ledger, "SN-SEQ-4")
    assert (h.last_seq, h.readings, h.missing) == (120, 120, 0)
    # a reading whose time contradicts its place in the order is still refused
    (bad,) = submit(ledger, _sign(signer, 121, t + 5))
    assert bad.code == "reading.out_of_order"
