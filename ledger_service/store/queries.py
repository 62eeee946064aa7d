"""Queries of the store shared by the services (issue 13: each was written several times).

- the anchored readings: readings joined with their batch where that batch is anchored on chain
  (:func:`anchored_batch_of_reading`, :func:`anchored_readings`);
- a batch's digests in tree order (:func:`batch_digests`), from which its stored tree is decoded;
- a row written whether or not it exists, safely from several instances at once (:func:`upsert`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, SQLModel, col

from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import BatchRow, ReadingRow

__all__ = ["anchored_batch_of_reading", "anchored_readings", "batch_digests", "upsert"]


def anchored_batch_of_reading() -> ColumnElement[bool]:
    """The join condition of a reading and its batch, the batch anchored on chain (status anchored,
    with its chain batch id). Use it in an outer join to keep the readings not anchored yet."""
    return and_(
        col(BatchRow.id) == col(ReadingRow.batch_id),
        col(BatchRow.status) == BatchStatus.ANCHORED,
        col(BatchRow.chain_batch_id).is_not(None),
    )


def anchored_readings(*columns: Any) -> Select[Any]:
    """``SELECT columns FROM readings JOIN batches`` on :func:`anchored_batch_of_reading`: only
    anchored readings, their batch's columns at hand. Add the ``where`` of the readings wanted."""
    return select(*columns).select_from(ReadingRow).join(BatchRow, anchored_batch_of_reading())


def batch_digests(db: Session | Connection, batch_id: int) -> list[bytes]:
    """The digests of store batch ``batch_id``, in tree order (the readings' insertion order)."""
    rows = db.execute(
        select(col(ReadingRow.digest))
        .where(col(ReadingRow.batch_id) == batch_id)
        .order_by(col(ReadingRow.id))
    )
    return [bytes(d) for (d,) in rows]


def upsert(db: Session | Connection, model: type[SQLModel], values: dict[str, Any], *keys: str) -> None:
    """Insert ``values`` as a row of ``model``, or update the row with the same ``keys`` to them: one
    statement (``INSERT ... ON CONFLICT DO UPDATE``, SQLite and PostgreSQL), so two instances writing
    the same row at once both succeed, where a read-then-insert (``Session.merge``) lets one fail on
    the key."""
    table = model.__table__  # type: ignore[attr-defined]
    dialect = db.get_bind().dialect.name if isinstance(db, Session) else db.dialect.name
    make = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = make(table).values(**values)
    changes = {k: statement.excluded[k] for k in values if k not in keys}
    db.execute(
        statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
        if changes
        else statement.on_conflict_do_nothing(index_elements=list(keys))
    )
