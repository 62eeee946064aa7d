"""yield windows: each line's operating-window sets by version, and the live check's tallies and breach
samples (issue 16.3)

Revision ID: 0014_yield_windows
Revises: 0013_enrollment_state
Create Date: 2026-12-07 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014_yield_windows"
down_revision: str | None = "0013_enrollment_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(n: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=n)


def upgrade() -> None:
    op.create_table(
        "yield_window_sets",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("factory", _text(42), nullable=False),
        sa.Column("line_id", _text(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("commitment", _text(66), nullable=False),
        sa.Column("yield_commitment", _text(66), nullable=False),
        sa.Column("set_json", sa.Text(), nullable=False),
        sa.Column("from_reading_id", sa.BigInteger(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("commitment"),
        sa.UniqueConstraint("factory", "line_id", "version", name="uq_yield_window_sets_version"),
    )
    op.create_table(
        "window_tallies",
        sa.Column("set_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("parameter", _text(64), nullable=False),
        sa.Column("checked", sa.BigInteger(), nullable=False),
        sa.Column("outside", sa.BigInteger(), nullable=False),
        sa.Column("last_breach_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_breach_digest", sa.LargeBinary(length=32), nullable=True),
        sa.PrimaryKeyConstraint("set_id", "parameter"),
    )
    op.create_table(
        "window_breaches",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("set_id", sa.BigInteger(), nullable=False),
        sa.Column("parameter", _text(64), nullable=False),
        sa.Column("reading_id", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("device_id", _text(64), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_window_breaches_set", "window_breaches", ["set_id", "parameter", "reading_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_window_breaches_set", table_name="window_breaches")
    op.drop_table("window_breaches")
    op.drop_table("window_tallies")
    op.drop_table("yield_window_sets")
