"""The anchoring lead (issue 17): one leader among the instances sharing a database, and its fence.

On PostgreSQL two :class:`Leadership` objects on engines of their own stand for two instances: one holds
the advisory lock, the other waits; a leader whose lock session ends (the server ends it, as it does
for a SIGKILLed process) is replaced at the other's next step, and its fenced writes are refused from
then on, whether it knows yet or not. A takeover waits for a fenced write in flight. On SQLite (one
instance) the lead is taken at the first step and the epoch grows with each start. The workers that
send with a key run their passes only while their gate says so.

The real processes (SIGKILL of the leader mid-batch) are tests/ledger_service/test_multi_instance_leader.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from faults import assert_exactly_once, batches
from sqlalchemy import Engine, func, select, text
from sqlmodel import col
from support import TestConsortium, database_url

from ledger_service.anchoring import AnchoringWorker
from ledger_service.anchoring.leader import (
    LEADER_KEY,
    Leadership,
    NotLeaderError,
    leader_interval,
    read_leader,
)
from ledger_service.periodic import PeriodicWorker
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.engine import make_engine
from ledger_service.store.models import BatchRow, MetaRow, ReadingRow


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from database_url("postgresql", tmp_path)


@pytest.fixture
def engines(pg_url: str) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one PostgreSQL database: two instances' pools."""
    a, b = make_engine(pg_url), make_engine(pg_url)
    try:
        yield a, b
    finally:
        a.dispose()
        b.dispose()


def end_lock_session(engine: Engine) -> None:
    """End the session holding the anchoring lock, from outside (as the server does when its process
    is killed), and wait until the server released the lock."""
    db = engine.url.database
    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(
            "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND l.granted AND d.datname = %s",
            (db,),
        )
        deadline = time.monotonic() + 10
        while c.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
            "WHERE l.locktype = 'advisory' AND d.datname = %s",
            (db,),
        ).fetchone() != (0,):
            assert time.monotonic() < deadline, "the server did not release the ended session's lock"
            time.sleep(0.02)


def test_leader_interval_is_well_within_two_batch_intervals() -> None:
    assert leader_interval(5.0) == 1.0
    assert leader_interval(1.0) == 0.25
    assert leader_interval(0.01) == 0.05  # never a busy loop
    for batch in (0.2, 0.5, 1.0, 5.0, 60.0):
        assert leader_interval(batch) <= batch / 4 or leader_interval(batch) == 1.0


@pytest.mark.postgres
def test_one_leader_at_a_time_and_a_release_hands_over(engines: tuple[Engine, Engine]) -> None:
    a = Leadership(engines[0], interval=0.05, instance="A")
    b = Leadership(engines[1], interval=0.05, instance="B")
    assert a.shared and b.shared
    try:
        assert a.step() and a.is_leader and a.epoch == 1
        for _ in range(3):  # the lock is held: b never leads, a stays the leader
            assert not b.step() and not b.is_leader and b.epoch == 0
            assert a.step()
        assert read_leader(engines[0]) == (1, "A")
        a.stop()  # a clean stop gives the lead up at once
        assert not a.is_leader
        assert b.step() and b.epoch == 2
        assert read_leader(engines[0]) == (2, "B")
        assert not a.step(), "the old leader took the lead back while the new one holds it"
        st = b.state()
        assert st.leader and st.epoch == 2 and st.shared and st.since_ms is not None
    finally:
        a.stop()
        b.stop()


@pytest.mark.postgres
def test_a_dead_lock_session_hands_over_and_the_stale_leader_is_fenced(
    engines: tuple[Engine, Engine],
) -> None:
    a = Leadership(engines[0], interval=0.05, instance="A")
    b = Leadership(engines[1], interval=0.05, instance="B")
    try:
        assert a.step() and not b.step()
        with engines[0].begin() as conn:
            a.fence(conn)  # the leader's fenced write passes
        end_lock_session(engines[0])  # A's lock session dies; A has not noticed (no step since)
        assert b.step() and b.epoch == 2
        assert a.is_leader, "precondition: the stale leader does not know yet"
        # the stale leader wakes up and writes: refused, and it steps down
        with pytest.raises(NotLeaderError, match="epoch 2"), engines[0].begin() as conn:
            conn.execute(text("UPDATE meta SET value = 'stale' WHERE key = 'x'"))
            a.fence(conn)
        assert not a.is_leader and a.epoch == 0
        assert not a.step(), "the stale leader took the lead back from a live one"
        with engines[1].begin() as conn:
            b.fence(conn)
    finally:
        a.stop()
        b.stop()


