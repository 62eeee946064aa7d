"""The demo's last chapters: an auditor re-verifies a lot from the chain and the proof bundles alone;
a receivable is confirmed, split, financed and repaid."""

from __future__ import annotations

import datetime as dt
from typing import Any

from eth_account.signers.local import LocalAccount

from auditor.lot_chain import lot_chain_steps
from contracts.certification_package import load_package_obj
from contracts.certifier import QualityCertifierClient
from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.lots import LotRegistryClient, lot_key
from contracts.onboarding import Onboarding
from contracts.order_terms import OrderTerms
from contracts.orders import PurchaseOrdersClient
from contracts.receivables import ReceivablesClient, StablecoinClient, receivable_reference
from ledger_service.credit_desk.desk import FinanceDesk, desk_of
from ledger_service.credit_desk.line import attest_line
from ledger_service.lots.certification import certification_package
from simulation.feed import SimulationFeed
from supet.demo.chapter_private import anonymous_tries, privacy_rows, reading_of
from supet.demo.chapters_production import Cast
from supet.demo.scene import Api, DemoResult, Scene

__all__ = ["audit", "finance"]

#: The largest face value the demo invoices (200,000.00 tCNY, 2 decimals): sun-a keeps 60 % of it,
#: 120,000.00, to finance within its credit line (its limit was 147,000.00 in the demo's world when
#: the line was built). A smaller lot is invoiced whole.
_MAX_FACE = 200_000_00


def audit(scene: Scene, cast: Cast) -> None:
    """8 in the report, run before time moves: a certified lot re-verified by an auditor."""
    res = scene.res
    scene.step("7. an auditor re-verifies a lot from the chain and the proof bundles alone")
    audit_lot = next(lot for lot, v in res.certificates.items() if v == "certified")
    # issue 14: a lot's evidence is its custodians'; its holder (the distributor) discloses this one
    api, holder = scene.api, scene.acct["distributor"]
    disclosed = api.http.post(f"/v1/lots/{audit_lot}/disclosure", json={}, headers=api.headers(holder))
    disclosed.raise_for_status()
    res.audit = _audit(scene.chain, scene.deployment, api, audit_lot)
    private = next((lot for lot in res.certificates if lot != audit_lot), None)
    # an anonymous client: a raw reading of sun-a (not of the disclosed lot), its proof, the other lot
    spec_a = next(f.spec for f in cast.world.factories if f.spec.factory_id == "sun-a")
    digest = reading_of(scene, list(spec_a.device_ids()), not_of_lots=[audit_lot])
    res.anonymous = anonymous_tries(scene, digest, owner=cast.feed.parties["sun-a"], private_lot=private)
    refused = res.anonymous.get("lot", {}).get("status")
    res.audit["undisclosed_refused"] = refused
    tail = (
        f". Lot {private}, not disclosed, is refused to that auditor "
        f"(HTTP {refused} {res.anonymous['lot']['code']})."
        if private
        else ""
    )
    scene.report.section(
        "8. Audit",
        f"Lot {audit_lot}, disclosed by its holder (the distributor): {res.audit['chain_steps']} chain "
        f"steps and {res.audit['readings']} readings re-verified by an anonymous auditor from the chain and "
        f"the proof bundles alone: "
        + ("VERIFIED" if res.audit["ok"] else f"NOT VERIFIED ({res.audit['failed']} failed)")
        + tail,
    )
    scene.report.para(
        "A raw reading, its proof and an undisclosed lot are not served to anyone who has not signed in:"
    )
    scene.report.table(["who", "tried", "got"], privacy_rows({}, res.anonymous))


def finance(scene: Scene, feed: SimulationFeed) -> None:
    """7 in the report: a receivable confirmed by the buyer, split, financed by bank A and repaid."""
    res = scene.res
    scene.step("8. a receivable confirmed, split, financed and repaid")
    backing = _backing(scene, feed)
    desk = desk_of(scene.service)
    res.receivable = _receivable(
        scene.chain, scene.deployment, scene.ob, feed, scene.acct, res, backing, desk
    )
    rcv = res.receivable
    scene.report.section(
        "7. Receivables financing",
        f"The buyer confirmed a receivable of {rcv['face']:,.2f} tCNY to sun-a for {rcv['invoiced']:,} "
        f"units of lot {rcv['lot']}, backed by its order and that lot (in the buyer's custody, "
        "certified: checked on chain); sun-a split off "
        f"{rcv['tier2_part']:,.2f} to its tier-2 supplier and had its {rcv['kept_part']:,.2f} "
        "financed by bank A "
        f"at {rcv['price']:,.2f} (grade {rcv['grade']}, {rcv['rate'] * 100:.1f}% a year "
        f"for {rcv['days']} days), within sun-a's credit line: the oracle signed that sun-a's "
        f"outstanding financed amount, {rcv['outstanding']:,.2f}, stays within the limit of its record "
        f"(headroom {rcv['headroom']:,.2f}), and the Receivables contract checked that statement; "
        f"at maturity the buyer repaid the holders, which freed the line.",
    )
    scene.report.table(["account", "tCNY before", "tCNY after"], rcv["balances"])


def _audit(chain: Chain, deployment: Deployment, api: Api, lot_id: str) -> dict[str, Any]:
    from auditor.lot_audit import judge_bundles, judge_chain_steps
    from supet.cli.audit import _ledger_sources, fetch_ledger_history

    steps = fetch_ledger_history(api.http, lot_id)
    sources, pending = _ledger_sources(steps)
    chain_steps = lot_chain_steps(chain, deployment, lot_id)
    verdicts = judge_chain_steps(chain_steps, head=chain.block_number(), min_confirmations=0)
    verdicts += judge_bundles(sources, lot_id, chain=chain, deployment=deployment, min_confirmations=0)
    failed = [v for v in verdicts if v.failed]
    return {
        "lot": lot_id,
        "ok": not failed and not pending,
        "failed": len(failed),
        "chain_steps": len(chain_steps),
        "readings": sum(1 for v in verdicts if v.kind == "reading" and v.ok),
        "lines": [("ok " if v.ok else "FAIL ") + v.text for v in verdicts],
    }


