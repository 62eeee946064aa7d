"""The readings table partitioned by time on PostgreSQL (issue 17.4): one partition a calendar month
(UTC) of the device's timestamp ``ts_ms``, and a default partition for what falls outside them.

Why ``ts_ms``: it is the time auditors, analytics and retention ask by ("the readings of March"), and
readings arrive close to it (``SUPET_LATE_WINDOW_MS``, 7 days, and ``SUPET_MAX_FUTURE_SKEW_MS`` bound the
difference), so nearly every write goes to the newest partition or the one before it, and an old month
can be detached, archived or dropped as a whole.

What partitioning changes in the schema (PostgreSQL only; SQLite keeps the models' plain table):

- every unique index of a partitioned table must hold the partition key, so the primary key is
  ``(id, ts_ms, device_id)``, and ``digest`` and ``(device_id, seq)`` are unique together with
  ``ts_ms`` and ``device_id`` (each index leads with the columns it is looked up by). Device id is in
  every unique index too, so the table can be distributed by device (``citus.py``).
- a ``(device_id, seq)`` stored twice with two timestamps is therefore no longer refused by an index.
  It never was the index that refused it: the committer decides under the device's ``device_heads``
  row, and a reading stored with another digest is an equivocation it refuses before inserting.

Partitions are made ahead: :func:`ensure_reading_partitions` creates the months from the current one
to ``ahead`` months on (idempotent); the migration calls it, and so does every service start
(:func:`ledger_service.store.engine.create_schema`). A month that has rows in the default partition
already (the service ran past its partitions) is created by moving them out first, in one transaction.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, text
from sqlalchemy.sql.schema import SchemaItem

__all__ = [
    "DEFAULT_PARTITION",
    "MonthPartition",
    "ensure_reading_partitions",
    "include_in_autogenerate",
    "month_of",
    "reading_partitions",
    "readings_partitioned",
]

#: The partition of readings outside every month partition.
DEFAULT_PARTITION = "readings_default"


@dataclass(frozen=True, order=True)
class MonthPartition:
    """One month's partition: ``ts_ms`` in ``[start_ms, end_ms)``."""

    year: int
    month: int

    @property
    def name(self) -> str:
        return f"readings_{self.year:04d}_{self.month:02d}"

    @property
    def start_ms(self) -> int:
        return int(datetime(self.year, self.month, 1, tzinfo=UTC).timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.next().start_ms

    def next(self) -> MonthPartition:
        return MonthPartition(self.year + self.month // 12, self.month % 12 + 1)


def month_of(ts_ms: int) -> MonthPartition:
    """The month (UTC) holding ``ts_ms``."""
    d = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return MonthPartition(d.year, d.month)


def readings_partitioned(conn: Connection) -> bool:
    """Whether ``readings`` is a partitioned table here (PostgreSQL after migration 0018)."""
    if conn.dialect.name != "postgresql":
        return False
    found = conn.execute(
        text(
            "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "WHERE c.relname = 'readings' AND c.relnamespace = current_schema()::regnamespace"
        )
    ).first()
    return found is not None


def reading_partitions(conn: Connection) -> list[str]:
    """The names of the readings table's partitions, sorted (the default one included)."""
    rows = conn.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings' "
            "AND p.relnamespace = current_schema()::regnamespace ORDER BY c.relname"
        )
    )
    return [r[0] for r in rows]


def ensure_reading_partitions(
    target: Engine | Connection, *, now_ms: int | None = None, ahead: int = 2, since_ms: int | None = None
) -> list[str]:
    """Create the missing month partitions from ``since_ms``'s month (default: now's) to ``ahead`` months
    after now's; the names created. A no-op where ``readings`` is not partitioned (SQLite)."""
    if isinstance(target, Engine):
        with target.begin() as conn:
            return ensure_reading_partitions(conn, now_ms=now_ms, ahead=ahead, since_ms=since_ms)
    conn = target
    if not readings_partitioned(conn):
        return []
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    month = month_of(min(now, since_ms) if since_ms is not None else now)
    last = month_of(now)
    for _ in range(ahead):
        last = last.next()
    existing = set(reading_partitions(conn))
    created = []
    while month <= last:
        if month.name not in existing:
            _create_month(conn, month)
            created.append(month.name)
        month = month.next()
    return created


def _create_month(conn: Connection, month: MonthPartition) -> None:
    """Create ``month``'s partition; rows of it that went to the default partition are moved into it."""
    bounds = {"lo": month.start_ms, "hi": month.end_ms}
    # Serialise with concurrent creators (several instances starting at once) and with inserts into
    # the default partition while its rows move.
    conn.execute(text("LOCK TABLE readings IN SHARE ROW EXCLUSIVE MODE"))
    if month.name in set(reading_partitions(conn)):
        return
    stray = conn.execute(
        text(f"SELECT 1 FROM {DEFAULT_PARTITION} WHERE ts_ms >= :lo AND ts_ms < :hi LIMIT 1"), bounds
    ).first()
    if stray is None:
        conn.execute(
            text(
                f"CREATE TABLE {month.name} PARTITION OF readings "
                f"FOR VALUES FROM ({month.start_ms}) TO ({month.end_ms})"
            )
        )
        return
    conn.execute(text(f"CREATE TABLE {month.name} (LIKE readings INCLUDING DEFAULTS)"))
    conn.execute(
        text(
            f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE ts_ms >= :lo AND ts_ms < :hi "
            f"RETURNING *) INSERT INTO {month.name} SELECT * FROM moved"
        ),
        bounds,
    )
    conn.execute(
        text(
            f"ALTER TABLE readings ATTACH PARTITION {month.name} "
            f"FOR VALUES FROM ({month.start_ms}) TO ({month.end_ms})"
        )
    )


_PARTITION_NAME = re.compile(r"^readings_([0-9]{4}_[0-9]{2}|default)$")
#: The unique constraints of ``readings`` whose columns differ between the two forms of the table.
_WIDENED = {"readings_digest_key", "uq_readings_device_seq"}

IncludeObject = Callable[[SchemaItem, str | None, str, bool, SchemaItem | None], bool]


def include_in_autogenerate(dialect: str) -> IncludeObject:
    """Alembic's ``include_object`` for a database of ``dialect``. On PostgreSQL it leaves out what
    partitioning adds and the models do not declare (the partitions and their indexes), and the two
    unique constraints it widens by ``ts_ms`` and ``device_id`` (``tests/ledger_service/test_migrations.py``
    checks those itself). Elsewhere it includes everything."""

    def include(
        obj: SchemaItem, name: str | None, type_: str, reflected: bool, _other: SchemaItem | None
    ) -> bool:
        if dialect != "postgresql":
            return True
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        if table is not None and _PARTITION_NAME.match(table):
            return False
        if type_ == "unique_constraint" and table == "readings":
            columns = {c.name for c in getattr(obj, "columns", [])}
            return not (name in _WIDENED or (not reflected and columns == {"digest"}))
        return True

    return include
