"""One anchoring leader among the instances sharing a database, with a fencing token (issue 17).

Several ``supet serve`` processes may share one PostgreSQL database. Only one of them, the *leader*,
closes batches, sends them with the anchoring key and records what became of them (the readings'
anchoring worker, the access-log anchorer, the recall and re-rating workers: every worker that sends
with a key). :class:`Leadership` decides which:

- **Lock.** On PostgreSQL the leader holds a session advisory lock (``pg_try_advisory_lock``) on a
  connection of its own, outside the pool. The server releases it when that session ends, however
  the process ends: a SIGKILLed leader's lock is free as soon as the kernel has closed its socket.
  Every instance that is not the leader tries to take it at every step of its thread, every
  :func:`leader_interval` seconds (a quarter of ``SUPET_BATCH_MAX_SECONDS``, at most one second),
  so another instance leads within that time once the leader is gone.
- **Fencing token.** Each time an instance takes the lead it increments the *epoch*, kept in the
  ``meta`` row ``anchor_leader`` as ``<epoch>:<instance>``. Every store write that closes a batch,
  assigns readings to one or moves a batch's status is *fenced* (:meth:`Leadership.fence`): in the
  write's own transaction the row is read ``FOR SHARE`` and must still hold this instance's token,
  or the write is refused (:class:`NotLeaderError`) and rolled back. Taking the lead updates that
  row, so it waits for the fenced writes in flight and every later fenced write of the old leader is
  refused: a leader that lost its lock connection (a network cut, a server-side kill, a long pause)
  but still runs cannot close or record a batch once another has taken over.
- **What a new leader picks up.** The batches the old one closed and did not see anchored are in the
  store: ``closed`` ones are sent (a root the old leader's transaction anchored already is refused by
  the contract and adopted), ``submitted`` ones confirmed. The anchoring key's nonce is read fresh
  from the node (``on_acquired`` callbacks forget the cached one).
- **SQLite** serves one instance only (:mod:`ledger_service.store.instance_lock`): that instance
  leads from its start, without an advisory lock; the epoch and the fence work the same way.

The leader's state is logged (``leader.acquired``, ``leader.lost``), exported as the gauges
``supet_anchor_leader`` and ``supet_anchor_leader_epoch`` and shown by ``/readyz``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, create_engine, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlmodel import col

from ledger_service.errors import LedgerError
from ledger_service.store.models import MetaRow

__all__ = [
    "LEADER_KEY",
    "LOCK_ID",
    "LeaderState",
    "Leadership",
    "NotLeaderError",
    "leader_interval",
    "read_leader",
]

log = logging.getLogger("ledger_service.anchoring")

#: The ``meta`` row holding the fencing token: ``<epoch>:<instance>``.
LEADER_KEY = "anchor_leader"
#: The advisory lock's key: a fixed (signed) 64-bit number, the same in every instance.
LOCK_ID = 0x5E7A_1EAD_0017_0001


class NotLeaderError(LedgerError):
    """A fenced write was refused: this instance does not (or no longer) hold the anchoring lead."""

    code = "anchoring.not_leader"


def leader_interval(batch_max_seconds: float) -> float:
    """Seconds between two steps of the leadership thread: a quarter of the batch interval, within
    [0.05, 1.0], so a follower takes over well within two batch intervals of the leader's death."""
    return min(1.0, max(0.05, batch_max_seconds / 4))


def _instance_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _epoch_of(token: str | None) -> int:
    if not token:
        return 0
    head = token.split(":", 1)[0]
    return int(head) if head.isdigit() else 0


@dataclass(frozen=True, slots=True)
class LeaderState:
    """What this instance knows of the lead: whether it holds it, its epoch, since when (Unix ms)."""

    leader: bool
    epoch: int
    since_ms: int | None
    shared: bool

    def to_json_obj(self) -> dict[str, object]:
        return {"leader": self.leader, "epoch": self.epoch, "since_ms": self.since_ms, "shared": self.shared}


def read_leader(engine: Engine) -> tuple[int, str | None]:
    """The store's current (epoch, instance) of the lead; (0, None) before anyone took it."""
    with engine.connect() as conn:
        value = conn.execute(select(col(MetaRow.value)).where(col(MetaRow.key) == LEADER_KEY)).scalar()
    if value is None:
        return 0, None
    epoch, _, instance = str(value).partition(":")
    return (int(epoch) if epoch.isdigit() else 0), instance or None


