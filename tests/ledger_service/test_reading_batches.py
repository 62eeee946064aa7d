"""Closing a batch writes each reading once (its batch id and proof path together), never moves a
reading that is in a batch already, and counts what waits on the partial index ``ix_readings_waiting``;
migration 0019 adds that index on a populated store and its downgrade puts ``ix_readings_pending`` back
(issue 17), on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlmodel import Session

from ledger_service.anchoring.reading_batches import assign_with_paths, insert_closed, pending_count, waiting
from ledger_service.errors import StoreError
from ledger_service.store.engine import create_schema, make_engine
from ledger_service.store.migrations import downgrade, upgrade


def _ms(year: int, month: int, day: int = 1) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    yield e
    e.dispose()


def _insert(engine: Engine, rows: list[tuple[int, int, int | None]]) -> list[int]:
    """Readings (seq, ts_ms, batch) of one device with made-up digests; their ids."""
    ids = []
    with engine.begin() as conn:
        for seq, ts, batch in rows:
            ids.append(
                int(
                    conn.execute(
                        text(
                            "INSERT INTO readings (digest, device_id, seq, ts_ms, lot_id, scheme, signature, "
                            "reading_json, received_ms, source, batch_id, proof_path) VALUES (:d, 'SN-1', "
                            ":seq, :ts, 'LOT-1', 'p256', :sig, '{}', :ts, 'http', :b, :p) RETURNING id"
                        ),
                        {
                            "d": f"SN-1/{seq}".encode().ljust(32, b"\0"),
                            "seq": seq,
                            "ts": ts,
                            "sig": b"s" * 64,
                            "b": batch,
                            "p": b"p" * 32 if batch is not None else None,
                        },
                    ).scalar_one()
                )
            )
    return ids


def _batch(engine: Engine, root: bytes = b"r" * 32) -> int:
    with engine.begin() as conn:
        return insert_closed(conn, root=root, nodes=b"t" * 32, count=1, oldest_ms=0, now=0)


def _snapshot(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(text("SELECT id, ts_ms, batch_id, proof_path FROM readings ORDER BY id"))
        ]


# readings of three months: three partitions on PostgreSQL
_MONTHS = [_ms(2026, 10, 3), _ms(2026, 11, 30), _ms(2026, 12, 1)]


def test_closing_writes_batch_and_proof_path_together(engine: Engine) -> None:
    create_schema(engine)
    ids = _insert(engine, [(k, _MONTHS[k % 3] + k, None) for k in range(7)])
    batch = _batch(engine)
    take = ids[:5]
    paths = [bytes([k]) * 64 for k in range(5)]
    with engine.begin() as conn:
        assign_with_paths(conn, take, [_MONTHS[k % 3] + k for k in range(5)], paths, batch)
    rows = _snapshot(engine)
    assert [(r[2], r[3]) for r in rows[:5]] == [(batch, p) for p in paths]
    assert [(r[2], r[3]) for r in rows[5:]] == [(None, None), (None, None)]
    with Session(engine) as s:
        assert pending_count(s) == 2


def test_a_reading_in_a_batch_already_is_never_moved(engine: Engine) -> None:
    create_schema(engine)
    first = _batch(engine)
    ids = _insert(engine, [(1, _MONTHS[0], None), (2, _MONTHS[1], first), (3, _MONTHS[2], None)])
    before = _snapshot(engine)
    second = _batch(engine, b"s" * 32)
    with pytest.raises(StoreError, match="1 of the 3 readings"), engine.begin() as conn:
        assign_with_paths(conn, ids, list(_MONTHS), [b"x" * 32] * 3, second)
    assert _snapshot(engine) == before  # rolled back: the other two wait still
    with pytest.raises(ValueError, match="proof paths"), engine.begin() as conn:
        assign_with_paths(conn, ids, list(_MONTHS), [b"x" * 32] * 2, second)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("chunk", [2, None], ids=["statements-of-2", "row-by-row"])
def test_sqlite_assigns_in_chunks_or_row_by_row(
    engine: Engine, chunk: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite assigns a closing batch in statements of several readings (issue 17.3; chunks of 2 here, the
    last one short), or row by row where the library has no UPDATE ... FROM: the same rows either way,
    and a reading in another batch is still never moved."""
    from ledger_service.anchoring import reading_batches

    monkeypatch.setattr(reading_batches, "_sqlite_assign_chunk", lambda _conn: chunk)
    create_schema(engine)
    ids = _insert(engine, [(k, _MONTHS[k % 3] + k, None) for k in range(6)])
    batch = _batch(engine)
    paths = [bytes([k]) * 64 for k in range(5)]
    with engine.begin() as conn:
        assign_with_paths(conn, ids[:5], [_MONTHS[k % 3] + k for k in range(5)], paths, batch)
    rows = _snapshot(engine)
    assert [(r[2], r[3]) for r in rows] == [(batch, p) for p in paths] + [(None, None)]
    before = _snapshot(engine)
    other = _batch(engine, b"s" * 32)
    with pytest.raises(StoreError, match="1 of the 2 readings"), engine.begin() as conn:
        assign_with_paths(conn, ids[4:], [_MONTHS[1] + 4, _MONTHS[2] + 5], [b"x" * 32] * 2, other)
    assert _snapshot(engine) == before


