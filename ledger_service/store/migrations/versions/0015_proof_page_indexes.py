"""proof page indexes: a device's and a lot's readings in anchoring order (batch, then store id), the
order of the bulk proof reads, so that a page is an index range scan, not a sort (issue 17.3)

Revision ID: 0015
Revises: 0014_yield_windows
Create Date: 2026-12-07 16:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014_yield_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_readings_device_anchoring", "readings", ["device_id", "batch_id", "id"])
    op.create_index("ix_readings_lot_anchoring", "readings", ["lot_id", "batch_id", "id"])
    op.drop_index("ix_readings_lot", table_name="readings")


def downgrade() -> None:
    op.create_index("ix_readings_lot", "readings", ["lot_id"])
    op.drop_index("ix_readings_lot_anchoring", table_name="readings")
    op.drop_index("ix_readings_device_anchoring", table_name="readings")
