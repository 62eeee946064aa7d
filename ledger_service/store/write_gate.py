"""One in-process gate for the big SQLite writers: the ingest writer's group commits and the steps of a
batch close (issue 17.3).

SQLite has one write lock per database. A writer that finds it taken waits in SQLite's busy handler,
which sleeps 1, 2, 5, 10, 15, 20, 25, ... ms between attempts: the ingest writer, arriving just
after a batch close's step began, slept 15-90 ms although the step held the lock for a few. Writers
of one process that take this gate first wait on a Python lock instead, and the next one runs as
soon as the previous one committed. Other writers (status updates, the registry mirror) are short
and still meet the busy handler. On PostgreSQL (no database-wide write lock) the gate is open.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator

from sqlalchemy import Engine

__all__ = ["write_gate"]

_gates: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
_gates_lock = threading.Lock()


@contextlib.contextmanager
def write_gate(engine: Engine) -> Iterator[None]:
    """Hold ``engine``'s gate (SQLite) for a write transaction and its commit; open elsewhere."""
    if engine.dialect.name != "sqlite":
        yield
        return
    gate = _gates.get(engine)
    if gate is None:
        with _gates_lock:
            gate = _gates.setdefault(engine, threading.Lock())
    with gate:
        yield
