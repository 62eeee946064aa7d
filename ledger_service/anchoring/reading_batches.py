"""The readings' batches in the store: what waits; closing a batch (its row, its readings' batch id
and proof paths).

Closing writes each reading once (issue 17): its batch id and its proof path in one UPDATE
(:func:`assign_with_paths`), so a reading row gets one new version when its batch closes, not two.
What waits is counted from an index (:func:`waiting`; the partial index ``ix_readings_waiting`` holds
the readings whose ``batch_id`` is NULL, nothing else), never by a scan of the table.

On SQLite a close is written in steps (:data:`CLOSE_STEP` readings a write transaction): SQLite has one
write lock, and a whole batch's writes held it 150-300 ms, while every single submit waited for the
writer's next commit (issue 17.3). The batch row goes in first with ``next_attempt_ms`` =
:data:`CLOSING_MS` (never due: a batch still closing is never sent), its last step sets it to 0
(:func:`closing_done`). A close stopped between steps (a crash, an error) leaves such a row; before
closing again the worker undoes it (:func:`undo_unfinished`): its readings wait again, the row goes,
and the next close takes them. PostgreSQL writes a close in one transaction (no database-wide lock)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from sqlalchemy import Connection, Engine, delete, func, insert, text, update
from sqlmodel import Session, col, select

from ledger_service.errors import StoreError
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.batch_tree import EncodedTree
from ledger_service.store.models import BatchRow, ReadingRow
from ledger_service.store.write_gate import write_gate

__all__ = [
    "CLOSE_STEP",
    "CLOSING_MS",
    "assign_with_paths",
    "close_in_steps",
    "closing_done",
    "insert_closed",
    "pending_count",
    "undo_unfinished",
    "waiting",
]

#: ``next_attempt_ms`` of a batch whose readings are still being put into it in steps (SQLite): never
#: due, so the batch is never sent before its last step.
CLOSING_MS = 2**62
#: Readings put into a closing batch per write transaction on SQLite (each holds the write lock for
#: about a tenth of a whole batch's writes).
CLOSE_STEP = 1_000


def waiting(conn: Connection) -> tuple[int, int | None]:
    """How many readings wait for a batch, and the oldest one's arrival (Unix ms; None if none waits).

    On PostgreSQL read from an index, never by a scan of the table: the planner's statistics of a
    partition are those of its last ANALYZE, which autovacuum runs only after a tenth of it changed,
    so a month of readings analysed while they waited looks all waiting and the planner would scan it
    at every step of the leader. What waits is a small part of the table (the waiting readings of at
    most a few batch intervals), so the index is always the cheaper way."""
    query = select(func.count(), func.min(col(ReadingRow.received_ms))).where(
        col(ReadingRow.batch_id).is_(None)
    )
    if conn.dialect.name != "postgresql":
        count, oldest = conn.execute(query).one()
        return int(count), None if oldest is None else int(oldest)
    conn.execute(text("SET LOCAL enable_seqscan = off"))
    try:
        count, oldest = conn.execute(query).one()
    finally:
        conn.execute(text("SET LOCAL enable_seqscan = on"))
    return int(count), None if oldest is None else int(oldest)


def pending_count(s: Session) -> int:
    """How many readings wait for a batch (:func:`waiting`)."""
    return waiting(s.connection())[0]


def insert_closed(
    conn: Connection,
    *,
    root: bytes,
    nodes: bytes,
    count: int,
    oldest_ms: int,
    now: int,
    closing: bool = False,
) -> int:
    """A new ``closed`` batch row; its id. ``closing``: its readings are put into it in later steps
    (never sent until :func:`closing_done`)."""
    result = conn.execute(
        insert(BatchRow).values(
            root=root,
            count=count,
            tree=nodes,
            status=BatchStatus.CLOSED,
            created_ms=now,
            oldest_received_ms=oldest_ms,
            attempts=0,
            next_attempt_ms=CLOSING_MS if closing else 0,
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def closing_done(conn: Connection, batch_id: int) -> None:
    """The last step of a close in steps: the batch may be sent from now on."""
    done = conn.execute(
        update(BatchRow)
        .where(
            col(BatchRow.id) == batch_id,
            col(BatchRow.status) == BatchStatus.CLOSED,
            col(BatchRow.next_attempt_ms) == CLOSING_MS,
        )
        .values(next_attempt_ms=0)
    ).rowcount
    if done != 1:
        raise StoreError(f"batch {batch_id} is not being closed: its close was undone meanwhile")


def undo_unfinished(conn: Connection) -> list[int]:
    """Undo the closes stopped between their steps (see the module docstring): their readings wait again
    (batch id and proof path cleared), their batch rows (never sent) are deleted. Their ids."""
    unfinished = [
        i
        for i in conn.execute(
            select(col(BatchRow.id)).where(
                col(BatchRow.status) == BatchStatus.CLOSED,
                col(BatchRow.next_attempt_ms) == CLOSING_MS,
                col(BatchRow.tx_hash).is_(None),
            )
        ).scalars()
        if i is not None
    ]
    for batch_id in unfinished:
        conn.execute(
            update(ReadingRow)
            .where(col(ReadingRow.batch_id) == batch_id)
            .values(batch_id=None, proof_path=None)
        )
        conn.execute(delete(BatchRow).where(col(BatchRow.id) == batch_id))
    return unfinished


#: PostgreSQL: the readings of a closing batch in one statement, each row found by its primary key's
#: (id, ts_ms) so that only its month's partition is probed.
_ASSIGN_PG = text(
    "UPDATE readings AS r SET batch_id = :batch, proof_path = v.path "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:ts AS bigint[]), CAST(:paths AS bytea[])) "
    "AS v(id, ts, path) "
    "WHERE r.id = v.id AND r.ts_ms = v.ts AND r.batch_id IS NULL"
)


#: SQLite: most readings of a closing batch per statement (two parameters each; fewer when the library
#: allows fewer parameters a statement).
_ASSIGN_SQLITE_CHUNK = 10_000
#: SQLite before 3.33 (no UPDATE ... FROM): one reading (parameters: batch id, proof path, reading id).
_ASSIGN_SQLITE_ROW = "UPDATE readings SET batch_id = ?, proof_path = ? WHERE id = ? AND batch_id IS NULL"


def _sqlite_assign_chunk(conn: Connection) -> int | None:
    """Readings per assigning statement on this SQLite connection; None when it cannot run UPDATE ... FROM."""
    if sqlite3.sqlite_version_info < (3, 33, 0):
        return None
    driver = conn.connection.driver_connection
    try:
        limit = int(driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))  # type: ignore[union-attr]
    except AttributeError:  # Python before 3.11: SQLite's default since 3.32
        limit = 32_766
    return max(1, min(_ASSIGN_SQLITE_CHUNK, (limit - 1) // 2))


def _assign_sqlite_sql(n: int) -> str:
    """SQLite: put ``n`` waiting readings into a batch with their proof paths, in one statement
    (parameters: the batch id, then each reading's id and path)."""
    return (
        "UPDATE readings SET batch_id = ?, proof_path = v.column2 "
        f"FROM (VALUES {', '.join(['(?, ?)'] * n)}) AS v "
        "WHERE readings.id = v.column1 AND readings.batch_id IS NULL"
    )


def assign_with_paths(
    conn: Connection, ids: list[int], ts_ms: list[int], paths: list[bytes], batch_id: int
) -> None:
    """Put the waiting readings ``ids`` (device timestamps ``ts_ms``) into batch ``batch_id`` and store
    each one's proof path (``paths[i]`` is reading ``ids[i]``'s) in one write a reading.

    A reading that is in a batch already is never moved: :class:`StoreError` (the caller's transaction
    rolls back, nothing is closed)."""
    if not len(ids) == len(ts_ms) == len(paths):
        raise ValueError(f"{len(ids)} readings, {len(ts_ms)} timestamps and {len(paths)} proof paths")
    if conn.dialect.name == "postgresql":
        moved = 0
        for i in range(0, len(ids), 10_000):
            moved += conn.execute(
                _ASSIGN_PG,
                {
                    "batch": batch_id,
                    "ids": ids[i : i + 10_000],
                    "ts": ts_ms[i : i + 10_000],
                    "paths": paths[i : i + 10_000],
                },
            ).rowcount
    else:
        # one statement a chunk (UPDATE ... FROM VALUES): the batch's rows are written under SQLite's one
        # write lock, which the ingest writer waits for. Row by row, each row a step that gives up the
        # GIL and waits to take it back from the busy event loop, held it about 0.4 s for 8,800
        # readings while 200 devices submitted (issue 17.3)
        chunk = _sqlite_assign_chunk(conn)
        if chunk is None:  # an SQLite without UPDATE ... FROM (before 3.33): row by row
            moved = conn.exec_driver_sql(
                _ASSIGN_SQLITE_ROW, [(batch_id, p, i) for i, p in zip(ids, paths, strict=True)]
            ).rowcount
        else:
            moved = 0
            for i in range(0, len(ids), chunk):
                params: list[object] = [batch_id]
                for row in zip(ids[i : i + chunk], paths[i : i + chunk], strict=True):
                    params.extend(row)
                n = (len(params) - 1) // 2
                moved += conn.exec_driver_sql(_assign_sqlite_sql(n), tuple(params)).rowcount
    if moved != len(ids):
        raise StoreError(
            f"{len(ids) - moved} of the {len(ids)} readings of batch {batch_id} are in another batch "
            "already: the batch is not closed"
        )


def close_in_steps(
    engine: Engine,
    fence: Callable[[Connection], None],
    tree: EncodedTree,
    ids: list[int],
    ts_ms: list[int],
    *,
    oldest_ms: int,
    now: int,
) -> int:
    """Close a batch of the waiting readings ``ids`` (SQLite) in steps of :data:`CLOSE_STEP`, each its own
    write transaction through the write gate (the module docstring): the batch row and the first step,
    then the others, the last one making the batch due (:func:`closing_done`). ``fence`` is called in
    each. The batch's id; an exception leaves it closing, for :func:`undo_unfinished`."""
    closing = len(ids) > CLOSE_STEP
    batch_id = 0
    for i in range(0, len(ids), CLOSE_STEP):
        with write_gate(engine), engine.begin() as conn:
            fence(conn)
            if i == 0:
                batch_id = insert_closed(
                    conn,
                    root=tree.root,
                    nodes=tree.nodes,
                    count=len(ids),
                    oldest_ms=oldest_ms,
                    now=now,
                    closing=closing,
                )
            part = slice(i, i + CLOSE_STEP)
            assign_with_paths(conn, ids[part], ts_ms[part], tree.paths[part], batch_id)
            if closing and i + CLOSE_STEP >= len(ids):
                closing_done(conn, batch_id)
    return batch_id
