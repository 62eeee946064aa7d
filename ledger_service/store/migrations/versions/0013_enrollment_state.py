"""enrollment state in the database: open proof-of-possession challenges and prepared enrollments, shared by
every instance on the database and kept over a restart (issue 17)

Revision ID: 0013_enrollment_state
Revises: 0012
Create Date: 2026-12-07 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0013_enrollment_state"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "enrollment_challenges",
        sa.Column("nonce", sa.LargeBinary(length=32), nullable=False),
        sa.Column("party", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("audience", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("issued_s", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("nonce"),
    )
    op.create_index("ix_enrollment_challenges_party", "enrollment_challenges", ["party", "expires_ms"])
    op.create_index("ix_enrollment_challenges_expires", "enrollment_challenges", ["expires_ms"])
    op.create_table(
        "prepared_enrollments",
        sa.Column("party", sqlmodel.sql.sqltypes.AutoString(length=42), nullable=False),
        sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("scheme", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("fn_name", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("cert_fingerprint", sa.LargeBinary(length=32), nullable=False),
        sa.Column("ca_key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("active_from_ms", sa.BigInteger(), nullable=False),
        sa.Column("prepared_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("party", "device_id"),
    )
    op.create_index("ix_prepared_enrollments_expires", "prepared_enrollments", ["expires_ms"])


def downgrade() -> None:
    op.drop_index("ix_prepared_enrollments_expires", table_name="prepared_enrollments")
    op.drop_table("prepared_enrollments")
    op.drop_index("ix_enrollment_challenges_expires", table_name="enrollment_challenges")
    op.drop_index("ix_enrollment_challenges_party", table_name="enrollment_challenges")
    op.drop_table("enrollment_challenges")
