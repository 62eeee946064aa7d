"""Compare the store's batches with the ReadingAnchor's batches on chain (``supet store reconcile``).

The chain keeps each batch's root and count, never the readings: it can say *that* a batch of
``count`` readings was anchored, not *which* readings. So after a database restore:

- a batch **on chain but unknown to the store** means readings acknowledged after the backup are
  gone from the store: the devices still hold them (a device keeps a reading until its receipt,
  and resubmitting an acknowledged reading is idempotent), so they must resubmit; when the same
  readings close into a batch again, its root is the same (the tree is built over the sorted
  digests), the contract refuses it as already anchored and the anchoring worker adopts the
  earlier anchoring;
- a batch **marked anchored in the store but absent on chain** (or there under another batch id)
  means the chain is not the one the store was anchored on, or a reorg deeper than the worker's
  watch removed it: its proofs do not verify until it is anchored again;
- readings **committed but not anchored** are normal while the worker runs; older than the grace
  period they mean anchoring is stuck (chain down, signer out of funds or without ANCHOR_ROLE).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from hexbytes import HexBytes
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from contracts.chain import Chain
from contracts.deployment import Deployment
from ledger_service.anchoring import batch_anchored_logs
from ledger_service.errors import LedgerError
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import BatchRow, ReadingRow

__all__ = [
    "ChainBatch",
    "ReconcileError",
    "ReconcileReport",
    "StoreBatch",
    "chain_batches",
    "reconcile",
]


class ReconcileError(LedgerError):
    """The store or the chain could not be read for reconciliation."""

    code = "reconcile.failed"


@dataclass(frozen=True, slots=True)
class ChainBatch:
    """A ``BatchAnchored`` event of the deployment's ReadingAnchor."""

    batch_id: int
    root: str
    count: int
    by: str
    block_number: int
    tx_hash: str


@dataclass(frozen=True, slots=True)
class StoreBatch:
    """A batch row of the store (what reconciliation needs of it)."""

    id: int
    root: str
    count: int
    status: str
    chain_batch_id: int | None
    tx_hash: str | None
    block_number: int | None
    #: Why it is reported (for store batches that disagree with the chain).
    problem: str | None = None


@dataclass
class ReconcileReport:
    """What :func:`reconcile` found. ``consistent`` is what the CLI's exit code says."""

    chain_id: int
    anchor_address: str
    chain_head: int
    chain_batches: int
    store_batches: int
    store_anchored: int
    #: On chain (by the anchorer asked about, or anyone) and unknown to the store.
    unknown_to_store: list[ChainBatch] = field(default_factory=list)
    #: Marked anchored in the store, and not on chain as recorded.
    missing_on_chain: list[StoreBatch] = field(default_factory=list)
    #: Closed or submitted batches (the worker has not confirmed them yet).
    unanchored_batches: list[StoreBatch] = field(default_factory=list)
    #: Readings committed but not anchored (not in a batch, or in an unconfirmed one).
    unanchored_readings: int = 0
    #: Receipt time (ms) of the oldest of them.
    oldest_unanchored_ms: int | None = None
    #: Those older than the grace period: anchoring looks stuck.
    stale_unanchored_readings: int = 0
    pending_grace_ms: int = 0

    @property
    def consistent(self) -> bool:
        return not self.unknown_to_store and not self.missing_on_chain and self.stale_unanchored_readings == 0

    def to_json_obj(self) -> dict[str, Any]:
        out = asdict(self)
        out["consistent"] = self.consistent
        return out

    def render(self) -> str:
        """A report for people: what is wrong, and what to do about it."""
        lines = [
            f"chain {self.chain_id}, ReadingAnchor {self.anchor_address}, head block {self.chain_head}",
            f"chain batches: {self.chain_batches}; store batches: {self.store_batches} "
            f"({self.store_anchored} anchored)",
        ]
        if self.unknown_to_store:
            n = sum(b.count for b in self.unknown_to_store)
            lines.append(
                f"{len(self.unknown_to_store)} batch(es) anchored on chain but unknown to the store "
                f"({n} readings): the store lost readings it had acknowledged (restored from an older "
                "backup?). Have the devices resubmit every reading they hold without a receipt; the "
                "anchoring worker then adopts these batches."
            )
            for cb in self.unknown_to_store:
                lines.append(
                    f"  chain batch {cb.batch_id}: root {cb.root}, {cb.count} readings, block "
                    f"{cb.block_number}, tx {cb.tx_hash}, by {cb.by}"
                )
        if self.missing_on_chain:
            lines.append(
                f"{len(self.missing_on_chain)} batch(es) marked anchored in the store but not on this "
                "chain as recorded (wrong chain or deployment? a deep reorg?): their proofs do not verify."
            )
            for sb in self.missing_on_chain:
                lines.append(
                    f"  store batch {sb.id}: root {sb.root}, {sb.count} readings, recorded as chain batch "
                    f"{sb.chain_batch_id} in block {sb.block_number}: {sb.problem}"
                )
        if self.unanchored_readings:
            age = (
                f", the oldest received at {self.oldest_unanchored_ms} ms"
                if self.oldest_unanchored_ms is not None
                else ""
            )
            lines.append(
                f"{self.unanchored_readings} reading(s) committed but not anchored yet "
                f"({len(self.unanchored_batches)} batch(es) closed or submitted{age})"
            )
            if self.stale_unanchored_readings:
                lines.append(
                    f"  {self.stale_unanchored_readings} of them waited longer than "
                    f"{self.pending_grace_ms / 1000:.0f} s: is the anchoring worker running, the chain "
                    "reachable, the signer funded and holding ANCHOR_ROLE?"
                )
        lines.append("consistent" if self.consistent else "NOT consistent")
        return "\n".join(lines)


