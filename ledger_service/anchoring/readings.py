"""The anchoring worker: closes batches, anchors their roots, survives every fault.

A batch is closed when ``batch_max_readings`` readings wait or the oldest has
waited ``batch_max_seconds``. Closing is one transaction: the batch row (with its
whole Merkle tree, so every proof can be served) and the readings' batch id
together, so a reading is in exactly one batch. Then the root is sent with
``anchorBatch``; the batch is ``anchored`` once its receipt is ``confirmations``
blocks deep.

Faults, and what happens:
- chain unreachable: the batch stays ``closed``; retries back off (0.5 s doubling to 60 s);
- process killed after sending, before recording: on restart the batch is sent
  again; the contract refuses a root twice (``ReadingAnchorRootAlreadyAnchored``),
  and the worker adopts the earlier anchoring from its ``BatchAnchored`` event;
- transaction dropped (no receipt after ``anchor_timeout_seconds``): sent again;
- reorg: an anchored batch whose receipt vanished or moved to another block
  hash within ``reorg_depth`` blocks goes back to ``closed`` (or is updated);
- database restored from an older backup: the chain holds batches this signer
  anchored whose roots the store does not know ("lost batches"; looked for once,
  at the first tick that reaches the chain). Their readings come back as the
  devices resubmit them. The chain has only each lost batch's root and count, so
  the worker tries to re-form it from what waits: the ``count`` oldest waiting
  readings by device timestamp, then by arrival; a candidate is closed only if
  its root is the lost root, and is then adopted (the contract refuses the root
  twice). While lost batches remain, ordinary batches are held back for
  ``recovery_hold_seconds`` so that they do not take the resubmitted readings;
  then the worker gives up on them and anchors what waits anew.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import Connection, Engine, func, insert, update
from sqlalchemy.orm import defer  # the tree blob is not needed to send or confirm
from sqlmodel import Session, col, select

from contracts.chain import Chain
from contracts.deploy import Deployment
from contracts.errors import ChainError, ContractRevert, ContractsError
from device_attestation.merkle import MerkleTree
from ledger_service.config import Settings
from ledger_service.store.models import BatchRow, ReadingRow

log = logging.getLogger(__name__)

CLOSED, SUBMITTED, ANCHORED = "closed", "submitted", "anchored"


@dataclass(frozen=True, slots=True)
class LostBatch:
    """A batch this signer anchored on chain whose root the store does not know (restored backup)."""

    chain_batch_id: int
    root: bytes
    count: int


@dataclass(frozen=True, slots=True)
class BatchConfirmed:
    """A batch's anchoring was confirmed (what metrics and logs are told)."""

    batch_id: int
    chain_batch_id: int
    root: bytes
    count: int
    tx_hash: str
    block_number: int
    oldest_received_ms: int
    anchored_ms: int


@dataclass(frozen=True, slots=True)
class AnchorStats:
    pending_readings: int
    closed_batches: int
    submitted_batches: int
    anchored_batches: int


#: Blocks per eth_getLogs request: nodes cap the range (Besu: ``--rpc-max-logs-range``, 5,000 by default).
LOG_CHUNK = 2_000


def batch_anchored_logs(
    chain: Chain,
    contract: Any,
    *,
    from_block: int,
    to_block: int,
    filters: dict[str, Any] | None = None,
    newest_first: bool = False,
    stop: Callable[[list[Any]], bool] | None = None,
) -> list[Any]:
    """``BatchAnchored`` events in ``[from_block, to_block]``, read :data:`LOG_CHUNK` blocks at a time.

    ``newest_first`` walks the range backwards; ``stop(events so far)`` ends the walk early."""
    spans: list[tuple[int, int]] = []
    lo = max(0, from_block)
    while lo <= to_block:
        spans.append((lo, min(to_block, lo + LOG_CHUNK - 1)))
        lo += LOG_CHUNK
    if newest_first:
        spans.reverse()
    out: list[Any] = []
    for lo, hi in spans:
        out.extend(
            chain.request(
                _logs_request(contract, lo, hi, filters or {}), context=f"BatchAnchored logs {lo}-{hi}"
            )
        )
        if stop is not None and stop(out):
            break
    return out


