"""A lot's GS1 EPCIS 2.0 document, from the ledger: the adapter between the lot timeline and the export.

:func:`lot_epcis_page` gathers what :func:`ledger_service.lots.epcis_document.export_lot` needs for one page:

- the lot record (GTIN, quantity, unit, production window, supplier) from the LotRegistry, the lot
  resolved as the timeline resolves it (:func:`ledger_service.lots.timeline.resolve_lot`: scoped to its
  issuer);
- the lot's chain steps (:mod:`auditor.lot_chain`), one export step per chain step (so one EPCIS
  event per history step, same transaction, block and log index);
- the stored readings of the devices that may speak for the lot
  (:func:`ledger_service.lots.timeline.lot_devices`, as the timeline), with their chain batch id and
  anchoring transaction once their batch is anchored (pending and batched readings are exported
  without them).

Mapping of the chain steps:

=======================  =================================================================
chain step               export step
=======================  =================================================================
``opened`` (LotOpened)   :class:`~ledger_service.lots.epcis_document.Opened`
``opened`` (LotSplit)    :class:`~ledger_service.lots.epcis_document.Split` parent -> this lot (a lot split
                         off a parent is created by the split, it is not commissioned)
``split``                :class:`~ledger_service.lots.epcis_document.Split` this lot -> the child of that
                         ``LotSplit`` log (a split into n children is n logs, so n events)
``transformed``          :class:`~ledger_service.lots.epcis_document.Transformed`, the whole
                         transformation (on an input lot and an output lot alike; its reference is
                         the ``LotTransformed`` log, so both lots' exports carry the same event)
``transfer_<action>``    :class:`~ledger_service.lots.epcis_document.Custody` with that action
``certified``            :class:`~ledger_service.lots.epcis_document.Verdict` certified, submitter the actor
``rejected``             :class:`~ledger_service.lots.epcis_document.Verdict` rejected, reason / metric /
                         value / bound / evidence (a zero evidence digest is left out)
=======================  =================================================================

A lot that was never opened on chain (readings only) has no GTIN, so no EPCIS identifier: it is
:class:`~ledger_service.errors.NotFound` (``lot.not_found``) here.

Served paged (:func:`lot_epcis_page`): each page is a whole ``EPCISDocument`` of at most
``limit`` (1..:data:`MAX_EPCIS_PAGE`) events, in the lot timeline's order, and the timeline's
cursor of the next page; only the page's readings are read and only its events hashed (and each
event's hash is remembered, :func:`ledger_service.lots.epcis_hash.event_hashes`). Pages are kept, rendered,
in the service's :class:`ExportCache` under the lot's :func:`export_fingerprint` (its chain steps,
its readings, their anchoring), so a repeated GET costs the fingerprint (a few chain log reads and
one SQL aggregate) and nothing else, and any change to the lot gives new pages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import func, select
from sqlmodel import Session, col

from auditor.lot_chain import ChainStep, SortKey, chain_steps_of_key
from contracts.lots import LotRegistryClient
from ledger_service.errors import NotFound
from ledger_service.jsonio import dumps_exact, loads_exact
from ledger_service.lots.epcis_document import (
    ChainRef,
    Contracts,
    Custody,
    CustodyKind,
    EpcisLot,
    Opened,
    Reading,
    Split,
    Step,
    Transformed,
    TransformLot,
    Verdict,
    export_lot,
)
from ledger_service.lots.timeline import (
    _readings_after,
    decode_cursor,
    encode_cursor,
    lot_devices,
    merge_page,
    resolve_lot,
    step_sort_key,
)
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import BatchRow, ReadingRow
from ledger_service.store.queries import anchored_batch_of_reading

__all__ = [
    "DEFAULT_EPCIS_PAGE",
    "MAX_EPCIS_PAGE",
    "ExportCache",
    "ExportPage",
    "LotState",
    "chain_step_to_export",
    "export_cache_of",
    "export_fingerprint",
    "lot_epcis_page",
    "lot_state",
]

#: Events per page of the EPCIS export: the default and the hard maximum.
DEFAULT_EPCIS_PAGE: Final = 200
MAX_EPCIS_PAGE: Final = 500

_CUSTODY: dict[str, CustodyKind] = {
    "transfer_proposed": "proposed",
    "transfer_accepted": "accepted",
    "transfer_rejected": "rejected",
    "transfer_cancelled": "cancelled",
}
_ZERO_DIGEST = "0x" + "00" * 32


def _ref(step: ChainStep) -> ChainRef:
    return ChainRef(tx_hash=step.tx_hash, block_number=step.block_number, log_index=step.log_index)


def chain_step_to_export(lot_id: str, step: ChainStep) -> Step:
    """The export step of one chain step of lot ``lot_id``."""
    d = step.details
    if step.kind == "opened":
        if "split_from" in d:
            return Split(
                time_ms=step.time_ms,
                parent=str(d["split_from"]),
                children={lot_id: int(d["quantity"])},
                ref=_ref(step),
            )
        return Opened(time_ms=step.time_ms, ref=_ref(step))
    if step.kind == "split":
        return Split(
            time_ms=step.time_ms,
            parent=lot_id,
            children={str(d["child_lot_id"]): int(d["quantity"])},
            ref=_ref(step),
        )
    if step.kind == "transformed":

        def lots(side: str) -> list[TransformLot]:
            return [
                TransformLot(
                    lot_id=str(x["lot_id"]),
                    gtin=str(x["gtin"]),
                    quantity=int(x["quantity"]),
                    unit=str(x["unit"]),
                )
                for x in d[side]
            ]

        return Transformed(
            time_ms=step.time_ms,
            transformation_id=int(d["transformation_id"]),
            by=str(d["by"]),
            inputs=lots("inputs"),
            outputs=lots("outputs"),
            ref=ChainRef(
                tx_hash=step.tx_hash,
                block_number=step.block_number,
                log_index=int(d["transformed_log_index"]),
            ),
        )
    if step.kind in _CUSTODY:
        return Custody(
            time_ms=step.time_ms,
            from_=str(d["from"]),
            to=str(d["to"]),
            action=_CUSTODY[step.kind],
            ref=_ref(step),
        )
    if step.kind == "certified":
        return Verdict(
            time_ms=step.time_ms,
            certified=True,
            spec_version=int(d["spec_version"]),
            samples=int(d["samples"]),
            submitter=step.actor or None,
            ref=_ref(step),
        )
    if step.kind == "rejected":
        evidence = str(d["evidence"])
        return Verdict(
            time_ms=step.time_ms,
            certified=False,
            spec_version=int(d["spec_version"]),
            samples=int(d["samples"]),
            reason=str(d["reason"]),
            metric=str(d["metric"]) or None,
            value=int(d["value"]),
            bound=int(d["bound"]),
            evidence=None if evidence.lower() == _ZERO_DIGEST else evidence,
            submitter=step.actor or None,
            ref=_ref(step),
        )
    raise ValueError(f"unknown chain step kind {step.kind!r}")


def _metric(value: Any) -> Decimal | int | float | str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Decimal | int | float | str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _export_readings(service: LedgerService, rows: list[ReadingRow]) -> list[Reading]:
    """The export steps of stored reading rows (batch id and anchor of the anchored ones)."""
    with Session(service.engine) as s:
        batch_ids = {r.batch_id for r in rows if r.batch_id is not None}
        batches = {i: b for i in batch_ids if (b := s.get(BatchRow, i)) is not None}
        s.expunge_all()
    out = []
    for r in rows:
        batch = batches.get(r.batch_id) if r.batch_id is not None else None
        anchored = (
            batch is not None and batch.status == BatchStatus.ANCHORED and batch.chain_batch_id is not None
        )
        metrics = loads_exact(r.reading_json).get("metrics", {})
        out.append(
            Reading(
                device_id=r.device_id,
                seq=r.seq,
                ts_ms=r.ts_ms,
                metrics={str(k): _metric(v) for k, v in metrics.items()},
                digest="0x" + bytes(r.digest).hex(),
                batch_id=batch.chain_batch_id if anchored and batch is not None else None,
                anchor_tx=batch.tx_hash if anchored and batch is not None else None,
                anchor_block=batch.block_number if anchored and batch is not None else None,
            )
        )
    return out


def _contracts(service: LedgerService) -> Contracts:
    d = service.deployment
    return Contracts(
        lot_registry=d.address("LotRegistry"),
        quality_certifier=d.address("QualityCertifier"),
        reading_anchor=d.address("ReadingAnchor"),
    )


# ---------------------------------------------------------------- paging and the cache


@dataclass(frozen=True, slots=True)
class ExportPage:
    """One rendered page of an export: its JSON bytes and the cursor of the next page."""

    body: bytes
    next_cursor: str | None


class ExportCache:
    """Rendered export pages by key, least recently used first out, bounded in entries and bytes.

    The key holds the lot's :func:`export_fingerprint`, so a page is never served for a lot that
    changed since; entries of the old state simply age out. Thread-safe.
    """

    def __init__(self, *, max_bytes: int = 64 * 1024 * 1024, max_entries: int = 512) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0
        self._bytes = 0
        self._data: OrderedDict[Hashable, ExportPage] = OrderedDict()
        self._states: OrderedDict[Hashable, LotState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> ExportPage | None:
        with self._lock:
            page = self._data.get(key)
            if page is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return page

    def put(self, key: Hashable, page: ExportPage) -> None:
        if len(page.body) > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= len(old.body)
            self._data[key] = page
            self._bytes += len(page.body)
            while self._bytes > self.max_bytes or len(self._data) > self.max_entries:
                _, dropped = self._data.popitem(last=False)
                self._bytes -= len(dropped.body)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._states.clear()
            self._bytes = 0

    def lot_state(self, key: Hashable) -> LotState | None:
        """A remembered :class:`LotState` (see :func:`lot_state`)."""
        with self._lock:
            state = self._states.get(key)
            if state is not None:
                self._states.move_to_end(key)
            return state

    def remember_lot_state(self, key: Hashable, state: LotState) -> None:
        with self._lock:
            self._states[key] = state
            self._states.move_to_end(key)
            while len(self._states) > LOT_STATES:
                self._states.popitem(last=False)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class LotState:
    """What the chain says of a lot at one block: its key, chain steps and the devices that count."""

    key: bytes
    chain_steps: list[ChainStep]
    devices: list[str]


#: Lots whose chain state is remembered (per head block) by :func:`lot_state`.
LOT_STATES: Final = 1024


def lot_state(service: LedgerService, lot_id: str, issuer: str | None) -> LotState | None:
    """The lot's key, chain steps and devices as of the chain's latest block (``None``: not on chain).

    Remembered per (lot, issuer, latest block number and hash): the chain cannot have changed
    without a new block, so a repeated request costs one ``eth_getBlockByNumber`` instead of the
    lot's log queries and device lookups. :class:`~ledger_service.lots.timeline.AmbiguousLotId` as
    :func:`~ledger_service.lots.timeline.resolve_lot`.
    """
    head = service.chain.block("latest")
    block_hash = head.get("hash")
    marker = (int(head["number"]), bytes(block_hash).hex() if block_hash is not None else "")
    cache = export_cache_of(service)
    remembered = cache.lot_state((lot_id, issuer, marker))
    if remembered is not None:
        return remembered
    key = resolve_lot(service.chain, service.deployment, lot_id, issuer)
    if key is None:
        return None
    state = LotState(
        key=key,
        chain_steps=chain_steps_of_key(service.chain, service.deployment, lot_id, key),
        devices=lot_devices(service, lot_id, key),
    )
    cache.remember_lot_state((lot_id, issuer, marker), state)
    return state


_CACHE_LOCK = threading.Lock()


def export_cache_of(service: LedgerService) -> ExportCache:
    """The service's :class:`ExportCache` (``service.lot_export_cache``), made on first use."""
    with _CACHE_LOCK:
        cache: ExportCache | None = getattr(service, "lot_export_cache", None)
        if cache is None:
            cache = ExportCache()
            service.lot_export_cache = cache  # type: ignore[attr-defined]
        return cache


