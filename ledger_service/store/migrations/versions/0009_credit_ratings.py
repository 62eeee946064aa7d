"""credit ratings: each re-rated record's grade, the grade before and the reason, off chain (issue 15)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-18 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credit_ratings",
        sa.Column("record_commitment", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("previous_record_commitment", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("factory", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("record_index", sa.BigInteger(), nullable=True),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("previous_grade", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changes_json", sa.Text(), nullable=False),
        sa.Column("profile_commitment", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("assessment_commitment", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("basis_json", sa.Text(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("tx_hash", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("published_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("record_commitment"),
        sa.UniqueConstraint("previous_record_commitment", name="uq_credit_ratings_previous"),
    )
    op.create_index("ix_credit_ratings_factory", "credit_ratings", ["factory", "created_ms"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_credit_ratings_factory", table_name="credit_ratings")
    op.drop_table("credit_ratings")
