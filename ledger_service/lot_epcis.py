"""A lot's GS1 EPCIS 2.0 document, from the ledger: the adapter between the lot timeline and the export.

:func:`lot_epcis_inputs` gathers what :func:`ledger_service.epcis.export_lot` needs:

- the lot record (GTIN, quantity, unit, production window, supplier) from the LotRegistry;
- every chain step of the lot (:func:`ledger_service.lots.lot_chain_steps`, not paged), one export
  step per chain step (so one EPCIS event per history step, same transaction, block and log index);
- every stored reading of the lot, with its chain batch id and anchoring transaction once its batch
  is anchored (pending and batched readings are exported without them).

Mapping of the chain steps:

=======================  =================================================================
chain step               export step
=======================  =================================================================
``opened`` (LotOpened)   :class:`~ledger_service.epcis.Opened`
``opened`` (LotSplit)    :class:`~ledger_service.epcis.Split` parent -> this lot (a lot split
                         off a parent is created by the split, it is not commissioned)
``split``                :class:`~ledger_service.epcis.Split` this lot -> the child of that
                         ``LotSplit`` log (a split into n children is n logs, so n events)
``transfer_<action>``    :class:`~ledger_service.epcis.Custody` with that action
``certified``            :class:`~ledger_service.epcis.Verdict` certified, submitter the actor
``rejected``             :class:`~ledger_service.epcis.Verdict` rejected, reason / metric /
                         value / bound / evidence (a zero evidence digest is left out)
=======================  =================================================================

A lot that was never opened on chain (readings only) has no GTIN, so no EPCIS identifier: it is
:class:`~ledger_service.errors.NotFound` (``lot.not_found``) here.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from contracts.lots import LotRegistryClient
from ledger_service.anchoring import ANCHORED
from ledger_service.epcis import (
    ChainRef,
    Contracts,
    Custody,
    CustodyKind,
    EpcisLot,
    Opened,
    Reading,
    Split,
    Step,
    Verdict,
    export_lot,
)
from ledger_service.errors import NotFound
from ledger_service.jsonio import loads_exact
from ledger_service.lots import ChainStep, lot_chain_steps
from ledger_service.service import LedgerService
from ledger_service.store.models import BatchRow, ReadingRow

__all__ = ["chain_step_to_export", "lot_epcis_document", "lot_epcis_inputs", "stored_readings"]

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


def stored_readings(service: LedgerService, lot_id: str) -> list[Reading]:
    """Every stored reading of the lot (any status), with batch id and anchor once anchored."""
    with Session(service.engine) as s:
        query = (
            select(ReadingRow)
            .where(col(ReadingRow.lot_id) == lot_id)
            .order_by(col(ReadingRow.ts_ms), col(ReadingRow.device_id), col(ReadingRow.seq))
        )
        rows = [r[0] if isinstance(r, tuple) else r for r in s.exec(query)]
        batch_ids = {r.batch_id for r in rows if r.batch_id is not None}
        batches = {i: b for i in batch_ids if (b := s.get(BatchRow, i)) is not None}
        s.expunge_all()
    out = []
    for r in rows:
        batch = batches.get(r.batch_id) if r.batch_id is not None else None
        anchored = batch is not None and batch.status == ANCHORED and batch.chain_batch_id is not None
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


def lot_epcis_inputs(service: LedgerService, lot_id: str) -> tuple[EpcisLot, list[Step]]:
    """The export's inputs for the lot: its record and all its steps (chain, then readings).

    :class:`NotFound` (``lot.not_found``) when the lot was never opened (nor split off) on chain.
    """
    chain_steps = lot_chain_steps(service.chain, service.deployment, lot_id)
    if not chain_steps:
        raise NotFound(
            f"no lot {lot_id!r} on chain: it was never opened or split off, so it has no GTIN to "
            "identify it in EPCIS",
            code="lot.not_found",
        )
    record = LotRegistryClient.from_deployment(service.chain, service.deployment).lot(lot_id)
    lot = EpcisLot(
        lot_id=lot_id,
        gtin=record.gtin_text,
        quantity=record.quantity,
        unit=record.unit,
        produced_from_ms=record.produced_from_ms,
        produced_to_ms=record.produced_to_ms,
        supplier=record.supplier,
    )
    steps: list[Step] = [chain_step_to_export(lot_id, s) for s in chain_steps]
    steps += stored_readings(service, lot_id)
    return lot, steps


def _contracts(service: LedgerService) -> Contracts:
    d = service.deployment
    return Contracts(
        lot_registry=d.address("LotRegistry"),
        quality_certifier=d.address("QualityCertifier"),
        reading_anchor=d.address("ReadingAnchor"),
    )


def lot_epcis_document(
    service: LedgerService, lot_id: str, *, creation_date: dt.datetime | None = None
) -> dict[str, Any]:
    """The lot's history as an EPCIS 2.0 JSON-LD ``EPCISDocument`` (see the module docstring)."""
    lot, steps = lot_epcis_inputs(service, lot_id)
    return export_lot(
        lot,
        steps,
        chain_id=service.deployment.chain_id,
        contracts=_contracts(service),
        creation_date=creation_date,
    )
