"""The demo's chapter across tiers (issue 15): a tier-2 supplier's lot consumed by sun-a, recalled, traced
downstream and flagged; a receivable backed by a finished lot made from it is refused financing.

1. The tier-2 supplier delivers a lot of silicon wafers to sun-a, which records a transformation on
   chain: part of the wafers become three lots of cells, two delivered to the buyer, one kept. sun-a's
   QC station samples each delivered lot; the samples are signed, streamed through the ingest, anchored,
   and the buyer's certifier certifies both lots from them.
2. The buyer confirms a receivable backed by the first finished lot; sun-a offers it to bank A, and the
   oracle signs the credit-line statement for it.
3. The tier-2 supplier finds its wafers bad and records a recall notice on chain; the service's recall
   worker flags every lot made from them; the supplier reads the downstream trace over the API (each
   finished lot, its holder and the notice).
4. Bank A tries to finance the receivable: the Receivables contract refuses it
   (``ReceivablesBackingLotRecalled``), and the buyer can no longer confirm one on the other lot
   (``ReceivablesLotRecalled``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlmodel import Session, col, select

from contracts.certification_package import load_package_obj
from contracts.errors import ContractRevert
from contracts.lot_recall import LotRecallClient
from contracts.lots import LotRegistryClient, TransformInput, TransformOutput, lot_key
from contracts.orders import PurchaseOrdersClient
from contracts.receivables import ReceivablesClient, receivable_reference
from ledger_service.credit_desk.desk import desk_of
from ledger_service.credit_desk.line import attest_line
from ledger_service.lots.certification import certification_package
from ledger_service.lots.recall import remember_reason
from ledger_service.store.models import ReadingRow
from simulation.feed import SimulationFeed
from simulation.truth import SimReading
from supet.demo.chapters_production import Cast
from supet.demo.scene import SOLAR_GTIN, Scene
from supet_base.errors import SupetError

__all__ = ["across_tiers", "recall_lines"]

WAFER_GTIN = "09506000134376"  # the tier-2 supplier's silicon wafers
_QC_DEVICE = "sun-a-l1-qc"  # FactorySpec.qc_id of sun-a's first line
_REASON = "wafer batch: boron contamination found in the tier-2 supplier's retained sample"
#: Quantities of the story's lots (odd, so that no factory figure is mistaken for one on chain).
_WAFERS, _CONSUMED, _CELLS = 4_817, 2_903, (1_391, 1_207, 305)
_WAIT_S = 60.0


def across_tiers(scene: Scene, cast: Cast) -> None:
    """The chapter (module docstring); what it found goes to ``scene.res.recall`` and the report."""
    scene.step("9. across tiers: a tier-2 lot consumed by sun-a, recalled, traced and refused financing")
    feed = cast.feed
    sun_a, buyer, tier2 = feed.parties["sun-a"], cast.buyer, scene.acct["tier2"]
    lots = LotRegistryClient.from_deployment(scene.chain, scene.deployment)
    tag = scene.end.strftime("%Y%m%d")
    wafers_id = f"WAFERS-T2-{tag}"
    cell_ids = (f"LOT-sun-a-T{tag}-1", f"LOT-sun-a-T{tag}-2", f"LOT-sun-a-T{tag}-3")
    wafers, cells = _transformation(scene, lots, tier2, sun_a, buyer, wafers_id, cell_ids)
    for lot_id, key in zip(cell_ids[:2], cells[:2], strict=True):
        _certify(scene, cast, feed, lot_id, key)
    rid, part = _offered_receivable(scene, feed, sun_a, buyer, cells[0])
    bank_a = scene.acct["bank-a"]
    grant = attest_line(desk_of(scene.service), _rc(scene), scene.acct["oracle"], bank_a.address, part)
    recalls = LotRecallClient(lots)
    notice = recalls.recall(tier2, wafers, _REASON).notice_id
    remember_reason(scene.service.engine, notice, _REASON)
    _flagged(scene, recalls, cells)
    trace = scene.api.http.get(
        f"/v1/lots/{wafers_id}/trace",
        params={"direction": "downstream"},
        headers=scene.api.headers(tier2),
    )
    trace.raise_for_status()
    names = {a.address: n for n, a in (("the buyer", buyer), ("sun-a", sun_a), ("tier-2", tier2))}
    names |= {a.address: n for n, a in scene.acct.items()}
    traced = [
        {
            "lot": lot["lot_id"],
            "holder": names.get(lot["holder"], lot["holder"]),
            "notice": lot["recall_notice"],
        }
        for lot in trace.json()["lots"]
    ]
    refused = _refusal(lambda: _rc(scene).finance(bank_a, part, 1, grant.attestation))
    reconfirm = _refusal(lambda: _confirm(scene, feed, sun_a, buyer, cells[1], "INV-T2-2"))
    scene.res.recall = {
        "wafers": wafers_id,
        "consumed": _CONSUMED,
        "left": lots.lot(wafers).remaining,
        "cells": list(cell_ids[:2]),
        "kept": cell_ids[2],
        "cell_keys": ["0x" + k.hex() for k in cells],
        "transformation": lots.lot(cells[0]).produced_by,
        "notice": notice,
        "reason": _REASON,
        "trace": traced,
        "receivable": rid,
        "part": part,
        "finance_refused": refused,
        "confirm_refused": reconfirm,
        "part_state": _rc(scene).part(part).state.name,
    }
    _report(scene)


def _rc(scene: Scene) -> ReceivablesClient:
    return ReceivablesClient.from_deployment(scene.chain, scene.deployment)


def _transformation(
    scene: Scene,
    lots: LotRegistryClient,
    tier2: LocalAccount,
    sun_a: LocalAccount,
    buyer: LocalAccount,
    wafers_id: str,
    cell_ids: tuple[str, ...],
) -> tuple[bytes, tuple[bytes, ...]]:
    """The wafers delivered to sun-a, made into three lots of cells, the first two delivered to the buyer
    (the third stays with sun-a); their keys."""
    day_ms = (
        int(dt.datetime(scene.end.year, scene.end.month, scene.end.day, tzinfo=dt.UTC).timestamp()) * 1000
    )
    window = {"produced_from_ms": day_ms, "produced_to_ms": day_ms + 86_399_999}
    lots.open_lot(tier2, lot_id=wafers_id, gtin=WAFER_GTIN, quantity=_WAFERS, unit="pcs", **window)
    wafers = lot_key(wafers_id, tier2.address)
    lots.propose_transfer(tier2, wafers, sun_a.address)
    lots.accept_transfer(sun_a, wafers)
    outputs = [
        TransformOutput(lot_id=lot_id, gtin=SOLAR_GTIN, quantity=n, unit="pcs", **window)
        for lot_id, n in zip(cell_ids, _CELLS, strict=True)
    ]
    made = lots.transform(sun_a, [TransformInput(lot=wafers, quantity=_CONSUMED, unit="pcs")], outputs)
    for key in made.outputs[:2]:
        lots.propose_transfer(sun_a, key, buyer.address)
        lots.accept_transfer(buyer, key)
    return wafers, made.outputs


def _certify(scene: Scene, cast: Cast, feed: SimulationFeed, lot_id: str, key: bytes) -> None:
    """sun-a's QC station samples the new lot (the line's last six certified samples' measurements, at new
    sequence numbers and times), the samples are anchored, and the buyer's certifier judges the lot."""
    with Session(scene.service.engine) as s:
        rows = s.exec(
            select(ReadingRow).where(ReadingRow.device_id == _QC_DEVICE).order_by(col(ReadingRow.seq).desc())
        ).all()
    last = rows[0]
    good = [r for r in rows if r.lot_id and scene.res.certificates.get(r.lot_id) == "certified"][:6]
    if len(good) < 6:
        raise SupetError("sun-a's line has no certified lot to take six QC samples from", code="demo.samples")
    now_ms = int(scene.chain.block("latest")["timestamp"]) * 1000
    samples = [
        SimReading(
            device_id=_QC_DEVICE,
            seq=last.seq + 1 + i,
            ts_ms=last.ts_ms + 1_000 * (1 + i),
            lot_id=lot_id,
            metrics=json.loads(r.reading_json)["metrics"],
            send_ms=0,
        )
        for i, r in enumerate(reversed(good))
    ]
    if samples[-1].ts_ms >= now_ms:
        raise SupetError("the chain's clock is behind sun-a's last QC reading", code="demo.node_clock")
    answer = scene.api.http.post("/v1/readings", json={"readings": [feed.sign(r) for r in samples]})
    answer.raise_for_status()
    refused = [it["error"]["code"] for it in answer.json()["results"] if "receipt" not in it]
    if refused:
        raise SupetError(f"sun-a's QC samples of {lot_id} were refused: {refused}", code="demo.samples")
    scene.service.anchoring.flush(timeout=120)
    _, batches = load_package_obj(certification_package(scene.service, lot_id))
    cast.certifier.certify_lot(cast.buyer, key, batches)
    scene.res.certificates[lot_id] = "certified" if cast.certifier.certificate(key).certified else "REJECTED"


