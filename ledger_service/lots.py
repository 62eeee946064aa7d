"""A lot's timeline: its chain events (opening, splits, custody, certification) and its readings.

The chain part (:func:`lot_chain_steps`) reads the LotRegistry's and the QualityCertifier's events
from the chain alone, so the auditor's ``supet audit lot`` uses it as it is, trusting no ledger.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from contracts.chain import Chain
from contracts.deploy import Deployment
from contracts.lots import (
    AmbiguousLot,
    LotRegistryClient,
    QualityCertifierClient,
    RejectReason,
    format_gtin,
    lot_id_hash,
    lot_key,
)
from contracts.registry import DeviceRegistryClient, device_id_hash
from device_attestation.merkle import MerkleTree
from device_attestation.reading import Reading
from ledger_service.anchoring import ANCHORED, decode_tree
from ledger_service.errors import LedgerError, NotFound
from ledger_service.jsonio import loads_exact
from ledger_service.service import LedgerService
from ledger_service.store.models import BatchRow, ReadingRow
from ledger_service.verify import build_bundle

__all__ = [
    "CHAIN_KINDS",
    "AmbiguousLotId",
    "ChainStep",
    "InvalidCursor",
    "LotPage",
    "ReadingStep",
    "decode_cursor",
    "encode_cursor",
    "lot_chain_steps",
    "lot_devices",
    "lot_timeline",
    "resolve_lot",
]

#: The kinds of chain steps, in the order of the brief; readings are ``reading``.
CHAIN_KINDS = (
    "opened",
    "split",
    "transfer_proposed",
    "transfer_accepted",
    "transfer_rejected",
    "transfer_cancelled",
    "certified",
    "rejected",
)

#: A step's total sort key: (time_ms, source, block, log_index, device_id, seq); source 0 chain, 1 reading.
SortKey = tuple[int, int, int, int, str, int]

MAX_LIMIT = 500


class InvalidCursor(LedgerError):
    """The paging cursor was not issued by this endpoint."""

    code = "lot.bad_cursor"


class AmbiguousLotId(LedgerError):
    """Several parties have a lot with this id on chain: the issuer must be named."""

    code = "lot.ambiguous"
    http_status = 409


def resolve_lot(chain: Chain, deployment: Deployment, lot_id: str, issuer: str | None = None) -> bytes | None:
    """The on-chain key of lot ``lot_id`` (of ``issuer`` when given), or None when no such lot is on chain.

    :class:`AmbiguousLotId` when no issuer is given and several parties have a lot with this id.
    """
    lots = LotRegistryClient.from_deployment(chain, deployment)
    if issuer is not None:
        return lots.key(lot_id, issuer=issuer) if lots.exists(lot_id, issuer=issuer) else None
    try:
        named = lots.named(lot_id)
        return lots.key(lot_id) if named else None
    except AmbiguousLot as e:
        raise AmbiguousLotId(
            f"{len(e.issuers)} parties have a lot {lot_id!r} on chain ({', '.join(e.issuers)}): pass the "
            "one you mean as `issuer` (the supplier who opened it, or the custodian who split it off)",
            code="lot.ambiguous",
        ) from e


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


# ---------------------------------------------------------------- chain steps


@dataclass(frozen=True, kw_only=True)
class ChainStep:
    """One event of the lot on chain."""

    kind: str
    time_ms: int
    actor: str
    details: dict[str, Any]
    tx_hash: str
    block_number: int
    log_index: int
    contract: str

    @property
    def sort_key(self) -> SortKey:
        return (self.time_ms, 0, self.block_number, self.log_index, "", 0)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "time_ms": self.time_ms,
            "actor": self.actor,
            "details": self.details,
            "reference": {
                "type": "transaction",
                "tx_hash": self.tx_hash,
                "block_number": self.block_number,
                "log_index": self.log_index,
                "contract": self.contract,
            },
        }


def _actor_of(kind: str, args: dict[str, Any]) -> str:
    if kind in ("transfer_accepted", "transfer_rejected"):
        return str(args["to"])
    if kind in ("transfer_proposed", "transfer_cancelled"):
        return str(args["from"])
    return str(args.get("supplier") or args.get("custodian") or args.get("by") or "")


def _unpad(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("ascii", errors="replace")


def lot_chain_steps(
    chain: Chain, deployment: Deployment, lot_id: str, *, issuer: str | None = None
) -> list[ChainStep]:
    """The lot's events on chain, by (block, log index), read from the deployment's contracts alone
    (none when no such lot is on chain; the lot resolved as :func:`resolve_lot` does).

    A lot split off a parent has no ``LotOpened``: its ``opened`` step is the parent's ``LotSplit``
    that created it. Certification verdicts carry the spec version they were judged against and
    that spec as the certifier holds it.
    """
    key = lot_key(lot_id, issuer) if issuer is not None else resolve_lot(chain, deployment, lot_id)
    if key is None:
        return []
    return _chain_steps(chain, deployment, lot_id, key)


def _chain_steps(chain: Chain, deployment: Deployment, lot_id: str, key: bytes) -> list[ChainStep]:
    lots = LotRegistryClient.from_deployment(chain, deployment)
    certifier = QualityCertifierClient.from_deployment(chain, deployment)
    start = deployment.block
    raw: list[tuple[str, str, Any]] = []  # (kind, contract name, log)

    def logs(kind: str, name: str, event: Any, filters: dict[str, Any]) -> None:
        found = chain.request(
            lambda: event().get_logs(from_block=start, to_block="latest", argument_filters=filters),
            context=f"{event.event_name} logs of lot {lot_id}",
        )
        raw.extend((kind, name, log) for log in found)

    reg = lots.contract.events
    logs("opened", "LotRegistry", reg.LotOpened, {"lotId": key})
    logs("opened", "LotRegistry", reg.LotSplit, {"childId": key})
    logs("split", "LotRegistry", reg.LotSplit, {"parentId": key})
    logs("transfer_proposed", "LotRegistry", reg.TransferProposed, {"lotId": key})
    logs("transfer_accepted", "LotRegistry", reg.TransferAccepted, {"lotId": key})
    logs("transfer_rejected", "LotRegistry", reg.TransferRejected, {"lotId": key})
    logs("transfer_cancelled", "LotRegistry", reg.TransferCancelled, {"lotId": key})
    qc = certifier.contract.events
    logs("certified", "QualityCertifier", qc.LotCertified, {"lotId": key})
    logs("rejected", "QualityCertifier", qc.LotRejected, {"lotId": key})

    times: dict[int, int] = {}

    def block_time_ms(number: int) -> int:
        if number not in times:
            block = chain.request(lambda: chain.w3.eth.get_block(number), context=f"block {number}")
            times[number] = int(block["timestamp"]) * 1000
        return times[number]

    specs: dict[tuple[int, int], dict[str, Any]] = {}

    def spec_of(gtin: int, version: int) -> dict[str, Any]:
        if (gtin, version) not in specs:
            s = certifier.spec(gtin, version)
            specs[(gtin, version)] = {
                "version": version,
                "min_samples": s.min_samples,
                "set_by": s.set_by,
                "set_at": s.set_at,
                "metrics": [
                    {"name": m.name, "min": str(m.min), "max": str(m.max), "required": m.required}
                    for m in s.metrics
                ],
            }
        return specs[(gtin, version)]

    parents: dict[bytes, str] = {}

    def lot_text(k: bytes) -> str:
        if k not in parents:
            parents[k] = lots.lot(k).lot_id
        return parents[k]

    steps = []
    for kind, name, log in raw:
        args = dict(log["args"])
        details = _details(kind, log["event"], args, spec_of=spec_of, lot_text=lot_text)
        steps.append(
            ChainStep(
                kind=kind,
                time_ms=block_time_ms(int(log["blockNumber"])),
                actor=_actor_of(kind, args),
                details=details,
                tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
                block_number=int(log["blockNumber"]),
                log_index=int(log["logIndex"]),
                contract=to_checksum_address(deployment.address(name)),
            )
        )
    steps.sort(key=lambda s: (s.block_number, s.log_index))
    return steps


def _details(
    kind: str,
    event: str,
    args: dict[str, Any],
    *,
    spec_of: Callable[[int, int], dict[str, Any]],
    lot_text: Callable[[bytes], str],
) -> dict[str, Any]:
    if event == "LotOpened":
        return {
            "lot_id": args["lotIdText"],
            "gtin": format_gtin(args["gtin"]),
            "supplier": args["supplier"],
            "quantity": str(args["quantity"]),
            "unit": _unpad(args["unit"]),
            "produced_from_ms": args["producedFromMs"],
            "produced_to_ms": args["producedToMs"],
        }
    if event == "LotSplit" and kind == "opened":
        parent = bytes(args["parentId"])
        return {
            "lot_id": args["childLotIdText"],
            "split_from": lot_text(parent),
            "split_from_key": _hex(parent),
            "quantity": str(args["quantity"]),
            "custodian": args["custodian"],
        }
    if event == "LotSplit":
        return {
            "child_lot_id": args["childLotIdText"],
            "child_key": _hex(args["childId"]),
            "quantity": str(args["quantity"]),
            "remaining": str(args["parentRemaining"]),
        }
    if kind.startswith("transfer_"):
        return {"from": args["from"], "to": args["to"]}
    if event == "LotCertified":
        return {
            "gtin": format_gtin(args["gtin"]),
            "spec_version": args["specVersion"],
            "samples": args["samples"],
            "spec": spec_of(args["gtin"], args["specVersion"]),
        }
    # LotRejected
    return {
        "gtin": format_gtin(args["gtin"]),
        "spec_version": args["specVersion"],
        "samples": args["samples"],
        "reason": RejectReason(args["reason"]).name.lower(),
        "metric": _unpad(args["metric"]),
        "value": str(args["value"]),
        "bound": str(args["bound"]),
        "evidence": _hex(args["evidence"]),
        "spec": spec_of(args["gtin"], args["specVersion"]),
    }


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
            if b.status == ANCHORED and b.id is not None:
                digests = [
                    bytes(d)
                    for (d,) in s.execute(
                        select(col(ReadingRow.digest))
                        .where(col(ReadingRow.batch_id) == b.id)
                        .order_by(col(ReadingRow.id))
                    )
                ]
                trees[b.id] = decode_tree(b.tree, digests)
        s.expunge_all()
    out = []
    for r in rows:
        batch = batches.get(r.batch_id) if r.batch_id is not None else None
        if batch is None:
            out.append(ReadingStep(row=r, status="pending", batch_id=None, proof=None))
            continue
        if batch.status != ANCHORED or batch.id not in trees:
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

    def to_json_obj(self) -> dict[str, Any]:
        return {
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
    chain_steps = _chain_steps(service.chain, service.deployment, lot_id, key) if key is not None else []
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
    )
