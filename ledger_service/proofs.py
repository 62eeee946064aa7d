"""Reading status, proof bundles and device history, served from the store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from auditor.bundle import build_bundle
from device_attestation.reading import Reading
from ledger_service.errors import NotFound
from ledger_service.jsonio import loads_exact
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.batch_tree import decode_tree
from ledger_service.store.models import BatchRow, ReadingRow
from ledger_service.store.queries import batch_digests


@dataclass(frozen=True)
class ReadingStatus:
    row: ReadingRow
    batch: BatchRow | None

    @property
    def status(self) -> str:
        if self.batch is None:
            return "pending"
        return "anchored" if self.batch.status == BatchStatus.ANCHORED else "batched"

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "digest": "0x" + self.row.digest.hex(),
            "reading": loads_exact(self.row.reading_json),
            "scheme": self.row.scheme,
            "signature": "0x" + self.row.signature.hex(),
            "status": self.status,
            "batch_id": self.batch.chain_batch_id if self.batch and self.status == "anchored" else None,
            "received_ms": self.row.received_ms,
        }


class ProofPending(NotFound):
    """The reading is stored but its batch is not anchored yet."""

    code = "proof.pending"

    def __init__(self, message: str, *, status: str, expected_batch: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.expected_batch = expected_batch


def parse_digest(text: str) -> bytes:
    raw = text.removeprefix("0x")
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise NotFound(f"{text!r} is not a reading digest (0x + 64 hex digits)", code="reading.bad_digest")
    return value


def reading_status(service: LedgerService, digest: bytes) -> ReadingStatus:
    with Session(service.engine) as s:
        row = s.exec(select(ReadingRow).where(col(ReadingRow.digest) == digest)).first()
        if row is None:
            raise NotFound(
                f"no reading with digest 0x{digest.hex()} in this ledger", code="reading.not_found"
            )
        row = row[0] if isinstance(row, tuple) else row
        batch = s.get(BatchRow, row.batch_id) if row.batch_id is not None else None
        s.expunge_all()
    return ReadingStatus(row=row, batch=batch)


def proof_bundle(
    service: LedgerService, digest: bytes, *, status: ReadingStatus | None = None
) -> dict[str, Any]:
    """The spec's proof bundle (section 6); :class:`ProofPending` while not anchored. ``status``: the
    reading's, when the caller read it already."""
    st = (
        status
        if status is not None and bytes(status.row.digest) == digest
        else reading_status(service, digest)
    )
    if st.batch is None or st.status != "anchored":
        raise ProofPending(
            f"reading 0x{digest.hex()} is {st.status}: its batch is not anchored yet; retry in a few seconds",
            status=st.status,
            expected_batch=st.batch.id if st.batch else None,
        )
    batch = st.batch
    assert batch.id is not None
    with Session(service.engine) as s:
        digests = batch_digests(s, batch.id)
    tree = decode_tree(batch.tree, digests)
    assert batch.chain_batch_id is not None and batch.tx_hash is not None
    bundle = build_bundle(
        reading=Reading.from_json_obj(loads_exact(st.row.reading_json)),
        scheme=st.row.scheme,
        signature=st.row.signature,
        tree=tree,
        batch_id=batch.chain_batch_id,
        deployment=service.deployment,
        anchor_tx=batch.tx_hash,
    )
    return bundle.to_json_obj()


def device_history(
    service: LedgerService, device_id: str, *, after_seq: int = 0, limit: int = 100
) -> tuple[list[ReadingStatus], int | None]:
    """A device's readings by seq, after ``after_seq``; and the cursor of the next page."""
    with Session(service.engine) as s:
        rows = [
            r[0] if isinstance(r, tuple) else r
            for r in s.exec(
                select(ReadingRow)
                .where(col(ReadingRow.device_id) == device_id, col(ReadingRow.seq) > after_seq)
                .order_by(col(ReadingRow.seq))
                .limit(limit + 1)
            )
        ]
        batch_ids = {r.batch_id for r in rows if r.batch_id is not None}
        batches = {b.id: b for b in (s.get(BatchRow, i) for i in batch_ids) if b is not None}
        s.expunge_all()
    more = len(rows) > limit
    rows = rows[:limit]
    out = [ReadingStatus(row=r, batch=batches.get(r.batch_id) if r.batch_id else None) for r in rows]
    return out, (rows[-1].seq if more and rows else None)