def test_sqlite_assign_chunk_fits_the_parameter_limit(tmp_path: Path) -> None:
    """Each statement's parameters (the batch id and two a reading) stay within the connection's limit."""
    from ledger_service.anchoring.reading_batches import _ASSIGN_SQLITE_CHUNK, _sqlite_assign_chunk

    e = make_engine(f"sqlite:///{tmp_path}/limit.db")
    try:
        with e.connect() as conn:
            driver = conn.connection.driver_connection
            limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)  # type: ignore[union-attr]
            chunk = _sqlite_assign_chunk(conn)
            assert chunk is not None and 1 + 2 * chunk <= limit and chunk <= _ASSIGN_SQLITE_CHUNK
            driver.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # type: ignore[union-attr]
            assert _sqlite_assign_chunk(conn) == 499
            driver.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)  # type: ignore[union-attr]
    finally:
        e.dispose()


def _indexes(engine: Engine) -> dict[str, list[str | None]]:
    return {str(ix["name"]): list(ix["column_names"]) for ix in inspect(engine).get_indexes("readings")}


def test_migration_0019_on_a_populated_store_and_back(engine: Engine) -> None:
    upgrade(engine, "0018")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO batches (id, root, count, tree, status, created_ms, oldest_received_ms, "
                "attempts, next_attempt_ms) VALUES (1, :r, 3, :t, 'anchored', 0, 0, 0, 0)"
            ),
            {"r": b"r" * 32, "t": b"t" * 32},
        )
    _insert(engine, [(k, _MONTHS[k % 3] + k, 1 if k < 3 else None) for k in range(12)])
    before = _snapshot(engine)

    upgrade(engine)
    indexes = _indexes(engine)
    assert indexes["ix_readings_waiting"] == ["id", "received_ms"]
    assert "ix_readings_pending" not in indexes
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            definition = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_readings_waiting'")
            ).scalar_one()
        else:
            definition = conn.execute(
                text("SELECT sql FROM sqlite_master WHERE name = 'ix_readings_waiting'")
            ).scalar_one()
    assert "WHERE" in definition and "batch_id IS NULL" in definition  # the waiting readings only
    assert _snapshot(engine) == before
    with Session(engine) as s:
        assert pending_count(s) == 9

    downgrade(engine, "0018")
    indexes = _indexes(engine)
    assert indexes["ix_readings_pending"] == ["batch_id", "id"]
    assert "ix_readings_waiting" not in indexes
    assert _snapshot(engine) == before
    upgrade(engine)
    assert _snapshot(engine) == before


def test_what_waits_is_counted_with_its_oldest_arrival(engine: Engine) -> None:
    create_schema(engine)
    with engine.begin() as conn:
        assert waiting(conn) == (0, None)
    batch = _batch(engine)
    _insert(engine, [(1, _MONTHS[0], batch), (2, _MONTHS[2], None), (3, _MONTHS[1], None)])
    with engine.begin() as conn:
        assert waiting(conn) == (2, _MONTHS[1])  # received_ms is ts_ms in these rows
        if engine.dialect.name == "postgresql":  # the planner is left as it was for the transaction
            assert conn.execute(text("SHOW enable_seqscan")).scalar_one() == "on"
