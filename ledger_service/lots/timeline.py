"""A lot's timeline: its chain events (opening, splits, custody, certification) and its readings.

The chain part is the auditor's (:func:`auditor.lot_chain.chain_steps_of_key`: the LotRegistry's and
the QualityCertifier's events read from the chain alone, as ``supet audit lot`` reads them).
The readings come from the store, each with its proof bundle once its batch is anchored.

Order: chain steps by (block, log index), readings by (ts_ms, device id, seq); both merged by time
(a chain step's time is its block's, in ms). Each step has a total sort key, which an opaque cursor
carries from one page to the next.

Which lot: lot ids are scoped to their issuer on chain (``LotRegistry.lotKey``), so a lot is named by
its id and, when several parties use that id, its issuer (:class:`AmbiguousLotId` otherwise). Which
readings: for a lot on chain, only those of devices that may speak for it, by the rule
``QualityCertifier.certifyLot`` applies (:func:`lot_devices`: owned by its supplier or a party that
has held it, or named by the product's spec owner); for a lot not on chain, those naming the id
(only of the issuer's devices when an issuer is given).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from auditor import lot_chain
from auditor.bundle import build_bundle
from auditor.lot_chain import ChainStep, SortKey
from contracts.certifier import QualityCertifierClient
from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.lots import AmbiguousLot, LotRegistryClient, lot_id_hash, lot_key
from contracts.registry import DeviceRegistryClient, device_id_hash
from device_attestation.merkle import MerkleTree
from device_attestation.reading import Reading
from ledger_service.errors import LedgerError, NotFound
from ledger_service.jsonio import loads_exact
from ledger_service.lots.standing import RecallStanding, recall_standing
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.batch_tree import decode_tree
from ledger_service.store.models import BatchRow, ReadingRow
from ledger_service.store.queries import batch_digests

__all__ = [
    "AmbiguousLotId",
    "InvalidCursor",
    "LotPage",
    "ReadingStep",
    "decode_cursor",
    "encode_cursor",
    "lot_devices",
    "lot_timeline",
    "resolve_lot",
]


MAX_LIMIT = 500


class InvalidCursor(LedgerError):
    """The paging cursor was not issued by this endpoint."""

    code = "lot.bad_cursor"


class AmbiguousLotId(LedgerError):
    """Several parties have a lot with this id on chain: the issuer must be named."""

    code = "lot.ambiguous"


def resolve_lot(chain: Chain, deployment: Deployment, lot_id: str, issuer: str | None = None) -> bytes | None:
    """The on-chain key of lot ``lot_id`` (of ``issuer`` when given), or None when no such lot is on chain
    (:func:`auditor.lot_chain.resolve_lot`).

    :class:`AmbiguousLotId` (HTTP 409) when no issuer is given and several parties have a lot with this id.
    """
    try:
        return lot_chain.resolve_lot(chain, deployment, lot_id, issuer)
    except AmbiguousLot as e:
        raise AmbiguousLotId(e.message, code="lot.ambiguous") from e


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


# ---------------------------------------------------------------- reading steps


@dataclass(frozen=True, kw_only=True)
class ReadingStep:
    """One reading of the lot, as stored, with its proof bundle once anchored."""

    row: ReadingRow
    status: str
    batch_id: int | None
    proof: dict[str, Any] | None

    @property
    def sort_key(self) -> SortKey:
        return (self.row.ts_ms, 1, 0, 0, self.row.device_id, self.row.seq)

    def to_json_obj(self) -> dict[str, Any]:
        reading = loads_exact(self.row.reading_json)
        return {
            "kind": "reading",
            "time_ms": self.row.ts_ms,
            "actor": self.row.device_id,
            "details": {
                "device_id": self.row.device_id,
                "seq": self.row.seq,
                "metrics": reading.get("metrics", {}),
                "received_ms": self.row.received_ms,
            },
            "reference": {
                "type": "reading",
                "digest": _hex(self.row.digest),
                "status": self.status,
                "batch_id": self.batch_id,
                "proof": self.proof,
            },
        }


def _device_ids(service: LedgerService, lot_id: str) -> list[str]:
    """The devices of the stored readings naming ``lot_id``."""
    with Session(service.engine) as s:
        query = select(col(ReadingRow.device_id)).where(col(ReadingRow.lot_id) == lot_id).distinct()
        return sorted(r[0] if isinstance(r, tuple) else r for r in s.exec(query))


def _owner_of(service: LedgerService, device_id: str) -> str | None:
    cached = service.registry.lookup_hash(device_id_hash(device_id))
    if cached is not None:
        return to_checksum_address(cached.owner)
    record = DeviceRegistryClient(service.chain, service.deployment).device(device_id)
    return to_checksum_address(record.owner) if record.enrolled else None


def lot_devices(service: LedgerService, lot_id: str, key: bytes) -> list[str]:
    """The devices of the stored readings naming ``lot_id`` that may speak for the lot on chain
    with ``key``: owned by its supplier or a party in its full custody chain, or named by its
    product's spec owner (what ``QualityCertifier.certifyLot`` accepts)."""
    lots = LotRegistryClient.from_deployment(service.chain, service.deployment)
    lot = lots.lot(key)
    parties = {to_checksum_address(lot.supplier)}
    parties |= {to_checksum_address(e.custodian) for e in lots.full_custody_chain(key)}
    certifier = QualityCertifierClient.from_deployment(service.chain, service.deployment)
    allowed = []
    for device_id in _device_ids(service, lot_id):
        owner = _owner_of(service, device_id)
        if owner in parties or certifier.is_named_device(lot.gtin, device_id):
            allowed.append(device_id)
    return allowed