def _confirm(
    scene: Scene, feed: SimulationFeed, sun_a: LocalAccount, buyer: LocalAccount, key: bytes, invoice: str
) -> int:
    """The buyer confirms a receivable to sun-a on lot ``key`` (its quantity at the order's unit price)."""
    orders = PurchaseOrdersClient.from_deployment(scene.chain, scene.deployment)
    terms = next(t for t in feed.result.order_terms if orders.order(t.order_id).supplier == sun_a.address)
    quantity = LotRegistryClient.from_deployment(scene.chain, scene.deployment).lot(key).quantity
    now = int(scene.chain.block("latest")["timestamp"])
    rid, _ = _rc(scene).confirm(
        buyer,
        supplier=sun_a.address,
        face_value=quantity * terms.unit_price,
        due_date=now + 60 * 86_400,
        reference=receivable_reference(f"{invoice}-{now}"),
        order_id=terms.order_id,
        lots=[key],
    )
    return rid


def _offered_receivable(
    scene: Scene, feed: SimulationFeed, sun_a: LocalAccount, buyer: LocalAccount, key: bytes
) -> tuple[int, int]:
    """A receivable on the first lot of cells, its whole root part offered to bank A; (id, part)."""
    rc = _rc(scene)
    rid = _confirm(scene, feed, sun_a, buyer, key, "INV-T2-1")
    part = rc.receivable(rid).root_part
    rc.offer(sun_a, part, bank=scene.acct["bank-a"].address, min_price=1)
    return rid, part