def _logs_request(contract: Any, lo: int, hi: int, filters: dict[str, Any]) -> Callable[[], Any]:
    return lambda: contract.events.BatchAnchored().get_logs(
        from_block=lo, to_block=hi, argument_filters=filters
    )


#: Most ways of splitting readings with the same timestamp at a lost batch's boundary that are tried.
MAX_TIE_CANDIDATES = 64


def _lost_batch_candidates(conn: Connection, count: int) -> Iterator[list[Any]]:
    """Guesses at a lost batch of ``count`` readings among those waiting: (id, digest, received_ms) rows.

    First the ``count`` oldest by device timestamp; when readings share the timestamp at the cut,
    each way of taking the needed number of them (up to :data:`MAX_TIE_CANDIDATES`); then the
    ``count`` first by arrival."""
    base = select(col(ReadingRow.id), col(ReadingRow.digest), col(ReadingRow.received_ms)).where(
        col(ReadingRow.batch_id).is_(None)
    )
    by_time = conn.execute(
        base.add_columns(col(ReadingRow.ts_ms))
        .order_by(col(ReadingRow.ts_ms), col(ReadingRow.id))
        .limit(count)
    ).all()
    if len(by_time) < count:
        return
    cut = by_time[-1][3]
    sure = [r[:3] for r in by_time if r[3] < cut]
    tied = conn.execute(base.where(col(ReadingRow.ts_ms) == cut).order_by(col(ReadingRow.id))).all()
    need = count - len(sure)
    if math.comb(len(tied), need) <= MAX_TIE_CANDIDATES:
        for pick in itertools.combinations(tied, need):
            yield [*sure, *pick]
    else:
        yield [r[:3] for r in by_time]
    yield list(conn.execute(base.order_by(col(ReadingRow.id)).limit(count)).all())


def encode_tree(tree: MerkleTree) -> bytes:
    """The node array, concatenated (root first)."""
    return b"".join(tree.tree)


def build_encoded_tree(digests: list[bytes]) -> tuple[bytes, bytes]:
    """A batch's (root, encoded node array): what closing a batch stores. Picklable, for worker processes."""
    tree = MerkleTree.build(digests)
    return tree.root, encode_tree(tree)


def decode_tree(blob: bytes, digests: list[bytes]) -> MerkleTree:
    """Rebuild a stored batch's tree (checked against the stored nodes)."""
    tree = MerkleTree.build(digests)
    if encode_tree(tree) != blob:
        raise ContractsError("stored batch tree does not match its readings: the store is corrupt")
    return tree


