"""A lot's history as a GS1 EPCIS 2.0 JSON-LD document, each event identified by its GS1 event hash.

:func:`export_lot` turns a lot and its steps (plain dataclasses, so the lot timeline or a test can feed
it) into an ``EPCISDocument``:

========================  ====================================================================
step                      EPCIS event
========================  ====================================================================
:class:`Opened`           ObjectEvent ADD, bizStep ``commissioning``, disposition ``active``;
                          the production window in ``ilmd``
:class:`Reading`          ObjectEvent OBSERVE, bizStep ``inspecting``, one ``sensorElement``
                          (``sensorReport`` per metric, typed by GS1 measurement type when known, else
                          ``<SUPET_NS>metric/<name>``; the exact metrics also in ``supet:metrics``)
:class:`Custody`          ObjectEvent OBSERVE: ``proposed`` = bizStep ``shipping`` / ``in_transit``,
                          ``accepted`` = ``receiving`` / ``in_progress``, ``rejected`` and
                          ``cancelled`` = ``void_shipping`` (no disposition); parties in
                          ``sourceList`` / ``destinationList`` (``owning_party``/``possessing_party``)
:class:`Split`            TransformationEvent: ``inputQuantityList`` the parent (the quantity split
                          off), ``outputQuantityList`` the children
:class:`Transformed`      TransformationEvent, bizStep ``commissioning``, disposition ``active``:
                          ``inputQuantityList`` each input lot with the quantity consumed,
                          ``outputQuantityList`` each output lot with its quantity, each under its own
                          GTIN and unit; ``transformationID`` names the on-chain transformation. The
                          event is the same on every input's and output's export (same body, same
                          hash), so two tiers' exports meet in it
:class:`Verdict`          ObjectEvent OBSERVE, bizStep ``inspecting``, disposition ``conformant`` /
                          ``non_conformant``; spec version, metric, value, bound in extensions
========================  ====================================================================

Identifiers (choices):

- The lot is a class-level identifier: ``quantityList[].epcClass`` is the GS1 Digital Link URI
  ``https://id.gs1.org/01/<GTIN-14>/10/<lot id, percent-encoded>``. The ``urn:epc:class:lgtin:`` form
  needs the GS1 company-prefix length, which a GTIN alone does not give; the Digital Link form does not
  (and GS1's event-hash algorithm canonicalises both to the same thing where it can).
- Quantities carry a UN/CEFACT Rec 20 ``uom`` when the lot's unit is a known one (``kg`` -> ``KGM`` ...);
  a count (``pcs``) or an unknown unit has no ``uom``; the lot's unit text is always in ``supet:unit``.
- Parties are Ethereum accounts: ``did:pkh:eip155:<chain id>:<checksummed address>`` (the DID method
  for blockchain accounts, CAIP-10), a URI any EPCIS tool accepts as a party identifier.
- Devices are ``urn:supet:device:<device id, percent-encoded>``.

Chain references live in the supET extension namespace
:data:`~ledger_service.lots.epcis_hash.SUPET_NS` (prefix ``supet``):
``supet:chain`` = ``{supet:chainId, supet:contract, supet:txHash, supet:blockNumber[, supet:logIndex]}``
on every chain-recorded event; readings carry ``supet:digest`` (the EIP-712 digest the device signed),
``supet:batchId``, ``supet:anchorTx`` (and ``supet:chain`` naming the ReadingAnchor when anchored).

The event hashes, and the ``@context`` of the document, are :mod:`ledger_service.lots.epcis_hash`'s.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Literal
from urllib.parse import quote

from eth_utils import to_checksum_address

from ledger_service.lots.epcis_hash import DOCUMENT_CONTEXT, SUPET_NS, event_hashes

__all__ = [
    "ChainRef",
    "Contracts",
    "Custody",
    "EpcisLot",
    "Opened",
    "Reading",
    "Split",
    "Step",
    "TransformLot",
    "Transformed",
    "Verdict",
    "export_lot",
    "lot_epc_class",
    "step_order",
]


#: Lot units with a UN/CEFACT Rec 20 code; a count ("pcs") has no uom (EPCIS: a quantity without uom
#: is a count).
_UOM: Final[Mapping[str, str | None]] = {
    "kg": "KGM",
    "g": "GRM",
    "mg": "MGM",
    "t": "TNE",
    "lb": "LBR",
    "l": "LTR",
    "ml": "MLT",
    "m": "MTR",
    "m2": "MTK",
    "m3": "MTQ",
    "pcs": None,
    "pc": None,
    "ea": None,
    "units": None,
}

#: Reading metrics with a GS1 measurement type and uom.
_SENSOR_TYPES: Final[Mapping[str, tuple[str, str | None]]] = {
    "temperature": ("Temperature", "CEL"),
    "temp": ("Temperature", "CEL"),
    "temp_c": ("Temperature", "CEL"),
    "humidity": ("RelativeHumidity", "P1"),
    "rh": ("RelativeHumidity", "P1"),
    "pressure": ("Pressure", "KPA"),
    "mass": ("Mass", "KGM"),
    "weight": ("Mass", "KGM"),
}


# ---------------------------------------------------------------- input


@dataclass(frozen=True, kw_only=True)
class ChainRef:
    """Where a step is recorded: the transaction, its block and (optionally) the log's index."""

    tx_hash: str
    block_number: int
    log_index: int | None = None


