"""what waits for a batch on a partial index: ``ix_readings_waiting`` (id, received_ms) over the readings
whose ``batch_id`` is NULL replaces ``ix_readings_pending`` (batch_id, id) over all of them. The
anchoring leader counts what waits (and its oldest arrival) at every step: from this index alone, of
the waiting readings' size, not by a scan of the table (issue 17). A batched reading leaves the index
(nothing is written for it), where it took a new entry in ``ix_readings_pending``.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 20:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WAITING = sa.text("batch_id IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_readings_waiting",
        "readings",
        ["id", "received_ms"],
        postgresql_where=_WAITING,
        sqlite_where=_WAITING,
    )
    op.drop_index("ix_readings_pending", table_name="readings")


def downgrade() -> None:
    op.create_index("ix_readings_pending", "readings", ["batch_id", "id"])
    op.drop_index("ix_readings_waiting", table_name="readings")
