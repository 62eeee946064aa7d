"""The writer: sequence rules, idempotency, equivocation, and durable commit.

Sequence rules (Reading v1: ``seq`` strictly increasing per device, never reused):

- a ``(device_id, seq)`` already stored with the same digest: the same receipt again (idempotent);
  with another digest: **equivocation**, refused and kept as evidence (once);
- above the device's highest ``seq``: accepted; skipped numbers are reported as a gap;
- below it and not stored (a late store-and-forward reading filling a gap): accepted;
- in every case the device's order must agree with its clock: a reading's ``ts_ms`` may not be
  earlier than that of a lower ``seq``, nor later than that of a higher one
  (``reading.out_of_order``): a counter running backwards against time is a broken or forged device.

Requests hand their checked submissions to one writer thread per process, which takes every
request waiting at that moment into one database transaction (group commit: one fsync for many
readings) and answers each request only after the commit.

**Several writers on one database** (several ``supet serve`` instances on PostgreSQL, issue 17):
the rules are enforced by the database, not by process memory. The transaction first locks the
``device_heads`` row of every device in the group, in one fixed order (sorted device ids, so two
writers never wait for each other in a cycle): ``INSERT ... ON CONFLICT (device_id) DO UPDATE ...
WHERE false`` creates the row of a new device and locks the row of a known one without writing it
(PostgreSQL locks a conflicting row even when the update's condition is false; SQLite takes its
database write lock at the first write). Only then does it read the heads, the stored
``(device, seq)`` pairs, the late readings' neighbours and earlier evidence: a writer that held a
device's lock committed before this one got it, so this transaction sees all of it. Two instances
therefore serialise per device, and a device's readings get the outcomes they would get, in some
order, from one instance. Nothing about a device is kept in memory between transactions.

Every database error rolls the transaction back. A unique-key violation or a PostgreSQL deadlock or
serialisation failure (possible only with a writer that does not take the head locks, such as an
older version during a rolling upgrade) is retried from the start, up to :data:`ATTEMPTS` times, and
decided again against what is then stored; any other error, or the last failed attempt, answers
every waiting submission with ``store.unavailable``: nothing is acknowledged that is not on disk.
What a submission gets back (:class:`Receipt`, the refusals) is in
:mod:`ledger_service.ingest.receipts`.
"""

from __future__ import annotations

import bisect
import ctypes
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from sqlalchemy import Connection, Engine, Insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError, StatementError

from ledger_service.errors import StoreError
from ledger_service.ingest.checks import Checked
from ledger_service.ingest.receipts import Outcome, Receipt, equivocation_refusal, out_of_order_refusal
from ledger_service.jsonio import dumps_exact
from ledger_service.store.models import DeviceHeadRow, EquivocationRow, ReadingRow
from ledger_service.store.write_gate import write_gate

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

_R = ReadingRow.__table__.c  # type: ignore[attr-defined]
_H = DeviceHeadRow.__table__.c  # type: ignore[attr-defined]
_E = EquivocationRow.__table__.c  # type: ignore[attr-defined]

#: Most submissions one transaction takes from the queue.
MAX_GROUP = 50_000

#: Times a group is tried when the database reports a unique-key violation, a deadlock or a
#: serialisation failure (see the module's docstring), before it is refused as ``store.unavailable``.
ATTEMPTS = 3

#: Device heads locked (and read) per statement.
_CHUNK = 500

#: PostgreSQL's serialization_failure and deadlock_detected: the transaction may simply be run again.
_RETRY_SQLSTATES = frozenset({"40001", "40P01"})


class Candidate(NamedTuple):
    """A checked submission handed to the writer (a named tuple: one per submission on the hot path)."""

    checked: Checked
    received_ms: int
    source: str
    raw: object


@dataclass
class _Head:
    last_seq: int
    last_ts_ms: int
    readings: int
    gaps: int
    missing: int


