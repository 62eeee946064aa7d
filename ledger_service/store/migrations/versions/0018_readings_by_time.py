"""readings partitioned by time on PostgreSQL: by month of the device's timestamp ``ts_ms``, with a
default partition; the rows of a populated store are moved into their months (issue 17.4;
``ledger_service/store/partitions.py`` says why and what changes). SQLite: nothing changes.

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-07 17:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger_service.store.partitions import DEFAULT_PARTITION, ensure_reading_partitions

revision: str = "0018"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = """
    id bigint NOT NULL DEFAULT nextval('readings_id_seq'::regclass),
    digest bytea NOT NULL,
    device_id varchar(64) NOT NULL,
    seq bigint NOT NULL,
    ts_ms bigint NOT NULL,
    lot_id varchar(64),
    scheme varchar(16) NOT NULL,
    signature bytea NOT NULL,
    reading_json text NOT NULL,
    received_ms bigint NOT NULL,
    source varchar(8) NOT NULL,
    gap_first bigint,
    gap_last bigint,
    batch_id integer,
    proof_path bytea
"""

#: The secondary indexes both forms of the table have (names and columns as the models declare them).
_INDEXES = (
    ("ix_readings_batch", "batch_id"),
    ("ix_readings_pending", "batch_id, id"),
    ("ix_readings_lot_anchoring", "lot_id, batch_id, id"),
    ("ix_readings_device_anchoring", "device_id, batch_id, id"),
)


def _swap(create: str) -> None:
    """Put the table aside (its sequence kept, its names freed) and create ``readings`` anew as
    ``create`` (a CREATE TABLE readings statement); :func:`_finish` copies the rows over."""
    op.execute("ALTER SEQUENCE readings_id_seq OWNED BY NONE")
    op.execute("ALTER TABLE readings RENAME TO readings_before")
    for name, _ in _INDEXES:
        op.execute(f"ALTER INDEX IF EXISTS {name} RENAME TO {name}_before")
    for name in ("readings_pkey", "readings_digest_key", "uq_readings_device_seq", "readings_batch_id_fkey"):
        op.execute(f"ALTER TABLE readings_before RENAME CONSTRAINT {name} TO {name}_before")
    op.execute(create)


def _finish(constraints: list[str]) -> None:
    """Copy the rows over in id order, drop the old table, then add ``constraints``, the secondary
    indexes and the foreign key (after the copy: one index build each, not one insert each)."""
    op.execute("INSERT INTO readings SELECT * FROM readings_before ORDER BY id")
    op.execute("DROP TABLE readings_before")
    op.execute("ALTER SEQUENCE readings_id_seq OWNED BY readings.id")
    for statement in constraints:
        op.execute(statement)
    for name, columns in _INDEXES:
        op.execute(f"CREATE INDEX {name} ON readings ({columns})")
    op.execute(
        "ALTER TABLE readings ADD CONSTRAINT readings_batch_id_fkey "
        "FOREIGN KEY (batch_id) REFERENCES batches (id)"
    )
    op.execute("ANALYZE readings")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    oldest = bind.execute(sa.text("SELECT min(ts_ms) FROM readings")).scalar()
    _swap(f"CREATE TABLE readings ({_COLUMNS}) PARTITION BY RANGE (ts_ms)")
    op.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF readings DEFAULT")
    ensure_reading_partitions(bind, since_ms=int(oldest) if oldest is not None else None)
    _finish(
        [
            "ALTER TABLE readings ADD CONSTRAINT readings_pkey PRIMARY KEY (id, ts_ms, device_id)",
            "ALTER TABLE readings ADD CONSTRAINT readings_digest_key UNIQUE (digest, ts_ms, device_id)",
            "ALTER TABLE readings ADD CONSTRAINT uq_readings_device_seq UNIQUE (device_id, seq, ts_ms)",
        ]
    )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _swap(f"CREATE TABLE readings ({_COLUMNS})")
    _finish(
        [
            "ALTER TABLE readings ADD CONSTRAINT readings_pkey PRIMARY KEY (id)",
            "ALTER TABLE readings ADD CONSTRAINT readings_digest_key UNIQUE (digest)",
            "ALTER TABLE readings ADD CONSTRAINT uq_readings_device_seq UNIQUE (device_id, seq)",
        ]
    )