def export_fingerprint(
    service: LedgerService, lot_id: str, chain_steps: list[ChainStep], devices: list[str] | None = None
) -> str:
    """What a lot's exports depend on, as a digest: its chain steps (transaction, block, log), the
    devices whose readings count for it, and its stored readings (count, newest id) with their
    anchoring (count anchored, newest anchored batch, its anchoring time).

    Read before the export's content: a cached page may hold data newer than its key's fingerprint
    (the next request's fingerprint differs, so it is built again), never older.
    """
    with Session(service.engine) as s:
        readings = s.execute(
            select(
                func.count(col(ReadingRow.id)),
                func.max(col(ReadingRow.id)),
                func.count(col(BatchRow.id)),
                func.max(col(BatchRow.id)),
                func.max(col(BatchRow.anchored_ms)),
            )
            .select_from(ReadingRow)
            .outerjoin(BatchRow, anchored_batch_of_reading())
            .where(col(ReadingRow.lot_id) == lot_id)
        ).one()
    chain = [(c.tx_hash, c.block_number, c.log_index) for c in chain_steps]
    raw = json.dumps([lot_id, [None if v is None else int(v) for v in readings], chain, devices])
    return hashlib.sha256(raw.encode()).hexdigest()


def lot_epcis_page(
    service: LedgerService,
    lot_id: str,
    *,
    issuer: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_EPCIS_PAGE,
    creation_date: dt.datetime | None = None,
) -> ExportPage:
    """One page of the lot's EPCIS document (see the module docstring), from the cache when it can.

    The lot is resolved as the timeline resolves it (``lot_id`` of ``issuer``, or the one lot with
    that id) and its readings are the timeline's (devices that may speak for it).
    :class:`NotFound` (``lot.not_found``) for a lot never opened on chain;
    :class:`~ledger_service.lots.timeline.AmbiguousLotId` (``lot.ambiguous``) without ``issuer`` when several
    parties have the id; :class:`~ledger_service.lots.timeline.InvalidCursor` (``lot.bad_cursor``) for a
    cursor not issued here; ``ValueError`` for a limit outside 1..:data:`MAX_EPCIS_PAGE`.
    """
    if not 1 <= limit <= MAX_EPCIS_PAGE:
        raise ValueError(f"limit must be 1..{MAX_EPCIS_PAGE}, got {limit}")
    after: SortKey | None = decode_cursor(cursor) if cursor else None
    state = lot_state(service, lot_id, issuer)
    if state is None or not state.chain_steps:
        raise NotFound(
            f"no lot {lot_id!r} on chain: it was never opened or split off, so it has no GTIN to "
            "identify it in EPCIS",
            code="lot.not_found",
        )
    key, chain_steps, devices = state.key, state.chain_steps, state.devices
    cache = export_cache_of(service)
    fingerprint = export_fingerprint(service, lot_id, chain_steps, devices)
    cache_key = ("epcis", lot_id, "0x" + key.hex(), cursor or "", limit, fingerprint)
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    rows = _readings_after(service, lot_id, after, limit + 1, devices)
    merged, more = merge_page(chain_steps, rows, after, limit)
    steps: list[Step] = [chain_step_to_export(lot_id, m) for m in merged if isinstance(m, ChainStep)]
    steps += _export_readings(service, [m for m in merged if isinstance(m, ReadingRow)])
    record = LotRegistryClient.from_deployment(service.chain, service.deployment).lot(key)
    lot = EpcisLot(
        lot_id=lot_id,
        gtin=record.gtin_text,
        quantity=record.quantity,
        unit=record.unit,
        produced_from_ms=record.produced_from_ms,
        produced_to_ms=record.produced_to_ms,
        supplier=record.supplier,
    )
    document = export_lot(
        lot,
        steps,
        chain_id=service.deployment.chain_id,
        contracts=_contracts(service),
        creation_date=creation_date,
    )
    page = ExportPage(
        body=dumps_exact(document),
        next_cursor=encode_cursor(step_sort_key(merged[-1])) if more and merged else None,
    )
    cache.put(cache_key, page)
    return page