def _flagged(scene: Scene, recalls: LotRecallClient, keys: tuple[bytes, ...]) -> None:
    """The service's recall worker flags the notice's downstream lots: a pass now (the worker's own
    schedule would do it within its interval), then wait until every one is flagged on chain."""
    worker = scene.service.recall
    deadline = time.monotonic() + _WAIT_S
    while not all(recalls.is_recalled(k) for k in keys):
        if time.monotonic() > deadline:
            raise SupetError("the recall worker did not flag the finished lots in time", code="demo.recall")
        if worker is not None:
            worker.run_once()
        else:  # a service without anchoring runs no worker: flag as `supet lot recall` does
            from ledger_service.lots.recall import flag_recall

            flag_recall(
                scene.service.engine,
                scene.chain,
                scene.deployment,
                scene.service.anchor_signer,
                recalls.notice_count(),
            )
        time.sleep(0.2)


def _refusal(call: Any) -> dict[str, Any]:
    """What the chain answered to ``call``: the custom error's name and arguments (``done`` if it passed)."""
    try:
        call()
    except ContractRevert as e:
        return {"error": e.error_name, "args": {k: _plain(v) for k, v in (e.error_args or {}).items()}}
    return {"error": None, "args": {}}


def _plain(value: Any) -> Any:
    return "0x" + bytes(value).hex() if isinstance(value, bytes | bytearray) else value


def _report(scene: Scene) -> None:
    rc = scene.res.recall
    scene.report.section("9. Across tiers: lineage, a recall and a refused financing")
    scene.report.para(" ".join(recall_lines(rc)))
    scene.report.table(
        ["downstream lot", "holder", "recall notice"],
        [[t["lot"], t["holder"], t["notice"]] for t in rc["trace"]],
    )


def recall_lines(rc: dict[str, Any]) -> list[str]:
    """The chapter told in plain words (the summary's lines and the report's paragraph)."""
    if not rc:
        return []
    held = ", ".join(f"{t['lot']} (held by {t['holder']})" for t in rc["trace"])
    return [
        f"tier-2 lot {rc['wafers']}: sun-a consumed {rc['consumed']:,} wafers of it in transformation "
        f"#{rc['transformation']} into {' and '.join(rc['cells'])}, delivered to the buyer and certified "
        f"from sun-a's QC samples, and {rc['kept']}, kept by sun-a ({rc['left']:,} wafers left)",
        f"the tier-2 supplier recalled {rc['wafers']} (notice #{rc['notice']}: {rc['reason']}); the recall "
        f"worker flagged everything made from it, traced downstream: {held}",
        f"receivable #{rc['receivable']}, backed by {rc['cells'][0]}, was offered to bank A and its credit "
        f"line signed before the recall; bank A's financing was refused by the chain "
        f"({rc['finance_refused']['error']}): its lot failed. A new receivable on {rc['cells'][1]} was "
        f"refused at confirmation ({rc['confirm_refused']['error']})",
    ]
