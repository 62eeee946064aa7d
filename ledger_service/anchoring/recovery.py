"""Lost batches: batches this signer anchored on chain whose roots the store does not know.

A store restored from an older backup forgets batches it had anchored. Their readings come back as
the devices resubmit them. The chain has only each lost batch's root and count, so the anchoring
worker tries to re-form it from what waits: the ``count`` oldest waiting readings by device
timestamp, then by arrival; a candidate is closed only if its root is the lost root.
:func:`lost_on_chain` finds them, :func:`reform_lost_batch` closes a batch that re-forms one; the
worker (:class:`~ledger_service.anchoring.readings.AnchoringWorker`) keeps the list.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func
from sqlmodel import Session, col, select

from contracts.chain import Chain
from ledger_service.anchoring.chain_logs import batch_anchored_logs
from ledger_service.anchoring.reading_batches import assign_with_paths, insert_closed
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.batch_tree import EncodedTree
from ledger_service.store.models import BatchRow, ReadingRow

__all__ = [
    "MAX_TIE_CANDIDATES",
    "LostBatch",
    "LostMatch",
    "lost_batch_candidates",
    "lost_on_chain",
    "match_lost_batch",
    "reform_lost_batch",
]

log = logging.getLogger("ledger_service.anchoring")

#: Most ways of splitting readings with the same timestamp at a lost batch's boundary that are tried.
MAX_TIE_CANDIDATES = 64


@dataclass(frozen=True, slots=True)
class LostBatch:
    """A batch this signer anchored on chain whose root the store does not know (restored backup)."""

    chain_batch_id: int
    root: bytes
    count: int


@dataclass(frozen=True, slots=True)
class LostMatch:
    """Waiting readings whose tree has a lost batch's root: (id, digest, received_ms, ts_ms) rows, the
    tree."""

    lost: LostBatch
    rows: list[Any]
    root: bytes
    nodes: bytes
    paths: list[bytes]


def lost_on_chain(
    *, engine: Engine, chain: Chain, contract: Any, signer_address: str, deployment_block: int
) -> list[LostBatch]:
    """Chain batches of ``signer_address`` unknown to the store, oldest first (:class:`ChainError` if
    the chain cannot be read).

    Cheap in the normal case: only when the chain holds more batches than the newest one the
    store recorded are the ``BatchAnchored`` events since that batch's block read. A store
    without any batch is a new store, not a restored one: it has nothing to look for."""
    with Session(engine) as s:
        if s.exec(select(col(BatchRow.id)).limit(1)).first() is None:
            return []
    on_chain = int(chain.call(contract.functions.batchCount()))
    with Session(engine) as s:
        newest = s.exec(
            select(col(BatchRow.chain_batch_id), col(BatchRow.block_number))
            .where(col(BatchRow.status) == BatchStatus.ANCHORED)
            .order_by(col(BatchRow.chain_batch_id).desc())
            .limit(1)
        ).first()
    known_id, known_block = (int(newest[0] or 0), int(newest[1] or 0)) if newest else (0, 0)
    if on_chain <= known_id:
        return []
    logs = batch_anchored_logs(
        chain,
        contract,
        from_block=known_block or max(0, deployment_block - 1),
        to_block=chain.block_number(),
        filters={"by": signer_address},
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
    if not candidates:
        return []
    with Session(engine) as s:
        known = {
            bytes(r)
            for r in s.exec(select(col(BatchRow.root)).where(col(BatchRow.root).in_(list(candidates))))
        }
    return sorted((b for root, b in candidates.items() if root not in known), key=lambda b: b.chain_batch_id)


def match_lost_batch(
    conn: Connection, lost: Sequence[LostBatch], build_tree: Callable[[list[bytes]], EncodedTree]
) -> LostMatch | None:
    """The first lost batch that what waits re-forms (its readings and tree), or ``None``."""
    waiting = int(conn.execute(select(func.count()).where(col(ReadingRow.batch_id).is_(None))).scalar_one())
    for batch in lost:
        if batch.count > waiting:
            continue
        for rows in lost_batch_candidates(conn, batch.count):
            root, nodes, paths = build_tree([bytes(r[1]) for r in rows])
            if root == batch.root:
                return LostMatch(lost=batch, rows=rows, root=root, nodes=nodes, paths=paths)
    return None


def reform_lost_batch(
    conn: Connection,
    lost: Sequence[LostBatch],
    build_tree: Callable[[list[bytes]], EncodedTree],
    *,
    now: int,
) -> tuple[LostBatch, int] | None:
    """Close a batch whose root is a lost batch's, from what waits: (that lost batch, the new batch's
    id), or ``None`` when what waits re-forms none of them."""
    match = match_lost_batch(conn, lost, build_tree)
    if match is None:
        return None
    rows = match.rows
    batch_id = insert_closed(
        conn,
        root=match.root,
        nodes=match.nodes,
        count=len(rows),
        oldest_ms=min(int(r[2]) for r in rows),
        now=now,
    )
    ids = [int(r[0] or 0) for r in rows]  # ids of stored rows: never None
    assign_with_paths(conn, ids, [int(r[3]) for r in rows], match.paths, batch_id)
    log.info(
        "re-formed lost chain batch %d as batch %d (%d readings)",
        match.lost.chain_batch_id,
        batch_id,
        len(rows),
        extra={
            "event": "recovery.reformed",
            "batch": batch_id,
            "chain_batch": match.lost.chain_batch_id,
            "root": "0x" + match.root.hex(),
            "count": len(rows),
        },
    )
    return match.lost, batch_id


def lost_batch_candidates(conn: Connection, count: int) -> Iterator[list[Any]]:
    """Guesses at a lost batch of ``count`` readings among those waiting: (id, digest, received_ms, ts_ms)
    rows.

    First the ``count`` oldest by device timestamp; when readings share the timestamp at the cut,
    each way of taking the needed number of them (up to :data:`MAX_TIE_CANDIDATES`); then the
    ``count`` first by arrival."""
    base = select(
        col(ReadingRow.id), col(ReadingRow.digest), col(ReadingRow.received_ms), col(ReadingRow.ts_ms)
    ).where(col(ReadingRow.batch_id).is_(None))
    by_time = conn.execute(base.order_by(col(ReadingRow.ts_ms), col(ReadingRow.id)).limit(count)).all()
    if len(by_time) < count:
        return
    cut = by_time[-1][3]
    sure = [r for r in by_time if r[3] < cut]
    tied = conn.execute(base.where(col(ReadingRow.ts_ms) == cut).order_by(col(ReadingRow.id))).all()
    need = count - len(sure)
    if math.comb(len(tied), need) <= MAX_TIE_CANDIDATES:
        for pick in itertools.combinations(tied, need):
            yield [*sure, *pick]
    else:
        yield list(by_time)
    yield list(conn.execute(base.order_by(col(ReadingRow.id)).limit(count)).all())