@pytest.mark.postgres
def test_a_stale_leader_that_steps_finds_out(engines: tuple[Engine, Engine]) -> None:
    a = Leadership(engines[0], interval=0.05, instance="A")
    b = Leadership(engines[1], interval=0.05, instance="B")
    try:
        assert a.step()
        end_lock_session(engines[0])
        assert not a.step(), "a leader whose lock session ended still says it leads"
        reason = a.last_error or ""
        assert "advisory lock is not held" in reason or "could not be checked" in reason, reason
        assert b.step() and b.epoch == 2
    finally:
        a.stop()
        b.stop()


@pytest.mark.postgres
def test_a_takeover_waits_for_the_fenced_write_in_flight(engines: tuple[Engine, Engine]) -> None:
    """The old leader's write that passed its fence commits before the new epoch is taken: the new
    leader then sees it. Nothing of the old leader interleaves with the new one's writes."""
    a = Leadership(engines[0], interval=0.05, instance="A")
    b = Leadership(engines[1], interval=0.05, instance="B")
    took: list[bool] = []
    try:
        assert a.step()
        conn = engines[0].connect()
        tx = conn.begin()
        a.fence(conn)  # holds the meta row FOR SHARE until the transaction ends
        conn.execute(text("INSERT INTO meta (key, value) VALUES ('written-by-a', '1')"))
        end_lock_session(engines[0])
        t = threading.Thread(target=lambda: took.append(b.step()))
        t.start()
        t.join(0.5)
        assert t.is_alive(), "the takeover did not wait for the fenced write in flight"
        tx.commit()
        conn.close()
        t.join(10)
        assert took == [True] and b.epoch == 2
        with engines[1].connect() as c:
            assert c.execute(select(col(MetaRow.value)).where(col(MetaRow.key) == "written-by-a")).scalar()
        with pytest.raises(NotLeaderError), engines[0].begin() as c2:
            a.fence(c2)
    finally:
        a.stop()
        b.stop()


