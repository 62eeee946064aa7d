"""consent openings: each consent's (factory, bank, salt), kept off chain; the chain holds its id (issue 14)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-11 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_openings",
        sa.Column("consent_id", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("factory", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("bank", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("salt", sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consent_id"),
    )
    op.create_index("ix_consent_openings_pair", "consent_openings", ["factory", "bank"], unique=False)
    op.create_index("ix_consent_openings_bank", "consent_openings", ["bank"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_consent_openings_bank", table_name="consent_openings")
    op.drop_index("ix_consent_openings_pair", table_name="consent_openings")
    op.drop_table("consent_openings")