@dataclass
class _Txn:
    """What one group transaction has decided so far."""

    #: the group's devices' heads, read under their row locks, updated as readings are accepted
    heads: dict[str, _Head]
    stored: dict[tuple[str, int], tuple[bytes, tuple[int, int] | None]]
    fresh: dict[tuple[str, int], tuple[bytes, int, tuple[int, int] | None]]
    rows: list[tuple[object, ...]]
    evidence: list[dict[str, object]]
    evidence_seen: set[tuple[str, int, bytes]]
    touched: set[str]
    #: per device: (seqs, ts) of readings around its late fills, sorted; stored ones in the covered
    #: range and its nearest stored neighbours, plus what this transaction accepts
    near: dict[str, tuple[list[int], list[int], int, int]] = field(default_factory=dict)
    #: per device: (seqs, ts) this transaction accepted, sorted
    fresh_sorted: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)


class Committer:
    """Owns the write path of readings. Start it once; call :meth:`commit` from any thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.Queue[tuple[list[Candidate], Future[list[Outcome]]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="supet-committer", daemon=True)
        self._started = False
        #: Called after each commit with (readings stored, when they were received): the anchoring
        #: worker keeps its pending count this way instead of querying the store every tick.
        self.on_commit: Callable[[int, int], None] | None = None
        self.commits = 0
        self.committed_readings = 0
        #: Group transactions run again after a unique-key violation, deadlock or serialisation failure.
        self.retries = 0

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout)
            self._started = False

    def commit(self, candidates: list[Candidate], timeout: float = 60.0) -> list[Outcome]:
        """Store what can be stored; one outcome per candidate, in order, after the commit."""
        if not candidates:
            return []
        return self.enqueue(candidates).result(timeout=timeout)

    def enqueue(self, candidates: list[Candidate]) -> Future[list[Outcome]]:
        """Hand ``candidates`` to the writer without waiting: the future is resolved with one outcome per
        candidate, in order, once their group transaction has committed (or with the refusals when it
        failed). An event loop awaits it (``asyncio.wrap_future``) without holding a thread, so many
        concurrent single submits wait for the same group commit (issue 17.3)."""
        if not self._started:
            raise StoreError("the ledger's writer is not running: start the service before submitting")
        future: Future[list[Outcome]] = Future()
        if candidates:
            self._queue.put((candidates, future))
        else:
            future.set_result([])
        return future

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        name_native_thread("supet-committer")
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            size = len(first[0])
            while size < MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                jobs.append(nxt)
                size += len(nxt[0])
            self._process(jobs)

    def _process(self, jobs: list[tuple[list[Candidate], Future[list[Outcome]]]]) -> None:
        flat = [c for cands, _ in jobs for c in cands]
        attempt = 1
        while True:
            try:
                outcomes = self._write(flat, look_up_all=attempt > 1)
                break
            except SQLAlchemyError as e:
                if attempt < ATTEMPTS and _retryable(e):
                    log.warning(
                        "store write of %d submissions conflicted (attempt %d of %d), deciding again: %s",
                        len(flat),
                        attempt,
                        ATTEMPTS,
                        e,
                        extra={"event": "store.write_retried", "attempt": attempt, "error": str(e)[:500]},
                    )
                    self.retries += 1
                    attempt += 1
                    continue
                log.error(
                    "store write failed, %d submissions refused: %s",
                    len(flat),
                    e,
                    extra={"event": "store.write_failed", "refused": len(flat), "error": str(e)[:500]},
                )
                refusal = (
                    "store.unavailable",
                    "the ledger database is unavailable; nothing was stored: retry later",
                )
                for cands, fut in jobs:
                    fut.set_result([refusal] * len(cands))
                return
            except Exception as e:  # a bug: fail the waiting requests loudly, keep the writer alive
                log.exception("committer crashed on a group of %d", len(flat))
                for _, fut in jobs:
                    fut.set_exception(e)
                return
        pos = 0
        for cands, fut in jobs:
            fut.set_result(outcomes[pos : pos + len(cands)])
            pos += len(cands)

    def _lock_heads(self, conn: Connection, device_ids: list[str]) -> dict[str, _Head]:
        """Lock the ``device_heads`` rows of ``device_ids`` (sorted) for this transaction, creating the
        rows of new devices, then read them: what every other writer committed for these devices is
        visible from here on, and no other writer changes them before this transaction ends."""
        heads: dict[str, _Head] = {}
        # one row after the other, in this order (executemany); a plain statement: building a
        # many-row INSERT with SQLAlchemy cost more than the rest of a small group's transaction
        if conn.dialect.name == "postgresql":  # one statement, its rows taken in the array's order
            conn.exec_driver_sql(_LOCK_HEADS_PG, (device_ids,))
        else:
            conn.exec_driver_sql(_lock_heads_sql(conn), [(d,) for d in device_ids])
        # plain statements: SQLAlchemy's compilation of these cost more than the database's work for a
        # small group
        if conn.dialect.name == "postgresql":
            chunks = [conn.exec_driver_sql(_READ_HEADS_PG, (device_ids,))]
        else:
            chunks = [
                conn.exec_driver_sql(_read_heads_sql(len(part)), tuple(part))
                for part in (device_ids[i : i + _CHUNK] for i in range(0, len(device_ids), _CHUNK))
            ]
        for rows in chunks:
            for device_id, last_seq, last_ts, readings, gaps, missing_n in rows:
                heads[device_id] = _Head(last_seq, last_ts, readings, gaps, missing_n)
        return heads

    def _existing(
        self, conn: Connection, pairs: set[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[bytes, tuple[int, int] | None]]:
        found: dict[tuple[str, int], tuple[bytes, tuple[int, int] | None]] = {}
        items = list(pairs)
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            rows = conn.execute(
                select(_R.device_id, _R.seq, _R.digest, _R.gap_first, _R.gap_last).where(
                    tuple_(_R.device_id, _R.seq).in_(chunk)
                )
            )
            for device_id, seq, digest, gap_first, gap_last in rows:
                gap = (int(gap_first), int(gap_last)) if gap_first is not None else None
                found[(device_id, seq)] = (bytes(digest), gap)
        return found

    def _write(self, flat: Sequence[Candidate], *, look_up_all: bool = False) -> list[Outcome]:
        """One group transaction. ``look_up_all``: look every (device, seq) up in the store, not only
        those at or below the device's head (a retry: a writer without the head lock may have stored
        readings above it)."""
        # the gate: a batch close's step in this process goes before or after, never waits in SQLite
        with write_gate(self.engine), self.engine.begin() as conn:
            heads = self._lock_heads(conn, sorted({c.checked.device_id for c in flat}))
            # (device, seq) pairs at or below a head need a look at what is stored
            behind = {
                (c.checked.device_id, c.checked.seq)
                for c in flat
                if look_up_all or c.checked.seq <= heads[c.checked.device_id].last_seq
            }
            txn = _Txn(
                heads=heads,
                stored=self._existing(conn, behind) if behind else {},
                fresh={},
                rows=[],
                evidence=[],
                evidence_seen=set(),
                touched=set(),
            )
            self._load_neighbourhoods(conn, {pair for pair in behind if pair not in txn.stored}, txn)
            outcomes = [self._decide(conn, c, txn) for c in flat]
            # Any failure from here to the end of the transaction (commit included) rolls it back and
            # is handled by _process; nothing decided here outlives the transaction.
            if txn.rows:
                _insert_readings(conn, txn.rows)
            if txn.evidence:
                conn.execute(_insert_evidence(conn), txn.evidence)
            self._save_heads(conn, txn)
        self.commits += 1
        self.committed_readings += len(txn.rows)
        if txn.rows and self.on_commit is not None:
            self.on_commit(len(txn.rows), min(c.received_ms for c in flat))
        return outcomes

    def _decide(self, conn: Connection, c: Candidate, txn: _Txn) -> Outcome:
        ch = c.checked
        key = (ch.device_id, ch.seq)
        if key in txn.stored:
            known, known_gap = txn.stored[key]
        elif key in txn.fresh:
            known, _ts, known_gap = txn.fresh[key]
        else:
            known, known_gap = None, None
        if known is not None:
            if known == ch.digest:  # the same receipt again
                return Receipt(digest=ch.digest, device_id=ch.device_id, seq=ch.seq, gap=known_gap)
            ev_key = (ch.device_id, ch.seq, ch.digest)
            if ev_key not in txn.evidence_seen and not self._evidence_exists(conn, ev_key):
                txn.evidence_seen.add(ev_key)
                txn.evidence.append(
                    {
                        "device_id": ch.device_id,
                        "seq": ch.seq,
                        "accepted_digest": known,
                        "conflicting_digest": ch.digest,
                        "conflicting_submission": dumps_exact(c.raw).decode(),
                        "detected_ms": c.received_ms,
                    }
                )
            return equivocation_refusal(ch.device_id, ch.seq, known)
        head = txn.heads[ch.device_id]  # a new device's head is all zeros: every seq (>= 1) is above it
        gap: tuple[int, int] | None = None
        if ch.seq > head.last_seq:
            if ch.ts_ms < head.last_ts_ms:
                return out_of_order_refusal(ch, head.last_seq, head.last_ts_ms, "after")
            previous = head.last_seq
            gap = (previous + 1, ch.seq - 1) if ch.seq > previous + 1 else None
            head.last_seq, head.last_ts_ms = ch.seq, ch.ts_ms
            if gap is not None:
                head.gaps += 1
                head.missing += gap[1] - gap[0] + 1
        else:  # a late reading filling a gap below the head
            refusal = self._check_neighbours(conn, ch, txn)
            if refusal is not None:
                return refusal
            head.missing = max(0, head.missing - 1)
        head.readings += 1
        txn.touched.add(ch.device_id)
        txn.fresh[key] = (ch.digest, ch.ts_ms, gap)
        accepted = txn.fresh_sorted.get(ch.device_id)
        if accepted is None:  # not setdefault: that builds two lists for every reading
            accepted = txn.fresh_sorted[ch.device_id] = ([], [])
        _insort_pair(accepted, ch.seq, ch.ts_ms)
        if ch.device_id in txn.near:
            seqs, tss, _lo, _hi = txn.near[ch.device_id]
            _insort_pair((seqs, tss), ch.seq, ch.ts_ms)
        txn.rows.append(
            (
                ch.digest,
                ch.device_id,
                ch.seq,
                ch.ts_ms,
                ch.lot_id,
                ch.scheme,
                ch.signature,
                ch.reading_json,
                c.received_ms,
                c.source,
                gap[0] if gap else None,
                gap[1] if gap else None,
            )
        )
        return Receipt(digest=ch.digest, device_id=ch.device_id, seq=ch.seq, gap=gap)

    def _evidence_exists(self, conn: Connection, ev_key: tuple[str, int, bytes]) -> bool:
        """Evidence of this very conflicting reading is already on record (from an earlier commit)."""
        device_id, seq, digest = ev_key
        return (
            conn.execute(
                select(_E.id).where(_E.device_id == device_id, _E.seq == seq, _E.conflicting_digest == digest)
            ).first()
            is not None
        )

    def _load_neighbourhoods(self, conn: Connection, late: set[tuple[str, int]], txn: _Txn) -> None:
        """For each device with late readings in this group: one query, not two per reading."""
        by_device: dict[str, list[int]] = {}
        for device_id, seq in late:
            by_device.setdefault(device_id, []).append(seq)
        sql = _near_sql(conn)
        for device_id, seqs in by_device.items():
            lo, hi = min(seqs), max(seqs)
            # one plain statement a device: the stored readings in [lo, hi] and the nearest outside it
            rows = conn.exec_driver_sql(sql, (device_id, lo, hi, device_id, lo, device_id, hi)).all()
            pairs = sorted((int(r[0]), int(r[1])) for r in rows)
            txn.near[device_id] = ([p[0] for p in pairs], [p[1] for p in pairs], lo, hi)

    def _check_neighbours(self, conn: Connection, ch: Checked, txn: _Txn) -> Outcome | None:
        """A late reading's time must lie between its neighbours' times (stored or accepted now)."""
        near = txn.near.get(ch.device_id)
        if near is not None and near[2] <= ch.seq <= near[3]:
            seqs, tss, _lo, _hi = near
            i = bisect.bisect_left(seqs, ch.seq)
            prev = (seqs[i - 1], tss[i - 1]) if i > 0 else None
            nxt = (seqs[i], tss[i]) if i < len(seqs) else None
        else:  # outside the range loaded for this group: ask the store, then this transaction
            below = conn.execute(
                select(_R.seq, _R.ts_ms)
                .where(_R.device_id == ch.device_id, _R.seq < ch.seq)
                .order_by(_R.seq.desc())
                .limit(1)
            ).first()
            above = conn.execute(
                select(_R.seq, _R.ts_ms)
                .where(_R.device_id == ch.device_id, _R.seq > ch.seq)
                .order_by(_R.seq)
                .limit(1)
            ).first()
            prev = (int(below[0]), int(below[1])) if below else None
            nxt = (int(above[0]), int(above[1])) if above else None
            fresh = txn.fresh_sorted.get(ch.device_id)
            if fresh is not None:
                fseqs, ftss = fresh
                i = bisect.bisect_left(fseqs, ch.seq)
                if i > 0 and (prev is None or fseqs[i - 1] > prev[0]):
                    prev = (fseqs[i - 1], ftss[i - 1])
                if i < len(fseqs) and (nxt is None or fseqs[i] < nxt[0]):
                    nxt = (fseqs[i], ftss[i])
        if prev is not None and ch.ts_ms < prev[1]:
            return out_of_order_refusal(ch, prev[0], prev[1], "after")
        if nxt is not None and ch.ts_ms > nxt[1]:
            return out_of_order_refusal(ch, nxt[0], nxt[1], "before")
        return None

    def _save_heads(self, conn: Connection, txn: _Txn) -> None:
        """Write back the heads this transaction moved (their rows exist and are locked)."""
        if not txn.touched:
            return
        rows = [
            (device_id, h.last_seq, h.last_ts_ms, h.readings, h.gaps, h.missing)
            for device_id in sorted(txn.touched)
            for h in (txn.heads[device_id],)
        ]
        if conn.dialect.name == "postgresql":  # one statement for all of them
            conn.exec_driver_sql(_SAVE_HEADS_PG, tuple(list(column) for column in zip(*rows, strict=True)))
        else:
            conn.exec_driver_sql(_SAVE_HEADS_SQLITE, [(*row[1:], row[0]) for row in rows])


_READING_COLUMNS = (
    "digest",
    "device_id",
    "seq",
    "ts_ms",
    "lot_id",
    "scheme",
    "signature",
    "reading_json",
    "received_ms",
    "source",
    "gap_first",
    "gap_last",
)


#: COPY of the readings' columns (PostgreSQL): one stream instead of a statement per row.
_COPY_READINGS = f"COPY readings ({', '.join(_READING_COLUMNS)}) FROM STDIN"


def _insert_readings(conn: Connection, rows: list[tuple[object, ...]]) -> None:
    """Insert the accepted readings in this transaction: COPY on PostgreSQL (a unique-key violation
    raises, as an INSERT's would, and rolls the transaction back), an executemany elsewhere."""
    if conn.dialect.name != "postgresql":
        conn.exec_driver_sql(_insert_readings_sql(conn), rows)
        return
    driver = cast("psycopg.Connection[Any]", conn.connection.driver_connection)
    try:
        with driver.cursor() as cur, cur.copy(_COPY_READINGS) as copy:
            for row in rows:
                copy.write_row(row)
    except (
        conn.dialect.loaded_dbapi.Error
    ) as e:  # the DB-API error, wrapped as SQLAlchemy would (retries depend on its type)
        raise _wrap_dbapi_error(conn, e) from e


def _insert_readings_sql(conn: Connection) -> str:
    """A plain INSERT for the DB-API's executemany: the hot path skips SQLAlchemy's per-row processing."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO readings ({', '.join(_READING_COLUMNS)}) "
        f"VALUES ({', '.join([mark] * len(_READING_COLUMNS))})"
    )


_LOCK_HEADS_PG = (
    "INSERT INTO device_heads (device_id, last_seq, last_ts_ms, readings, gaps, missing) "
    "SELECT d, 0, 0, 0, 0, 0 FROM unnest(%s::varchar[]) WITH ORDINALITY AS t(d, n) ORDER BY n "
    "ON CONFLICT (device_id) DO UPDATE SET last_seq = excluded.last_seq WHERE false"
)


_HEAD_COLUMNS = "device_id, last_seq, last_ts_ms, readings, gaps, missing"
_READ_HEADS_PG = f"SELECT {_HEAD_COLUMNS} FROM device_heads WHERE device_id = ANY(%s::varchar[])"
_SAVE_HEADS_PG = (
    "UPDATE device_heads SET last_seq = v.last_seq, last_ts_ms = v.last_ts_ms, readings = v.readings, "
    "gaps = v.gaps, missing = v.missing FROM unnest(%s::varchar[], %s::bigint[], %s::bigint[], "
    "%s::bigint[], %s::bigint[], %s::bigint[]) "
    "AS v(device_id, last_seq, last_ts_ms, readings, gaps, missing) "
    "WHERE device_heads.device_id = v.device_id"
)
_SAVE_HEADS_SQLITE = (
    "UPDATE device_heads SET last_seq = ?, last_ts_ms = ?, readings = ?, gaps = ?, missing = ? "
    "WHERE device_id = ?"
)


def _read_heads_sql(n: int) -> str:
    return f"SELECT {_HEAD_COLUMNS} FROM device_heads WHERE device_id IN ({', '.join(['?'] * n)})"


def _near_sql(conn: Connection) -> str:
    """A device's stored readings with ``seq`` in [lo, hi], the nearest one below and the nearest above
    (parameters: device, lo, hi, device, lo, device, hi)."""
    m = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return (
        f"SELECT seq, ts_ms FROM readings WHERE device_id = {m} AND seq >= {m} AND seq <= {m} "
        "UNION ALL SELECT seq, ts_ms FROM (SELECT seq, ts_ms FROM readings "
        f"WHERE device_id = {m} AND seq < {m} ORDER BY seq DESC LIMIT 1) AS below "
        "UNION ALL SELECT seq, ts_ms FROM (SELECT seq, ts_ms FROM readings "
        f"WHERE device_id = {m} AND seq > {m} ORDER BY seq LIMIT 1) AS above"
    )


def _lock_heads_sql(conn: Connection) -> str:
    """Create a device's head row (all zeros) or, if it exists, lock it without writing it: PostgreSQL
    locks a conflicting row although the update's condition is false; SQLite's INSERT takes the
    database's write lock."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return (
        "INSERT INTO device_heads (device_id, last_seq, last_ts_ms, readings, gaps, missing) "
        f"VALUES ({mark}, 0, 0, 0, 0, 0) "
        "ON CONFLICT (device_id) DO UPDATE SET last_seq = excluded.last_seq WHERE false"
    )


