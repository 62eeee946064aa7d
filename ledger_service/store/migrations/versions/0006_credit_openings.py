"""credit openings: each published credit record with its salt, kept off chain (issue 14)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_openings",
        sa.Column("record_commitment", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("factory", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("oracle", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("record_index", sa.BigInteger(), nullable=True),
        sa.Column("analytics_commitment", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("opening_json", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("record_commitment"),
    )
    op.create_index(
        "ix_credit_openings_factory", "credit_openings", ["factory", "oracle", "record_index"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_credit_openings_factory", table_name="credit_openings")
    op.drop_table("credit_openings")
