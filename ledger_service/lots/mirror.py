"""The store's mirror of the lots' lineage, custody, verdicts and recalls, for tracing (issue 15).

:func:`sync_lots` applies the LotRegistry's and the QualityCertifier's events since the last block it
covered (``meta`` key ``lot_mirror_block``) to the ``lot_mirror``, ``lot_edges``, ``lot_verdicts`` and
``recall_notices`` tables, in chain order, in one transaction per page of blocks, so a crash resumes where
the last committed page ended. The chain stays the truth: the tables can be rebuilt from it (drop the meta
row), and :func:`ledger_service.lots.trace.verify_trace` re-checks every edge and holder of a trace on chain.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Engine
from sqlmodel import Session

from contracts.certifier import RejectReason
from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.lots import unpadded_ascii
from ledger_service.store.models import (
    LotEdgeRow,
    LotMirrorRow,
    LotVerdictRow,
    MetaRow,
    RecallNoticeRow,
)

__all__ = ["META_KEY", "sync_lots"]

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


def _logs(event: Any, start: int, end: int) -> list[Any]:
    return list(event().get_logs(from_block=start, to_block=end))


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _synced(session: Session, deployment: Deployment) -> int:
    """The last block mirrored for this deployment's LotRegistry (its deployment block - 1 before any)."""
    meta = session.get(MetaRow, META_KEY)
    tag = f"{deployment.chain_id}:{deployment.address('LotRegistry')}:"
    if meta is not None and meta.value.startswith(tag):
        return int(meta.value.removeprefix(tag))
    return max(deployment.block - 1, -1)


def sync_lots(engine: Engine, chain: Chain, deployment: Deployment) -> int:
    """Mirror the events since the last synced block up to the head; return how many were applied."""
    lots = deployment.contract(chain, "LotRegistry")
    certifier = deployment.contract(chain, "QualityCertifier")
    head = chain.block_number()
    applied = 0
    with Session(engine) as session:
        start = _synced(session, deployment) + 1
    while start <= head:
        end = min(head, start + _LOG_PAGE - 1)
        found: list[Any] = []
        for contract, names in ((lots, _LOT_EVENTS), (certifier, _CERTIFIER_EVENTS)):
            for name in names:
                found += chain.request(
                    partial(_logs, getattr(contract.events, name), start, end), context=f"{name} logs"
                )
        found.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
        with Session(engine) as session:
            applier = _Applier(session, chain)
            for ev in found:
                applier.apply(ev)
            tag = f"{deployment.chain_id}:{deployment.address('LotRegistry')}:"
            session.merge(MetaRow(key=META_KEY, value=f"{tag}{end}"))
            session.commit()
        applied += len(found)
        start = end + 1
    return applied


class _Applier:
    """Applies one page of events, in chain order, to a session."""

    def __init__(self, session: Session, chain: Chain) -> None:
        self.s = session
        self.chain = chain
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

    def _recall(self, a: dict[str, Any], ev: Any) -> None:
        notice = int(a["noticeId"])
        existing = self.s.get(RecallNoticeRow, notice)
        row = RecallNoticeRow(
            notice_id=notice,
            root_key=_hex(a["lotId"]),
            by=to_checksum_address(a["by"]),
            at=self._block_time(int(ev["blockNumber"])),
            reason_hash=_hex(a["reasonHash"]),
            reason=existing.reason if existing is not None else None,
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

    def _block_time(self, number: int) -> int:
        block = self.chain.request(lambda: self.chain.w3.eth.get_block(number), context=f"block {number}")
        return int(block["timestamp"])
