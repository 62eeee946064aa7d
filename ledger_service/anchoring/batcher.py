"""One generic batch anchorer: the send / confirm / adopt state machine, for any kind of batch.

A batch row moves ``closed`` -> ``submitted`` -> ``anchored``
(:class:`~ledger_service.store.batch_status.BatchStatus`):

- ``closed``: its root is computed and stored; it is sent when ``next_attempt_ms`` is due. A send the
  node refuses, or that fails to reach it, is retried with back-off (0.5 s doubling to 60 s) and the
  signer's nonce is forgotten (asked from the chain again). A send the contract refuses because it
  anchored the root already (a send that landed before a crash) is *adopted*: the earlier anchoring
  is recorded instead;
- ``submitted``: its transaction is sent; it is anchored once the receipt is there (and, for a kind
  with ``confirmations``, that many blocks deep). No receipt after ``timeout_seconds`` (dropped): back
  to ``closed``, sent again. A reverted transaction, or a receipt without the kind's event for this
  root: back to ``closed``;
- ``anchored``: recorded with where it is on chain.

With several instances on one database only the anchoring leader runs the machine
(:mod:`ledger_service.anchoring.leader`): with a :attr:`BatchAnchorer.leader` set, a step does nothing
while this instance does not lead, and every write of a batch row is fenced (:meth:`BatchAnchorer.fence`:
refused, :class:`~ledger_service.anchoring.leader.NotLeaderError`, once another instance took the lead).

:class:`BatchAnchorer` runs that machine (and its thread); a subclass says what one kind of batch is:
its table, the contract call that anchors a root, the revert that says the root is anchored already
and how to adopt it, the event a receipt carries and what an anchored batch records. It also closes
its batches (:meth:`BatchAnchorer.close_batch`) and says what one step does (:meth:`BatchAnchorer.tick`).
The readings (:mod:`ledger_service.anchoring.readings`) and the access log
(:mod:`ledger_service.anchoring.access_log`) are its two kinds.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from typing import Any, Generic, Protocol, TypeVar

from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from sqlalchemy import Connection, Engine, update
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar
from web3.exceptions import BlockNotFound

from contracts.chain import Chain
from contracts.errors import ChainError, ContractRevert
from ledger_service.anchoring.leader import Leadership, NotLeaderError
from ledger_service.store.batch_status import BatchStatus

__all__ = ["BatchAnchorer", "BatchRecord", "retry_delay_ms"]


class BatchRecord(Protocol):
    """The columns of a batch row the state machine reads (every kind's batch table has them)."""

    id: int | None
    root: bytes
    count: int
    status: str
    attempts: int
    next_attempt_ms: int
    tx_hash: str | None
    submitted_ms: int | None


B = TypeVar("B", bound=BatchRecord)


def retry_delay_ms(attempts: int) -> int:
    """The back-off after ``attempts`` failed sends: 0.5 s doubling, at most 60 s."""
    return min(60_000, 500 * 2 ** min(attempts - 1, 10))


class BatchAnchorer(ABC, Generic[B]):
    """Sends, confirms and adopts the batches of one table; runs in a thread of the service."""

    #: What logs call one batch ("batch", "access-log batch") and the prefix of its log events.
    label = "batch"
    event = "batch"
    #: The contract function that anchors a root, and the event its receipt carries.
    call_name = ""
    event_name = ""
    thread_name = "supet-anchor"
    #: Seconds between steps of the thread (it also wakes when :meth:`wake` is called).
    default_interval = 0.2

    def __init__(
        self, *, table: type[B], engine: Engine, chain: Chain, signer: LocalAccount, log: logging.Logger
    ) -> None:
        self.table = table
        self.engine = engine
        self.chain = chain
        self.signer = signer
        self.log = log
        self.last_error: str | None = None
        #: The anchoring lead this anchorer runs under (several instances on one database); ``None``:
        #: it runs alone, unfenced (a service without anchoring driven by hand, tests, tools).
        self.leader: Leadership | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ what a kind says

    @abstractmethod
    def now_ms(self) -> int:
        """The kind's clock, in Unix milliseconds."""

    @abstractmethod
    def tick(self, *, force: bool = False) -> None:
        """One step: close due batches (all waiting ones if ``force``), then :meth:`advance`."""

    @abstractmethod
    def close_batch(self, *, force: bool = False) -> int | None:
        """Close one batch if due; its id."""

    @property
    @abstractmethod
    def timeout_seconds(self) -> float:
        """How long a sent transaction may go without a receipt before it is sent again."""

    @property
    def confirmations(self) -> int | None:
        """Blocks a receipt must be deep to count (the head is read); ``None``: the receipt is enough."""
        return None

    @abstractmethod
    def anchor_call(self, b: B) -> Any:
        """The contract function call that anchors ``b``'s root."""

    @abstractmethod
    def already_anchored(self, e: ContractRevert) -> int | None:
        """The chain index ``e`` names when it says the root is anchored already; else ``None``."""

    @abstractmethod
    def adopt(self, b: B, chain_index: int, now: int) -> None:
        """Record the anchoring of ``b``'s root that is on chain already (chain index ``chain_index``)."""

    @abstractmethod
    def anchored_index(self, receipt: Any, b: B) -> int | None:
        """The chain index ``receipt``'s event gives ``b``'s root; ``None`` when it has no such event."""

    @abstractmethod
    def record_anchored(self, b: B, receipt: Any, chain_index: int, now: int) -> None:
        """Record ``b`` as anchored (its receipt ``receipt``, deep enough), and tell whom it concerns."""

    def open_batches_query(self) -> SelectOfScalar[B]:
        """The batches to send or confirm (``closed`` and ``submitted``), oldest first."""
        return (
            select(self.table)
            .where(col(self.table.status).in_([BatchStatus.CLOSED, BatchStatus.SUBMITTED]))
            .order_by(col(self.table.id))
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self, interval: float | None = None) -> None:
        if interval is None:
            interval = self.default_interval
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, args=(interval,), name=self.thread_name, daemon=True
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

    def leading(self) -> bool:
        """May this instance run the machine now? (no leadership set: always)"""
        return self.leader is None or self.leader.is_leader

    def fence(self, conn: Connection) -> None:
        """Refuse the write in ``conn``'s transaction unless this instance still leads (when led)."""
        if self.leader is not None:
            self.leader.fence(conn)

    def _loop(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except NotLeaderError as e:  # another instance took the lead mid-step: nothing was written
                self.last_error = str(e)
                self.log.info("%s anchoring step stopped: %s", self.label, e)
            except Exception as e:  # keep anchoring alive; the error is logged and retried
                self.last_error = f"{type(e).__name__}: {e}"
                self.log.exception("%s anchoring tick failed", self.label)
            self._wake.wait(interval)
            self._wake.clear()

    # ------------------------------------------------------------------ sending and confirming

    def advance(self) -> None:
        """Send each due ``closed`` batch, confirm each ``submitted`` one (while this instance leads)."""
        if not self.leading():
            return
        now = self.now_ms()
        with Session(self.engine) as s:
            batches = list(s.exec(self.open_batches_query()).all())
        for b in batches:
            if not self.leading():
                return
            if b.status == BatchStatus.CLOSED and b.next_attempt_ms <= now:
                self.send(b, now)
            elif b.status == BatchStatus.SUBMITTED:
                self.confirm(b, now)

    def send(self, b: B, now: int) -> None:
        try:
            tx_hash = self.chain.send(
                self.anchor_call(b), self.signer, context=f"{self.call_name}(batch {b.id})"
            )
        except ContractRevert as e:
            index = self.already_anchored(e)
            if index is not None:
                self.adopt(b, index, now)
                return
            self.failed(b, now, f"{self.call_name} refused: {e}")
            return
        except ChainError as e:
            self.chain.reset_nonce(self.signer.address)
            self.failed(b, now, str(e))
            return
        self.update(b.id, status=BatchStatus.SUBMITTED, tx_hash=tx_hash, submitted_ms=now, last_error=None)

    def confirm(self, b: B, now: int) -> None:
        if b.tx_hash is None:  # adopted: the batch is on chain, its transaction unknown
            self.update(b.id, status=BatchStatus.ANCHORED, anchored_ms=now)
            return
        try:
            receipt = self.chain.receipt(b.tx_hash)
            head = self.chain.block_number() if self.confirmations is not None else None
        except ChainError as e:
            self.last_error = str(e)
            return
        if receipt is None:
            self.no_receipt(b, now)
            return
        if receipt["status"] != 1:
            self.chain.reset_nonce(self.signer.address)
            self.reopen(b, f"{self.call_name} reverted")
            return
        if head is not None and receipt["blockNumber"] + (self.confirmations or 0) > head:
            return
        try:
            canonical = self.in_canonical_chain(receipt)
        except ChainError as e:
            self.last_error = str(e)
            return
        if not canonical:  # a receipt from a block a reorg took away: not mined, as far as we know
            self.no_receipt(b, now)
            return
        index = self.anchored_index(receipt, b)
        if index is None:
            self.reopen(b, f"receipt without {self.event_name} for our root")
            return
        self.record_anchored(b, receipt, index, now)

    def no_receipt(self, b: B, now: int) -> None:
        """``b``'s transaction is not mined (as far as the canonical chain says): sent again once it
        has waited ``timeout_seconds``."""
        if now - (b.submitted_ms or now) > self.timeout_seconds * 1000:
            self.log.warning(
                "%s %d: tx %s has no receipt after %.0fs; sending again",
                self.label,
                b.id,
                b.tx_hash,
                self.timeout_seconds,
            )
            self.chain.reset_nonce(self.signer.address)
            self.update(b.id, status=BatchStatus.CLOSED, tx_hash=None, submitted_ms=None, next_attempt_ms=0)

    def canonical_block_hash(self, number: int) -> str | None:
        """The hash of the canonical chain's block ``number`` (0x-hex); ``None`` when the chain is not
        that long (:class:`ChainError` if it cannot be read)."""
        try:
            block = self.chain.block(number)
        except BlockNotFound:
            return None
        return HexBytes(block["hash"]).to_0x_hex()

    def in_canonical_chain(self, receipt: Any) -> bool:
        """Is ``receipt``'s block the canonical chain's block at its height?

        A node may still answer a receipt from a block a reorg took away (its transaction index
        lags its block index); recording such a receipt would give the batch the chain index another
        batch then receives in the canonical chain."""
        block_hash = HexBytes(receipt["blockHash"]).to_0x_hex()
        return self.canonical_block_hash(int(receipt["blockNumber"])) == block_hash

    def reopen(self, b: B, error: str) -> None:
        """Back to ``closed``, to be sent again at once."""
        self.update(b.id, status=BatchStatus.CLOSED, tx_hash=None, submitted_ms=None, last_error=error)

    def failed(self, b: B, now: int, error: str) -> None:
        """A send failed: retry after the back-off."""
        attempts = b.attempts + 1
        backoff = retry_delay_ms(attempts)
        self.last_error = error
        self.log.warning(
            "%s %d: anchoring attempt %d failed (%s); next in %d ms",
            self.label,
            b.id,
            attempts,
            error,
            backoff,
            extra={
                "event": f"{self.event}.anchor_failed",
                "batch": b.id,
                "attempts": attempts,
                "error": error[:500],
                "retry_ms": backoff,
            },
        )
        self.update(b.id, attempts=attempts, next_attempt_ms=now + backoff, last_error=error[:2000])

    # ------------------------------------------------------------------ store

    def update(self, batch_id: int | None, **values: object) -> None:
        """Write a batch row's columns (fenced: refused once another instance took the lead)."""
        with self.engine.begin() as conn:
            self.fence(conn)
            conn.execute(update(self.table).where(col(self.table.id) == batch_id).values(**values))
