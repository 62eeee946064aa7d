"""The single writer: sequence rules, idempotency, equivocation, and durable commit.

Requests hand their checked submissions to one writer thread, which takes every
request waiting at that moment into one database transaction (group commit: one
fsync for many readings) and answers each request only after the commit. Being
the only writer, it keeps each device's last sequence number in memory; on any
database error the transaction rolls back, that memory is dropped, and every
waiting submission is answered with ``store.unavailable``: nothing is
acknowledged that is not on disk.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import orjson
from sqlalchemy import Engine, insert, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError

from ledger_service.ingest.checks import Checked
from ledger_service.store.models import DeviceHeadRow, EquivocationRow, ReadingRow

log = logging.getLogger(__name__)

#: Most submissions one transaction takes from the queue.
MAX_GROUP = 50_000


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an accepted (or identically resubmitted) reading gets back."""

    digest: bytes
    device_id: str
    seq: int
    status: str = "accepted"
    #: (first, last) missing sequence numbers before this one, when the device skipped some.
    gap: tuple[int, int] | None = None


#: A commit outcome: a receipt or (code, message).
Outcome = Receipt | tuple[str, str]


@dataclass(frozen=True, slots=True)
class Candidate:
    checked: Checked
    received_ms: int
    source: str
    raw: object


@dataclass
class _Head:
    last_seq: int
    readings: int
    gaps: int
    missing: int
    exists: bool