@dataclass(frozen=True, kw_only=True)
class Contracts:
    """The contract addresses the chain references name."""

    lot_registry: str
    quality_certifier: str
    reading_anchor: str | None = None


@dataclass(frozen=True, kw_only=True)
class EpcisLot:
    """The lot: its id, GTIN-14 text, quantity and unit, production window (ms) and supplier address."""

    lot_id: str
    gtin: str
    quantity: int
    unit: str
    produced_from_ms: int
    produced_to_ms: int
    supplier: str


@dataclass(frozen=True, kw_only=True)
class Opened:
    """The lot was opened (``LotOpened``) at ``time_ms`` (block time x 1000)."""

    time_ms: int
    ref: ChainRef
    kind: Literal["opened"] = "opened"


@dataclass(frozen=True, kw_only=True)
class Split:
    """``parent`` was split into ``children`` (lot id -> quantity), in the lot's unit (``LotSplit``)."""

    time_ms: int
    parent: str
    children: Mapping[str, int]
    ref: ChainRef
    kind: Literal["split"] = "split"


@dataclass(frozen=True, kw_only=True)
class TransformLot:
    """One lot of a transformation: its id, GTIN-14 text, a quantity in its unit."""

    lot_id: str
    gtin: str
    quantity: int
    unit: str


@dataclass(frozen=True, kw_only=True)
class Transformed:
    """Transformation ``transformation_id`` (``LotTransformed``, recorded by ``by``): ``inputs`` consumed
    (each with the quantity consumed), ``outputs`` opened (each with its quantity). ``ref`` is the
    ``LotTransformed`` log, the same whichever of its lots is exported."""

    time_ms: int
    transformation_id: int
    by: str
    inputs: Sequence[TransformLot]
    outputs: Sequence[TransformLot]
    ref: ChainRef
    kind: Literal["transformed"] = "transformed"


CustodyKind = Literal["proposed", "accepted", "rejected", "cancelled"]


@dataclass(frozen=True, kw_only=True)
class Custody:
    """A custody step ``Transfer<Kind>`` from ``from_`` to ``to`` (addresses)."""

    time_ms: int
    from_: str
    to: str
    action: CustodyKind
    ref: ChainRef
    kind: Literal["custody"] = "custody"


