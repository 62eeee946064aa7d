"""The store's mirror of the lots' lineage, custody, verdicts and recalls, for tracing (issue 15).

:func:`sync_lots` applies the LotRegistry's and the QualityCertifier's events since the last block it
covered (``meta`` key ``lot_mirror_block``: the block and its hash) to the ``lot_mirror``, ``lot_edges``,
``lot_holders``, ``lot_verdicts`` and ``recall_notices`` tables, in chain order, in one transaction per page
of blocks, so a crash resumes where the last committed page ended. The chain stays the truth: the tables
can be rebuilt from it (:func:`reset_mirror`), and :func:`ledger_service.lots.trace.verify_trace` re-checks
every edge and holder of a trace on chain.

- **Confirmations.** Only blocks ``confirmations`` deep are mirrored (the service passes
  ``SUPET_CONFIRMATIONS``, the depth anchoring waits for), so a reorg shallower than that never reaches
  the store.
- **Deeper reorgs.** Each sync first compares the hash of the last mirrored block with the canonical
  chain's block at that height; when they differ (or the block is gone) the mirror is rebuilt from the
  deployment block (:func:`reset_mirror`: the service's recall reasons stay, each kept only while it hashes
  to its notice's ``reasonHash``).
- **Several syncers** (the recall worker, a trace request, another instance on the same database): a page
  is applied only if the mark is still the one its events were read from. The page's first statement is a
  write to the mark's row, so the row (PostgreSQL) or the database (SQLite) is locked before the mark is
  read again; a syncer that lost the race drops its page and continues from the new mark.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from web3.exceptions import BlockNotFound

from contracts.certifier import RejectReason
from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.lots import unpadded_ascii
from ledger_service.store.models import (
    LotEdgeRow,
    LotHolderRow,
    LotMirrorRow,
    LotVerdictRow,
    MetaRow,
    RecallNoticeRow,
)

__all__ = ["META_KEY", "MirrorMark", "mirror_mark", "reset_mirror", "sync_lots"]

log = logging.getLogger(__name__)

META_KEY = "lot_mirror_block"
#: Blocks fetched per eth_getLogs call.
_LOG_PAGE = 5_000
_LOT_EVENTS = (
    "LotNamed",
    "LotOpened",
    "LotSplit",
    "LotConsumed",
    "LotTransformed",
    "TransferAccepted",
    "RecallIssued",
    "LotFlagged",
)
_CERTIFIER_EVENTS = ("LotCertified", "LotRejected")
#: One sync at a time in a process (across processes, the mark's check in :func:`_commit_page`).
_SYNC_LOCK = threading.Lock()


def _logs(event: Any, start: int, end: int) -> list[Any]:
    return list(event().get_logs(from_block=start, to_block=end))


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


@dataclass(frozen=True, slots=True)
class MirrorMark:
    """How far the mirror went: the last block applied and its hash (None before the first page, or for a
    mark written before hashes were kept); ``raw`` is the meta row's value as read (None: no row)."""

    block: int
    block_hash: str | None
    raw: str | None


def _tag(deployment: Deployment) -> str:
    return f"{deployment.chain_id}:{deployment.address('LotRegistry')}:"


def mirror_mark(engine: Engine, deployment: Deployment) -> MirrorMark:
    """The last block mirrored for this deployment's LotRegistry (its deployment block - 1 before any)."""
    with Session(engine) as session:
        meta = session.get(MetaRow, META_KEY)
    tag = _tag(deployment)
    if meta is not None and meta.value.startswith(tag):
        block, _, digest = meta.value.removeprefix(tag).partition(":")
        return MirrorMark(int(block), digest or None, meta.value)
    return MirrorMark(max(deployment.block - 1, -1), None, None if meta is None else meta.value)


def reset_mirror(engine: Engine) -> None:
    """Forget the mirror (lots, edges, holders, verdicts, the mark): the next sync rebuilds it from the
    deployment block. Recall notices keep only their reasons (the service's), completed by the replay."""
    with Session(engine) as s:
        for table in (LotEdgeRow, LotVerdictRow, LotHolderRow, LotMirrorRow):
            s.exec(delete(table))
        # a notice is kept as its reason only (the placeholder :func:`remember_reason` writes): the replay
        # completes the notices still on chain; one a reorg took away stays a placeholder, never flagged
        s.exec(
            update(RecallNoticeRow).values(
                root_key="", by="", at=0, reason_hash="", flagged=0, block_number=0
            )
        )
        s.exec(delete(MetaRow).where(col(MetaRow.key) == META_KEY))
        s.commit()


def _canonical_hash(chain: Chain, number: int) -> str | None:
    block = chain.request(lambda: chain.w3.eth.get_block(number), context=f"block {number}")
    return HexBytes(block["hash"]).to_0x_hex() if block is not None else None