def chain_batches(
    chain: Chain, deployment: Deployment, *, from_block: int | None = None, to_block: int | None = None
) -> list[ChainBatch]:
    """Every ``BatchAnchored`` event of the deployment's ReadingAnchor, in batch order."""
    contract = deployment.contract(chain, "ReadingAnchor")
    logs = batch_anchored_logs(
        chain,
        contract,
        from_block=max(0, deployment.block - 1) if from_block is None else from_block,
        to_block=chain.block_number() if to_block is None else to_block,
    )
    out = [
        ChainBatch(
            batch_id=int(ev["args"]["batchId"]),
            root="0x" + bytes(ev["args"]["root"]).hex(),
            count=int(ev["args"]["count"]),
            by=str(ev["args"]["by"]),
            block_number=int(ev["blockNumber"]),
            tx_hash=HexBytes(ev["transactionHash"]).to_0x_hex(),
        )
        for ev in logs
    ]
    out.sort(key=lambda b: b.batch_id)
    return out


def reconcile(
    engine: Engine,
    chain: Chain,
    deployment: Deployment,
    *,
    anchorer: str | None = None,
    pending_grace_ms: int = 600_000,
    now_ms: int,
) -> ReconcileReport:
    """Compare the store behind ``engine`` with the deployment's ReadingAnchor on ``chain``.

    ``anchorer``: count as unknown only the chain batches this address anchored (when several
    ledgers share one ReadingAnchor); the store's own batches are checked whoever anchored them.
    """
    head = chain.block_number()
    on_chain = chain_batches(chain, deployment, to_block=head)
    seen = _read_store(engine, now_ms=now_ms, pending_grace_ms=pending_grace_ms)
    store_roots = {b.root for b in seen.batches}
    report = ReconcileReport(
        chain_id=chain.chain_id,
        anchor_address=deployment.address("ReadingAnchor"),
        chain_head=head,
        chain_batches=len(on_chain),
        store_batches=len(seen.batches),
        store_anchored=sum(1 for b in seen.batches if b.status == BatchStatus.ANCHORED),
        pending_grace_ms=pending_grace_ms,
    )
    wanted = anchorer.lower() if anchorer is not None else None
    report.unknown_to_store = [
        cb for cb in on_chain if cb.root not in store_roots and (wanted is None or cb.by.lower() == wanted)
    ]
    _compare_store_batches(
        report, seen, {b.root: b for b in on_chain}, stale_before_ms=now_ms - pending_grace_ms
    )
    return report