def _backing(scene: Scene, feed: SimulationFeed) -> tuple[OrderTerms, str, int]:
    """Issue 15: the order and a sun-a lot behind the receivable: a lot the buyer holds (its last days'
    lots, latest first), certified now from its QC readings, and sun-a's order its product was ordered on;
    with the lot's quantity."""
    chain, deployment = scene.chain, scene.deployment
    buyer, sun_a = feed.parties["buyer"], feed.parties["sun-a"]
    lots = LotRegistryClient.from_deployment(chain, deployment)
    certifier = QualityCertifierClient.from_deployment(chain, deployment)
    orders = PurchaseOrdersClient.from_deployment(chain, deployment)
    terms = next(t for t in feed.result.order_terms if orders.order(t.order_id).supplier == sun_a.address)
    line = "sun-a-l1"  # FactorySpec.line_ids: the first line of sun-a
    for back in range(1, 4):
        lot_id = f"LOT-{line}-{(scene.end - dt.timedelta(days=back)).strftime('%Y%m%d')}"
        key = lot_key(lot_id, sun_a.address)
        if not lots.exists(key) or lots.custodian(key) != buyer.address:
            continue
        _, batches = load_package_obj(certification_package(scene.service, lot_id))
        certifier.certify_lot(buyer, key, batches)
        if certifier.certificate(key).certified:
            return terms, lot_id, lots.lot(key).quantity
    raise RuntimeError("no certified sun-a lot in the buyer's custody to back the receivable")


def _receivable(
    chain: Chain,
    deployment: Deployment,
    ob: Onboarding,
    feed: SimulationFeed,
    acct: dict[str, LocalAccount],
    res: DemoResult,
    backing: tuple[OrderTerms, str, int],
    desk: FinanceDesk,
) -> dict[str, Any]:
    rc = ReceivablesClient.from_deployment(chain, deployment)
    coin = StablecoinClient.from_deployment(chain, deployment)
    buyer, sun_a, tier2, bank_a = feed.parties["buyer"], feed.parties["sun-a"], acct["tier2"], acct["bank-a"]
    admin = ob.admin
    terms, lot_id, quantity = backing
    # the face value is at most what the backing is worth: an invoiced quantity of the delivered lot x
    # the order's unit price (a bank checks it with `supet finance check` and the order's terms; the
    # chain cannot see them); at most _MAX_FACE, so that sun-a's 60 % fits its credit line (issue 15)
    invoiced = min(quantity, _MAX_FACE // terms.unit_price)
    face = invoiced * terms.unit_price
    days = 60
    now = int(chain.block("latest")["timestamp"])
    due = now + days * 86_400
    before = {
        n: coin.balance_of(a.address) for n, a in (("bank A", bank_a), ("sun-a", sun_a), ("tier-2", tier2))
    }
    rid, _ = rc.confirm(
        buyer,
        supplier=sun_a.address,
        face_value=face,
        due_date=due,
        reference=receivable_reference(f"INV-{now}"),
        order_id=terms.order_id,
        lots=[lot_key(lot_id, sun_a.address)],
    )
    root = rc.parts_of(rid)[0]
    kept = face * 6 // 10
    passed = face - kept
    (kept_id, tier2_id), _ = rc.split(sun_a, root, [kept, passed], [sun_a.address, tier2.address])
    grade = res.records["sun-a"]["grade"]
    rank = int(grade.lstrip("S")) if grade.lstrip("S").isdigit() else 5
    rate = 0.03 + 0.01 * (rank - 1)  # the bank's documented pricing: 3 % a year for S1, +1 % per grade
    price = int(kept * (1 - rate * days / 365))
    rc.offer(sun_a, kept_id, bank=bank_a.address, min_price=price)
    coin.mint(admin, bank_a.address, price)
    coin.approve(bank_a, rc.address, price)
    # the oracle's credit-line statement (issue 15): sun-a consented to bank A, its record is valid
    grant = attest_line(desk, rc, acct["oracle"], bank_a.address, kept_id)
    rc.finance(bank_a, kept_id, price, grant.attestation)
    outstanding = rc.outstanding_of(sun_a.address)
    coin.mint(admin, buyer.address, face)
    coin.approve(buyer, rc.address, face)
    if chain.can_warp:
        chain.warp(due)
    rc.repay(buyer, rid)
    after = {
        n: coin.balance_of(a.address) for n, a in (("bank A", bank_a), ("sun-a", sun_a), ("tier-2", tier2))
    }
    parts = [rc.part(p) for p in (kept_id, tier2_id)]
    return {
        "id": rid,
        "lot": lot_id,
        "invoiced": invoiced,
        "face": face / 100,
        "kept_part": kept / 100,
        "tier2_part": passed / 100,
        "price": price / 100,
        "rate": rate,
        "days": days,
        "grade": grade,
        "paid": rc.receivable(rid).paid and all(p.state.name == "PAID" for p in parts),
        "balances": [[n, f"{before[n] / 100:,.2f}", f"{after[n] / 100:,.2f}"] for n in before],
        "bank_gain": (after["bank A"] - before["bank A"]) / 100,
        "outstanding": outstanding / 100,
        "headroom": (grant.limit - outstanding) / 100,
        "line_freed": rc.outstanding_of(sun_a.address) == 0,
    }
