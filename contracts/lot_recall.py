"""Typed client of the LotRegistry's recall notices (the lots themselves: :mod:`contracts.lots`).

A lot's producer, or a party admitted for :data:`RECALL_ACTION`, records a notice on a lot with the hash of
its reason (:func:`reason_hash`: the text stays off chain, every consortium member reads the chain). The
lots downstream are then flagged in batches of at most :data:`MAX_FLAG_BATCH` by anyone, each a direct
child (split off, or a transformation output) of a lot already recalled or flagged, parents first
(:meth:`LotRecallClient.flag_downstream` checks the order and batches; the registry checks every edge).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3.logs import DISCARD

from contracts.chain import Chain, TxResult
from contracts.deployment import Deployment
from contracts.errors import ContractsError
from contracts.lots import LotRegistryClient

__all__ = [
    "MAX_FLAG_BATCH",
    "RECALL_ACTION",
    "Flagged",
    "InvalidRecall",
    "LotRecallClient",
    "RecallNotice",
    "Recalled",
    "reason_hash",
]

#: The admission-gate action that lets a party other than a lot's producer recall it.
RECALL_ACTION = keccak(b"supet.lot.recall")
#: ``LotRegistry.MAX_FLAG_BATCH``: the most lots one ``flagDownstream`` call flags.
MAX_FLAG_BATCH = 128


class InvalidRecall(ContractsError):
    """A recall or a flagging batch is malformed (checked before anything is sent)."""

    code = "lot.recall_invalid"


def reason_hash(reason: str) -> bytes:
    """``keccak256(utf8(reason))``: what the chain records of a recall's reason (the text stays off chain).

    :class:`InvalidRecall` for an empty or blank reason."""
    if not reason.strip():
        raise InvalidRecall("a recall needs a reason: say what is wrong with the lot")
    return keccak(reason.encode("utf-8"))


@dataclass(frozen=True, kw_only=True)
class RecallNotice:
    """Notice ``notice_id``: ``by`` recalled lot ``root`` (its key) at block time ``at`` (seconds) for the
    reason hashed ``reason_hash``; ``flagged`` downstream lots flagged under it so far."""

    notice_id: int
    root: bytes
    by: str
    at: int
    reason_hash: bytes
    flagged: int


@dataclass(frozen=True, kw_only=True)
class Recalled:
    """A mined recall: the notice's id and the transaction."""

    notice_id: int
    tx: TxResult


@dataclass(frozen=True, kw_only=True)
class Flagged:
    """Flagging done: how many lots were newly flagged (the rest already were) and each batch's tx."""

    flagged: int
    txs: tuple[TxResult, ...]


class LotRecallClient:
    """Recall notices of one LotRegistry: write a notice, flag downstream lots, read flags."""

    def __init__(self, lots: LotRegistryClient) -> None:
        self.lots = lots
        self.chain: Chain = lots.chain
        self.contract = lots.contract

    @classmethod
    def from_deployment(cls, chain: Chain, deployment: Deployment) -> LotRecallClient:
        return cls(LotRegistryClient.from_deployment(chain, deployment))

    # --- writes

    def recall(
        self, recaller: LocalAccount, lot_id: str | bytes, reason: str, *, issuer: str | None = None
    ) -> Recalled:
        """Record a recall notice on the lot for ``reason`` (only its hash goes on chain). The registry
        refuses a caller that is neither the producer nor admitted for :data:`RECALL_ACTION`
        (``LotRegistryNotRecaller``) and a lot already recalled or flagged
        (``LotRegistryAlreadyRecalled``)."""
        key = self.lots.key(lot_id, issuer=issuer)
        tx = self.chain.transact(self.contract.functions.recall(key, reason_hash(reason)), recaller)
        (event,) = self.contract.events.RecallIssued().process_receipt(tx.receipt, errors=DISCARD)
        return Recalled(notice_id=int(event["args"]["noticeId"]), tx=tx)

    def flag_batch(self, sender: LocalAccount, notice_id: int, keys: Sequence[bytes]) -> TxResult:
        """One ``flagDownstream`` call: 1 to :data:`MAX_FLAG_BATCH` lot keys, parents before children."""
        if not 1 <= len(keys) <= MAX_FLAG_BATCH:
            raise InvalidRecall(f"a flagging batch names 1 to {MAX_FLAG_BATCH} lots, not {len(keys)}")
        for key in keys:
            if len(key) != 32:
                raise InvalidRecall(f"a lot key is 32 bytes, got {len(key)}")
        fn = self.contract.functions.flagDownstream(notice_id, [bytes(k) for k in keys])
        return self.chain.transact(fn, sender)

    def flag_downstream(
        self, sender: LocalAccount, notice_id: int, keys: Sequence[bytes], *, batch: int = MAX_FLAG_BATCH
    ) -> Flagged:
        """Flag ``keys`` (downstream lots, in an order where every lot comes after the lot it is split off
        or made from: a breadth-first trace's order) under notice ``notice_id``, ``batch`` lots per
        transaction, skipping those already flagged. Nothing is sent for an empty list."""
        if not 1 <= batch <= MAX_FLAG_BATCH:
            raise InvalidRecall(f"a flagging batch holds 1 to {MAX_FLAG_BATCH} lots, not {batch}")
        pending = [bytes(k) for k in keys if not self.is_recalled(bytes(k))]
        total = 0
        txs: list[TxResult] = []
        for start in range(0, len(pending), batch):
            tx = self.flag_batch(sender, notice_id, pending[start : start + batch])
            events = self.contract.events.LotFlagged().process_receipt(tx.receipt, errors=DISCARD)
            total += len(events)
            txs.append(tx)
        return Flagged(flagged=total, txs=tuple(txs))

    # --- views

    def is_recalled(self, lot_id: str | bytes, *, issuer: str | None = None) -> bool:
        """Whether the lot is recalled or flagged downstream of a recall."""
        key = self.lots.key(lot_id, issuer=issuer)
        return bool(self.chain.call(self.contract.functions.isRecalled(key)))

    def notice_of(self, lot_id: str | bytes, *, issuer: str | None = None) -> int:
        """The notice the lot is recalled or flagged under (0: none)."""
        key = self.lots.key(lot_id, issuer=issuer)
        return int(self.chain.call(self.contract.functions.recallNoticeOf(key)))

    def notice(self, notice_id: int) -> RecallNotice:
        """Notice ``notice_id`` (``ContractRevert`` ``LotRegistryUnknownNotice`` when there is none)."""
        root, by, at, digest, flagged = self.chain.call(self.contract.functions.recallNotice(notice_id))
        return RecallNotice(
            notice_id=notice_id,
            root=bytes(root),
            by=str(by),
            at=int(at),
            reason_hash=bytes(digest),
            flagged=int(flagged),
        )

    def notice_count(self) -> int:
        """How many recall notices the registry holds (their ids are 1 to this)."""
        return int(self.chain.call(self.contract.functions.recallNoticeCount()))