@dataclass(frozen=True, slots=True)
class _StoreState:
    """What :func:`reconcile` reads of the store, in one connection."""

    batches: list[StoreBatch]
    #: Readings not in any batch: how many, the oldest receipt time, how many are past the grace.
    unbatched: int
    oldest_unbatched_ms: int | None
    stale_unbatched: int
    #: Oldest receipt time of each batch not anchored yet, by batch id.
    unconfirmed_oldest: dict[int, int]


def _read_store(engine: Engine, *, now_ms: int, pending_grace_ms: int) -> _StoreState:
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    col(BatchRow.id),
                    col(BatchRow.root),
                    col(BatchRow.count),
                    col(BatchRow.status),
                    col(BatchRow.chain_batch_id),
                    col(BatchRow.tx_hash),
                    col(BatchRow.block_number),
                ).order_by(col(BatchRow.id))
            ).all()
            unbatched, oldest_unbatched = conn.execute(
                select(func.count(), func.min(col(ReadingRow.received_ms))).where(
                    col(ReadingRow.batch_id).is_(None)
                )
            ).one()
            stale_unbatched = conn.execute(
                select(func.count()).where(
                    col(ReadingRow.batch_id).is_(None),
                    col(ReadingRow.received_ms) < now_ms - pending_grace_ms,
                )
            ).scalar_one()
            unconfirmed_oldest = {
                int(r[0] or 0): int(r[1])
                for r in conn.execute(
                    select(col(BatchRow.id), col(BatchRow.oldest_received_ms)).where(
                        col(BatchRow.status) != BatchStatus.ANCHORED
                    )
                ).all()
            }
    except SQLAlchemyError as e:
        raise ReconcileError(f"cannot read the store at {engine.url!r}: {e}") from e
    batches = [
        StoreBatch(
            id=int(r[0] or 0),
            root="0x" + bytes(r[1]).hex(),
            count=int(r[2]),
            status=str(r[3]),
            chain_batch_id=None if r[4] is None else int(r[4]),
            tx_hash=r[5],
            block_number=None if r[6] is None else int(r[6]),
        )
        for r in rows
    ]
    return _StoreState(
        batches=batches,
        unbatched=int(unbatched),
        oldest_unbatched_ms=int(oldest_unbatched) if oldest_unbatched is not None else None,
        stale_unbatched=int(stale_unbatched),
        unconfirmed_oldest=unconfirmed_oldest,
    )


def _compare_store_batches(
    report: ReconcileReport, seen: _StoreState, by_root: dict[str, ChainBatch], *, stale_before_ms: int
) -> None:
    """Fill ``report`` with the store batches the chain disagrees with and the unanchored counts."""
    oldest = seen.oldest_unbatched_ms
    stale = seen.stale_unbatched
    unanchored = seen.unbatched
    for sb in seen.batches:
        cb = by_root.get(sb.root)
        if sb.status == BatchStatus.ANCHORED:
            if cb is None:
                problem = "root not anchored on this chain"
            elif cb.batch_id != sb.chain_batch_id:
                problem = f"root anchored as chain batch {cb.batch_id}"
            elif cb.count != sb.count:
                problem = f"chain batch holds {cb.count} readings, the store {sb.count}"
            else:
                continue
            report.missing_on_chain.append(_with_problem(sb, problem))
        else:
            report.unanchored_batches.append(sb)
            unanchored += sb.count
            first = seen.unconfirmed_oldest.get(sb.id)
            if first is not None:
                oldest = first if oldest is None else min(oldest, first)
                if first < stale_before_ms:
                    stale += sb.count
    report.unanchored_readings = unanchored
    report.oldest_unanchored_ms = oldest
    report.stale_unanchored_readings = stale


def _with_problem(b: StoreBatch, problem: str) -> StoreBatch:
    return StoreBatch(
        id=b.id,
        root=b.root,
        count=b.count,
        status=b.status,
        chain_batch_id=b.chain_batch_id,
        tx_hash=b.tx_hash,
        block_number=b.block_number,
        problem=problem,
    )
