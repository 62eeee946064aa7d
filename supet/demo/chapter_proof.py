"""What the ledger proves beyond a profile (issue 16), in the demo's world: a line's readings checked live
against its operating windows, and a buyer's late payments to rub-c, which its credit record then names
next to its rejected lots.

* :func:`window_breaches` (after the yield models): sun-b's first line gets its window set from its
  published yield model; its stations then send a few hours of new readings (the line's last readings
  again, at new sequence numbers and times; every third reading of the station measuring the set's first
  parameter carries an excursion above that window), the live check counts them, and the report shows the
  line's breach table (``breach_report``).
* :func:`late_payments` (before the credit records): the buyer confirms three receivables to rub-c on
  its certified lots, due in :data:`TERMS_DAYS` days; the chain's clock moves to :data:`LATE_DAYS` days
  past the due date; the buyer repays two and leaves the third overdue. Only where the chain's clock can
  be set (the embedded chain, anvil); elsewhere the story says so and the payments are not scored.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any, Final

from sqlmodel import Session, col, select

from contracts.lots import LotRegistryClient, lot_key
from contracts.orders import PurchaseOrdersClient
from contracts.receivables import ReceivablesClient, StablecoinClient, receivable_reference
from ledger_service.analytics_store.window_check import WindowChecker, breach_report
from ledger_service.analytics_store.windows import publish_window_set
from ledger_service.store.models import ReadingRow
from simulation.feed import FeedResult
from simulation.truth import SimReading
from supet.demo.chapters_production import PROOF_FACTORY, Cast
from supet.demo.scene import BUYER_NAME, Scene
from supet_base.errors import SupetError

__all__ = ["BREACH_LINE", "LATE_DAYS", "TERMS_DAYS", "late_payments", "proof_rows", "window_breaches"]

#: The line whose readings are checked against its windows in the story (sun-b's, the deteriorating one).
BREACH_LINE: Final = "sun-b-l1"
#: Hours of new readings each of its stations sends once the window set is published.
_BREACH_HOURS: Final = 3
#: Every this many readings of the station measuring the first windowed parameter, one excursion.
_EXCURSION_EVERY: Final = 3
#: The receivables' terms (days from confirmation to due date) and how late the buyer is.
TERMS_DAYS: Final = 10
LATE_DAYS: Final = 21
_RECEIVABLES: Final = 3
_DAY_S: Final = 86_400


def window_breaches(scene: Scene, cast: Cast, fed: FeedResult) -> None:
    """5b. sun-b's first line: its window set published, new readings of its stations checked live."""
    scene.step("5b. a line's operating windows published; new readings checked against them")
    engine = scene.service.engine
    stored, _ = publish_window_set(engine, scene.res.yields[BREACH_LINE]["commitment"])
    ws = stored.window_set
    first = ws.windows[0]
    readings, excursions = _new_readings(scene, list(ws.devices), first.name, first.high, first.low)
    for i in range(0, len(readings), 500):
        part = readings[i : i + 500]
        r = scene.api.http.post("/v1/readings", json={"readings": [cast.feed.sign(x) for x in part]})
        r.raise_for_status()
        refused = [it["error"]["code"] for it in r.json()["results"] if "receipt" not in it]
        if refused:
            raise SupetError(f"{BREACH_LINE}'s new readings were refused: {refused[:3]}", code="demo.windows")
    checker = WindowChecker(engine, settle_ms=0)
    for _ in range(50):  # the service's own check may take a pass meanwhile: run until nothing is new
        if checker.run_once().readings == 0:
            break
    report = breach_report(engine, fed.factories["sun-b"], BREACH_LINE, samples=1)
    version = report["window_set"]["version"]
    rows = [
        [
            p["name"],
            f"{p['low']:g} .. {p['high']:g}",
            p["checked"],
            p["outside"],
            "-" if p["share_outside"] is None else f"{100 * p['share_outside']:.1f}%",
            version,
        ]
        for p in report["parameters"]
    ]
    scene.res.breaches = {
        "line": BREACH_LINE,
        "version": version,
        "commitment": report["window_set"]["commitment"],
        "sent": len(readings),
        "excursions": excursions,
        "checked": report["checked"],
        "outside": report["outside"],
        "parameters": [
            {k: p[k] for k in ("name", "low", "high", "checked", "outside", "share_outside")}
            for p in report["parameters"]
        ],
        "rows": rows,
    }
    scene.report.section(
        "5b. Window breaches",
        f"{BREACH_LINE}'s operating windows, taken from its published yield model (window set version "
        f"{version}, {report['window_set']['commitment'][:18]}…), are checked live against every reading its "
        f"stations send after they were published: {len(readings)} new readings over {_BREACH_HOURS} hours "
        f"of the line's process (in {excursions} of them {first.name} runs above its window, a simulated "
        f"excursion); {report['outside']:,} of {report['checked']:,} values checked were outside their "
        "window.",
    )
    scene.report.table(["parameter", "window", "checked", "outside", "share", "version"], rows)


