"""The package a bank verifies before it finances a receivable (issue 15.3): order -> lots -> custody ->
quality certificates -> confirmation -> value, each step checked against the chain.

The Receivables contract enforces at confirmation what the chain can see (the order stands, was accepted
and is the debtor's with the supplier; each lot was the supplier's, was accepted into the debtor's
custody, is of the order's product, certified, not recalled, backing no other receivable), and refuses
financing once a lot is rejected or recalled. :func:`check_backing` re-reads every one of those facts from
the chain now, so a bank need not trust whoever hands it the receivable, and adds the one check the chain
cannot make: the order's quantity and unit price are a salted commitment (docs/access-policy.md), so the
face value is compared with the delivered quantity x the unit price off chain, from the order-terms
opening the bank holds (the supplier or the buyer gives it): the opening must open the order's
commitment, and face value <= (sum of the backing lots' delivered quantities) x unit price.

A lot's delivered quantity is its quantity less what parties other than the debtor split off it or
consumed of it (what left the lot before it reached the debtor, or while someone else held it): what the
debtor received.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from contracts.certifier import QualityCertifierClient
from contracts.chain import Chain
from contracts.errors import ContractRevert
from contracts.lot_recall import LotRecallClient
from contracts.lots import LotRegistryClient
from contracts.order_terms import OrderTerms
from contracts.orders import PurchaseOrdersClient
from contracts.receivables import BackingFault, ReceivablesClient

__all__ = ["BackingReport", "Step", "check_backing", "delivered_quantity"]

STEPS = ("receivable", "order", "lots", "custody", "quality", "confirmation", "value")


@dataclass(frozen=True)
class Step:
    """One checked step: its name (one of :data:`STEPS`), whether it passed, and what was found."""

    name: str
    ok: bool
    detail: str


@dataclass
class BackingReport:
    """Every step of one receivable's backing package, in order."""

    receivable_id: int
    steps: list[Step] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    def add(self, name: str, problems: Iterable[str], found: str) -> bool:
        """Record step ``name``: passed when ``problems`` is empty (``found`` says what was checked)."""
        bad = list(problems)
        self.steps.append(Step(name, not bad, "; ".join(bad) if bad else found))
        return not bad

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "receivable_id": self.receivable_id,
            "ok": self.ok,
            "steps": [{"step": s.name, "ok": s.ok, "detail": s.detail} for s in self.steps],
        }

    def lines(self) -> list[str]:
        """The readable report: one line per step, then the verdict."""
        out = [f"{'PASS' if s.ok else 'FAIL'}  {s.name:<12} {s.detail}" for s in self.steps]
        verdict = "backed: every step checked against the chain" if self.ok else "NOT backed"
        return [*out, f"receivable {self.receivable_id}: {verdict}"]


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def delivered_quantity(lots: LotRegistryClient, key: bytes, debtor: str) -> int:
    """The lot's quantity less what parties other than ``debtor`` split off it or consumed of it."""
    lot = lots.lot(key)
    gone = sum(lots.lot(c).quantity for c in lots.children(key) if lots.issuer(c) != debtor)
    for tid in lots.consumed_by(key):
        t = lots.transformation(tid)
        if t.by != debtor:
            gone += sum(q for k, q in t.inputs if k == key)
    return max(lot.quantity - gone, 0)


