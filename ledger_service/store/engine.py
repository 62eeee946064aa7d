"""Engine creation: SQLite (WAL, full fsync) by default, PostgreSQL by URL.

Pooled connections are not pinged with a ``SELECT 1`` at every checkout (``pool_pre_ping``: one more
statement, and on PostgreSQL one more round trip and backend wake-up, on every request):

- **SQLite** connections are to a local file and cannot be dropped by a server: nothing to check.
- **PostgreSQL**: a connection whose backend ended (``pg_terminate_backend``, a server restart, an
  idle-session timeout) is closed by the server, which first sends the error that says so: its socket
  becomes readable. :func:`_check_pg_connection` runs at each checkout and looks at the socket, without
  blocking and without a round trip; only when something is waiting there (or libpq already saw the
  connection fail) does it ping, and a connection that does not answer is replaced by a fresh one
  before anyone uses it, and every older connection of the pool at its next checkout (the pool's
  ``InvalidatePoolError`` protocol), as a failed ``pool_pre_ping`` did. A connection that breaks
  while in use is, as before, invalidated with every older one of its pool.

  What the socket does not show is a connection cut silently (no FIN or RST ever arrives): the ping
  hung on it until TCP gave up and then reconnected; now the first statement hangs as long and then
  fails (and invalidates the pool), as any statement on a connection that breaks in use.
"""

from __future__ import annotations

import select
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import InvalidatePoolError, SQLAlchemyError
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


def _socket_quiet(fd: int) -> bool:
    """Whether nothing is waiting to be read on ``fd`` (no data, no end of stream), without blocking."""
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return not poller.poll(0)


def _check_pg_connection(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
    """At checkout: a PostgreSQL connection the server ended is replaced before use (module docstring).

    An idle connection gets nothing from the server unless its session ended (or, rarely, an
    asynchronous notice): a quiet socket and a healthy libpq state need no ping.
    """
    try:
        if not dbapi_conn.closed and not dbapi_conn.broken and _socket_quiet(dbapi_conn.fileno()):
            return
        with dbapi_conn.cursor() as cur:  # something arrived: a real ping tells a notice from an end
            cur.execute("SELECT 1")
            cur.fetchall()
        dbapi_conn.rollback()  # the ping's own transaction: the connection is handed out idle
    except Exception as e:  # any failure here means: do not hand this connection out
        raise InvalidatePoolError(f"pooled PostgreSQL connection is gone: {e}") from e


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the project's durability settings."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    parsed = make_url(url)
    psycopg3 = parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() == "psycopg"
    # another driver keeps the generic SELECT 1 at every checkout
    engine = create_engine(url, pool_pre_ping=not psycopg3, pool_size=10, max_overflow=10)
    if psycopg3:
        event.listen(engine, "checkout", _check_pg_connection)
    return engine


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