class Committer:
    """Owns the write path of readings. Start it once; call :meth:`commit` from any thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.Queue[tuple[list[Candidate], Future[list[Outcome]]] | None] = queue.Queue()
        self._heads: dict[str, _Head] = {}
        self._thread = threading.Thread(target=self._run, name="supet-committer", daemon=True)
        self._started = False
        self.commits = 0
        self.committed_readings = 0

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
        future: Future[list[Outcome]] = Future()
        self._queue.put((candidates, future))
        return future.result(timeout=timeout)

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
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
        try:
            outcomes = self._write(flat)
        except SQLAlchemyError as e:
            log.error("store write failed, %d submissions refused: %s", len(flat), e)
            self._heads.clear()
            refusal = (
                "store.unavailable",
                "the ledger database is unavailable; nothing was stored: retry later",
            )
            for cands, fut in jobs:
                fut.set_result([refusal] * len(cands))
            return
        except Exception as e:  # a bug: fail the waiting requests loudly, keep the writer alive
            log.exception("committer crashed on a group of %d", len(flat))
            self._heads.clear()
            for _, fut in jobs:
                fut.set_exception(e)
            return
        pos = 0
        for cands, fut in jobs:
            fut.set_result(outcomes[pos : pos + len(cands)])
            pos += len(cands)

    def _load_heads(self, conn: object, device_ids: set[str]) -> None:
        missing = [d for d in device_ids if d not in self._heads]
        for i in range(0, len(missing), 500):
            chunk = missing[i : i + 500]
            rows = conn.execute(  # type: ignore[attr-defined]
                select(
                    DeviceHeadRow.device_id,
                    DeviceHeadRow.last_seq,
                    DeviceHeadRow.readings,
                    DeviceHeadRow.gaps,
                    DeviceHeadRow.missing,
                ).where(DeviceHeadRow.device_id.in_(chunk))  # type: ignore[attr-defined]
            )
            for device_id, last_seq, readings, gaps, missing_n in rows:
                self._heads[device_id] = _Head(last_seq, readings, gaps, missing_n, True)

    def _existing(self, conn: object, pairs: set[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
        found: dict[tuple[str, int], bytes] = {}
        items = list(pairs)
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            rows = conn.execute(  # type: ignore[attr-defined]
                select(ReadingRow.device_id, ReadingRow.seq, ReadingRow.digest).where(
                    tuple_(ReadingRow.device_id, ReadingRow.seq).in_(chunk)
                )
            )
            for device_id, seq, digest in rows:
                found[(device_id, seq)] = bytes(digest)
        return found

    def _write(self, flat: Sequence[Candidate]) -> list[Outcome]:
        touched: set[str] = set()
        with self.engine.begin() as conn:
            self._load_heads(conn, {c.checked.device_id for c in flat})
            # (device, seq) pairs at or below a head need a look at what is stored
            behind = {
                (c.checked.device_id, c.checked.seq)
                for c in flat
                if (h := self._heads.get(c.checked.device_id)) is not None and c.checked.seq <= h.last_seq
            }
            stored = self._existing(conn, behind) if behind else {}
            fresh: dict[tuple[str, int], bytes] = {}
            outcomes: list[Outcome] = []
            rows: list[dict[str, object]] = []
            evidence: list[dict[str, object]] = []
            evidence_seen: set[tuple[str, int, bytes]] = set()
            for c in flat:
                ch = c.checked
                key = (ch.device_id, ch.seq)
                known = stored.get(key) or fresh.get(key)
                if known is not None:
                    if known == ch.digest:
                        outcomes.append(Receipt(digest=ch.digest, device_id=ch.device_id, seq=ch.seq))
                    else:
                        ev_key = (ch.device_id, ch.seq, ch.digest)
                        if ev_key not in evidence_seen:
                            evidence_seen.add(ev_key)
                            evidence.append(
                                {
                                    "device_id": ch.device_id,
                                    "seq": ch.seq,
                                    "accepted_digest": known,
                                    "conflicting_digest": ch.digest,
                                    "conflicting_submission": orjson.dumps(c.raw).decode(),
                                    "detected_ms": c.received_ms,
                                }
                            )
                        outcomes.append(_equivocation(ch.device_id, ch.seq, known))
                    continue
                head = self._heads.get(ch.device_id)
                if head is not None and ch.seq <= head.last_seq:
                    outcomes.append(
                        (
                            "reading.seq_not_increasing",
                            f"seq {ch.seq} of device {ch.device_id!r} is not above its last accepted seq "
                            f"{head.last_seq}: sequence numbers must strictly increase and are never reused",
                        )
                    )
                    continue
                previous = head.last_seq if head is not None else 0
                gap = (previous + 1, ch.seq - 1) if ch.seq > previous + 1 else None
                if head is None:
                    head = _Head(0, 0, 0, 0, False)
                    self._heads[ch.device_id] = head
                head.last_seq = ch.seq
                head.readings += 1
                if gap is not None:
                    head.gaps += 1
                    head.missing += gap[1] - gap[0] + 1
                touched.add(ch.device_id)
                fresh[key] = ch.digest
                rows.append(
                    {
                        "digest": ch.digest,
                        "device_id": ch.device_id,
                        "seq": ch.seq,
                        "ts_ms": ch.ts_ms,
                        "lot_id": ch.lot_id,
                        "scheme": ch.scheme,
                        "signature": ch.signature,
                        "reading_json": ch.reading_json,
                        "received_ms": c.received_ms,
                        "source": c.source,
                        "batch_id": None,
                    }
                )
                outcomes.append(Receipt(digest=ch.digest, device_id=ch.device_id, seq=ch.seq, gap=gap))
            # Any failure from here to the end of the transaction (commit included) is caught by
            # _process, which drops the in-memory heads: they are reloaded from what is on disk.
            if rows:
                conn.execute(insert(ReadingRow), rows)
            if evidence:
                conn.execute(insert(EquivocationRow), evidence)
            self._save_heads(conn, touched)
        for device_id in touched:
            self._heads[device_id].exists = True
        self.commits += 1
        self.committed_readings += len(rows)
        return outcomes

    def _save_heads(self, conn: object, touched: set[str]) -> None:
        new, old = [], []
        for device_id in touched:
            h = self._heads[device_id]
            values = {
                "device_id": device_id,
                "last_seq": h.last_seq,
                "readings": h.readings,
                "gaps": h.gaps,
                "missing": h.missing,
            }
            (old if h.exists else new).append(values)
        if new:
            conn.execute(insert(DeviceHeadRow), new)  # type: ignore[attr-defined]
        for values in old:
            conn.execute(  # type: ignore[attr-defined]
                update(DeviceHeadRow)
                .where(DeviceHeadRow.device_id == values["device_id"])  # type: ignore[arg-type]
                .values(
                    last_seq=values["last_seq"],
                    readings=values["readings"],
                    gaps=values["gaps"],
                    missing=values["missing"],
                )
            )


def _equivocation(device_id: str, seq: int, known: bytes) -> tuple[str, str]:
    return (
        "reading.equivocation",
        f"device {device_id!r} already signed a different reading with seq {seq} (0x{known.hex()}); "
        "this conflicting reading was recorded as evidence against the device and refused",
    )


def group_by_device(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Accepted receipts per device (metrics, logs)."""
    counts: dict[str, int] = defaultdict(int)
    for o in outcomes:
        if isinstance(o, Receipt):
            counts[o.device_id] += 1
    return dict(counts)


def now_ms() -> int:
    return int(time.time() * 1000)
