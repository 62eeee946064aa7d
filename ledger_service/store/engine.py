"""Engine creation: SQLite (WAL, full fsync) by default, PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from ledger_service.errors import StoreError
from ledger_service.store import models  # noqa: F401 - registers the tables


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk (WAL fsynced) before it returns, so an acknowledged reading
    # survives a power cut, not only a process crash.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the project's durability settings."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, pool_pre_ping=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def create_schema(engine: Engine) -> None:
    """Bring the schema to the newest version (Alembic migrations), and make the readings partitions
    of the coming months where readings are partitioned (PostgreSQL)."""
    from ledger_service.store.migrations import upgrade
    from ledger_service.store.partitions import ensure_reading_partitions

    try:
        upgrade(engine)
        ensure_reading_partitions(engine)  # PostgreSQL: this month's and the next ones' partitions
    except SQLAlchemyError as e:
        raise StoreError(f"cannot prepare the database schema at {engine.url!r}: {e}") from e


def create_all_for_tests(engine: Engine) -> None:
    """Create the tables directly from the models (used to check migrations match the models)."""
    SQLModel.metadata.create_all(engine)
