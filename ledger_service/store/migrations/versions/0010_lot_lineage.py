"""lot lineage mirror: lots, lineage edges (both directions indexed), quality verdicts and recall notices,
for tracing (issue 15)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 14:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _text(n: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=n)


def upgrade() -> None:
    op.create_table(
        "lot_mirror",
        sa.Column("key", _text(66), nullable=False),
        sa.Column("lot_id", _text(256), nullable=False),
        sa.Column("issuer", _text(42), nullable=False),
        sa.Column("supplier", _text(42), nullable=False),
        sa.Column("custodian", _text(42), nullable=False),
        sa.Column("gtin", sa.BigInteger(), nullable=False),
        sa.Column("quantity", _text(80), nullable=False),
        sa.Column("unit", _text(32), nullable=False),
        sa.Column("status", _text(16), nullable=False),
        sa.Column("parent_key", _text(66), nullable=True),
        sa.Column("produced_by", sa.BigInteger(), nullable=True),
        sa.Column("opened_block", sa.BigInteger(), nullable=False),
        sa.Column("recall_notice", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "lot_edges",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("parent_key", _text(66), nullable=False),
        sa.Column("child_key", _text(66), nullable=False),
        sa.Column("kind", _text(16), nullable=False),
        sa.Column("transformation_id", sa.BigInteger(), nullable=True),
        sa.Column("quantity", _text(80), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("parent_key", "child_key", name="uq_lot_edges_pair"),
    )
    op.create_index("ix_lot_edges_child", "lot_edges", ["child_key", "parent_key"], unique=False)
    op.create_table(
        "lot_verdicts",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("lot_key", _text(66), nullable=False),
        sa.Column("verdict", _text(16), nullable=False),
        sa.Column("spec_version", sa.Integer(), nullable=False),
        sa.Column("reason", _text(32), nullable=True),
        sa.Column("by", _text(42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("block_number", "log_index", name="uq_lot_verdicts_log"),
    )
    op.create_index("ix_lot_verdicts_lot", "lot_verdicts", ["lot_key"], unique=False)
    op.create_table(
        "recall_notices",
        sa.Column("notice_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_key", _text(66), nullable=False),
        sa.Column("by", _text(42), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("reason_hash", _text(66), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("flagged", sa.BigInteger(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("notice_id"),
    )


def downgrade() -> None:
    op.drop_table("recall_notices")
    op.drop_index("ix_lot_verdicts_lot", table_name="lot_verdicts")
    op.drop_table("lot_verdicts")
    op.drop_index("ix_lot_edges_child", table_name="lot_edges")
    op.drop_table("lot_edges")
    op.drop_table("lot_mirror")
