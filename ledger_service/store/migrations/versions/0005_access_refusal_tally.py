"""refused credit queries of non-admitted parties: a bounded, non-anchored tally per factory and hour

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "access_refusal_tally",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("factory", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("window_ms", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("first_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_party", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("last_request_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("factory", "window_ms", "reason", name="uq_access_refusal_tally_key"),
    )
    op.create_index("ix_access_refusal_tally_window", "access_refusal_tally", ["window_ms"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_access_refusal_tally_window", table_name="access_refusal_tally")
    op.drop_table("access_refusal_tally")