def _readings_after(
    service: LedgerService, lot_id: str, after: SortKey | None, limit: int, devices: list[str] | None = None
) -> list[ReadingRow]:
    query = select(ReadingRow).where(col(ReadingRow.lot_id) == lot_id)
    if devices is not None:
        query = query.where(col(ReadingRow.device_id).in_(devices))
    if after is not None:
        t, source, _, _, device, seq = after
        ts, dev, sq = col(ReadingRow.ts_ms), col(ReadingRow.device_id), col(ReadingRow.seq)
        same_time = (
            ts == t if source == 0 else and_(ts == t, or_(dev > device, and_(dev == device, sq > seq)))
        )
        query = query.where(or_(ts > t, same_time))
    query = query.order_by(col(ReadingRow.ts_ms), col(ReadingRow.device_id), col(ReadingRow.seq)).limit(limit)
    with Session(service.engine) as s:
        rows = [r[0] if isinstance(r, tuple) else r for r in s.exec(query)]
        s.expunge_all()
    return rows


def _reading_steps(service: LedgerService, rows: list[ReadingRow]) -> list[ReadingStep]:
    """Status and (anchored) proof bundle of each row; each batch's tree is rebuilt once."""
    batch_ids = {r.batch_id for r in rows if r.batch_id is not None}
    trees: dict[int, MerkleTree] = {}
    with Session(service.engine) as s:
        batches = {b.id: b for b in (s.get(BatchRow, i) for i in batch_ids) if b is not None}
        for b in batches.values():
            if b.status == BatchStatus.ANCHORED and b.id is not None:
                trees[b.id] = decode_tree(b.tree, batch_digests(s, b.id))
        s.expunge_all()
    out = []
    for r in rows:
        batch = batches.get(r.batch_id) if r.batch_id is not None else None
        if batch is None:
            out.append(ReadingStep(row=r, status="pending", batch_id=None, proof=None))
            continue
        if batch.status != BatchStatus.ANCHORED or batch.id not in trees:
            out.append(ReadingStep(row=r, status="batched", batch_id=None, proof=None))
            continue
        assert batch.chain_batch_id is not None and batch.tx_hash is not None
        bundle = build_bundle(
            reading=Reading.from_json_obj(loads_exact(r.reading_json)),
            scheme=r.scheme,
            signature=r.signature,
            tree=trees[batch.id],
            batch_id=batch.chain_batch_id,
            deployment=service.deployment,
            anchor_tx=batch.tx_hash,
        )
        out.append(
            ReadingStep(row=r, status="anchored", batch_id=batch.chain_batch_id, proof=bundle.to_json_obj())
        )
    return out


# ---------------------------------------------------------------- paging


