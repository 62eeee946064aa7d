"""A factory's proof facts gathered from the store's mirror and the chain, and the credit reasons they give
(issue 16): a rejected lot and a late-paying buyer named in plain words, each with its window.

The world (the suite with the example policy, on the embedded chain with a simulated clock; the ledger
service over SQLite and PostgreSQL): the factory delivers six lots to its buyer, five certified and one
rejected by the quality certifier from anchored QC readings; the buyer confirms three receivables on
certified lots, due in 30 days, and pays them 21 days late. One of the factory's lines has a published
yield model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from backing import suite_deployment_deliveries
from credit_lines import chain_now
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from finance_world import finance_world
from profiles import march_profile
from support import database_url

from analytics.commitment import commit
from analytics.period_profile import FactoryProfile
from contracts.onboarding import Onboarding
from contracts.receivables import ReceivablesClient, StablecoinClient, receivable_reference
from finance.assessment import assess
from finance.proof import BuyerPayments, LotVerdicts, ProofFacts, RecallFacts, ReceivableFacts, YieldGain
from ledger_service.analytics_store.publish import PROFILE_MODEL, YIELD_MODEL, profile_json, store_result
from ledger_service.credit_desk.desk import assess_profile
from ledger_service.credit_desk.proof_facts import ReceivableEvent, gather_proof_facts, receivable_facts
from ledger_service.credit_desk.sealing import opening_of
from ledger_service.service import LedgerService
from ledger_service.store.engine import make_engine

DAY = 86_400
FACE = 100_000


@dataclass
class World:
    ledger: LedgerService
    admin: LocalAccount
    core: LocalAccount  # the buyer
    factory: LocalAccount

    @staticmethod
    def parties(ob: Onboarding) -> None:
        for name, role in (("core", "core-enterprise"), ("factory", "supplier")):
            ob.admit(ob.account(name), role)

    @staticmethod
    def make(ledger: LedgerService, _client: TestClient, ob: Onboarding, admin: LocalAccount) -> World:
        return World(ledger, admin, ob.account("core"), ob.account("factory"))


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    with finance_world("proof_facts", db_url, World.parties, World.make) as w:
        yield w


def _profile(factory: str) -> FactoryProfile:
    return march_profile(factory)


def _yield_result(engine: object, factory: str, line: str, *, gain: float, units: int, end: str) -> None:
    params = {"kind": "yield", "factory": factory, "line_id": line, "start": "2026-01-01", "end": end}
    result = {"schema": "supet.yield-model-result.v1", "line_id": line, "n_units": units, "model_gain": gain}
    store_result(engine, "yield", line, params, commit(result, [b"\x01" * 32], YIELD_MODEL, params), result)  # type: ignore[arg-type]


def test_a_rejected_lot_and_a_late_buyer_are_the_reasons(world: World) -> None:
    w = world
    chain, deployment, engine = w.ledger.chain, w.ledger.deployment, w.ledger.engine
    d = suite_deployment_deliveries(w.ledger, w.admin, w.core, w.factory)
    rc = ReceivablesClient.from_deployment(chain, deployment)
    coin = StablecoinClient(chain, rc.token())
    certified = [d.lot(f"LOT-PF-{i}") for i in range(5)]
    d.lot("LOT-PF-BAD", verdict="rejected")
    due = chain_now(chain) + 30 * DAY
    ids = []
    for i, lot in enumerate(certified[:3]):
        rid, _ = rc.confirm(
            w.core,
            supplier=w.factory.address,
            face_value=FACE,
            due_date=due,
            reference=receivable_reference(f"INV-PF-{i}"),
            order_id=d.order(f"PO-PF-{i}"),
            lots=[lot],
        )
        ids.append(rid)
    coin.mint(w.admin, w.core.address, 3 * FACE)
    coin.approve(w.core, rc.address, 3 * FACE)
    chain.warp(due + 21 * DAY)
    for rid in ids:
        rc.repay(w.core, rid)
    _yield_result(engine, w.factory.address, "L1", gain=0.02, units=1000, end="2026-01-31")
    _yield_result(engine, w.factory.address, "L2", gain=0.08, units=3000, end="2026-01-31")

    facts = gather_proof_facts(
        engine, chain, deployment, w.factory.address, names={w.core.address: "Acme Retail"}
    )
    assert facts.lots is not None and facts.receivables is not None and facts.recalls is not None
    # the lots were judged 51 days ago: the whole history, stated as such, not as 90 days
    assert (facts.lots.judged, facts.lots.rejected, facts.lots.rejected_lots) == (6, 1, ("LOT-PF-BAD",))
    assert facts.lots.window_days == 51 and facts.lots.window() == "in the 51 days since its first verdict"
    assert (facts.recalls.notices, facts.recalls.lots) == (0, 0)
    (buyer,) = facts.receivables.buyers
    assert (buyer.buyer, buyer.receivables, buyer.unpaid) == ("Acme Retail", 3, 0)
    assert buyer.days_late == pytest.approx(21.0, abs=0.01)
    assert facts.yield_gain is not None and facts.yield_gain.lines == ("L1", "L2")
    assert facts.yield_gain.gain == pytest.approx((0.02 * 1000 + 0.08 * 3000) / 4000)
    assert dict(facts.source)["block"] == chain.block_number()

    a = assess(_profile(w.factory.address), price=4.0, proof=facts)
    texts = " | ".join(r.text for r in a.reasons)
    assert (
        "1 of 6 lots rejected by the quality certifier in the 51 days since its first verdict (LOT-PF-BAD)"
        in (texts)
    )
    assert (
        "Buyer Acme Retail paid 3 confirmed receivables 21 days late on average in the 21 days since its "
        "first receivable fell due" in texts
    )
    # energy was not measured here, and the recall count covers under 90 days of lots: both caveats
    assert "energy-vs-output consistency unknown: not scored" in a.caveats
    assert a.confidence == "low"


def test_receivables_window_unpaid_and_thin() -> None:
    now = 1_800_000_000
    events = [
        ReceivableEvent(1, "0xB", due_date=now - 10 * DAY, paid_at=now - 5 * DAY),  # 5 days late
        ReceivableEvent(2, "0xB", due_date=now - 20 * DAY, paid_at=0),  # unpaid: 20 days overdue so far
        ReceivableEvent(3, "0xA", due_date=now - 30 * DAY, paid_at=now - 40 * DAY),  # paid early: 0
        ReceivableEvent(4, "0xA", due_date=now + 30 * DAY, paid_at=0),  # not due yet: not counted
        ReceivableEvent(5, "0xA", due_date=now - 400 * DAY, paid_at=now - 300 * DAY),  # before the window
    ]
    facts = receivable_facts(events, now_s=now)
    assert facts is not None and facts.window_days == 180 and facts.receivables == 3
    by = {b.buyer: b for b in facts.buyers}
    assert (by["0xB"].receivables, by["0xB"].days_late, by["0xB"].unpaid) == (2, 12.5, 1)
    assert (by["0xA"].receivables, by["0xA"].days_late) == (1, 0.0)
    assert facts.days_late == pytest.approx(25 / 3)
    assert facts.slowest() == by["0xB"]
    assert receivable_facts(events[3:4], now_s=now) is None  # nothing paid or due: unknown
    thin = receivable_facts(events[:2], now_s=now)
    assert thin is not None and thin.thin and thin.days_late is None


def test_the_profile_energy_consistency_goes_into_the_proof(tmp_path: Path) -> None:
    """A version-2 profile's ``energy_consistency`` (and its ``energy_days``) is taken into the proof facts
    the assessment is made from; a profile without it leaves the energy unknown (neutral, a caveat)."""
    url = next(database_url("sqlite", tmp_path))
    engine = make_engine(url)
    factory = "0x" + "ab" * 20
    commitments = {}
    for name, extra in (("v2", {"energy_consistency": 0.62, "energy_days": 27}), ("v1", {})):
        result = {**profile_json(_profile(factory)), **extra}
        params = {"kind": "profile", "factory": factory, "tag": name}
        c = commit(result, [b"\x02" * 32], PROFILE_MODEL, params)
        store_result(engine, "profile", factory, params, c, result)
        commitments[name] = c.commitment
    proof = ProofFacts(as_of="2026-04-01")
    a, _ = assess_profile(engine, factory, commitments["v2"], price=4.0, proof=proof)
    assert a.proof is not None and (a.proof.energy_output_consistency, a.proof.energy_days) == (0.62, 27)
    assert a.features.energy_output_consistency == 0.62
    assert "energy-vs-output consistency unknown: not scored" not in a.caveats
    reason = next(r for r in a.reasons if r.feature == "energy_output_consistency")
    assert reason.text.startswith(
        "Metered energy backs 62% of the reported output (energy-vs-output consistency 0.62 over 27 days of "
        "metered output) (costs "
    )
    b, _ = assess_profile(engine, factory, commitments["v1"], price=4.0, proof=proof)
    assert b.features.energy_output_consistency is None
    assert "energy-vs-output consistency unknown: not scored" in b.caveats
    engine.dispose()


def test_the_record_says_what_the_proof_could_not_show() -> None:
    """The sealed record's reasons end with the caveats, and a worst case (every caveat, long reasons)
    still fits the CreditRegistry's envelope (4,096 bytes of ciphertext: the plaintext + 94)."""
    thin = ProofFacts(
        as_of="2026-04-01",
        lots=LotVerdicts(judged=4, rejected=3, window_days=12, rejected_lots=("LOT-2026-000001",) * 3),
        recalls=RecallFacts(notices=0, lots=0, window_days=12),
        receivables=ReceivableFacts(
            buyers=(BuyerPayments("0x" + "cd" * 20, 2, 45.0, unpaid=2),), window_days=12
        ),
        yield_gain=YieldGain(gain=0.2, lines=("L1",), start="2025-01-01", end="2025-01-31", age_days=400),
    )
    worst = dataclasses.replace(
        _profile("0x" + "ab" * 20), days_with_data=7, coverage=0.5, thin=True, otif=None
    )
    a = assess(worst, price=4.0, proof=thin)
    c = commit(a, [b"\x03" * 32], YIELD_MODEL, {})
    opening = opening_of(a, c, factory="0x" + "ab" * 20, oracle="0x" + "ef" * 20, valid_until=2_000_000_000)
    assert opening.reasons[: len(a.reasons)] == tuple(r.text for r in a.reasons)
    assert opening.reasons[len(a.reasons) :] == tuple(f"Low confidence: {x}" for x in a.caveats)
    assert len(a.caveats) == 7 and "Low confidence: thin history: 7 days" in opening.reasons
    assert len(opening.to_bytes()) + 94 < 4096
