"""An end-to-end recall (issue 15, Deliver 5): a tier-2 lot is found bad; every affected finished lot and
receivable is flagged, the bank is told, and financing is refused.

The world (the suite with the example policy, on the embedded chain; the ledger service over SQLite and
PostgreSQL): a tier-2 supplier delivers a raw lot to a tier-1 factory, which consumes part of it in a
transformation into three finished lots; two are delivered to the buyer and certified from anchored QC
readings, the third stays with the factory. The buyer confirms a receivable on each delivered lot; the
first is financed by bank A within the factory's credit line (the oracle's signed statement), the second
is offered to bank A but not yet financed. Then the tier-2 supplier recalls its raw lot:

- the service's recall worker flags every finished lot downstream of it on chain, and the trace from the
  store names them and their holders (the buyer, the factory);
- the buyer sees its lots under the notice over the API;
- ``flagReceivable`` flags the financed receivable: the event names bank A, ``flagOf`` keeps it on chain,
  and bank A's backing check over the API fails its quality and confirmation steps;
- the other receivable cannot be flagged (nobody financed it) and its financing is refused
  (``ReceivablesBackingLotRecalled``): nothing moves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from backing import Deliveries, suite_deployment_deliveries
from credit_lines import attest, chain_now, publish_records
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from finance_world import finance_world
from support import reverts
from web3.logs import DISCARD

from contracts.credit import CreditRegistryClient
from contracts.lot_recall import LotRecallClient
from contracts.lots import LotRegistryClient, TransformInput, TransformOutput, lot_key
from contracts.onboarding import Onboarding
from contracts.receivables import (
    BackingFault,
    PartState,
    ReceivablesClient,
    StablecoinClient,
    receivable_reference,
)
from ledger_service.lots.recall import remember_reason
from ledger_service.lots.recall_worker import RecallFlagger
from ledger_service.lots.trace import Direction, trace_from_store
from ledger_service.service import LedgerService

DAY = 86_400
RAW_GTIN = "09506000134369"  # the tier-2 supplier's raw material (a valid GTIN-14, not the finished one)
REASON = "tier-2 compound: lead above the limit in the retained sample"
FACE = 150_000  # minor units; each finished lot: 200 pcs x the order's unit price 1,000


@dataclass
class World:
    ledger: LedgerService
    client: TestClient
    admin: LocalAccount
    core: LocalAccount  # the buyer (debtor)
    factory: LocalAccount  # tier 1
    tier2: LocalAccount
    bank_a: LocalAccount
    oracle: LocalAccount

    @staticmethod
    def parties(ob: Onboarding) -> None:
        for name, role in (
            ("core", "core-enterprise"),
            ("factory", "supplier"),
            ("tier2", "supplier"),
            ("bank-a", "bank"),
            ("oracle", "analytics-oracle"),
        ):
            ob.admit(ob.account(name), role)

    @staticmethod
    def make(ledger: LedgerService, client: TestClient, ob: Onboarding, admin: LocalAccount) -> World:
        names = ("core", "factory", "tier2", "bank-a", "oracle")
        core, factory, tier2, bank_a, oracle = (ob.account(n) for n in names)
        return World(ledger, client, admin, core, factory, tier2, bank_a, oracle)

    def headers(self, who: LocalAccount) -> dict[str, str]:
        message = self.client.post("/v1/auth/challenge", json={"address": who.address}).json()["message"]
        signature = who.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
        r = self.client.post("/v1/auth/token", json={"message": message, "signature": signature})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    with finance_world("recall_e2e", db_url, World.parties, World.make) as w:
        yield w


def _finished(lot_id: str, gtin: str) -> TransformOutput:
    return TransformOutput(
        lot_id=lot_id, gtin=gtin, quantity=200, unit="pcs", produced_from_ms=0, produced_to_ms=1
    )


def _across_tiers(w: World, d: Deliveries, lots: LotRegistryClient) -> tuple[bytes, tuple[bytes, ...]]:
    """The tier-2 raw lot delivered to the factory, 600 of its 1,000 kg made into FIN-1..3; FIN-1 and FIN-2
    delivered to the buyer and certified. The raw lot's key and the finished lots' keys."""
    lots.open_lot(
        w.tier2,
        lot_id="RAW-T2",
        gtin=RAW_GTIN,
        quantity=1_000,
        unit="kg",
        produced_from_ms=0,
        produced_to_ms=1,
    )
    raw = lot_key("RAW-T2", w.tier2.address)
    lots.propose_transfer(w.tier2, raw, w.factory.address)
    lots.accept_transfer(w.factory, raw)
    made = lots.transform(
        w.factory,
        [TransformInput(lot=raw, quantity=600, unit="kg")],
        [_finished(f"FIN-{i}", d.gtin) for i in (1, 2, 3)],
    )
    assert made.outputs == tuple(lot_key(f"FIN-{i}", w.factory.address) for i in (1, 2, 3))
    assert lots.lot(raw).remaining == 400 and lots.inputs_of(made.outputs[0]) == [(raw, 600)]
    for i, key in enumerate(made.outputs[:2], start=1):
        lots.propose_transfer(w.factory, key, w.core.address)
        lots.accept_transfer(w.core, key)
        d.judge(key, f"FIN-{i}", good=True)
    return raw, made.outputs


def test_a_bad_tier2_lot_flags_every_finished_lot_and_receivable(world: World) -> None:
    w = world
    chain, deployment = w.ledger.chain, w.ledger.deployment
    lots = LotRegistryClient.from_deployment(chain, deployment)
    recalls = LotRecallClient(lots)
    rc = ReceivablesClient.from_deployment(chain, deployment)
    coin = StablecoinClient(chain, rc.token())
    d = suite_deployment_deliveries(w.ledger, w.admin, w.core, w.factory)
    raw, (fin1, fin2, fin3) = _across_tiers(w, d, lots)

    # two receivables, each backed by its order and one certified finished lot in the buyer's custody
    def confirm(n: int, lot: bytes) -> int:
        rid, _ = rc.confirm(
            w.core,
            supplier=w.factory.address,
            face_value=FACE,
            due_date=chain_now(chain) + 60 * DAY,
            reference=receivable_reference(f"INV-E2E-{n}"),
            order_id=d.order(f"PO-E2E-{n}"),
            lots=[lot],
        )
        return rid

    r1, r2 = confirm(1, fin1), confirm(2, fin2)
    p1, p2 = rc.receivable(r1).root_part, rc.receivable(r2).root_part
    publish_records(
        CreditRegistryClient.from_deployment(chain, deployment),
        w.oracle,
        [w.factory.address],
        valid_for=30 * DAY,
    )
    price = FACE * 99 // 100
    coin.mint(w.admin, w.bank_a.address, 2 * price)
    coin.approve(w.bank_a, rc.address, 2 * price)
    for part in (p1, p2):
        rc.offer(w.factory, part, bank=w.bank_a.address, min_price=price)
    rc.finance(w.bank_a, p1, price, attest(rc, w.oracle, w.bank_a.address, p1))
    assert rc.part(p1).state is PartState.FINANCED and rc.outstanding_of(w.factory.address) == FACE
    with reverts("ReceivablesBackingSound", receivableId=r1):  # nothing to flag while the lots stand
        rc.flag_receivable(w.core, r1)

    # the tier-2 supplier finds its raw lot bad and recalls it; only the raw lot is recalled so far
    notice = recalls.recall(w.tier2, raw, REASON).notice_id
    remember_reason(w.ledger.engine, notice, REASON)
    assert [recalls.is_recalled(k) for k in (raw, fin1, fin2, fin3)] == [True, False, False, False]

    # the service's recall worker flags every finished lot downstream, on chain, under the notice
    flagger = RecallFlagger(
        engine=w.ledger.engine, chain=chain, deployment=deployment, sender=w.ledger.anchor_signer
    )
    done = flagger.run()
    assert (done.notices, done.flagged, done.txs, done.errors) == (1, 3, 1, {})
    assert [recalls.notice_of(k) for k in (fin1, fin2, fin3)] == [notice] * 3
    assert flagger.run().flagged == 0  # idempotent
    down = trace_from_store(w.ledger.engine, "0x" + raw.hex(), Direction.DOWNSTREAM)
    assert {lot.lot_id: (lot.custodian, lot.recall_notice) for lot in down.lots} == {
        "FIN-1": (w.core.address, notice),
        "FIN-2": (w.core.address, notice),
        "FIN-3": (w.factory.address, notice),
    }
    assert down.notices[notice]["reason"] == REASON and down.notices[notice]["flagged"] == 3
    # the buyer, their holder, sees its two lots under the notice over the API
    held = w.client.get(f"/v1/parties/{w.core.address}/recalls", headers=w.headers(w.core))
    assert held.status_code == 200, held.text
    assert sorted((lot["lot_id"], lot["notice_id"], lot["held_now"]) for lot in held.json()["lots"]) == [
        ("FIN-1", notice, True),
        ("FIN-2", notice, True),
    ]

    # the financed receivable is flagged to its bank: the event names bank A, the flag stays on chain
    assert rc.backing_status(r1) == (BackingFault.RECALLED, fin1)
    banks, tx = rc.flag_receivable(w.core, r1)
    assert banks == [w.bank_a.address]
    (told,) = rc.contract.events.FlaggedToBank().process_receipt(tx.receipt, errors=DISCARD)
    assert (told["args"]["receivableId"], told["args"]["bank"], bytes(told["args"]["lotId"])) == (
        r1,
        w.bank_a.address,
        fin1,
    )
    flag = rc.flag_of(r1)
    assert (flag.fault, flag.by, flag.lot) == (BackingFault.RECALLED, w.core.address, fin1) and flag.flagged
    with reverts("ReceivablesAlreadyFlagged", receivableId=r1, flaggedAt=flag.flagged_at):
        rc.flag_receivable(w.core, r1)
    # what bank A sees when it checks the package over the API
    check = w.client.post(f"/v1/receivables/{r1}/check", json={}, headers=w.headers(w.bank_a))
    assert check.status_code == 200, check.text
    steps = {s["step"]: s for s in check.json()["steps"]}
    assert check.json()["ok"] is False
    assert not steps["quality"]["ok"] and f"is recalled (notice {notice})" in steps["quality"]["detail"]
    assert not steps["confirmation"]["ok"]
    assert "the contract reports RECALLED" in steps["confirmation"]["detail"]
    assert f"flagged on chain at {flag.flagged_at} (RECALLED)" in steps["confirmation"]["detail"]
    assert steps["order"]["ok"] and steps["custody"]["ok"]

    # the other receivable: nobody financed it, so there is no bank to tell; its financing is refused
    assert rc.backing_status(r2) == (BackingFault.RECALLED, fin2)
    with reverts("ReceivablesNotFinanced", receivableId=r2):
        rc.flag_receivable(w.core, r2)
    balance = coin.balance_of(w.bank_a.address)
    with reverts("ReceivablesBackingLotRecalled", receivableId=r2, lotId=fin2):
        rc.finance(w.bank_a, p2, price, attest(rc, w.oracle, w.bank_a.address, p2))
    assert rc.part(p2).state is PartState.OFFERED and rc.part(p2).financed_by is None
    assert coin.balance_of(w.bank_a.address) == balance and rc.outstanding_of(w.factory.address) == FACE