class AnchoringWorker:
    """Runs in one thread of the service (or alone with ``supet anchor``)."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        chain: Chain,
        deployment: Deployment,
        signer: LocalAccount,
        build_tree: Callable[[list[bytes]], tuple[bytes, bytes]] = build_encoded_tree,
        reorg_depth: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.chain = chain
        self.contract = deployment.contract(chain, "ReadingAnchor")
        self.signer = signer
        #: How a batch's tree is built (the service hands it to its worker processes, off the GIL).
        self.build_tree = build_tree
        self.reorg_depth = reorg_depth
        self.clock = clock
        self._stop = threading.Event()
        self._wake = threading.Event()
        # What waits to be batched, as the writer reports it: None = unknown (ask the database).
        self._pending: int | None = None
        self._oldest_pending_ms: int | None = None
        self._pending_lock = threading.Lock()
        self._tick_lock = threading.RLock()
        self._last_reorg_check = 0.0
        self.reorg_check_interval = 2.0
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        #: Told of each confirmed anchoring (metrics); must not raise.
        self.on_anchored: Callable[[BatchConfirmed], None] | None = None
        self.deployment = deployment
        #: Lost batches still to re-form (None: not looked for yet), and since when (monotonic).
        self.lost: list[LostBatch] | None = None
        self._lost_since = 0.0
        self.recovery_hold_seconds = settings.recovery_hold_seconds

    # ------------------------------------------------------------------ lifecycle

    def start(self, interval: float = 0.2) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, args=(interval,), name="supet-anchor", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def note_committed(self, n: int, received_ms: int) -> None:
        """The writer committed ``n`` readings received at ``received_ms``: keeps the pending count
        without a database query per tick, and wakes the worker once a full batch waits."""
        if n <= 0:
            return
        with self._pending_lock:
            if self._pending is not None:
                self._pending += n
                if self._oldest_pending_ms is None:
                    self._oldest_pending_ms = received_ms
                full = self._pending >= self.settings.batch_max_readings
            else:
                full = False
        if full:
            self._wake.set()

    def _not_due(self, now: int) -> bool:
        """From the writer's reports alone: certainly no batch is due (no query needed)."""
        with self._pending_lock:
            if self._pending is None:
                return False
            if self._pending == 0:
                return True
            if self._pending >= self.settings.batch_max_readings or self._oldest_pending_ms is None:
                return False
            return now - self._oldest_pending_ms < self.settings.batch_max_seconds * 1000

    def _loop(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as e:  # keep anchoring alive; the error is logged and retried
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("anchoring tick failed")
            self._wake.wait(interval)
            self._wake.clear()

    # ------------------------------------------------------------------ one step

    def tick(self, *, force: bool = False) -> None:
        """Close due batches (all pending ones if ``force``), advance each batch, check for reorgs.

        Serialised: the worker's loop and a caller's :meth:`flush` may tick at the same time, and two
        concurrent closes would take the same pending readings into two batches with one root.
        """
        with self._tick_lock:
            self._tick(force=force)

    def _tick(self, *, force: bool) -> None:
        if self.lost is None:
            self.find_lost_batches()
        while self.lost and self.reform_lost_batch() is not None:
            pass
        # while lost batches wait for their readings, ordinary batches must not take them
        lost = self.lost or []
        hold = bool(lost) and not force
        if hold and time.monotonic() - self._lost_since >= self.recovery_hold_seconds:
            hold = False
            log.warning(
                "gave up re-forming %d lost batch(es) after %.0fs: their readings are anchored anew",
                len(lost),
                self.recovery_hold_seconds,
                extra={"event": "recovery.gave_up", "chain_batches": [b.chain_batch_id for b in lost]},
            )
            self.lost = []
        while not hold and self.close_batch(force=force) is not None:
            pass
        self.advance()
        if force or time.monotonic() - self._last_reorg_check >= self.reorg_check_interval:
            self._last_reorg_check = time.monotonic()
            self.check_reorgs()

    def flush(self, timeout: float = 60.0) -> None:
        """Anchor everything pending now (tests, demo, shutdown); raise if it cannot finish in time."""
        deadline = time.monotonic() + timeout
        while True:
            self.tick(force=True)
            s = self.stats()
            if s.pending_readings == 0 and s.closed_batches == 0 and s.submitted_batches == 0:
                return
            if time.monotonic() > deadline:
                raise ChainError(
                    f"anchoring did not finish within {timeout:.0f}s: {s}; last error: {self.last_error}"
                )
            time.sleep(0.05)

    def stats(self) -> AnchorStats:
        with Session(self.engine) as s:
            pending = s.exec(
                select(func.count()).select_from(ReadingRow).where(col(ReadingRow.batch_id).is_(None))
            ).one()
            counts = dict(
                s.exec(select(col(BatchRow.status), func.count()).group_by(col(BatchRow.status))).all()
            )
        return AnchorStats(
            pending_readings=int(pending[0] if isinstance(pending, tuple) else pending),
            closed_batches=int(counts.get(CLOSED, 0)),
            submitted_batches=int(counts.get(SUBMITTED, 0)),
            anchored_batches=int(counts.get(ANCHORED, 0)),
        )

    def backlog(self) -> int:
        """Readings committed but not yet anchored: not in a batch yet, or in an unconfirmed one.

        The not-yet-batched part comes from the writer's reports when known (no query)."""
        with self._pending_lock:
            pending = self._pending
        with Session(self.engine) as s:
            if pending is None:
                pending = int(
                    s.exec(
                        select(func.count()).select_from(ReadingRow).where(col(ReadingRow.batch_id).is_(None))
                    ).one()
                )
            unconfirmed = s.exec(
                select(func.coalesce(func.sum(col(BatchRow.count)), 0)).where(
                    col(BatchRow.status) != ANCHORED
                )
            ).one()
        return pending + int(unconfirmed)

    # ------------------------------------------------------------------ lost batches (restored store)

    def find_lost_batches(self) -> list[LostBatch] | None:
        """Look once for chain batches of this signer unknown to the store (None: chain unreachable).

        Cheap in the normal case: only when the chain holds more batches than the newest one the
        store recorded are the ``BatchAnchored`` events since that batch's block read. A store
        without any batch is a new store, not a restored one: it has nothing to look for."""
        try:
            with Session(self.engine) as s:
                if s.exec(select(col(BatchRow.id)).limit(1)).first() is None:
                    self.lost = []
                    return []
            on_chain = int(self.chain.call(self.contract.functions.batchCount()))
            with Session(self.engine) as s:
                newest = s.exec(
                    select(col(BatchRow.chain_batch_id), col(BatchRow.block_number))
                    .where(col(BatchRow.status) == ANCHORED)
                    .order_by(col(BatchRow.chain_batch_id).desc())
                    .limit(1)
                ).first()
            known_id, known_block = (int(newest[0] or 0), int(newest[1] or 0)) if newest else (0, 0)
            found: list[LostBatch] = []
            if on_chain > known_id:
                logs = batch_anchored_logs(
                    self.chain,
                    self.contract,
                    from_block=known_block or max(0, self.deployment.block - 1),
                    to_block=self.chain.block_number(),
                    filters={"by": self.signer.address},
                )
                candidates = {
                    bytes(ev["args"]["root"]): LostBatch(
                        chain_batch_id=int(ev["args"]["batchId"]),
                        root=bytes(ev["args"]["root"]),
                        count=int(ev["args"]["count"]),
                    )
                    for ev in logs
                    if int(ev["args"]["batchId"]) > known_id
                }
                if candidates:
                    with Session(self.engine) as s:
                        known = {
                            bytes(r)
                            for r in s.exec(
                                select(col(BatchRow.root)).where(col(BatchRow.root).in_(list(candidates)))
                            )
                        }
                    found = sorted(
                        (b for root, b in candidates.items() if root not in known),
                        key=lambda b: b.chain_batch_id,
                    )
        except ChainError as e:
            self.last_error = str(e)
            return None
        self.lost = found
        self._lost_since = time.monotonic()
        if found:
            log.warning(
                "the chain holds %d batch(es) of %d readings anchored by this signer that the store does "
                "not know (restored from a backup?): waiting for the devices to resubmit them",
                len(found),
                sum(b.count for b in found),
                extra={"event": "recovery.lost_batches", "chain_batches": [b.chain_batch_id for b in found]},
            )
        return found

    def reform_lost_batch(self) -> int | None:
        """Close one batch whose root is a lost batch's, from what waits, if possible."""
        if not self.lost:
            return None
        now = int(self.clock() * 1000)
        with self.engine.begin() as conn:
            waiting = int(
                conn.execute(select(func.count()).where(col(ReadingRow.batch_id).is_(None))).scalar_one()
            )
            for lost in list(self.lost):
                if lost.count > waiting:
                    continue
                for rows in _lost_batch_candidates(conn, lost.count):
                    root, nodes = self.build_tree([bytes(r[1]) for r in rows])
                    if root != lost.root:
                        continue
                    result = conn.execute(
                        insert(BatchRow).values(
                            root=root,
                            count=len(rows),
                            tree=nodes,
                            status=CLOSED,
                            created_ms=now,
                            oldest_received_ms=min(int(r[2]) for r in rows),
                            attempts=0,
                            next_attempt_ms=0,
                        )
                    )
                    assert result.inserted_primary_key is not None
                    batch_id = int(result.inserted_primary_key[0])
                    ids = [int(r[0] or 0) for r in rows]  # ids of stored rows: never None
                    for i in range(0, len(ids), 900):
                        conn.execute(
                            update(ReadingRow)
                            .where(col(ReadingRow.id).in_(ids[i : i + 900]))
                            .values(batch_id=batch_id)
                        )
                    self.lost.remove(lost)
                    with self._pending_lock:
                        self._pending = None  # ask the database next time
                        self._oldest_pending_ms = None
                    log.info(
                        "re-formed lost chain batch %d as batch %d (%d readings)",
                        lost.chain_batch_id,
                        batch_id,
                        len(rows),
                        extra={
                            "event": "recovery.reformed",
                            "batch": batch_id,
                            "chain_batch": lost.chain_batch_id,
                            "root": "0x" + root.hex(),
                            "count": len(rows),
                        },
                    )
                    return batch_id
        return None

    # ------------------------------------------------------------------ closing

    def close_batch(self, *, force: bool = False) -> int | None:
        """Close one batch if due; return its local id."""
        now = int(self.clock() * 1000)
        limit = self.settings.batch_max_readings
        if not force and self._not_due(now):
            return None
        with self.engine.begin() as conn:
            # is a batch due? (count and age of what waits)
            with self._pending_lock:
                waiting, oldest_ms = conn.execute(
                    select(func.count(), func.min(col(ReadingRow.received_ms))).where(
                        col(ReadingRow.batch_id).is_(None)
                    )
                ).one()
                self._pending = int(waiting)
                self._oldest_pending_ms = int(oldest_ms) if oldest_ms is not None else None
            if not waiting:
                return None
            if (
                not force
                and waiting < limit
                and now - int(oldest_ms) < self.settings.batch_max_seconds * 1000
            ):
                return None
            rows = conn.execute(
                select(col(ReadingRow.id), col(ReadingRow.digest), col(ReadingRow.received_ms))
                .where(col(ReadingRow.batch_id).is_(None))
                .order_by(col(ReadingRow.id))
                .limit(limit)
            ).all()
            if not rows:
                return None
            oldest = min(r[2] for r in rows)
            root, nodes = self.build_tree([bytes(r[1]) for r in rows])
            result = conn.execute(
                insert(BatchRow).values(
                    root=root,
                    count=len(rows),
                    tree=nodes,
                    status=CLOSED,
                    created_ms=now,
                    oldest_received_ms=oldest,
                    attempts=0,
                    next_attempt_ms=0,
                )
            )
            assert result.inserted_primary_key is not None
            batch_id = int(result.inserted_primary_key[0])
            ids = [r[0] for r in rows]
            # The writer is single and batches take the oldest first, so what waits is one id range:
            # one UPDATE; if the range ever held another reading, fall back to the exact ids.
            ranged = conn.execute(
                update(ReadingRow)
                .where(
                    col(ReadingRow.batch_id).is_(None),
                    col(ReadingRow.id) >= ids[0],
                    col(ReadingRow.id) <= ids[-1],
                )
                .values(batch_id=batch_id)
            )
            if ranged.rowcount != len(ids):
                conn.execute(
                    update(ReadingRow).where(col(ReadingRow.batch_id) == batch_id).values(batch_id=None)
                )
                for i in range(0, len(ids), 900):
                    conn.execute(
                        update(ReadingRow)
                        .where(col(ReadingRow.id).in_(ids[i : i + 900]))
                        .values(batch_id=batch_id)
                    )
        with self._pending_lock:
            left = (self._pending or 0) - len(rows)
            # nothing left: known empty; something left: its age is unknown, so ask next time
            self._pending = 0 if left <= 0 else None
            self._oldest_pending_ms = None
        log.info(
            "closed batch %d: %d readings, root 0x%s",
            batch_id,
            len(rows),
            root.hex(),
            extra={"event": "batch.closed", "batch": batch_id, "count": len(rows), "root": "0x" + root.hex()},
        )
        return batch_id

    # ------------------------------------------------------------------ sending and confirming

    def advance(self) -> None:
        now = int(self.clock() * 1000)
        with Session(self.engine) as s:
            batches = list(
                s.exec(
                    select(BatchRow)
                    .options(defer(BatchRow.tree))  # type: ignore[arg-type]
                    .where(col(BatchRow.status).in_([CLOSED, SUBMITTED]))
                    .order_by(col(BatchRow.id))
                )
            )
        for b in batches:
            b = b[0] if isinstance(b, tuple) else b
            if b.status == CLOSED and b.next_attempt_ms <= now:
                self._send(b, now)
            elif b.status == SUBMITTED:
                self._confirm(b, now)

    def _send(self, b: BatchRow, now: int) -> None:
        fn = self.contract.functions.anchorBatch(b.root, b.count)
        try:
            tx_hash = self.chain.send(fn, self.signer, context=f"anchorBatch(batch {b.id})")
        except ContractRevert as e:
            if e.error_name == "ReadingAnchorRootAlreadyAnchored":
                self._adopt(b, int(e.error_args["batchId"]), now)
                return
            self._failed(b, now, f"anchorBatch refused: {e}")
            return
        except ChainError as e:
            self.chain.reset_nonce(self.signer.address)
            self._failed(b, now, str(e))
            return
        self._update(b.id, status=SUBMITTED, tx_hash=tx_hash, submitted_ms=now, last_error=None)

    def _confirm(self, b: BatchRow, now: int) -> None:
        assert b.tx_hash is not None
        try:
            receipt = self.chain.receipt(b.tx_hash)
            head = self.chain.block_number()
        except ChainError as e:
            self.last_error = str(e)
            return
        if receipt is None:
            if now - (b.submitted_ms or now) > self.settings.anchor_timeout_seconds * 1000:
                log.warning(
                    "batch %d: tx %s has no receipt after %.0fs; sending again",
                    b.id,
                    b.tx_hash,
                    self.settings.anchor_timeout_seconds,
                )
                self.chain.reset_nonce(self.signer.address)
                self._update(b.id, status=CLOSED, tx_hash=None, submitted_ms=None, next_attempt_ms=0)
            return
        if receipt["status"] != 1:
            self.chain.reset_nonce(self.signer.address)
            self._update(
                b.id, status=CLOSED, tx_hash=None, submitted_ms=None, last_error="anchoring tx reverted"
            )
            return
        if receipt["blockNumber"] + self.settings.confirmations > head:
            return
        events = self.contract.events.BatchAnchored().process_receipt(receipt)
        ours = [ev for ev in events if bytes(ev["args"]["root"]) == b.root]
        if not ours:
            self._update(
                b.id,
                status=CLOSED,
                tx_hash=None,
                submitted_ms=None,
                last_error="receipt without BatchAnchored for our root",
            )
            return
        self._update(
            b.id,
            status=ANCHORED,
            chain_batch_id=int(ours[0]["args"]["batchId"]),
            block_number=int(receipt["blockNumber"]),
            block_hash=HexBytes(receipt["blockHash"]).to_0x_hex(),
            anchored_ms=now,
            gas_used=int(receipt["gasUsed"]),
            last_error=None,
        )
        confirmed = BatchConfirmed(
            batch_id=int(b.id or 0),
            chain_batch_id=int(ours[0]["args"]["batchId"]),
            root=b.root,
            count=b.count,
            tx_hash=b.tx_hash,
            block_number=int(receipt["blockNumber"]),
            oldest_received_ms=b.oldest_received_ms,
            anchored_ms=now,
        )
        log.info(
            "anchored batch %d as chain batch %s in block %s",
            b.id,
            confirmed.chain_batch_id,
            confirmed.block_number,
            extra={
                "event": "batch.anchored",
                "batch": confirmed.batch_id,
                "chain_batch": confirmed.chain_batch_id,
                "root": "0x" + b.root.hex(),
                "count": b.count,
                "tx": b.tx_hash,
                "block": confirmed.block_number,
            },
        )
        if self.on_anchored is not None:
            try:
                self.on_anchored(confirmed)
            except Exception:
                log.exception("on_anchored failed")

    def _adopt(self, b: BatchRow, chain_batch_id: int, now: int) -> None:
        """The root is on chain already (an earlier send landed): record that anchoring."""
        # usually a recent send (a crash between sending and recording): search from the newest block
        logs = batch_anchored_logs(
            self.chain,
            self.contract,
            from_block=max(0, self.deployment.block - 1),
            to_block=self.chain.block_number(),
            filters={"root": b.root},
            newest_first=True,
            stop=bool,
        )
        if not logs:
            self._failed(b, now, "root reported anchored but no BatchAnchored event found")
            return
        ev = logs[-1]
        log.info(
            "batch %d: root already anchored as chain batch %d (tx %s): adopting it",
            b.id,
            chain_batch_id,
            HexBytes(ev["transactionHash"]).to_0x_hex(),
            extra={
                "event": "batch.adopted",
                "batch": b.id,
                "chain_batch": chain_batch_id,
                "root": "0x" + b.root.hex(),
                "tx": HexBytes(ev["transactionHash"]).to_0x_hex(),
            },
        )
        self._update(
            b.id,
            status=SUBMITTED,
            tx_hash=HexBytes(ev["transactionHash"]).to_0x_hex(),
            submitted_ms=now,
            chain_batch_id=chain_batch_id,
            last_error=None,
        )

    def _failed(self, b: BatchRow, now: int, error: str) -> None:
        attempts = b.attempts + 1
        backoff = min(60_000, 500 * 2 ** min(attempts - 1, 10))
        self.last_error = error
        log.warning(
            "batch %d: anchoring attempt %d failed (%s); next in %d ms",
            b.id,
            attempts,
            error,
            backoff,
            extra={
                "event": "batch.anchor_failed",
                "batch": b.id,
                "attempts": attempts,
                "error": error[:500],
                "retry_ms": backoff,
            },
        )
        self._update(b.id, attempts=attempts, next_attempt_ms=now + backoff, last_error=error[:2000])

    # ------------------------------------------------------------------ reorgs

    def check_reorgs(self) -> None:
        try:
            head = self.chain.block_number()
        except ChainError as e:
            self.last_error = str(e)
            return
        with Session(self.engine) as s:
            recent = [
                r[0] if isinstance(r, tuple) else r
                for r in s.exec(
                    select(BatchRow)
                    .options(defer(BatchRow.tree))  # type: ignore[arg-type]
                    .where(
                        col(BatchRow.status) == ANCHORED,
                        col(BatchRow.block_number) >= head - self.reorg_depth,
                    )
                )
            ]
        for b in recent:
            assert b.tx_hash is not None
            try:
                receipt = self.chain.receipt(b.tx_hash)
            except ChainError as e:
                self.last_error = str(e)
                return
            if receipt is None or receipt["status"] != 1:
                log.warning("batch %d: anchoring tx %s vanished (reorg); sending again", b.id, b.tx_hash)
                self.chain.reset_nonce(self.signer.address)
                self._update(
                    b.id,
                    status=CLOSED,
                    tx_hash=None,
                    submitted_ms=None,
                    block_number=None,
                    block_hash=None,
                    chain_batch_id=None,
                    anchored_ms=None,
                    next_attempt_ms=0,
                )
            elif HexBytes(receipt["blockHash"]).to_0x_hex() != b.block_hash:
                log.warning("batch %d: anchoring tx moved to block %s (reorg)", b.id, receipt["blockNumber"])
                self._update(b.id, status=SUBMITTED)

    # ------------------------------------------------------------------ store

    def _update(self, batch_id: int | None, **values: object) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(BatchRow).where(col(BatchRow.id) == batch_id).values(**values))
