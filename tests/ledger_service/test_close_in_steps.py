"""A batch close on SQLite in steps, each its own write transaction (issue 17.3): the batch is never sent
before its last step, a close stopped between steps is undone before the next one (its readings wait
again and are anchored in a new batch, their proofs verifying), and the ingest writer waits for a
step on the in-process write gate, not in SQLite's busy handler."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from reads import sign_client_in
from sqlalchemy import text
from support import TestConsortium, now_ms

from auditor.bundle import ProofBundle
from auditor.verify import verify_bundle
from device_attestation import DeviceKey
from device_attestation.reading import Domain
from device_attestation.sdk import DeviceSigner
from ledger_service.anchoring import reading_batches
from ledger_service.anchoring.reading_batches import CLOSING_MS
from ledger_service.errors import StoreError
from ledger_service.ingest.checks import Checked, check_one
from ledger_service.ingest.committer import Candidate, Committer
from ledger_service.service import LedgerService
from ledger_service.store.engine import create_schema, make_engine
from ledger_service.store.write_gate import write_gate


def _batches(ledger: LedgerService) -> list[tuple[Any, ...]]:
    with ledger.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text("SELECT id, count, status, next_attempt_ms, tx_hash FROM batches ORDER BY id")
            )
        ]


def _assigned(ledger: LedgerService) -> list[tuple[Any, ...]]:
    with ledger.engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(text("SELECT batch_id, proof_path IS NULL FROM readings ORDER BY id"))
        ]


def test_a_close_stopped_between_steps_is_never_sent_and_is_undone(
    ledger: LedgerService, client: TestClient, consortium: TestConsortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    if ledger.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL closes a batch in one transaction (no database-wide write lock)")
    dev = consortium.enroll("SN-STEPS-1")
    ts = now_ms() - 60_000
    subs = [dev.sign({"temp_c": 20.0 + k}, ts_ms=ts + k) for k in range(10)]
    r = client.post("/v1/readings", json={"readings": [s.to_json_obj() for s in subs]})
    assert r.status_code == 200 and r.json()["accepted"] == 10, r.text
    monkeypatch.setattr(reading_batches, "CLOSE_STEP", 3)
    real = reading_batches.assign_with_paths
    calls: list[int] = []

    def failing_third(conn: Any, ids: list[int], *args: Any) -> None:
        calls.append(len(ids))
        if len(calls) == 3:
            raise StoreError("the disk is full (injected)")
        real(conn, ids, *args)

    with monkeypatch.context() as m:
        m.setattr(reading_batches, "assign_with_paths", failing_third)
        with pytest.raises(StoreError, match="injected"):
            ledger.anchoring.tick(force=True)
    # two steps committed, each its own transaction: the batch row is there, closing, 6 readings in it
    (batch,) = _batches(ledger)
    assert batch[1:] == (10, "closed", CLOSING_MS, None)
    assert [a for a in _assigned(ledger) if a[0] is not None] == [(batch[0], 0)] * 6
    ledger.anchoring.advance()  # a batch still closing is never sent
    assert _batches(ledger) == [batch]
    # the next step undoes it first, then closes all ten readings in a new batch (four steps) and anchors it
    calls.clear()

    def counted(conn: Any, ids: list[int], *args: Any) -> None:
        calls.append(len(ids))
        real(conn, ids, *args)

    monkeypatch.setattr(reading_batches, "assign_with_paths", counted)
    ledger.anchoring.flush(timeout=30)
    assert calls == [3, 3, 3, 1]
    (anchored,) = _batches(ledger)
    assert anchored[1:4] == (10, "anchored", 0)  # one batch: the undone row went (SQLite may reuse its id)
    assert _assigned(ledger) == [(anchored[0], 0)] * 10
    sign_client_in(client, consortium.factory)
    for sub in subs:
        r = client.get(f"/v1/readings/0x{sub.digest.hex()}/proof")
        assert r.status_code == 200, r.text
        verify_bundle(ProofBundle.from_json_obj(r.json()), chain=ledger.chain, deployment=ledger.deployment)


DOMAIN = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")


def test_the_writer_waits_for_a_step_on_the_gate_and_commits_at_once_after(tmp_path: Path) -> None:
    """While a close's step holds the gate (no SQLite lock is taken here) the writer does not commit: it
    waits on the gate, and commits once it is released."""
    engine = make_engine(f"sqlite:///{tmp_path}/gate.db")
    create_schema(engine)
    key = DeviceKey.generate("p256")
    signer = DeviceSigner(device_id="SN-GATE-1", key=key, domain=DOMAIN)
    _, checked = check_one(
        DOMAIN,
        0,
        signer.sign({"temp_c": 1.0}, ts_ms=1_700_000_000_000).to_json_obj(),
        ("p256", (key.public_key.x, key.public_key.y)),
    )
    assert isinstance(checked, Checked)
    committer = Committer(engine)
    committer.start()
    try:
        with write_gate(engine):
            written = committer.enqueue([Candidate(checked, 1_700_000_000_000, "test", {})])
            time.sleep(0.3)
            assert not written.done()  # it waits for the gate
        (outcome,) = written.result(timeout=30)
        assert not isinstance(outcome, tuple), outcome
        # a gate held by another thread is waited for in the same way
        gate_held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with write_gate(engine):
                gate_held.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        assert gate_held.wait(30)
        again = committer.enqueue([Candidate(checked, 1_700_000_000_000, "test", {})])
        time.sleep(0.1)
        assert not again.done()
        release.set()
        holder.join(30)
        assert again.result(timeout=30) == [outcome]  # the same receipt again (idempotent)
    finally:
        committer.stop()
        engine.dispose()
