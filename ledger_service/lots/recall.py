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

import logging
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from sqlalchemy import Engine
from sqlmodel import Session

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.errors import ChainError
from contracts.lot_recall import MAX_FLAG_BATCH, Flagged, LotRecallClient
from ledger_service.errors import LedgerError, NotFound
from ledger_service.lots.holder_recalls import party_recalls
from ledger_service.lots.mirror import mirror_mark, sync_lots
from ledger_service.lots.timeline import resolve_lot
from ledger_service.lots.trace import Direction, Trace, trace_from_store
from ledger_service.service import LedgerService
from ledger_service.store.models import RecallNoticeRow

__all__ = ["flag_recall", "lot_trace", "recalls_of_party", "remember_reason", "unflagged_downstream"]

log = logging.getLogger(__name__)


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
    sync_lots(service.engine, service.chain, service.deployment, confirmations=service.settings.confirmations)
    return trace_from_store(service.engine, _hex(key), direction)


def recalls_of_party(
    service: LedgerService, party: str, *, limit: int = 100, cursor: str | None = None
) -> dict[str, Any]:
    """The recall notices ``party``'s lots are under (:mod:`ledger_service.lots.holder_recalls`), from the
    store brought up to date first when the chain answers (else as far as it went: a recall is news, shown
    as the store knows it rather than not at all); ``mirrored_block`` says how far."""
    try:
        sync_lots(
            service.engine, service.chain, service.deployment, confirmations=service.settings.confirmations
        )
    except ChainError as e:
        log.warning("recalls of %s answered from the store as it is: the chain is unreachable (%s)", party, e)
    body = party_recalls(service.engine, party, limit=limit, cursor=cursor).to_json_obj()
    body["mirrored_block"] = mirror_mark(service.engine, service.deployment).block
    return body


def remember_reason(engine: Engine, notice_id: int, reason: str) -> None:
    """Keep the text of notice ``notice_id``'s reason (the chain holds its hash only); the notice's row is
    created by the mirror, or here first and completed by it (which keeps the text only if it hashes to the
    notice's ``reasonHash``). ``recall.reason_mismatch`` for a text that does not hash to a mirrored one."""
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
        elif row.reason_hash and _hex(keccak(reason.encode("utf-8"))) != row.reason_hash:
            raise LedgerError(
                f"recall notice {notice_id}'s reason on chain hashes to {row.reason_hash}, not this text's",
                code="recall.reason_mismatch",
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
    confirmations: int = 0,
) -> Flagged:
    """Flag every lot downstream of notice ``notice_id``'s root on chain, ``batch`` lots a transaction,
    as ``sender`` (anyone may); lots already flagged are skipped. The downstream comes from the store,
    synced first (to ``confirmations`` blocks below the head) and again after (so the trace shows the
    flags)."""
    recalls = LotRecallClient.from_deployment(chain, deployment)
    notice = recalls.notice(notice_id)
    sync_lots(engine, chain, deployment, confirmations=confirmations)
    keys = unflagged_downstream(engine, _hex(notice.root))
    done = recalls.flag_downstream(sender, notice_id, keys, batch=batch)
    sync_lots(engine, chain, deployment, confirmations=confirmations)
    return done


def unflagged_downstream(engine: Engine, root_key: str) -> list[bytes]:
    """The keys of the lots downstream of ``root_key`` the store has not seen flagged, breadth-first (the
    order the registry checks: each after a lot it is split off or made from)."""
    trace = trace_from_store(engine, root_key, Direction.DOWNSTREAM)
    return [bytes.fromhex(lot.key[2:]) for lot in trace.lots if lot.recall_notice is None]
