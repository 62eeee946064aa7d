"""analytics results with their commitments

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 18:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_results",
        sa.Column("commitment", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("commitment_json", sa.Text(), nullable=False),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("commitment"),
    )
    op.create_index(op.f("ix_analytics_results_kind"), "analytics_results", ["kind"], unique=False)
    op.create_index(op.f("ix_analytics_results_subject"), "analytics_results", ["subject"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_analytics_results_subject"), table_name="analytics_results")
    op.drop_index(op.f("ix_analytics_results_kind"), table_name="analytics_results")
    op.drop_table("analytics_results")
