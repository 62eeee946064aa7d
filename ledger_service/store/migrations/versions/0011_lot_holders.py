"""lot holders: every party that held a lot, now or before, for the recall notices a holder sees
(issue 15); the lot mirror is rebuilt from the chain to fill it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(n: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=n)


def upgrade() -> None:
    op.create_table(
        "lot_holders",
        sa.Column("lot_key", _text(66), nullable=False),
        sa.Column("party", _text(42), nullable=False),
        sa.PrimaryKeyConstraint("lot_key", "party"),
    )
    op.create_index("ix_lot_holders_party", "lot_holders", ["party", "lot_key"], unique=False)
    # the mirror is the chain's, rebuilt from it: forget how far it went so the next sync replays every
    # event and fills the holders (the recall reasons kept by the service stay)
    op.execute("DELETE FROM lot_edges")
    op.execute("DELETE FROM lot_verdicts")
    op.execute("DELETE FROM lot_mirror")
    op.execute("DELETE FROM meta WHERE key = 'lot_mirror_block'")


def downgrade() -> None:
    op.drop_index("ix_lot_holders_party", table_name="lot_holders")
    op.drop_table("lot_holders")
