"""lot access: auditors named by a lot's holder, and lots whose evidence was disclosed (issue 14)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(n: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=n)


def upgrade() -> None:
    op.create_table(
        "lot_auditors",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("lot_key", _text(66), nullable=False),
        sa.Column("lot_id", _text(256), nullable=False),
        sa.Column("auditor", _text(42), nullable=False),
        sa.Column("named_by", _text(42), nullable=False),
        sa.Column("named_ms", sa.BigInteger(), nullable=False),
        sa.Column("withdrawn_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_lot_auditors_lot", "lot_auditors", ["lot_key", "auditor"], unique=False)
    op.create_table(
        "lot_disclosures",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("lot_key", _text(66), nullable=False),
        sa.Column("lot_id", _text(256), nullable=False),
        sa.Column("issuer", _text(42), nullable=False),
        sa.Column("disclosed_by", _text(42), nullable=False),
        sa.Column("disclosed_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lot_key", name="uq_lot_disclosures_lot"),
    )


def downgrade() -> None:
    op.drop_table("lot_disclosures")
    op.drop_index("ix_lot_auditors_lot", table_name="lot_auditors")
    op.drop_table("lot_auditors")
