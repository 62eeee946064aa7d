"""Distributing the store by device on a sharded PostgreSQL engine (Citus), for when one database node
is not enough (issue 17.4; docs/deployment.md, "Beyond one PostgreSQL").

The plan (:data:`PLAN`):

- **distributed by ``device_id``, colocated** (a device's rows on one shard): ``readings`` (partitioned
  by month, ``partitions.py``) and ``device_heads``. Every unique index of these holds
  ``device_id`` (Citus requires the distribution column in each), and each of their foreign keys
  points at a reference table or a colocated table through ``device_id``.
- **reference** (a copy on every node, written through the coordinator): ``batches``, the target of
  ``readings.batch_id``, a row a batch, written once a batch interval; and ``devices``, the registry's
  mirror (keyed by the device id's hash), read on every submission's check and written on enrollment.
- **local on the coordinator** (Citus local tables): every other table: evidence (``equivocations``,
  keyed by its own id, rare), nonces, tokens, analytics, the credit desk's and the lot mirror's tables.
  They are read and written per party or per lot, not per device, and are small next to readings.

:func:`check_distributable` reads a PostgreSQL schema and lists what would stop
:func:`distribution_statements` from running there; ``tests/ledger_service/test_citus_schema.py`` runs
it on the migrated schema. Citus itself is not installed on the test machines (an extension, not a
Python package), so the statements are checked against Citus's documented rules, not executed.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

__all__ = [
    "DISTRIBUTION_COLUMN",
    "PLAN",
    "DistributionPlan",
    "check_distributable",
    "distribution_statements",
]

#: The column every distributed table is sharded by.
DISTRIBUTION_COLUMN = "device_id"


@dataclass(frozen=True)
class DistributionPlan:
    """Which tables are distributed (colocated with the first), and which are reference tables."""

    distributed: tuple[str, ...]
    reference: tuple[str, ...]


PLAN = DistributionPlan(distributed=("device_heads", "readings"), reference=("batches", "devices"))


def distribution_statements(plan: DistributionPlan = PLAN) -> list[str]:
    """The SQL that distributes an existing store, run once on the Citus coordinator (after
    ``CREATE EXTENSION citus`` and adding the worker nodes), in this order."""
    statements = [f"SELECT create_reference_table('{t}')" for t in plan.reference]
    first, *rest = plan.distributed
    statements.append(f"SELECT create_distributed_table('{first}', '{DISTRIBUTION_COLUMN}')")
    statements += [
        f"SELECT create_distributed_table('{t}', '{DISTRIBUTION_COLUMN}', colocate_with => '{first}')"
        for t in rest
    ]
    return statements


def check_distributable(conn: Connection, plan: DistributionPlan = PLAN) -> list[str]:
    """What in this PostgreSQL schema stops ``plan``; empty when nothing does. Checked: each
    distributed table exists and has the distribution column; each of its unique indexes (primary key
    included, on the partitioned parent) holds the column; each of its foreign keys points at a
    reference table, or at a distributed table through the distribution column on both sides."""
    problems: list[str] = []
    distributed, reference = set(plan.distributed), set(plan.reference)
    for table in [*plan.distributed, *plan.reference]:
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is None:
            problems.append(f"{table}: no such table")
    if problems:
        return problems
    for table in plan.distributed:
        columns = set(
            conn.execute(
                text("SELECT attname FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) AND attnum > 0"),
                {"t": table},
            ).scalars()
        )
        if DISTRIBUTION_COLUMN not in columns:
            problems.append(f"{table}: has no {DISTRIBUTION_COLUMN} column")
            continue
        for name, cols in conn.execute(
            text(
                "SELECT i.relname, array_agg(a.attname) FROM pg_index x "
                "JOIN pg_class i ON i.oid = x.indexrelid "
                "JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY(x.indkey) "
                "WHERE x.indrelid = CAST(:t AS regclass) AND x.indisunique GROUP BY i.relname"
            ),
            {"t": table},
        ):
            if DISTRIBUTION_COLUMN not in cols:
                listed = ", ".join(sorted(cols))
                problems.append(f"{table}: unique index {name} ({listed}) lacks {DISTRIBUTION_COLUMN}")
        for name, target, cols, target_cols in conn.execute(
            text(
                "SELECT c.conname, c.confrelid::regclass::text, "
                "ARRAY(SELECT attname FROM pg_attribute "
                "      WHERE attrelid = c.conrelid AND attnum = ANY(c.conkey)), "
                "ARRAY(SELECT attname FROM pg_attribute "
                "      WHERE attrelid = c.confrelid AND attnum = ANY(c.confkey)) "
                "FROM pg_constraint c WHERE c.conrelid = CAST(:t AS regclass) AND c.contype = 'f'"
            ),
            {"t": table},
        ):
            if target in reference:
                continue
            if target in distributed and DISTRIBUTION_COLUMN in cols and DISTRIBUTION_COLUMN in target_cols:
                continue
            problems.append(
                f"{table}: foreign key {name} -> {target} is neither to a reference table nor through "
                f"{DISTRIBUTION_COLUMN} to a colocated table"
            )
    return problems