def _reorged(chain: Chain, mark: MirrorMark, latest: int) -> bool:
    """Whether the last mirrored block is no longer the canonical chain's (or no longer exists)."""
    if mark.block_hash is None:
        return False
    if mark.block > latest:
        return True
    try:
        return _canonical_hash(chain, mark.block) != mark.block_hash
    except BlockNotFound:
        return True


def sync_lots(engine: Engine, chain: Chain, deployment: Deployment, *, confirmations: int = 0) -> int:
    """Mirror the events since the last synced block up to ``confirmations`` blocks below the head; return
    how many were applied. A reorg below the last mirrored block rebuilds the mirror (module docstring)."""
    lots = deployment.contract(chain, "LotRegistry")
    certifier = deployment.contract(chain, "QualityCertifier")
    applied = 0
    with _SYNC_LOCK:
        latest = chain.block_number()
        head = latest - confirmations
        while True:
            mark = mirror_mark(engine, deployment)
            if _reorged(chain, mark, latest):
                log.warning(
                    "lot mirror: block %d is no longer the canonical chain's (a reorg deeper than %d "
                    "confirmations): rebuilding the mirror from the chain",
                    mark.block,
                    confirmations,
                )
                reset_mirror(engine)
                continue
            if mark.raw is None:  # a first mark to lock: then no two syncers apply the first page
                _first_mark(engine, f"{_tag(deployment)}{mark.block}:")
                continue
            start = mark.block + 1
            if start > head:
                return applied
            end = min(head, start + _LOG_PAGE - 1)
            found: list[Any] = []
            for contract, names in ((lots, _LOT_EVENTS), (certifier, _CERTIFIER_EVENTS)):
                for name in names:
                    found += chain.request(
                        partial(_logs, getattr(contract.events, name), start, end), context=f"{name} logs"
                    )
            found.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
            times = {
                int(ev["blockNumber"]): _block_time(chain, int(ev["blockNumber"]))
                for ev in found
                if ev["event"] == "RecallIssued"
            }
            end_hash = _canonical_hash(chain, end)
            new_raw = f"{_tag(deployment)}{end}:{end_hash or ''}"
            if _commit_page(engine, mark, new_raw, found, times):
                applied += len(found)


def _commit_page(
    engine: Engine, mark: MirrorMark, new_raw: str, found: list[Any], times: dict[int, int]
) -> bool:
    """Apply one page of events and move the mark, if the mark is still ``mark`` (else nothing: another
    syncer applied it; False)."""
    with Session(engine) as session:
        # the first statement writes the mark's row: it locks the row (PostgreSQL) or the database
        # (SQLite) before the mark is read again, so two syncers never both apply a page
        session.exec(update(MetaRow).where(col(MetaRow.key) == META_KEY).values(value=col(MetaRow.value)))
        meta = session.get(MetaRow, META_KEY)
        if (meta.value if meta is not None else None) != mark.raw:
            session.rollback()
            return False
        try:
            applier = _Applier(session, times)
            for ev in found:
                applier.apply(ev)
            session.merge(MetaRow(key=META_KEY, value=new_raw))
            session.commit()
        except IntegrityError:  # another syncer applied the page first (the mark's lock makes it rare)
            session.rollback()
            return False
    return True


def _first_mark(engine: Engine, value: str) -> None:
    """Write the mark's row if there is none (another syncer's, written first, stands)."""
    with Session(engine) as session:
        session.add(MetaRow(key=META_KEY, value=value))
        try:
            session.commit()
        except IntegrityError:
            session.rollback()


def _block_time(chain: Chain, number: int) -> int:
    block = chain.request(lambda: chain.w3.eth.get_block(number), context=f"block {number}")
    return int(block["timestamp"])