@dataclass(frozen=True, kw_only=True)
class Reading:
    """A signed reading of the lot: device, sequence, time, metrics; digest and batch when anchored."""

    device_id: str
    seq: int
    ts_ms: int
    metrics: Mapping[str, Decimal | int | float | str]
    digest: str
    batch_id: int | None = None
    anchor_tx: str | None = None
    anchor_block: int | None = None
    kind: Literal["reading"] = "reading"

    @property
    def time_ms(self) -> int:
        return self.ts_ms


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """A verdict of the QualityCertifier (``LotCertified`` / ``LotRejected``)."""

    time_ms: int
    certified: bool
    spec_version: int
    ref: ChainRef
    samples: int | None = None
    reason: str | None = None
    metric: str | None = None
    value: int | None = None
    bound: int | None = None
    evidence: str | None = None
    submitter: str | None = None
    kind: Literal["verdict"] = "verdict"


Step = Opened | Split | Transformed | Custody | Reading | Verdict


# ---------------------------------------------------------------- identifiers


def lot_epc_class(gtin: str, lot_id: str) -> str:
    """The lot as a GS1 Digital Link class identifier (GTIN + batch/lot)."""
    if len(gtin) != 14 or not gtin.isascii() or not gtin.isdigit():
        raise ValueError(f"a GTIN-14 has 14 ASCII digits, got {gtin!r}")
    return f"https://id.gs1.org/01/{gtin}/10/{quote(lot_id, safe='')}"


def _party(chain_id: int, address: str) -> str:
    return f"did:pkh:eip155:{chain_id}:{to_checksum_address(address)}"


def _device(device_id: str) -> str:
    return f"urn:supet:device:{quote(device_id, safe='')}"


def _time(ms: int) -> str:
    when = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).replace(microsecond=(ms % 1000) * 1000)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _decimal(value: Decimal | int | float | str) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


# ---------------------------------------------------------------- events


def _chain(chain_id: int, contract: str, ref: ChainRef) -> dict[str, Any]:
    out: dict[str, Any] = {
        "supet:chainId": chain_id,
        "supet:contract": to_checksum_address(contract),
        "supet:txHash": ref.tx_hash.lower(),
        "supet:blockNumber": ref.block_number,
    }
    if ref.log_index is not None:
        out["supet:logIndex"] = ref.log_index
    return out


def _base(kind: str, time_ms: int) -> dict[str, Any]:
    return {"type": kind, "eventTime": _time(time_ms), "eventTimeZoneOffset": "+00:00"}


