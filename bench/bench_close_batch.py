"""PostgreSQL's CPU to close the readings' batches and count what waits, apart from ingest (issue 17).

    .venv/bin/python bench/bench_close_batch.py [--readings 100000] [--batch 10000]

Set-up (not timed): a fresh PostgreSQL database at the current schema, ``--readings`` waiting readings
with made-up digests over three months (three partitions). Timed: closing them into batches of
``--batch`` as the anchoring worker does (the waiting rows in id order, a Merkle tree, the batch row,
each reading's batch id and proof path), once with the writes before issue 17's fix (an UPDATE of the
id range setting ``batch_id``, then one UPDATE a reading for its proof path) and once with
:func:`~ledger_service.anchoring.reading_batches.assign_with_paths` (one write a reading), each on its
own copy of the database; and the leader's pending count (``count(*)``, ``min(received_ms)`` of the
waiting readings) with most readings batched. The figure is the CPU time of the database's backend
process serving the connection (``/proc/<pid>/stat``: PostgreSQL must run on this machine).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, bindparam, text, update
from sqlmodel import col, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from support import TempPostgresDatabase

from ledger_service.anchoring.reading_batches import assign_with_paths, insert_closed, waiting
from ledger_service.store.batch_tree import build_encoded_tree
from ledger_service.store.engine import create_schema, make_engine
from ledger_service.store.models import ReadingRow

_TICKS = os.sysconf("SC_CLK_TCK")
_NOW = int(time.time() * 1000)
_MONTHS = [_NOW, _NOW + 2_678_400_000, _NOW + 5_356_800_000]  # three months made ahead: three partitions


def _backend_pid(conn: Connection) -> int:
    pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
    conn.commit()
    return pid


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _populate(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO readings (digest, device_id, seq, ts_ms, lot_id, scheme, signature, "
                "reading_json, received_ms, source) SELECT sha256(int8send(k)), 'SN-' || (k % 100), k, "
                ":m0 + (k % 3) * :step + k, 'LOT-1', 'p256', '\\x00'::bytea, '{}', k, 'http' "
                "FROM generate_series(1, :n) k"
            ),
            {"n": n, "m0": _MONTHS[0], "step": _MONTHS[1] - _MONTHS[0]},
        )
        conn.execute(text("ANALYZE readings"))


def _old_assign(conn: Connection, ids: list[int], ts: list[int], paths: list[bytes], batch_id: int) -> None:
    """The writes before issue 17's fix: the id range's batch id, then each reading's proof path."""
    conn.execute(
        update(ReadingRow)
        .where(
            col(ReadingRow.batch_id).is_(None), col(ReadingRow.id) >= ids[0], col(ReadingRow.id) <= ids[-1]
        )
        .values(batch_id=batch_id)
    )
    conn.execute(
        update(ReadingRow)
        .where(col(ReadingRow.id) == bindparam("rid"))
        .values(proof_path=bindparam("path"))
        .execution_options(synchronize_session=False),
        [{"rid": i, "path": p} for i, p in zip(ids, paths, strict=True)],
    )


Assign = Callable[[Connection, list[int], list[int], list[bytes], int], None]


def _close_all(engine: Engine, batch: int, assign: Assign) -> tuple[float, float]:
    """Close every waiting reading into batches; (backend CPU s, wall s), the tree building excluded."""
    cpu = wall = 0.0
    with engine.connect() as conn:
        pid = _backend_pid(conn)
        while True:
            with conn.begin():
                t0, c0 = time.perf_counter(), _backend_cpu(pid)
                rows = conn.execute(
                    select(col(ReadingRow.id), col(ReadingRow.digest), col(ReadingRow.ts_ms))
                    .where(col(ReadingRow.batch_id).is_(None))
                    .order_by(col(ReadingRow.id))
                    .limit(batch)
                ).all()
                if not rows:
                    return cpu, wall
                cpu += _backend_cpu(pid) - c0
                wall += time.perf_counter() - t0
                root, nodes, paths = build_encoded_tree([bytes(r[1]) for r in rows])
                t0, c0 = time.perf_counter(), _backend_cpu(pid)
                batch_id = insert_closed(conn, root=root, nodes=nodes, count=len(rows), oldest_ms=0, now=0)
                assign(conn, [int(r[0] or 0) for r in rows], [int(r[2]) for r in rows], paths, batch_id)
            cpu += _backend_cpu(pid) - c0
            wall += time.perf_counter() - t0


def _count_cpu(engine: Engine, repeat: int, *, from_index: bool) -> float:
    """Backend CPU s of one pending count (the leader's at every step): the plain query (before issue
    17's fix) or :func:`~ledger_service.anchoring.reading_batches.waiting` (after)."""
    with engine.connect() as conn:
        pid = _backend_pid(conn)
        c0 = _backend_cpu(pid)
        for _ in range(repeat):
            if from_index:
                waiting(conn)
            else:
                conn.execute(
                    text("SELECT count(*), min(received_ms) FROM readings WHERE batch_id IS NULL")
                ).one()
            conn.commit()
        return (_backend_cpu(pid) - c0) / repeat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10_000)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the start")
    for name, assign in (
        ("two writes (before)", _old_assign),
        ("one write (assign_with_paths)", assign_with_paths),
    ):
        with TempPostgresDatabase() as db:
            engine = make_engine(db.url)
            create_schema(engine)
            _populate(engine, args.readings)
            cpu, wall = _close_all(engine, args.batch, assign)
            print(
                f"close {args.readings:,} readings in batches of {args.batch:,}, {name}: PostgreSQL "
                f"{cpu * 1e6 / args.readings:.1f} CPU-us a reading ({wall * 1e6 / args.readings:.1f} us wall)"
            )
            _populate_more = args.batch // 10
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO readings (digest, device_id, seq, ts_ms, scheme, signature, "
                        "reading_json, received_ms, source) SELECT sha256(int8send(-k)), 'SN-X', k, :m + k, "
                        "'p256', '\\x00'::bytea, '{}', k, 'http' FROM generate_series(1, :n) k"
                    ),
                    {"n": _populate_more, "m": _MONTHS[2]},
                )
            for stats in ("stats of before the close", "stats analysed after the close"):
                if stats.endswith("after the close"):
                    with engine.begin() as conn:
                        conn.execute(text("ANALYZE readings"))
                _count(engine, stats, args.readings, _populate_more)
            engine.dispose()
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def _count(engine: Engine, stats: str, readings: int, n_waiting: int) -> None:
    with engine.connect() as conn:
        plan = "\n      ".join(
            str(r[0])
            for r in conn.execute(
                text(
                    "EXPLAIN (COSTS OFF) SELECT count(*), min(received_ms) FROM readings "
                    "WHERE batch_id IS NULL"
                )
            )
        )
    print(
        f"  pending count ({n_waiting:,} waiting of {readings + n_waiting:,}; {stats}): "
        f"plain query {_count_cpu(engine, 20, from_index=False) * 1e3:.2f} CPU-ms a count, waiting() "
        f"{_count_cpu(engine, 20, from_index=True) * 1e3:.2f} (the leader's backend); plain query's plan:"
        f"\n      {plan}"
    )


if __name__ == "__main__":
    main()
