"""The writer (ledger_service/ingest/committer.py) on a group of more devices than it reads heads in one
statement (the chunk made small here): each reading stored once with its gap, a late reading filling it,
a resubmission answered with its receipt, a conflicting reading refused as equivocation and kept as
evidence, every device's head right. (Issue 17.3 tried one statement per chunk for the SQLite writes too:
under a busy event loop each long statement gave the GIL away for longer, and groups committed slower.)"""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select
from support import stored

from ledger_service.ingest import committer as committer_module
from ledger_service.ingest.checks import Checked
from ledger_service.ingest.committer import Candidate, Committer
from ledger_service.ingest.receipts import Receipt
from ledger_service.service import LedgerService
from ledger_service.store.models import DeviceHeadRow, ReadingRow


def candidate(device: str, seq: int, ts_ms: int, variant: str = "") -> Candidate:
    digest = hashlib.sha256(f"{device}/{seq}/{variant}".encode()).digest()
    checked = Checked(
        digest=digest,
        device_id=device,
        seq=seq,
        ts_ms=ts_ms,
        lot_id=None,
        scheme="p256",
        signature=b"\x01" * 64,
        reading_json=f'{{"device_id":"{device}","seq":{seq}}}',
    )
    return Candidate(checked=checked, received_ms=1_000, source="test", raw={"variant": variant})


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_groups_larger_than_a_statement(ledger: LedgerService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(committer_module, "_CHUNK", 3)  # heads read 3 to a statement
    writer = Committer(ledger.engine)
    writer.start()
    try:
        devices = [f"SN-CHUNK-{d}" for d in range(8)]
        # seqs 1, 2, 4, 5 (3 skipped: a gap) of each device, in one group
        first = [candidate(d, s, 100 * s) for d in devices for s in (1, 2, 4, 5)]
        outcomes = writer.commit(first)
        assert all(isinstance(o, Receipt) for o in outcomes)
        gaps = {(o.device_id, o.seq): o.gap for o in outcomes if isinstance(o, Receipt)}
        assert gaps[(devices[5], 4)] == (3, 3) and gaps[(devices[5], 5)] is None
        # the next group: the late seq 3 of each, a resend, and a conflicting seq 1 of device 0
        second = [candidate(d, 3, 300) for d in devices]
        second += [candidate(devices[1], 2, 200), candidate(devices[0], 1, 100, variant="forged")]
        outcomes = writer.commit(second)
        assert all(isinstance(o, Receipt) for o in outcomes[:9])
        assert outcomes[8] == Receipt(digest=first[5].checked.digest, device_id=devices[1], seq=2, gap=None)
        assert not isinstance(outcomes[9], Receipt) and outcomes[9][0] == "reading.equivocation"
    finally:
        writer.stop()
    assert stored(ledger) == {"readings": 40, "heads": 8, "equivocations": 1}
    h = DeviceHeadRow.__table__.c  # type: ignore[attr-defined]
    r = ReadingRow.__table__.c  # type: ignore[attr-defined]
    with ledger.engine.connect() as conn:
        heads = conn.execute(
            select(h.device_id, h.last_seq, h.last_ts_ms, h.readings, h.gaps, h.missing)
        ).all()
        rows = conn.execute(select(r.device_id, r.seq, r.ts_ms, r.gap_first, r.gap_last, r.source)).all()
    assert sorted(heads) == [(d, 5, 500, 5, 1, 0) for d in devices]
    assert sorted(rows) == sorted(
        (d, s, 100 * s, 3 if s == 4 else None, 3 if s == 4 else None, "test")
        for d in devices
        for s in range(1, 6)
    )