class _Applier:
    """Applies one page of events, in chain order, to a session."""

    def __init__(self, session: Session, times: dict[int, int]) -> None:
        self.s = session
        self.times = times  # block -> timestamp, of the blocks with a RecallIssued
        self.issuers: dict[str, str] = {}  # key -> issuer, from LotNamed (emitted before the lot's opening)
        self.handlers: dict[str, Callable[[dict[str, Any], Any], None]] = {
            "LotNamed": self._named,
            "LotOpened": self._opened,
            "LotSplit": self._split,
            "LotConsumed": self._consumed,
            "LotTransformed": self._transformed,
            "TransferAccepted": self._accepted,
            "RecallIssued": self._recall,
            "LotFlagged": self._flagged,
            "LotCertified": self._verdict,
            "LotRejected": self._verdict,
        }

    def apply(self, ev: Any) -> None:
        self.handlers[ev["event"]](dict(ev["args"]), ev)

    def _lot(self, key: bytes) -> LotMirrorRow | None:
        return self.s.get(LotMirrorRow, _hex(key))

    def _named(self, a: dict[str, Any], _ev: Any) -> None:
        self.issuers[_hex(a["lotId"])] = to_checksum_address(a["issuer"])

    def _opened(self, a: dict[str, Any], ev: Any) -> None:
        key = _hex(a["lotId"])
        supplier = to_checksum_address(a["supplier"])
        row = LotMirrorRow(
            key=key,
            lot_id=a["lotIdText"],
            issuer=self.issuers.pop(key, supplier),
            supplier=supplier,
            custodian=supplier,
            gtin=int(a["gtin"]),
            quantity=str(a["quantity"]),
            unit=unpadded_ascii(a["unit"]),
            status="active",
            opened_block=int(ev["blockNumber"]),
        )
        self.s.merge(row)
        self._held(key, supplier)
        self.s.flush()

    def _split(self, a: dict[str, Any], ev: Any) -> None:
        parent = self._lot(a["parentId"])
        if parent is None:  # pragma: no cover - a split always follows its parent's opening
            return
        key = _hex(a["childId"])
        splitter = to_checksum_address(a["custodian"])
        child = LotMirrorRow(
            key=key,
            lot_id=a["childLotIdText"],
            issuer=self.issuers.pop(key, splitter),
            supplier=parent.supplier,
            custodian=splitter,
            gtin=parent.gtin,
            quantity=str(a["quantity"]),
            unit=parent.unit,
            status="active",
            parent_key=parent.key,
            opened_block=int(ev["blockNumber"]),
        )
        if int(a["parentRemaining"]) == 0:
            parent.status = "split"
        self.s.merge(child)
        self._held(key, splitter)
        self.s.add(
            LotEdgeRow(
                parent_key=parent.key,
                child_key=key,
                kind="split",
                quantity=str(a["quantity"]),
                block_number=int(ev["blockNumber"]),
            )
        )
        self.s.flush()

    def _consumed(self, a: dict[str, Any], _ev: Any) -> None:
        lot = self._lot(a["lotId"])
        if lot is not None and int(a["remaining"]) == 0:
            lot.status = "consumed"

    def _transformed(self, a: dict[str, Any], ev: Any) -> None:
        tid = int(a["transformationId"])
        for out in a["outputs"]:
            lot = self._lot(out)
            if lot is not None:
                lot.produced_by = tid
            for parent, quantity in zip(a["inputs"], a["consumed"], strict=True):
                self.s.add(
                    LotEdgeRow(
                        parent_key=_hex(parent),
                        child_key=_hex(out),
                        kind="transform",
                        transformation_id=tid,
                        quantity=str(quantity),
                        block_number=int(ev["blockNumber"]),
                    )
                )
        self.s.flush()

    def _accepted(self, a: dict[str, Any], _ev: Any) -> None:
        lot = self._lot(a["lotId"])
        if lot is not None:
            lot.custodian = to_checksum_address(a["to"])
            self._held(lot.key, lot.custodian)

    def _recall(self, a: dict[str, Any], ev: Any) -> None:
        notice = int(a["noticeId"])
        existing = self.s.get(RecallNoticeRow, notice)
        row = RecallNoticeRow(
            notice_id=notice,
            root_key=_hex(a["lotId"]),
            by=to_checksum_address(a["by"]),
            at=self.times[int(ev["blockNumber"])],
            reason_hash=_hex(a["reasonHash"]),
            reason=_verified_reason(existing, bytes(a["reasonHash"])),
            flagged=0,
            block_number=int(ev["blockNumber"]),
        )
        self.s.merge(row)
        lot = self._lot(a["lotId"])
        if lot is not None:
            lot.recall_notice = notice
        self.s.flush()

    def _flagged(self, a: dict[str, Any], _ev: Any) -> None:
        notice = self.s.get(RecallNoticeRow, int(a["noticeId"]))
        if notice is not None:
            notice.flagged += 1
        lot = self._lot(a["lotId"])
        if lot is not None:
            lot.recall_notice = int(a["noticeId"])

    def _verdict(self, a: dict[str, Any], ev: Any) -> None:
        rejected = ev["event"] == "LotRejected"
        self.s.add(
            LotVerdictRow(
                lot_key=_hex(a["lotId"]),
                verdict="rejected" if rejected else "certified",
                spec_version=int(a["specVersion"]),
                reason=RejectReason(int(a["reason"])).name.lower() if rejected else None,
                by=to_checksum_address(a["by"]),
                block_number=int(ev["blockNumber"]),
                log_index=int(ev["logIndex"]),
            )
        )

    def _held(self, key: str, party: str) -> None:
        self.s.merge(LotHolderRow(lot_key=key, party=party))


def _verified_reason(existing: RecallNoticeRow | None, reason_hash: bytes) -> str | None:
    """The reason text the service kept for a notice, only if it hashes to the notice's ``reasonHash`` on
    chain (after a reorg the id may name another notice; a text that does not match is never shown)."""
    if existing is None or existing.reason is None:
        return None
    return existing.reason if keccak(existing.reason.encode("utf-8")) == reason_hash else None
