"""One service instance per SQLite database: an OS file lock beside the database file.

SQLite is the embedded, single-instance store. :func:`lock_for` takes an exclusive ``flock`` on
``<database>.instance.lock`` for as long as the service runs; a second ``supet serve`` (or a second
service in the same process) on the same file is refused with :class:`InstanceLockedError` before it
writes anything. The kernel drops the lock when the holder's file is closed, so a SIGKILLed instance
never blocks its restart. In-memory SQLite and PostgreSQL are not locked: several instances share one
PostgreSQL database.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy.engine import make_url

from ledger_service.errors import InstanceLockedError

#: Appended to the database file's name for its lock file.
LOCK_SUFFIX = ".instance.lock"


def sqlite_file(database_url: str) -> Path | None:
    """The database file of a SQLite URL; ``None`` for in-memory SQLite and for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return None
    name = url.database or ""
    if name in ("", ":memory:") or name.startswith("file::memory:") or "mode=memory" in name:
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(name.removeprefix("file:").split("?", 1)[0])


class InstanceLock:
    """An exclusive lock on ``path`` (the lock file), held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, path: Path, database: Path) -> None:
        self.path = path
        self.database = database
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`InstanceLockedError` at once if another instance holds it."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise InstanceLockedError(_refusal(self.database, holder)) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (closing the file releases it); a no-op when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        self.release()


def lock_for(database_url: str) -> InstanceLock | None:
    """The instance lock of ``database_url``, acquired; ``None`` where no lock is needed.

    Raises :class:`InstanceLockedError` when another instance serves the same SQLite file.
    """
    database = sqlite_file(database_url)
    if database is None:
        return None
    lock = InstanceLock(database.with_name(database.name + LOCK_SUFFIX), database)
    lock.acquire()
    return lock


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


def _refusal(database: Path, holder: str) -> str:
    by = f" (process {holder})" if holder else ""
    return (
        f"another supet serve instance{by} already serves the SQLite database {database}: SQLite is the "
        "embedded single-instance store, so a second instance on it is refused. Stop the running one "
        "first, or, to run several instances, use PostgreSQL: "
        "SUPET_DATABASE_URL=postgresql://user:password@host:5432/supet (docs/deployment.md)"
    )