class Leadership:
    """This instance's part in the choice of the anchoring leader (module docstring).

    ``shared``: the database may be shared by several instances (PostgreSQL): the lead is an advisory
    lock. Otherwise (SQLite) this instance is the only one and leads from its first step.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        interval: float,
        instance: str | None = None,
        lock_id: int = LOCK_ID,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.interval = interval
        self.instance = instance or _instance_id()
        self.lock_id = lock_id
        self.clock = clock
        self.shared = engine.dialect.name == "postgresql"
        #: Called (no arguments) right after this instance took the lead / lost it; must not raise.
        self.on_acquired: list[Callable[[], None]] = []
        self.on_lost: list[Callable[[], None]] = []
        self.last_error: str | None = None
        self._token: str | None = None
        self._since_ms: int | None = None
        self._lock_conn: Connection | None = None
        self._lock_engine: Engine | None = None
        #: Serialises steps, start and stop, and every use of the lock's connection (held across I/O).
        self._mutex = threading.RLock()
        #: Guards the token's changes only (never held across I/O: a fenced write may step down while
        #: a step waits on the ``meta`` row).
        self._state_lock = threading.Lock()
        #: Set when the lead was lost outside a step: the next step ends the lock's session first.
        self._drop_requested = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ state

    @property
    def is_leader(self) -> bool:
        return self._token is not None

    @property
    def epoch(self) -> int:
        """The epoch this instance leads in; 0 while it does not lead."""
        return _epoch_of(self._token)

    def state(self) -> LeaderState:
        token, since = self._token, self._since_ms
        return LeaderState(
            leader=token is not None, epoch=_epoch_of(token), since_ms=since, shared=self.shared
        )

    # ------------------------------------------------------------------ fencing

    def fence(self, conn: Connection) -> None:
        """Refuse the write in ``conn``'s transaction unless this instance still leads in its epoch.

        The ``meta`` row is read ``FOR SHARE`` (PostgreSQL): held to the end of the transaction, it
        makes a takeover (which updates the row) wait for this write, and this write see a takeover
        that committed before it. Raises :class:`NotLeaderError` (the caller's transaction then rolls
        back) and steps down when the token moved on."""
        token = self._token
        if token is None:
            raise NotLeaderError("this instance does not lead anchoring: the write is refused")
        found = conn.execute(
            select(col(MetaRow.value)).where(col(MetaRow.key) == LEADER_KEY).with_for_update(read=True)
        ).scalar()
        if found != token:
            self._lose(f"fenced out: the lead moved to {found!r} (this instance had {token!r})", token=token)
            raise NotLeaderError(
                f"the anchoring lead moved to epoch {_epoch_of(found)}: this instance (epoch "
                f"{_epoch_of(token)}) may not write batches any more"
            )

    # ------------------------------------------------------------------ one step

    def step(self) -> bool:
        """One step: check the lead while holding it, else try to take it. Whether this instance leads."""
        with self._mutex:
            self._drop_if_requested()
            if self._token is not None:
                self._check()
                self._drop_if_requested()
            else:
                self._try_acquire()
            return self._token is not None

    def _drop_if_requested(self) -> None:
        if self._drop_requested.is_set():
            self._drop_requested.clear()
            self._drop_lock()
            if self._lock_engine is not None:
                self._lock_engine.dispose()
                self._lock_engine = None

    def _check(self) -> None:
        """Still the leader? The lock's session must be alive and hold the lock, the token be ours.

        Without a shared database (SQLite) there is nothing to check: the instance lock makes this the
        only instance, so it leads for as long as it runs. (Reading the ``meta`` row there could fail
        only for a moment, e.g. ``database is locked`` while ingest writes, and losing the lead on
        that left the pending readings unanchored: the demo's flush refused with NotLeaderError.)"""
        if not self.shared:
            return
        token = self._token
        try:
            if self.shared:
                conn = self._lock_conn
                held = conn is not None and bool(
                    conn.execute(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                            "AND pid = pg_backend_pid() AND granted"
                        )
                    ).scalar()
                )
                if not held:
                    self._lose("the advisory lock is not held any more", token=token)
                    return
            epoch, instance = read_leader(self.engine)
            if f"{epoch}:{instance}" != token:
                self._lose(f"the store names another leader (epoch {epoch}, {instance})", token=token)
        except SQLAlchemyError as e:
            self._lose(f"the lead could not be checked: {type(e).__name__}: {e}", token=token)

    def _try_acquire(self) -> None:
        if self.shared and not self._take_lock():
            return
        try:
            token = self._bump_epoch()
        except SQLAlchemyError as e:
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("could not record the anchoring lead (%s): trying again", e)
            self._drop_lock()
            return
        with self._state_lock:
            self._token = token
            self._since_ms = int(self.clock() * 1000)
        self.last_error = None
        log.info(
            "this instance leads anchoring (epoch %d, %s)",
            _epoch_of(token),
            self.instance,
            extra={"event": "leader.acquired", "epoch": _epoch_of(token), "instance": self.instance},
        )
        for callback in self.on_acquired:
            try:
                callback()
            except Exception:  # a callback's failure must not leave the lead half-taken
                log.exception("leader.acquired callback failed")

    def _take_lock(self) -> bool:
        """Try the advisory lock on the lock's own connection (opened if need be)."""
        try:
            if self._lock_conn is None:
                if self._lock_engine is None:
                    # no pool: closing the connection really ends its session (and frees the lock)
                    self._lock_engine = create_engine(
                        self.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT"
                    )
                self._lock_conn = self._lock_engine.connect()
            got = bool(
                self._lock_conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.lock_id}).scalar()
            )
        except SQLAlchemyError as e:
            self.last_error = f"{type(e).__name__}: {e}"
            self._drop_lock()
            return False
        return got

    def _bump_epoch(self) -> str:
        """Take the next epoch in the store; the new token."""
        with self.engine.begin() as conn:
            current = conn.execute(
                select(col(MetaRow.value)).where(col(MetaRow.key) == LEADER_KEY).with_for_update()
            ).scalar()
            token = f"{_epoch_of(current) + 1}:{self.instance}"
            if current is None:
                conn.execute(insert(MetaRow).values(key=LEADER_KEY, value=token))
            else:
                conn.execute(update(MetaRow).where(col(MetaRow.key) == LEADER_KEY).values(value=token))
        return token

    def _lose(self, reason: str, *, token: str | None, level: int = logging.WARNING) -> None:
        """Step down (once per token): forget the token, have the lock's session ended (at the next step,
        or by the caller that holds ``_mutex``), tell the workers."""
        with self._state_lock:
            if token is None or self._token != token:
                return
            self._token = None
            self._since_ms = None
        self._drop_requested.set()
        self.last_error = reason
        log.log(
            level,
            "this instance no longer leads anchoring: %s",
            reason,
            extra={
                "event": "leader.lost",
                "epoch": _epoch_of(token),
                "instance": self.instance,
                "reason": reason,
            },
        )
        for callback in self.on_lost:
            try:
                callback()
            except Exception:
                log.exception("leader.lost callback failed")

    def _drop_lock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is not None:
            try:
                # unlocked explicitly first: the server frees a closed session's locks only as its
                # backend exits, a moment after close() returned
                conn.execute(text("SELECT pg_advisory_unlock_all()"))
            except SQLAlchemyError as e:  # the session is gone already, and its lock with it
                log.debug("unlocking the leader lock: %s", e)
            try:
                conn.close()  # not pooled: the session ends, the server releases the lock
            except SQLAlchemyError as e:
                log.debug("closing the leader lock's connection: %s", e)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Take a first step now (a lone instance leads at once), then step every ``interval`` s."""
        if self._thread is not None:
            return
        self.step()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="supet-leader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop stepping and give the lead up (another instance takes it at its next step)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.release()

    def release(self) -> None:
        """Give the lead up now, if held: the lock's session is ended before this returns."""
        with self._mutex:
            token = self._token
            if token is not None:
                self._lose("released (the service stops)", token=token, level=logging.INFO)
            self._drop_requested.clear()
            self._drop_lock()
            if self._lock_engine is not None:
                self._lock_engine.dispose()
                self._lock_engine = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.step()
            except Exception as e:  # keep trying: a follower must take over when the leader dies
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("leadership step failed")
