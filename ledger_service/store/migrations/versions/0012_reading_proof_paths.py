"""reading proof paths: each reading's path in its batch's tree, stored when the batch is closed, so a
proof is one row read (issue 17.3); filled here for every batch already closed, from its stored tree

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from device_attestation.merkle import leaf_hash

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NODE = 32


def _paths(nodes: bytes, digests: list[bytes]) -> list[bytes]:
    """Each digest's proof path, from the batch's stored node array (root first, leaves at the end in
    descending order); refuses a tree that does not hold one of the digests (a corrupt store)."""
    size = len(nodes) // _NODE
    index = {nodes[i * _NODE : (i + 1) * _NODE]: i for i in range((size - 1) // 2, size)}
    out = []
    for d in digests:
        i = index.get(leaf_hash(d))
        if i is None:
            raise RuntimeError(f"reading 0x{d.hex()} is not in its batch's stored tree: the store is corrupt")
        path = []
        while i > 0:
            s = i + 1 if i % 2 else i - 1
            path.append(nodes[s * _NODE : (s + 1) * _NODE])
            i = (i - 1) // 2
        out.append(b"".join(path))
    return out


def upgrade() -> None:
    op.add_column("readings", sa.Column("proof_path", sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    readings = sa.table(
        "readings",
        sa.column("id", sa.BigInteger),
        sa.column("digest", sa.LargeBinary),
        sa.column("batch_id", sa.BigInteger),
        sa.column("proof_path", sa.LargeBinary),
    )
    batches = sa.table("batches", sa.column("id", sa.BigInteger), sa.column("tree", sa.LargeBinary))
    set_path = (
        sa.update(readings)
        .where(readings.c.id == sa.bindparam("rid"))
        .values(proof_path=sa.bindparam("path"))
    )
    for (batch_id,) in conn.execute(sa.select(batches.c.id).order_by(batches.c.id)).all():
        nodes = bytes(conn.execute(sa.select(batches.c.tree).where(batches.c.id == batch_id)).scalar_one())
        rows = conn.execute(
            sa.select(readings.c.id, readings.c.digest).where(readings.c.batch_id == batch_id)
        ).all()
        if not rows:
            continue
        paths = _paths(nodes, [bytes(d) for _, d in rows])
        conn.execute(set_path, [{"rid": rid, "path": p} for (rid, _), p in zip(rows, paths, strict=True)])


def downgrade() -> None:
    with op.batch_alter_table("readings") as batch:
        batch.drop_column("proof_path")