def test_sqlite_instance_leads_from_its_first_step(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = make_engine(next(database_url("sqlite", tmp_path)))
    caplog.set_level(logging.INFO, logger="ledger_service.anchoring")
    try:
        first = Leadership(engine, interval=0.05)
        assert not first.shared
        first.start()
        assert first.is_leader and first.epoch == 1
        first.stop()
        again = Leadership(engine, interval=0.05)  # the next start of the one instance
        again.start()
        assert again.epoch == 2 and read_leader(engine)[0] == 2
        with engine.begin() as conn:
            again.fence(conn)
        again.stop()
        with pytest.raises(NotLeaderError), engine.begin() as conn:
            again.fence(conn)  # stopped: no lead
        events = [(getattr(r, "event", None), getattr(r, "epoch", None)) for r in caplog.records]
        assert [e for e in events if e[0] in ("leader.acquired", "leader.lost")] == [
            ("leader.acquired", 1),
            ("leader.lost", 1),
            ("leader.acquired", 2),
            ("leader.lost", 2),
        ]
    finally:
        engine.dispose()


def test_sqlite_instance_keeps_the_lead_when_a_check_fails_for_a_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite the instance lock makes this the only instance: a step whose read of the store fails
    (``database is locked`` while ingest writes) must not drop the lead, or what waits is never anchored
    (the demo's flush was refused with NotLeaderError)."""
    from sqlalchemy.exc import OperationalError

    import ledger_service.anchoring.leader as leader_module

    engine = make_engine(next(database_url("sqlite", tmp_path)))
    try:
        lead = Leadership(engine, interval=0.05)
        assert lead.step() and lead.is_leader

        def locked(_: Engine) -> tuple[int, str]:
            raise OperationalError("SELECT value FROM meta", {}, Exception("database is locked"))

        monkeypatch.setattr(leader_module, "read_leader", locked)
        assert lead.step() and lead.is_leader
        monkeypatch.undo()
        with engine.begin() as conn:
            lead.fence(conn)  # its writes still pass the fence
    finally:
        engine.dispose()


def _usurp(old: Leadership, engine: Engine) -> Leadership:
    """Another instance takes the lead from ``old`` without ``old`` knowing (its lock session ended)."""
    if old.shared:
        end_lock_session(old.engine)
    new = Leadership(engine, interval=0.05, instance="usurper")
    assert new.step()
    return new


def _readings(consortium: TestConsortium, ledger: LedgerService, client: TestClient, n: int) -> None:
    dev = consortium.enroll(f"SN-LEAD-{n}")
    ts = int(ledger.chain.w3.eth.get_block("latest")["timestamp"]) * 1000 - 30_000
    subs = [dev.sign({"temp_c": 20.0 + k}, ts_ms=ts + k) for k in range(n)]
    r = client.post("/v1/readings", json={"readings": [s.to_json_obj() for s in subs]})
    assert r.status_code == 200 and r.json()["accepted"] == n, r.text


def _unbatched(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(ReadingRow).where(col(ReadingRow.batch_id).is_(None))
            ).scalar_one()
        )


def test_a_stale_leader_cannot_close_or_record_a_batch(
    ledger: LedgerService, client: TestClient, consortium: TestConsortium, db_url: str
) -> None:
    """The worker of a leader that lost the lead without knowing: its close and its status write are
    refused and change nothing; the new leader's worker anchors everything exactly once."""
    worker = ledger.anchoring
    old = Leadership(ledger.engine, interval=0.05, instance="old")
    assert old.step()
    worker.leader = old
    _readings(consortium, ledger, client, 5)
    first = worker.close_batch(force=True)
    assert first is not None  # the leader closes
    other_engine = make_engine(db_url)
    try:
        new = _usurp(old, other_engine)
        _readings(consortium, ledger, client, 4)
        with pytest.raises(NotLeaderError):
            worker.close_batch(force=True)
        assert _unbatched(ledger.engine) == 4 and len(batches(ledger.engine)) == 1, "the stale close wrote"
        assert not worker.leading()  # it found out and stepped down
        worker.tick(force=True)  # a step of a non-leader does nothing: nothing is sent
        with pytest.raises(NotLeaderError, match="does not lead"):
            worker.flush(timeout=1)  # says so at once, rather than waiting for another's anchoring
        with pytest.raises(NotLeaderError):
            worker.update(first, status=BatchStatus.SUBMITTED, tx_hash="0x" + "11" * 32)
        (b,) = batches(ledger.engine)
        assert b.status == BatchStatus.CLOSED and b.tx_hash is None
        assert ledger.chain.call(worker.contract.functions.batchCount()) == 0

        successor = AnchoringWorker(
            settings=ledger.settings,
            engine=other_engine,
            chain=ledger.chain,
            deployment=ledger.deployment,
            signer=ledger.anchor_signer,
        )
        successor.leader = new
        successor.took_lead()
        successor.flush(timeout=30)
        assert_exactly_once(ledger.engine, ledger.chain, ledger.deployment)
        with ledger.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(BatchRow)).scalar_one() == 2
            token = conn.execute(select(col(MetaRow.value)).where(col(MetaRow.key) == LEADER_KEY)).scalar()
        assert token == "2:usurper"
        new.stop()
    finally:
        old.stop()
        other_engine.dispose()


class _Counting(PeriodicWorker):
    def __init__(self) -> None:
        super().__init__(0.01, name="test-periodic", what="test")
        self.ran = threading.Event()

    def run_once(self) -> None:
        self.passes += 1
        self.ran.set()


def test_a_gated_worker_runs_only_while_its_gate_is_open() -> None:
    worker = _Counting()
    leading = threading.Event()
    worker.gate = leading.is_set
    worker.start()
    try:
        time.sleep(0.15)
        assert worker.passes == 0 and worker.skipped > 3
        leading.set()
        assert worker.ran.wait(5)
    finally:
        worker.stop()
