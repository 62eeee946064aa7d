"""The readings table partitioned by month of ``ts_ms`` on PostgreSQL (issue 17.4): migration 0018 on a
populated store moves every row into its month with its id, batch and proof path, the id sequence goes
on, and the downgrade puts the plain table back; partitions of coming months are made ahead, and rows
that went to the default partition move into their month when it is made."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from support import TempPostgresDatabase, postgres_available, require

from ledger_service.store.engine import create_schema, make_engine
from ledger_service.store.migrations import downgrade, upgrade
from ledger_service.store.partitions import (
    DEFAULT_PARTITION,
    MonthPartition,
    ensure_reading_partitions,
    month_of,
    reading_partitions,
    readings_partitioned,
)


def _ms(year: int, month: int, day: int = 1, hour: int = 0) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def pg() -> Iterator[Engine]:
    require(postgres_available(), "PostgreSQL is not running on 127.0.0.1:5432")
    with TempPostgresDatabase() as db:
        engine = make_engine(db.url)
        yield engine
        engine.dispose()


def _insert(engine: Engine, rows: list[tuple[str, int, int, int | None]]) -> None:
    """Readings (device, seq, ts_ms, batch) with made-up digests and signatures."""
    with engine.begin() as conn:
        for device, seq, ts, batch in rows:
            conn.execute(
                text(
                    "INSERT INTO readings (digest, device_id, seq, ts_ms, lot_id, scheme, signature, "
                    "reading_json, received_ms, source, batch_id, proof_path) VALUES (:d, :dev, :seq, :ts, "
                    "'LOT-1', 'p256', :sig, '{}', :ts, 'http', :b, :p)"
                ),
                {
                    "d": f"{device}/{seq}".encode().ljust(32, b"\0"),
                    "dev": device,
                    "seq": seq,
                    "ts": ts,
                    "sig": b"s" * 64,
                    "b": batch,
                    "p": b"p" * 32 if batch is not None else None,
                },
            )


def _snapshot(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT id, digest, device_id, seq, ts_ms, batch_id, proof_path FROM readings ORDER BY id"
                )
            )
        ]


def test_the_migration_moves_a_populated_store_into_month_partitions_and_back(pg: Engine) -> None:
    upgrade(pg, "0015")  # the store before partitioning
    with pg.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO batches (id, root, count, tree, status, created_ms, oldest_received_ms, "
                "attempts, next_attempt_ms) VALUES (1, :r, 3, :t, 'anchored', 0, 0, 0, 0)"
            ),
            {"r": b"r" * 32, "t": b"t" * 32},
        )
    months = [(2026, 10, 3), (2026, 11, 30), (2026, 12, 1)]
    rows = [
        (f"SN-{k % 3}", k, _ms(y, m, d) + k, 1 if k < 3 else None) for k, (y, m, d) in enumerate(months * 4)
    ]
    _insert(pg, rows)
    before = _snapshot(pg)

    upgrade(pg)
    with pg.connect() as conn:
        assert readings_partitioned(conn)
        parts = reading_partitions(conn)
        assert {"readings_2026_10", "readings_2026_11", "readings_2026_12", DEFAULT_PARTITION} <= set(parts)
        per_month: dict[str, int] = dict(
            conn.execute(text("SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1")).all()
        )
        pk = conn.execute(
            text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'readings_pkey' "
                "AND conrelid = 'readings'::regclass"
            )
        ).scalar_one()
    assert per_month == {"readings_2026_10": 4, "readings_2026_11": 4, "readings_2026_12": 4}
    assert pk == "PRIMARY KEY (id, ts_ms, device_id)"
    assert _snapshot(pg) == before  # every row, with its id, batch and proof path

    _insert(pg, [("SN-NEW", 1, _ms(2026, 12, 7), None)])  # the sequence goes on past the moved ids
    after = _snapshot(pg)
    assert after[-1][0] == max(int(str(r[0])) for r in before) + 1
    downgrade(pg, "0015")
    with pg.connect() as conn:
        assert not readings_partitioned(conn)
    assert _snapshot(pg) == after
    upgrade(pg)
    assert _snapshot(pg) == after


def test_a_month_is_made_ahead_and_takes_its_rows_out_of_the_default_partition(pg: Engine) -> None:
    create_schema(pg)
    now = _ms(2031, 5, 20)
    far = MonthPartition(2031, 9)  # beyond the partitions made so far: its rows land in the default
    _insert(pg, [("SN-F", 1, far.start_ms + 5, None), ("SN-F", 2, far.end_ms - 1, None)])
    with pg.connect() as conn:
        where = conn.execute(text("SELECT DISTINCT tableoid::regclass::text FROM readings")).scalars().all()
    assert where == [DEFAULT_PARTITION]
    made = ensure_reading_partitions(pg, now_ms=now, ahead=4)
    assert made == ["readings_2031_05", "readings_2031_06", "readings_2031_07", "readings_2031_08", far.name]
    with pg.connect() as conn:
        where = conn.execute(text("SELECT DISTINCT tableoid::regclass::text FROM readings")).scalars().all()
    assert where == [far.name]
    assert ensure_reading_partitions(pg, now_ms=now, ahead=4) == []  # idempotent


def test_month_boundaries() -> None:
    assert month_of(_ms(2026, 12, 31, 23) + 3_599_999) == MonthPartition(2026, 12)
    assert month_of(_ms(2027, 1, 1)) == MonthPartition(2027, 1)
    assert MonthPartition(2026, 12).next() == MonthPartition(2027, 1)
    assert MonthPartition(2026, 12).end_ms == _ms(2027, 1, 1)


def test_sqlite_stays_a_plain_table(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/plain.db")
    create_schema(engine)
    with engine.connect() as conn:
        assert not readings_partitioned(conn)
    assert ensure_reading_partitions(engine) == []
    engine.dispose()