def encode_cursor(key: SortKey) -> str:
    """The opaque cursor of the page after the step with ``key``."""
    raw = json.dumps(list(key), separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> SortKey:
    """The sort key a cursor carries; :class:`InvalidCursor` for anything this module did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        t, source, block, index, device, seq = json.loads(raw)
        ints = (t, source, block, index, seq)
        if not all(type(v) is int for v in ints) or not isinstance(device, str) or source not in (0, 1):
            raise ValueError("bad field types")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as e:
        raise InvalidCursor(
            f"cursor {cursor[:80]!r} was not issued by this endpoint: pass the `next_cursor` of the "
            "previous page, or none for the first page"
        ) from e
    return (t, source, block, index, device, seq)


@dataclass(frozen=True, kw_only=True)
class LotPage:
    """One page of a lot's timeline."""

    lot_id: str
    steps: list[ChainStep | ReadingStep]
    next_cursor: str | None
    on_chain: bool = field(default=False)
    key: bytes | None = None
    issuer: str | None = None
    #: The lot's recall standing on chain (None: the lot is not on chain).
    recall: RecallStanding | None = None

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "recall": self.recall.to_json_obj()
            if self.recall is not None
            else {"recalled": False, "notice": None},
            "lot_id": self.lot_id,
            "lot_key": _hex(self.key) if self.key is not None else None,
            "lot_id_hash": _hex(lot_id_hash(self.lot_id)),
            "issuer": self.issuer,
            "on_chain": self.on_chain,
            "steps": [s.to_json_obj() for s in self.steps],
            "next_cursor": self.next_cursor,
        }


def merge_page(
    chain_steps: Sequence[ChainStep], rows: Sequence[ReadingRow], after: SortKey | None, limit: int
) -> tuple[list[ChainStep | ReadingRow], bool]:
    """One page of a lot's steps after the cursor ``after``: its chain steps and ``rows`` (readings
    fetched ``limit + 1`` at a time) in timeline order, at most ``limit``; and whether more follow."""
    merged: list[ChainStep | ReadingRow] = [s for s in chain_steps if after is None or s.sort_key > after]
    merged += rows
    merged.sort(key=step_sort_key)
    return merged[:limit], len(merged) > limit


def step_sort_key(item: ChainStep | ReadingRow) -> SortKey:
    """Where a chain step or a stored reading stands in a lot's timeline (its cursor)."""
    if isinstance(item, ChainStep):
        return item.sort_key
    return (item.ts_ms, 1, 0, 0, item.device_id, item.seq)


def lot_timeline(
    service: LedgerService,
    lot_id: str,
    *,
    issuer: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> LotPage:
    """A page of the lot's timeline after ``cursor`` (None: from the start), at most ``limit`` steps.

    The lot is ``lot_id`` of ``issuer`` when given, else the one lot on chain with that id
    (:class:`AmbiguousLotId` when several parties have one). Its readings are those of devices that
    may speak for it (see the module docstring).
    :class:`NotFound` (``lot.not_found``) when the lot is neither on chain nor in any stored reading;
    :class:`InvalidCursor` for a cursor this function did not issue.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise LedgerError(f"limit must be 1..{MAX_LIMIT}, got {limit}", code="request.invalid")
    after = decode_cursor(cursor) if cursor else None
    if issuer is not None:
        issuer = to_checksum_address(issuer)
    key = resolve_lot(service.chain, service.deployment, lot_id, issuer)
    chain_steps: list[ChainStep] = []
    if key is not None:
        chain_steps = lot_chain.chain_steps_of_key(service.chain, service.deployment, lot_id, key)
    devices: list[str] | None = None
    if key is not None:
        devices = lot_devices(service, lot_id, key)
        issuer = LotRegistryClient.from_deployment(service.chain, service.deployment).issuer(key)
    elif issuer is not None:
        devices = [d for d in _device_ids(service, lot_id) if _owner_of(service, d) == issuer]
    rows = _readings_after(service, lot_id, after, limit + 1, devices)
    if not chain_steps and not rows and after is None:
        raise NotFound(
            f"no lot {lot_id!r}: it was never opened on chain and no reading names it", code="lot.not_found"
        )
    merged, more = merge_page(chain_steps, rows, after, limit)
    readings = iter(_reading_steps(service, [r for r in merged if isinstance(r, ReadingRow)]))
    steps: list[ChainStep | ReadingStep] = [m if isinstance(m, ChainStep) else next(readings) for m in merged]
    next_cursor = encode_cursor(steps[-1].sort_key) if more and steps else None
    return LotPage(
        lot_id=lot_id,
        steps=steps,
        next_cursor=next_cursor,
        on_chain=key is not None,
        key=key if key is not None else (lot_key(lot_id, issuer) if issuer is not None else None),
        issuer=issuer,
        recall=recall_standing(service.engine, service.chain, service.deployment, key)
        if key is not None
        else None,
    )
