"""The readings' batches in the store: what waits; closing a batch (its row, its readings' batch id
and proof paths)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, insert, update
from sqlmodel import Session, col, select

from ledger_service.errors import StoreError
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import BatchRow, ReadingRow

__all__ = ["assign", "assign_range", "insert_closed", "pending_count", "store_paths"]


def pending_count(s: Session) -> int:
    """How many readings wait for a batch."""
    return int(
        s.exec(select(func.count()).select_from(ReadingRow).where(col(ReadingRow.batch_id).is_(None))).one()
    )


def insert_closed(
    conn: Connection, *, root: bytes, nodes: bytes, count: int, oldest_ms: int, now: int
) -> int:
    """A new ``closed`` batch row; its id."""
    result = conn.execute(
        insert(BatchRow).values(
            root=root,
            count=count,
            tree=nodes,
            status=BatchStatus.CLOSED,
            created_ms=now,
            oldest_received_ms=oldest_ms,
            attempts=0,
            next_attempt_ms=0,
        )
    )
    assert result.inserted_primary_key is not None
    return int(result.inserted_primary_key[0])


def assign(conn: Connection, ids: list[int], batch_id: int) -> None:
    """Put the waiting readings ``ids`` into batch ``batch_id`` (in chunks: databases cap bound
    parameters). A reading that is in a batch already is never moved: :class:`StoreError` (the caller's
    transaction rolls back, nothing is closed)."""
    moved = 0
    for i in range(0, len(ids), 900):
        moved += conn.execute(
            update(ReadingRow)
            .where(col(ReadingRow.id).in_(ids[i : i + 900]), col(ReadingRow.batch_id).is_(None))
            .values(batch_id=batch_id)
        ).rowcount
    if moved != len(ids):
        raise StoreError(
            f"{len(ids) - moved} of the {len(ids)} readings of batch {batch_id} are in another batch "
            "already: the batch is not closed"
        )


def assign_range(conn: Connection, ids: list[int], batch_id: int) -> None:
    """Put the waiting readings ``ids`` (sorted) into batch ``batch_id``.

    Batches take the oldest first, so what waits is usually one id range: one UPDATE. With several
    instances committing, a reading with an id inside the range may become visible (committed) after
    ``ids`` were read: then fall back to the exact ids (that reading waits for the next batch)."""
    ranged = conn.execute(
        update(ReadingRow)
        .where(
            col(ReadingRow.batch_id).is_(None),
            col(ReadingRow.id) >= ids[0],
            col(ReadingRow.id) <= ids[-1],
        )
        .values(batch_id=batch_id)
    )
    if ranged.rowcount != len(ids):
        conn.execute(update(ReadingRow).where(col(ReadingRow.batch_id) == batch_id).values(batch_id=None))
        assign(conn, ids, batch_id)


def store_paths(conn: Connection, ids: list[int], paths: list[bytes]) -> None:
    """Store each reading's proof path in its batch's tree (``paths[i]`` is reading ``ids[i]``'s): a
    proof is then that row alone (issue 17.3)."""
    if len(ids) != len(paths):
        raise ValueError(f"{len(ids)} readings but {len(paths)} proof paths")
    conn.execute(
        update(ReadingRow)
        .where(col(ReadingRow.id) == bindparam("rid"))
        .values(proof_path=bindparam("path"))
        .execution_options(synchronize_session=False),
        [{"rid": i, "path": p} for i, p in zip(ids, paths, strict=True)],
    )