class _Exporter:
    def __init__(self, lot: EpcisLot, chain_id: int, contracts: Contracts) -> None:
        self.lot = lot
        self.chain_id = chain_id
        self.contracts = contracts
        self.uom = _UOM.get(lot.unit.strip().lower())

    def quantity(self, lot_id: str, quantity: int | None) -> dict[str, Any]:
        element: dict[str, Any] = {"epcClass": lot_epc_class(self.lot.gtin, lot_id)}
        if quantity is not None:
            element["quantity"] = quantity
            if self.uom is not None:
                element["uom"] = self.uom
        return element

    def opened(self, step: Opened) -> dict[str, Any]:
        lot = self.lot
        return {
            **_base("ObjectEvent", step.time_ms),
            "quantityList": [self.quantity(lot.lot_id, lot.quantity)],
            "action": "ADD",
            "bizStep": "commissioning",
            "disposition": "active",
            "sourceList": [{"type": "owning_party", "source": _party(self.chain_id, lot.supplier)}],
            "ilmd": {
                "supet:producedFrom": _time(lot.produced_from_ms),
                "supet:producedTo": _time(lot.produced_to_ms),
            },
            "supet:lotId": lot.lot_id,
            "supet:unit": lot.unit,
            "supet:chain": _chain(self.chain_id, self.contracts.lot_registry, step.ref),
        }

    def split(self, step: Split) -> dict[str, Any]:
        children = sorted(step.children.items())
        return {
            **_base("TransformationEvent", step.time_ms),
            "inputQuantityList": [self.quantity(step.parent, sum(q for _, q in children))],
            "outputQuantityList": [self.quantity(child, q) for child, q in children],
            "supet:lotId": step.parent,
            "supet:unit": self.lot.unit,
            "supet:chain": _chain(self.chain_id, self.contracts.lot_registry, step.ref),
        }

    def transformed(self, step: Transformed) -> dict[str, Any]:
        def element(lot: TransformLot) -> dict[str, Any]:
            out: dict[str, Any] = {"epcClass": lot_epc_class(lot.gtin, lot.lot_id), "quantity": lot.quantity}
            uom = _UOM.get(lot.unit.strip().lower())
            if uom is not None:
                out["uom"] = uom
            return out

        registry = to_checksum_address(self.contracts.lot_registry)
        return {
            **_base("TransformationEvent", step.time_ms),
            "inputQuantityList": [element(lot) for lot in step.inputs],
            "outputQuantityList": [element(lot) for lot in step.outputs],
            "transformationID": (
                f"urn:supet:transformation:{self.chain_id}:{registry}:{step.transformation_id}"
            ),
            "bizStep": "commissioning",
            "disposition": "active",
            "sourceList": [{"type": "owning_party", "source": _party(self.chain_id, step.by)}],
            "supet:transformer": _party(self.chain_id, step.by),
            "supet:inputs": [
                {"supet:lotId": lot.lot_id, "supet:quantity": str(lot.quantity), "supet:unit": lot.unit}
                for lot in step.inputs
            ],
            "supet:outputs": [
                {"supet:lotId": lot.lot_id, "supet:quantity": str(lot.quantity), "supet:unit": lot.unit}
                for lot in step.outputs
            ],
            "supet:chain": _chain(self.chain_id, self.contracts.lot_registry, step.ref),
        }

    def custody(self, step: Custody) -> dict[str, Any]:
        sender, recipient = _party(self.chain_id, step.from_), _party(self.chain_id, step.to)
        event: dict[str, Any] = {
            **_base("ObjectEvent", step.time_ms),
            "quantityList": [self.quantity(self.lot.lot_id, None)],
            "action": "OBSERVE",
        }
        if step.action == "proposed":
            event |= {"bizStep": "shipping", "disposition": "in_transit"}
        elif step.action == "accepted":
            event |= {"bizStep": "receiving", "disposition": "in_progress"}
        else:
            event |= {"bizStep": "void_shipping"}
        event["sourceList"] = [
            {"type": "owning_party", "source": sender},
            {"type": "possessing_party", "source": sender},
        ]
        event["destinationList"] = [
            {"type": "owning_party", "destination": recipient},
            {"type": "possessing_party", "destination": recipient},
        ]
        event |= {
            "supet:lotId": self.lot.lot_id,
            "supet:custodyAction": step.action,
            "supet:chain": _chain(self.chain_id, self.contracts.lot_registry, step.ref),
        }
        return event

    def reading(self, step: Reading) -> dict[str, Any]:
        metrics = sorted((name, _decimal(v)) for name, v in step.metrics.items())
        reports: list[dict[str, Any]] = []
        for name, value in metrics:
            report: dict[str, Any] = {}
            known = _SENSOR_TYPES.get(name.lower())
            # a GS1 measurement type where one fits, else the metric's own (supET vocabulary) type
            report["type"] = known[0] if known is not None else f"{SUPET_NS}metric/{quote(name, safe='')}"
            report["value"] = _number(value)
            if known is not None and known[1] is not None:
                report["uom"] = known[1]
            report["supet:metric"] = name
            reports.append(report)
        device = _device(step.device_id)
        event: dict[str, Any] = {
            **_base("ObjectEvent", step.ts_ms),
            "quantityList": [self.quantity(self.lot.lot_id, None)],
            "action": "OBSERVE",
            "bizStep": "inspecting",
            "sensorElementList": [
                {
                    "sensorMetadata": {"time": _time(step.ts_ms), "deviceID": device},
                    "sensorReport": reports,
                }
            ],
            "supet:lotId": self.lot.lot_id,
            "supet:deviceId": step.device_id,
            "supet:seq": step.seq,
            "supet:metrics": [{"supet:name": name, "supet:value": str(value)} for name, value in metrics],
            "supet:digest": step.digest.lower(),
        }
        if step.batch_id is not None:
            event["supet:batchId"] = step.batch_id
        if step.anchor_tx is not None:
            event["supet:anchorTx"] = step.anchor_tx.lower()
            if self.contracts.reading_anchor is not None and step.anchor_block is not None:
                ref = ChainRef(tx_hash=step.anchor_tx, block_number=step.anchor_block)
                event["supet:chain"] = _chain(self.chain_id, self.contracts.reading_anchor, ref)
        return event

    def verdict(self, step: Verdict) -> dict[str, Any]:
        event: dict[str, Any] = {
            **_base("ObjectEvent", step.time_ms),
            "quantityList": [self.quantity(self.lot.lot_id, None)],
            "action": "OBSERVE",
            "bizStep": "inspecting",
            "disposition": "conformant" if step.certified else "non_conformant",
            "supet:lotId": self.lot.lot_id,
            "supet:verdict": "certified" if step.certified else "rejected",
            "supet:specVersion": step.spec_version,
        }
        optional: dict[str, Any] = {
            "supet:samples": step.samples,
            "supet:reason": step.reason,
            "supet:metric": step.metric,
            # int256 fixed point: as text, so no JSON reader rounds it
            "supet:value": None if step.value is None else str(step.value),
            "supet:bound": None if step.bound is None else str(step.bound),
            "supet:evidence": None if step.evidence is None else step.evidence.lower(),
            "supet:submitter": None if step.submitter is None else _party(self.chain_id, step.submitter),
        }
        event |= {k: v for k, v in optional.items() if v is not None}
        event["supet:chain"] = _chain(self.chain_id, self.contracts.quality_certifier, step.ref)
        return event

    def event(self, step: Step) -> dict[str, Any]:
        if isinstance(step, Opened):
            return self.opened(step)
        if isinstance(step, Split):
            return self.split(step)
        if isinstance(step, Transformed):
            return self.transformed(step)
        if isinstance(step, Custody):
            return self.custody(step)
        if isinstance(step, Reading):
            return self.reading(step)
        return self.verdict(step)