def check_backing(
    chain: Chain, receivables: ReceivablesClient, receivable_id: int, openings: Iterable[OrderTerms] = ()
) -> BackingReport:
    """Check receivable ``receivable_id``'s backing against the chain (see the module's notes); the value
    step uses the opening of its order among ``openings`` (fails without one)."""
    report = BackingReport(receivable_id)
    try:
        r = receivables.receivable(receivable_id)
    except ContractRevert as e:
        report.add("receivable", [f"not on chain ({e.error_name})"], "")
        return report
    order_id, keys = receivables.backing_of(receivable_id)
    report.add(
        "receivable",
        [f"repaid at {r.paid_at}: nothing left to finance"] if r.paid else [],
        f"#{receivable_id}: {r.face_value} owed by {r.debtor} to {r.supplier}, due {r.due_date}",
    )
    po_address, lots_address, certifier_address = receivables.evidence_sources()
    orders = PurchaseOrdersClient(chain, po_address)
    lots = LotRegistryClient(chain, lots_address)
    certifier = QualityCertifierClient(chain, certifier_address)
    o = orders.order(order_id)
    report.add(
        "order",
        [
            *([f"the order's buyer is {o.buyer}, not the debtor"] if o.buyer != r.debtor else []),
            *([f"the order's supplier is {o.supplier}"] if o.supplier != r.supplier else []),
            *(["the supplier never accepted it"] if not o.accepted else []),
            *(["the buyer cancelled it"] if o.cancelled else []),
        ],
        f"{_hex(order_id)}: placed by the debtor with the supplier, accepted, standing; product {o.gtin}",
    )
    report.add(
        "lots",
        [
            p
            for k in keys
            for p in (
                *([f"lot {_hex(k)} is of product {lots.lot(k).gtin}"] if lots.lot(k).gtin != o.gtin else []),
                *([f"lot {_hex(k)} was never the supplier's"] if not lots.has_held(k, r.supplier) else []),
                *(
                    [f"lot {_hex(k)} is bound to another receivable"]
                    if receivables.receivable_backed_by(k) != receivable_id
                    else []
                ),
            )
        ],
        ", ".join(f"{lots.lot(k).lot_id} ({lots.lot(k).quantity} {lots.lot(k).unit})" for k in keys)
        + ": the supplier's, of the order's product, bound to this receivable only",
    )
    custody_problems = []
    for k in keys:
        entries = lots.full_custody_chain(k)
        if not any(e.custodian == r.debtor and e.since <= r.created_at for e in entries):
            custody_problems.append(f"lot {_hex(k)} was not in the debtor's custody at confirmation")
    report.add(
        "custody",
        custody_problems,
        "each lot accepted into the debtor's custody before confirmation (now held by "
        + ", ".join(sorted({lots.custodian(k) for k in keys}))
        + ")",
    )
    recalls = LotRecallClient(lots)
    quality_problems, certs = [], []
    for k in keys:
        c = certifier.certificate(k)
        if not c.certified:
            quality_problems.append(f"lot {_hex(k)}: {c.explain() if c.status.value else 'no verdict'}")
        if recalls.is_recalled(k):
            quality_problems.append(f"lot {_hex(k)} is recalled (notice {recalls.notice_of(k)})")
        certs.append(f"{lots.lot(k).lot_id}: certified, spec v{c.spec_version}, {c.samples} samples")
    report.add("quality", quality_problems, "; ".join(certs))
    fault, lot = receivables.backing_status(receivable_id)
    flag = receivables.flag_of(receivable_id)
    report.add(
        "confirmation",
        [
            *(
                [f"the contract reports {fault.name} for lot {_hex(lot or b'')}"]
                if fault is not BackingFault.NONE
                else []
            ),
            *([f"flagged on chain at {flag.flagged_at} ({flag.fault.name})"] if flag.flagged else []),
        ],
        f"confirmed by the debtor at {r.created_at}, backing sound, not flagged",
    )
    _check_value(report, orders, lots, r, order_id, keys, openings)
    return report


def _check_value(
    report: BackingReport,
    orders: PurchaseOrdersClient,
    lots: LotRegistryClient,
    r: Any,
    order_id: bytes,
    keys: list[bytes],
    openings: Iterable[OrderTerms],
) -> None:
    terms = next((t for t in openings if t.order_id == order_id), None)
    if terms is None:
        report.add("value", [f"no order-terms opening for {_hex(order_id)}: the value cannot be checked"], "")
        return
    if not orders.terms_match(terms):
        report.add("value", ["the opening given does not open the order's terms commitment on chain"], "")
        return
    delivered = sum(delivered_quantity(lots, k, r.debtor) for k in keys)
    backed = delivered * terms.unit_price
    report.add(
        "value",
        [f"face value {r.face_value} exceeds {delivered} delivered x {terms.unit_price} = {backed}"]
        if r.face_value > backed
        else [],
        f"face value {r.face_value} <= {delivered} delivered x unit price {terms.unit_price} = {backed} "
        "(the opening matches the order's commitment)",
    )
