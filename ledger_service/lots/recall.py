"""The service's side of tracing and recall (issue 15): a lot's trace for the API, the portal and the
CLI; flagging a recall's downstream lots on chain; a lot's recall standing for its timeline.

- :func:`lot_trace` resolves the lot on chain, brings the store's mirror up to date
  (:func:`ledger_service.lots.mirror.sync_lots`) and answers its trace from the store
  (:func:`ledger_service.lots.trace.trace_from_store`).
- :func:`flag_recall` flags, on chain, every lot downstream of a recall notice's root, in batches of at
  most ``LotRegistry.MAX_FLAG_BATCH``, in breadth-first order (each lot after a lot it is made from or
  split off, the order the registry checks). Flagging is open to anyone, so the service does it with
  its own signer once a notice is on chain; ``supet lot recall`` records the notice, then flags.
- a lot's recall standing, for its timeline and the portal, is :mod:`ledger_service.lots.standing`'s.
"""

from __future__ import annotations

from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine
from sqlmodel import Session

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.lot_recall import MAX_FLAG_BATCH, Flagged, LotRecallClient
from ledger_service.errors import NotFound
from ledger_service.lots.mirror import sync_lots
from ledger_service.lots.timeline import resolve_lot
from ledger_service.lots.trace import Direction, Trace, trace_from_store
from ledger_service.service import LedgerService
from ledger_service.store.models import RecallNoticeRow

__all__ = ["flag_recall", "lot_trace", "remember_reason"]


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def lot_trace(
    service: LedgerService, lot_id: str, direction: Direction, *, issuer: str | None = None
) -> Trace:
    """The trace of lot ``lot_id`` (of ``issuer`` when several parties have one), from the store brought up
    to date with the chain. :class:`NotFound` (``lot.not_found``) when no such lot is on chain."""
    key = resolve_lot(service.chain, service.deployment, lot_id, issuer)
    if key is None:
        raise NotFound(f"no lot {lot_id!r} on chain: only lots on chain have a lineage", code="lot.not_found")
    sync_lots(service.engine, service.chain, service.deployment)
    return trace_from_store(service.engine, _hex(key), direction)


def remember_reason(engine: Engine, notice_id: int, reason: str) -> None:
    """Keep the text of notice ``notice_id``'s reason (the chain holds its hash only); the notice's row is
    created by the mirror, or here first and completed by it."""
    with Session(engine) as s:
        row = s.get(RecallNoticeRow, notice_id)
        if row is None:
            row = RecallNoticeRow(
                notice_id=notice_id,
                root_key="",
                by="",
                at=0,
                reason_hash="",
                reason=reason,
                flagged=0,
                block_number=0,
            )
        row.reason = reason
        s.add(row)
        s.commit()


def flag_recall(
    engine: Engine,
    chain: Chain,
    deployment: Deployment,
    sender: LocalAccount,
    notice_id: int,
    *,
    batch: int = MAX_FLAG_BATCH,
) -> Flagged:
    """Flag every lot downstream of notice ``notice_id``'s root on chain, ``batch`` lots a transaction,
    as ``sender`` (anyone may); lots already flagged are skipped. The downstream comes from the store,
    synced first and again after (so the trace shows the flags)."""
    recalls = LotRecallClient.from_deployment(chain, deployment)
    notice = recalls.notice(notice_id)
    sync_lots(engine, chain, deployment)
    trace = trace_from_store(engine, _hex(notice.root), Direction.DOWNSTREAM)
    keys = [bytes.fromhex(lot.key[2:]) for lot in trace.lots if lot.recall_notice is None]
    done = recalls.flag_downstream(sender, notice_id, keys, batch=batch)
    sync_lots(engine, chain, deployment)
    return done