def step_order(step: Step) -> tuple[int, int, int, int, str, int]:
    """The lot timeline's sort key (:mod:`ledger_service.lots.timeline`): steps in time; at the same
    millisecond chain steps (by block and log) before readings (by device and sequence)."""
    if isinstance(step, Reading):
        return (step.ts_ms, 1, 0, 0, step.device_id, step.seq)
    return (step.time_ms, 0, step.ref.block_number, step.ref.log_index or 0, "", 0)


# ---------------------------------------------------------------- export


def export_lot(
    lot: EpcisLot,
    steps: Sequence[Step],
    *,
    chain_id: int,
    contracts: Contracts,
    creation_date: dt.datetime | None = None,
) -> dict[str, Any]:
    """The lot's history as an EPCIS 2.0 JSON-LD ``EPCISDocument`` (events in time order, hashed).

    The order is :func:`step_order`'s, the lot timeline's (so a page of the timeline is a page of
    the document); the event hashes come from
    :func:`~ledger_service.lots.epcis_hash.event_hashes`.
    """
    exporter = _Exporter(lot, chain_id, contracts)
    bodies = [exporter.event(step) for step in sorted(steps, key=step_order)]
    events = [{"eventID": h, **body} for h, body in zip(event_hashes(bodies), bodies, strict=True)]
    created = creation_date or dt.datetime.now(dt.UTC)
    return {
        "@context": copy.deepcopy(DOCUMENT_CONTEXT),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": _time(int(created.timestamp() * 1000)),
        "epcisBody": {"eventList": events},
    }
