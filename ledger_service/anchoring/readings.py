"""The readings' anchoring worker: closes batches, anchors their roots, survives every fault.

A batch is closed when ``batch_max_readings`` readings wait or the oldest has
waited ``batch_max_seconds``. Closing writes the batch row (with its
whole Merkle tree, so every proof can be served) and the readings' batch id and
proof path (one UPDATE a reading), so a reading is in exactly one batch: in one transaction on
PostgreSQL, in steps of :data:`~ledger_service.anchoring.reading_batches.CLOSE_STEP` readings on
SQLite (its one write lock is not held for a whole batch while the ingest writer waits), the batch
never sent before its last step and a close stopped between steps undone before the next one. Then
the root is sent with ``anchorBatch``; the batch is ``anchored`` once its receipt is
``confirmations`` blocks deep.

Faults, and what happens:
- chain unreachable: the batch stays ``closed``; retries back off (0.5 s doubling to 60 s);
- process killed after sending, before recording: on restart the batch is sent
  again; the contract refuses a root twice (``ReadingAnchorRootAlreadyAnchored``),
  and the worker adopts the earlier anchoring from its ``BatchAnchored`` event;
- transaction dropped (no receipt after ``anchor_timeout_seconds``): sent again;
- reorg: an anchored batch within ``reorg_depth`` blocks whose block is no longer the
  canonical chain's goes back to ``closed`` (its transaction vanished) or ``submitted``
  (it moved to another block), its chain index and block cleared; a receipt counts only
  if its block is the canonical chain's (a node may answer one from a reorged-away block);
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

Several instances on one database: only the anchoring leader ticks
(:mod:`ledger_service.anchoring.leader`); closing a batch, re-forming a lost one and every status
write are fenced by its epoch. A new leader looks for lost batches again and asks the database
what waits (the writer's reports cover this process's commits only, so with a shared database they
are never trusted to say "nothing is due").

Sending, confirming and adopting are the generic :class:`~ledger_service.anchoring.batcher.BatchAnchorer`'s
(the access log's anchorer is the other one); lost batches are found and matched in
:mod:`ledger_service.anchoring.recovery`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import Connection, Engine, func
from sqlalchemy.orm import defer  # the tree blob is not needed to send or confirm
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.errors import ChainError, ContractRevert
from ledger_service.anchoring.batcher import BatchAnchorer
from ledger_service.anchoring.chain_logs import batch_anchored_logs
from ledger_service.anchoring.leader import NotLeaderError
from ledger_service.anchoring.reading_batches import (
    assign_with_paths,
    close_in_steps,
    insert_closed,
    pending_count,
    undo_unfinished,
)
from ledger_service.anchoring.reading_batches import waiting as waiting_readings
from ledger_service.anchoring.recovery import LostBatch, lost_on_chain, reform_lost_batch
from ledger_service.config import Settings
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.batch_tree import EncodedTree, build_encoded_tree
from ledger_service.store.models import BatchRow, ReadingRow

__all__ = ["AnchorStats", "AnchoringWorker", "BatchConfirmed"]

#: The anchoring's logger (its records' ``logger`` field is ``ledger_service.anchoring``).
log = logging.getLogger("ledger_service.anchoring")


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


class AnchoringWorker(BatchAnchorer[BatchRow]):
    """Anchors the readings' batches; runs in one thread of the service (or alone with ``supet anchor``)."""

    call_name = "anchorBatch"
    event_name = "BatchAnchored"

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        chain: Chain,
        deployment: Deployment,
        signer: LocalAccount,
        build_tree: Callable[[list[bytes]], EncodedTree] = build_encoded_tree,
        reorg_depth: int = 64,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(table=BatchRow, engine=engine, chain=chain, signer=signer, log=log)
        self.settings = settings
        self.contract = deployment.contract(chain, "ReadingAnchor")
        #: How a batch's tree is built (the service hands it to its worker processes, off the GIL).
        self.build_tree = build_tree
        self.reorg_depth = reorg_depth
        self.clock = clock
        # What waits to be batched, as the writer reports it: None = unknown (ask the database).
        self._pending: int | None = None
        self._oldest_pending_ms: int | None = None
        self._pending_lock = threading.Lock()
        self._tick_lock = threading.RLock()
        self._last_reorg_check = 0.0
        self.reorg_check_interval = 2.0
        #: Told of each confirmed anchoring (metrics); must not raise.
        self.on_anchored: Callable[[BatchConfirmed], None] | None = None
        self.deployment = deployment
        #: Lost batches still to re-form (None: not looked for yet), and since when (monotonic).
        self.lost: list[LostBatch] | None = None
        self._lost_since = 0.0
        self.recovery_hold_seconds = settings.recovery_hold_seconds
        #: Set when this instance (again) took the lead: the next step starts afresh (module docstring).
        self._fresh_lead = threading.Event()
        #: A close may have stopped between its steps (at start: in an earlier run): undo it first.
        self._unfinished = True

    def took_lead(self) -> None:
        """This instance just took the anchoring lead: forget what was learnt before (what waits, lost
        batches, the signer's nonce: another leader may have sent since)."""
        self.chain.reset_nonce(self.signer.address)
        self._fresh_lead.set()
        self._wake.set()

    @property
    def shared(self) -> bool:
        """Do other instances commit readings to this store (a leadership over a shared database)?"""
        return self.leader is not None and self.leader.shared

    # ------------------------------------------------------------------ the writer's reports

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
        """From the writer's reports alone: certainly no batch is due (no query needed). Never with a
        shared database: other instances' commits are not reported here."""
        if self.shared:
            return False
        with self._pending_lock:
            if self._pending is None:
                return False
            if self._pending == 0:
                return True
            if self._pending >= self.settings.batch_max_readings or self._oldest_pending_ms is None:
                return False
            return now - self._oldest_pending_ms < self.settings.batch_max_seconds * 1000

    # ------------------------------------------------------------------ one step

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def tick(self, *, force: bool = False) -> None:
        """Close due batches (all pending ones if ``force``), advance each batch, check for reorgs.

        Serialised: the worker's loop and a caller's :meth:`flush` may tick at the same time, and two
        concurrent closes would take the same pending readings into two batches with one root.
        """
        with self._tick_lock:
            if not self.leading():
                return
            if self._fresh_lead.is_set():
                self._fresh_lead.clear()
                self.lost = None  # looked for again: the old leader may have left some
                self._unfinished = True  # and closes stopped between their steps
                with self._pending_lock:
                    self._pending = None
                    self._oldest_pending_ms = None
            self._tick(force=force)

    def _tick(self, *, force: bool) -> None:
        if self._unfinished:  # before anything takes waiting readings (a lost batch's re-forming too)
            self.undo_unfinished_closes()
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
        if not self.leading():  # another instance anchors: this one would wait for nothing
            raise NotLeaderError(f"this instance does not lead anchoring: flush {self.label}es on the leader")
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
            pending = pending_count(s)
            counts = dict(
                s.exec(select(col(BatchRow.status), func.count()).group_by(col(BatchRow.status))).all()
            )
        return AnchorStats(
            pending_readings=pending,
            closed_batches=int(counts.get(BatchStatus.CLOSED, 0)),
            submitted_batches=int(counts.get(BatchStatus.SUBMITTED, 0)),
            anchored_batches=int(counts.get(BatchStatus.ANCHORED, 0)),
        )

    def backlog(self) -> int:
        """Readings committed but not yet anchored: not in a batch yet, or in an unconfirmed one.

        The not-yet-batched part comes from the writer's reports when known (no query)."""
        with self._pending_lock:
            pending = None if self.shared else self._pending
        with Session(self.engine) as s:
            if pending is None:
                pending = pending_count(s)
            unconfirmed = s.exec(
                select(func.coalesce(func.sum(col(BatchRow.count)), 0)).where(
                    col(BatchRow.status) != BatchStatus.ANCHORED
                )
            ).one()
        return pending + int(unconfirmed)

    # ------------------------------------------------------------------ lost batches (restored store)

    def find_lost_batches(self) -> list[LostBatch] | None:
        """Look once for chain batches of this signer unknown to the store (None: chain unreachable);
        see :func:`~ledger_service.anchoring.recovery.lost_on_chain`."""
        try:
            found = lost_on_chain(
                engine=self.engine,
                chain=self.chain,
                contract=self.contract,
                signer_address=self.signer.address,
                deployment_block=self.deployment.block,
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
        """Close one batch whose root is a lost batch's, from what waits, if possible; its id."""
        if not self.lost:
            return None
        now = int(self.clock() * 1000)
        with self.engine.begin() as conn:
            self.fence(conn)
            reformed = reform_lost_batch(conn, list(self.lost), self.build_tree, now=now)
            if reformed is None:
                return None
            lost, batch_id = reformed
            self.lost.remove(lost)
            with self._pending_lock:
                self._pending = None  # ask the database next time
                self._oldest_pending_ms = None
            return batch_id

    # ------------------------------------------------------------------ closing

    def close_batch(self, *, force: bool = False) -> int | None:
        """Close one batch if due; return its local id (a close stopped between its steps is undone at
        the start of the next tick: :meth:`undo_unfinished_closes`)."""
        now = int(self.clock() * 1000)
        limit = self.settings.batch_max_readings
        if not force and self._not_due(now):
            return None
        with self.engine.begin() as conn:
            if not self._due(conn, now, force=force):
                return None
            self.fence(conn)  # only the anchoring leader closes batches
            rows = conn.execute(
                select(
                    col(ReadingRow.id),
                    col(ReadingRow.digest),
                    col(ReadingRow.received_ms),
                    col(ReadingRow.ts_ms),
                )
                .where(col(ReadingRow.batch_id).is_(None))
                .order_by(col(ReadingRow.id))
                .limit(limit)
            ).all()
            if not rows:
                return None
            root, nodes, paths = self.build_tree([bytes(r[1]) for r in rows])
            ids, ts_ms = [int(r[0] or 0) for r in rows], [int(r[3]) for r in rows]
            oldest, one_txn = min(r[2] for r in rows), conn.dialect.name == "postgresql"
            if one_txn:  # PostgreSQL: the reads and writes in one transaction, one write a reading
                batch_id = insert_closed(
                    conn, root=root, nodes=nodes, count=len(rows), oldest_ms=oldest, now=now
                )
                assign_with_paths(conn, ids, ts_ms, paths, batch_id)
        if not one_txn:  # SQLite (the reads above were outside any transaction): the writes in steps
            try:
                batch_id = close_in_steps(
                    self.engine,
                    self.fence,
                    EncodedTree(root, nodes, paths),
                    ids,
                    ts_ms,
                    oldest_ms=oldest,
                    now=now,
                )
            except BaseException:
                self._unfinished = True  # undone at the next tick, before anything else
                raise
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

    def undo_unfinished_closes(self) -> list[int]:
        """Undo the closes stopped between their steps (a crash, an error, another leader's): their
        readings wait again. The ids of the batch rows deleted."""
        with self.engine.begin() as conn:
            self.fence(conn)
            undone = undo_unfinished(conn)
        self._unfinished = False
        if undone:
            with self._pending_lock:
                self._pending = self._oldest_pending_ms = None  # ask the database next time
            log.warning(
                "undid %d batch close(s) stopped between their steps: their readings wait again",
                len(undone),
                extra={"event": "batch.close_undone", "batches": undone},
            )
        return undone

    def _due(self, conn: Connection, now: int, *, force: bool) -> bool:
        """Is a batch due? (the count and age of what waits, noted for :meth:`_not_due`)"""
        with self._pending_lock:
            waiting, oldest_ms = waiting_readings(conn)  # from an index, never a scan of the table
            self._pending = waiting
            self._oldest_pending_ms = oldest_ms
        if not waiting:
            return False
        return bool(
            force
            or waiting >= self.settings.batch_max_readings
            or now - (oldest_ms or now) >= self.settings.batch_max_seconds * 1000
        )

    # ------------------------------------------------------------------ what the generic anchorer asks

    @property
    def timeout_seconds(self) -> float:
        return self.settings.anchor_timeout_seconds

    @property
    def confirmations(self) -> int | None:
        return self.settings.confirmations

    def open_batches_query(self) -> SelectOfScalar[BatchRow]:
        return super().open_batches_query().options(defer(BatchRow.tree))  # type: ignore[arg-type]

    def anchor_call(self, b: BatchRow) -> Any:
        return self.contract.functions.anchorBatch(b.root, b.count)

    def already_anchored(self, e: ContractRevert) -> int | None:
        if e.error_name == "ReadingAnchorRootAlreadyAnchored":
            return int(e.error_args["batchId"])
        return None

    def adopt(self, b: BatchRow, chain_index: int, now: int) -> None:
        """The root is on chain already (an earlier send landed): record that anchoring (confirmed next)."""
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
            self.failed(b, now, "root reported anchored but no BatchAnchored event found")
            return
        tx_hash = HexBytes(logs[-1]["transactionHash"]).to_0x_hex()
        log.info(
            "batch %d: root already anchored as chain batch %d (tx %s): adopting it",
            b.id,
            chain_index,
            tx_hash,
            extra={
                "event": "batch.adopted",
                "batch": b.id,
                "chain_batch": chain_index,
                "root": "0x" + b.root.hex(),
                "tx": tx_hash,
            },
        )
        self.update(
            b.id,
            status=BatchStatus.SUBMITTED,
            tx_hash=tx_hash,
            submitted_ms=now,
            chain_batch_id=chain_index,
            last_error=None,
        )

    def anchored_index(self, receipt: Any, b: BatchRow) -> int | None:
        events = self.contract.events.BatchAnchored().process_receipt(receipt)
        ours = [ev for ev in events if bytes(ev["args"]["root"]) == b.root]
        return int(ours[0]["args"]["batchId"]) if ours else None

    def record_anchored(self, b: BatchRow, receipt: Any, chain_index: int, now: int) -> None:
        assert b.tx_hash is not None
        self.update(
            b.id,
            status=BatchStatus.ANCHORED,
            chain_batch_id=chain_index,
            block_number=int(receipt["blockNumber"]),
            block_hash=HexBytes(receipt["blockHash"]).to_0x_hex(),
            anchored_ms=now,
            gas_used=int(receipt["gasUsed"]),
            last_error=None,
        )
        confirmed = BatchConfirmed(
            batch_id=int(b.id or 0),
            chain_batch_id=chain_index,
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

    # ------------------------------------------------------------------ reorgs

    def check_reorgs(self) -> None:
        """Anchored batches within ``reorg_depth`` blocks whose block is no longer the canonical chain's
        are looked at again: back to ``closed`` if their transaction is not in the canonical chain any
        more, to ``submitted`` (confirmed again) if it moved to another canonical block.

        The canonical chain's block hash at the recorded height decides, not the receipt alone: a node
        may still answer a receipt from a block a reorg took away, and a batch kept ``anchored`` on it
        would keep a chain index the contract's counter hands to another batch."""
        try:
            head = self.chain.block_number()
        except ChainError as e:
            self.last_error = str(e)
            return
        with Session(self.engine) as s:
            recent = list(
                s.exec(
                    select(BatchRow)
                    .options(defer(BatchRow.tree))  # type: ignore[arg-type]
                    .where(
                        col(BatchRow.status) == BatchStatus.ANCHORED,
                        col(BatchRow.block_number) >= head - self.reorg_depth,
                    )
                ).all()
            )
        canonical: dict[int, str | None] = {}
        for b in recent:
            assert b.tx_hash is not None and b.block_number is not None
            try:
                if b.block_number not in canonical:
                    canonical[b.block_number] = self.canonical_block_hash(b.block_number)
                if canonical[b.block_number] == b.block_hash:
                    continue  # its block is still the canonical one: so is its anchoring
                receipt = self.chain.receipt(b.tx_hash)
                moved = receipt is not None and receipt["status"] == 1 and self.in_canonical_chain(receipt)
            except ChainError as e:
                self.last_error = str(e)
                return
            if not moved:
                log.warning("batch %d: anchoring tx %s vanished (reorg); sending again", b.id, b.tx_hash)
                self.chain.reset_nonce(self.signer.address)
                self.update(
                    b.id,
                    status=BatchStatus.CLOSED,
                    tx_hash=None,
                    submitted_ms=None,
                    block_number=None,
                    block_hash=None,
                    chain_batch_id=None,
                    anchored_ms=None,
                    next_attempt_ms=0,
                )
            else:
                assert receipt is not None
                log.warning("batch %d: anchoring tx moved to block %s (reorg)", b.id, receipt["blockNumber"])
                # its chain index and block are read again from the canonical receipt when confirmed
                self.update(
                    b.id,
                    status=BatchStatus.SUBMITTED,
                    block_number=None,
                    block_hash=None,
                    chain_batch_id=None,
                    anchored_ms=None,
                )
