"""The access log's batches, anchored by the generic batch anchorer (``CreditRegistry.anchorAccessLog``).

:class:`AccessLogAnchorer` closes a batch of the credit desk's access log (its entries' digests, in
id order: :mod:`ledger_service.credit_desk.access_log`) at ``max_entries`` entries or when the oldest
waited ``max_seconds``; one ``anchorAccessLog(root, count, fromMs, toMs)`` per batch. Sending,
confirming, retrying with back-off and adopting a root the contract says it anchored already (a send
that landed before a crash) are :class:`~ledger_service.anchoring.batcher.BatchAnchorer`'s; like the
readings' worker it runs only on the anchoring leader, its writes fenced
(:mod:`ledger_service.anchoring.leader`). An
adopted batch is recorded ``anchored`` at once, with the transaction its event names if the chain
can say.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import func, insert, update
from sqlmodel import Session, col, select

from contracts.errors import ChainError, ContractRevert
from device_attestation.merkle import MerkleTree
from ledger_service.anchoring.batcher import BatchAnchorer
from ledger_service.anchoring.leader import NotLeaderError
from ledger_service.errors import StoreError
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import AccessLogBatchRow, AccessLogRow

if TYPE_CHECKING:
    from ledger_service.credit_desk.access_log import AccessLogBook

__all__ = ["AccessLogAnchorer"]

log = logging.getLogger(__name__)


class AccessLogAnchorer(BatchAnchorer[AccessLogBatchRow]):
    """Closes access-log batches and anchors their roots (a thread of the service, or ``tick`` by hand)."""

    label = "access-log batch"
    event = "access_log"
    call_name = "anchorAccessLog"
    event_name = "AccessLogAnchored"
    thread_name = "supet-access-log"
    default_interval = 0.5

    def __init__(
        self,
        *,
        book: AccessLogBook,
        signer: LocalAccount,
        max_entries: int = 1000,
        max_seconds: float = 5.0,
        timeout_seconds: float = 60.0,
    ) -> None:
        super().__init__(
            table=AccessLogBatchRow, engine=book.engine, chain=book.chain, signer=signer, log=log
        )
        self.book = book
        self.contract = book.contract
        self.max_entries = max_entries
        self.max_seconds = max_seconds
        self._timeout_seconds = timeout_seconds

    @property
    def timeout_seconds(self) -> float:
        return self._timeout_seconds

    @timeout_seconds.setter
    def timeout_seconds(self, value: float) -> None:
        self._timeout_seconds = value

    def now_ms(self) -> int:
        return int(self.book.clock() * 1000)

    def tick(self, *, force: bool = False) -> None:
        if not self.leading():
            return
        while self.close_batch(force=force) is not None:
            pass
        self.advance()

    def flush(self, timeout: float = 60.0) -> None:
        """Anchor everything logged so far (tests, shutdown); :class:`ChainError` if it cannot in time."""
        if not self.leading():  # another instance anchors: this one would wait for nothing
            raise NotLeaderError(f"this instance does not lead anchoring: flush {self.label}es on the leader")
        deadline = time.monotonic() + timeout
        while True:
            self.tick(force=True)
            with Session(self.engine) as s:
                pending = s.exec(
                    select(func.count()).select_from(AccessLogRow).where(col(AccessLogRow.batch_id).is_(None))
                ).one()
                open_batches = s.exec(
                    select(func.count())
                    .select_from(AccessLogBatchRow)
                    .where(AccessLogBatchRow.status != BatchStatus.ANCHORED)
                ).one()
            if not pending and not open_batches:
                return
            if time.monotonic() > deadline:
                raise ChainError(f"access-log anchoring did not finish in {timeout:.0f}s: {self.last_error}")
            time.sleep(0.05)

    # -------------------------------------------------------------- closing

    def close_batch(self, *, force: bool = False) -> int | None:
        """Close one batch if due (``max_entries`` waiting or the oldest ``max_seconds`` old); its id."""
        now = self.now_ms()
        with self.engine.begin() as conn:
            waiting, oldest = conn.execute(
                select(func.count(), func.min(col(AccessLogRow.ts_ms))).where(
                    col(AccessLogRow.batch_id).is_(None)
                )
            ).one()
            if not waiting:
                return None
            if not force and waiting < self.max_entries and now - int(oldest) < self.max_seconds * 1000:
                return None
            self.fence(conn)  # only the anchoring leader closes batches
            rows = conn.execute(
                select(col(AccessLogRow.id), col(AccessLogRow.digest), col(AccessLogRow.ts_ms))
                .where(col(AccessLogRow.batch_id).is_(None))
                .order_by(col(AccessLogRow.id))
                .limit(self.max_entries)
            ).all()
            tree = MerkleTree.build([bytes(r[1]) for r in rows])
            result = conn.execute(
                insert(AccessLogBatchRow).values(
                    root=tree.root,
                    count=len(rows),
                    from_ms=min(int(r[2]) for r in rows),
                    to_ms=max(int(r[2]) for r in rows),
                    status=BatchStatus.CLOSED,
                    created_ms=now,
                    attempts=0,
                    next_attempt_ms=0,
                )
            )
            assert result.inserted_primary_key is not None
            batch_id = int(result.inserted_primary_key[0])
            ids = [int(r[0] or 0) for r in rows]
            moved = 0
            for i in range(0, len(ids), 900):
                moved += conn.execute(
                    update(AccessLogRow)
                    .where(col(AccessLogRow.id).in_(ids[i : i + 900]), col(AccessLogRow.batch_id).is_(None))
                    .values(batch_id=batch_id)
                ).rowcount
            if moved != len(ids):  # never moved from another batch: nothing is closed
                raise StoreError(f"{len(ids) - moved} access-log entries are in another batch already")
        log.info(
            "closed access-log batch %d: %d entries",
            batch_id,
            len(ids),
            extra={
                "event": "access_log.closed",
                "batch": batch_id,
                "count": len(ids),
                "root": "0x" + tree.root.hex(),
            },
        )
        return batch_id

    # -------------------------------------------------------------- what the generic anchorer asks

    def anchor_call(self, b: AccessLogBatchRow) -> Any:
        return self.contract.functions.anchorAccessLog(b.root, b.count, b.from_ms, b.to_ms)

    def already_anchored(self, e: ContractRevert) -> int | None:
        if e.error_name == "CreditRegistryRootAnchored":
            return int(e.error_args["index"])
        return None

    def adopt(self, b: AccessLogBatchRow, chain_index: int, now: int) -> None:
        """The root is on chain already (an earlier send landed): take that anchoring."""
        tx_hash: str | None = None
        block: int | None = None
        try:
            logs = self.chain.request(
                lambda: self.contract.events.AccessLogAnchored().get_logs(
                    from_block=0, argument_filters={"index": chain_index}
                ),
                context="AccessLogAnchored logs",
            )
            if logs:
                tx_hash = HexBytes(logs[-1]["transactionHash"]).to_0x_hex()
                block = int(logs[-1]["blockNumber"])
        except ChainError as e:
            self.last_error = str(e)
        self.update(
            b.id,
            status=BatchStatus.ANCHORED,
            chain_index=chain_index,
            tx_hash=tx_hash,
            block_number=block,
            anchored_ms=now,
        )
        log.info("access-log batch %d: root already anchored as chain batch %d; adopted", b.id, chain_index)

    def anchored_index(self, receipt: Any, b: AccessLogBatchRow) -> int | None:
        events = self.contract.events.AccessLogAnchored().process_receipt(receipt)
        ours = [ev for ev in events if bytes(ev["args"]["root"]) == b.root]
        return int(ours[0]["args"]["index"]) if ours else None

    def record_anchored(self, b: AccessLogBatchRow, receipt: Any, chain_index: int, now: int) -> None:
        self.update(
            b.id,
            status=BatchStatus.ANCHORED,
            chain_index=chain_index,
            block_number=int(receipt["blockNumber"]),
            anchored_ms=now,
            last_error=None,
        )
        log.info(
            "anchored access-log batch %d as chain batch %d",
            b.id,
            chain_index,
            extra={
                "event": "access_log.anchored",
                "batch": b.id,
                "chain_batch": chain_index,
                "tx": b.tx_hash,
            },
        )