def _insert_evidence(conn: Connection) -> Insert:
    """INSERT of equivocation evidence that leaves a piece already on record alone (the head lock
    already prevents that; a writer without it must not turn the group into ``store.unavailable``)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(EquivocationRow).on_conflict_do_nothing(
        index_elements=[_E.device_id, _E.seq, _E.conflicting_digest]
    )


def _wrap_dbapi_error(conn: Connection, e: Exception) -> StatementError:
    """A DB-API error raised outside SQLAlchemy, as the SQLAlchemy error it would have raised
    (``IntegrityError`` for a unique-key violation, ...)."""
    return DBAPIError.instance(_COPY_READINGS, None, e, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect)


def _retryable(e: SQLAlchemyError) -> bool:
    """A failure that running the group again, against what is then stored, resolves."""
    if isinstance(e, IntegrityError):
        return True
    return isinstance(e, DBAPIError) and getattr(e.orig, "sqlstate", None) in _RETRY_SQLSTATES


def _insort_pair(lists: tuple[list[int], list[int]], seq: int, ts: int) -> None:
    seqs, tss = lists
    if not seqs or seq > seqs[-1]:  # a device's readings mostly come in order: at the end
        seqs.append(seq)
        tss.append(ts)
        return
    i = bisect.bisect_left(seqs, seq)
    seqs.insert(i, seq)
    tss.insert(i, ts)


def name_native_thread(name: str) -> None:
    """Give the calling thread ``name`` in the operating system too (Linux; ``top -H``, ``/proc``), so a
    thread's CPU time can be told from the others' outside the process. Best effort elsewhere."""
    try:
        libc = ctypes.CDLL(None)
        libc.prctl(15, name.encode()[:15])  # PR_SET_NAME: at most 15 bytes and a NUL
    except (OSError, AttributeError):  # no libc with prctl here (not Linux)
        return


def now_ms() -> int:
    return int(time.time() * 1000)