def _new_readings(
    scene: Scene, stations: list[str], param: str, high: float, low: float
) -> tuple[list[SimReading], int]:
    """The stations' next readings: their last ``_BREACH_HOURS`` hours again, at new sequence numbers and
    times (after their last reading, before the wall clock and the chain's); every
    ``_EXCURSION_EVERY``-th reading of the station measuring ``param`` has it above its window."""
    interval_ms = scene.opts.interval_s * 1000
    n = max(1, _BREACH_HOURS * 3_600_000 // interval_ms)
    limit_ms = min(int(time.time() * 1000), int(scene.chain.block("latest")["timestamp"]) * 1000)
    out: list[SimReading] = []
    excursions = 0
    with Session(scene.service.engine) as s:
        for device in stations:
            rows = s.exec(
                select(ReadingRow)
                .where(ReadingRow.device_id == device)
                .order_by(col(ReadingRow.seq).desc())
                .limit(n)
            ).all()
            if not rows:
                continue
            last = rows[0]
            # the ingest takes a device's readings in order and up to a minute ahead of its clock
            step = max(1, min(interval_ms, (limit_ms - last.ts_ms) // (len(rows) + 1)))
            k = 0
            for i, row in enumerate(reversed(rows), start=1):
                metrics = dict(json.loads(row.reading_json)["metrics"])
                if param in metrics:
                    k += 1
                    if k % _EXCURSION_EVERY == 0:
                        metrics[param] = round(high + max(high - low, abs(high) * 0.05, 1e-3), 6)
                        excursions += 1
                out.append(
                    SimReading(
                        device_id=device,
                        seq=last.seq + i,
                        ts_ms=last.ts_ms + i * step,
                        lot_id=row.lot_id,
                        metrics=metrics,
                        send_ms=0,
                    )
                )
    return out, excursions


def late_payments(scene: Scene, cast: Cast) -> None:
    """6a. The buyer confirms receivables to rub-c on its certified lots and pays them late."""
    scene.step(
        f"6a. the buyer pays {PROOF_FACTORY} late: {_RECEIVABLES} receivables, {LATE_DAYS} days past due"
    )
    chain, deployment, feed = scene.chain, scene.deployment, cast.feed
    buyer, supplier = feed.parties["buyer"], feed.parties[PROOF_FACTORY]
    if not chain.can_warp:
        fixed = "the node's clock cannot be moved past the due dates"
        scene.res.proof = {"factory": PROOF_FACTORY, "receivables": [], "skipped": fixed}
        return
    rc = ReceivablesClient.from_deployment(chain, deployment)
    coin = StablecoinClient.from_deployment(chain, deployment)
    lots = LotRegistryClient.from_deployment(chain, deployment)
    orders = PurchaseOrdersClient.from_deployment(chain, deployment)
    terms = next(t for t in feed.result.order_terms if orders.order(t.order_id).supplier == supplier.address)
    backing = []
    for lot_id, verdict in scene.res.certificates.items():
        if not lot_id.startswith(f"LOT-{PROOF_FACTORY}-") or verdict != "certified":
            continue
        key = lot_key(lot_id, supplier.address)
        if lots.custodian(key) == buyer.address:
            backing.append((lot_id, key, lots.lot(key).quantity))
    now = int(chain.block("latest")["timestamp"])
    due = now + TERMS_DAYS * _DAY_S
    confirmed = []
    for lot_id, key, quantity in backing[:_RECEIVABLES]:
        face = quantity * terms.unit_price
        rid, _ = rc.confirm(
            buyer,
            supplier=supplier.address,
            face_value=face,
            due_date=due,
            reference=receivable_reference(f"INV-{PROOF_FACTORY}-{lot_id}-{now}"),
            order_id=terms.order_id,
            lots=[key],
        )
        confirmed.append((rid, lot_id, face))
    chain.warp(due + LATE_DAYS * _DAY_S)
    paid = confirmed[:-1] if len(confirmed) > 1 else confirmed
    total = sum(face for _, _, face in paid)
    if total:
        coin.mint(scene.ob.admin, buyer.address, total)
        coin.approve(buyer, rc.address, total)
    for rid, _, _ in paid:
        rc.repay(buyer, rid)
    rows = []
    for rid, lot_id, face in confirmed:
        r = rc.receivable(rid)
        late = (r.paid_at or int(chain.block("latest")["timestamp"])) - r.due_date
        rows.append(
            {
                "id": rid,
                "lot": lot_id,
                "face": face / 100,
                "due": _day(r.due_date),
                "paid": _day(r.paid_at) if r.paid_at else None,
                "days_late": late // _DAY_S,
            }
        )
    scene.res.proof = {"factory": PROOF_FACTORY, "buyer": BUYER_NAME, "receivables": rows}


def _day(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def proof_rows(proof: dict[str, Any]) -> list[list[Any]]:
    """The late payments as table rows (the credit chapter's report)."""
    return [
        [
            f"#{r['id']}",
            r["lot"],
            f"{r['face']:,.2f}",
            r["due"],
            r["paid"] or "unpaid",
            f"{r['days_late']} days" + ("" if r["paid"] else " overdue"),
        ]
        for r in proof.get("receivables", [])
    ]
