"""The credit desk's credit-line statements (issue 15, Deliver 4, service side): a consented bank asks
``POST /v1/bank/receivables/parts/{id}/line``; the service signs as the factory's oracle only within the
limit of the factory's current valid record, and refuses with a typed code otherwise (no oracle key,
not offered to the caller, no consent, no record, stale record, line exceeded); every
request of an admitted bank is in the factory's access log. The statement then finances the part
through the finance route, and repayment frees the line. SQLite and PostgreSQL, embedded chain."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from backing import Deliveries, suite_deployment_deliveries
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from finance_world import finance_world
from pydantic import SecretStr

from contracts.credit import CreditRegistryClient, model_version
from contracts.credit_line import LineAttestation
from contracts.credit_record import CreditOpening, new_salt
from contracts.onboarding import Onboarding
from contracts.receivables import PartState, ReceivablesClient, StablecoinClient, receivable_reference
from ledger_service.credit_desk.consents import register_opening
from ledger_service.credit_desk.desk import desk_of, publish_args
from ledger_service.credit_desk.sealing import store_opening
from ledger_service.service import LedgerService

DAY = 86_400
LIMIT = 1_000_000  # minor units (fen), in the record's commitment only


class World:
    def __init__(
        self, ledger: LedgerService, client: TestClient, ob: Onboarding, admin: LocalAccount
    ) -> None:
        self.ledger, self.client, self.admin = ledger, client, admin
        self.chain = ledger.chain
        self.core, self.factory, self.bank_a, self.bank_b, self.oracle, self.stranger = World.parties(ob)
        self.rc = ReceivablesClient.from_deployment(self.chain, ledger.deployment)
        self.coin = StablecoinClient(self.chain, self.rc.token())
        self.credit = CreditRegistryClient.from_deployment(self.chain, ledger.deployment)
        self.tokens: dict[str, str] = {}
        self.n = 0
        self._deliveries: Deliveries | None = None

    def deliveries(self) -> Deliveries:
        """The core enterprise's certified deliveries from the factory that back its receivables."""
        if self._deliveries is None:
            self._deliveries = suite_deployment_deliveries(self.ledger, self.admin, self.core, self.factory)
        return self._deliveries

    @staticmethod
    def parties(ob: Onboarding) -> tuple[LocalAccount, ...]:
        names = ("core", "factory", "bank-a", "bank-b", "oracle", "stranger")
        core, factory, bank_a, bank_b, oracle, stranger = (ob.account(n) for n in names)
        ob.admit(core, "core-enterprise")
        ob.admit(factory, "supplier")
        ob.admit(bank_a, "bank")
        ob.admit(bank_b, "bank")
        ob.admit(oracle, "analytics-oracle")
        return core, factory, bank_a, bank_b, oracle, stranger

    def h(self, who: LocalAccount) -> dict[str, str]:
        if who.address not in self.tokens:
            c = self.client
            message = c.post("/v1/auth/challenge", json={"address": who.address}).json()["message"]
            signature = who.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
            r = c.post("/v1/auth/token", json={"message": message, "signature": signature})
            assert r.status_code == 200, r.text
            self.tokens[who.address] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[who.address]}"}

    def now(self) -> int:
        return int(self.chain.block("latest")["timestamp"])

    def offered(self, amount: int, bank: LocalAccount) -> int:
        """A receivable of ``amount`` owed to the factory, backed by a fresh order and certified lot
        (issue 15.3), its root part offered to ``bank``."""
        self.n += 1
        d = self.deliveries()
        rid, _ = self.rc.confirm(
            self.core,
            supplier=self.factory.address,
            face_value=amount,
            due_date=self.now() + 60 * DAY,
            reference=receivable_reference(f"INV-LINE-{self.n}"),
            order_id=d.order(f"PO-LINE-{self.n}"),
            lots=[d.lot(f"LOT-LINE-{self.n}")],
        )
        part = self.rc.receivable(rid).root_part
        self.rc.offer(self.factory, part, bank=bank.address, min_price=1)
        return part

    def line(self, who: LocalAccount, part: int) -> Any:
        return self.client.post(f"/v1/bank/receivables/parts/{part}/line", headers=self.h(who))

    def publish(self, valid_for: int) -> None:
        opening = CreditOpening(
            factory=self.factory.address,
            oracle=self.oracle.address,
            grade=4,
            pd_ppm=20_000,
            limit=LIMIT,
            currency="CNY",
            reasons=("a test record",),
            valid_until=self.now() + valid_for,
            model_version=model_version("test"),
            analytics_commitment=b"\x07" * 32,
            salt=new_salt(),
        )
        store_opening(self.ledger.engine, opening)
        self.credit.publish_record(self.oracle, self.factory.address, **publish_args(opening))

    @staticmethod
    def error(r: Any) -> tuple[int, str]:
        return r.status_code, r.json()["error"]["code"]


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    with finance_world("credit_line_desk", db_url, World.parties, World) as w:
        for bank in (w.bank_a, w.bank_b):
            w.coin.mint(w.admin, bank.address, 10_000_000)
            w.coin.approve(bank, w.rc.address, 10_000_000)
        w.coin.mint(w.admin, w.core.address, 10_000_000)
        w.coin.approve(w.core, w.rc.address, 10_000_000)
        yield w


def test_the_desk_signs_only_within_the_line(world: World) -> None:
    w = world
    p1 = w.offered(600_000, w.bank_a)
    assert w.error(w.line(w.bank_a, p1)) == (503, "finance.line.no_oracle_key")
    w.ledger.settings = w.ledger.settings.model_copy(update={"oracle_key": SecretStr(w.oracle.key.hex())})
    assert w.error(w.line(w.stranger, p1)) == (409, "finance.line.not_offered")
    assert w.error(w.line(w.bank_b, p1)) == (409, "finance.line.not_offered")
    assert w.error(w.client.post("/v1/bank/receivables/parts/999/line", headers=w.h(w.bank_a))) == (
        404,
        "finance.unknown_part",
    )
    # no consent from the factory to bank A
    assert w.error(w.line(w.bank_a, p1)) == (403, "finance.line.no_consent")
    grant = w.credit.grant_consent(w.factory, w.bank_a.address, expires_at=w.now() + 365 * DAY)
    register_opening(w.credit, w.ledger.engine, grant.opening)
    assert w.error(w.line(w.bank_a, p1)) == (409, "finance.line.no_record")
    w.publish(valid_for=30 * DAY)

    # within the line: signed, and the statement finances the part through the finance route
    r = w.line(w.bank_a, p1)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["limit"], body["outstanding_after"], body["headroom_after"]) == (
        "1000000",
        "600000",
        "400000",
    )
    signed = LineAttestation.from_json_obj(body["attestation"])
    assert signed.signer(w.rc.line_domain()) == w.oracle.address and signed.line.factory == w.factory.address
    p2 = w.offered(500_000, w.bank_b)
    grant_b = w.credit.grant_consent(w.factory, w.bank_b.address, expires_at=w.now() + 365 * DAY)
    register_opening(w.credit, w.ledger.engine, grant_b.opening)
    # the finance route checks the statement is this bank's for this part
    fin = {"price": 590_000, "line": body["attestation"]}
    r = w.client.post(f"/v1/receivables/parts/{p2}/finance/prepare", json=fin, headers=w.h(w.bank_b))
    assert w.error(r) == (400, "finance.line.mismatch")
    r = w.client.post(
        f"/v1/receivables/parts/{p1}/finance/prepare",
        json={**fin, "line": {"type": "x"}},
        headers=w.h(w.bank_a),
    )
    assert w.error(r) == (400, "finance.line.bad_attestation")
    r = w.client.post(f"/v1/receivables/parts/{p1}/finance/prepare", json=fin, headers=w.h(w.bank_a))
    assert r.status_code == 200, r.text
    w.rc.finance(w.bank_a, p1, 590_000, signed)
    assert w.rc.outstanding_of(w.factory.address) == 600_000

    # another bank, another receivable: 600,000 + 500,000 is beyond the limit; nothing is signed
    r = w.line(w.bank_b, p2)
    assert w.error(r) == (409, "finance.line.exceeded") and "1100000" in r.json()["error"]["message"]
    # repayment frees the line: now it is signed
    w.rc.repay(w.core, w.rc.part(p1).receivable_id)
    assert w.rc.outstanding_of(w.factory.address) == 0
    r = w.line(w.bank_b, p2)
    assert r.status_code == 200 and r.json()["headroom_after"] == "500000", r.text

    # a stale record: no statement until the oracle publishes again
    w.chain.warp(w.credit.current_record(w.factory.address).valid_until)
    w.coin.mint(w.admin, w.admin.address, 1)  # a block at that time
    assert w.error(w.line(w.bank_b, p2)) == (409, "finance.line.record_stale")
    w.publish(valid_for=30 * DAY)
    r = w.line(w.bank_b, p2)
    assert r.status_code == 200, r.text
    w.rc.finance(w.bank_b, p2, 490_000, LineAttestation.from_json_obj(r.json()["attestation"]))
    assert w.rc.part(p2).state is PartState.FINANCED and w.rc.outstanding_of(w.factory.address) == 500_000

    # every request of an admitted bank is in the factory's access log (the stranger's is not)
    rows = desk_of(w.ledger).book.page(w.factory.address, limit=200).entries
    logged = [(r.party, r.outcome) for r in rows if r.action == "line"]
    for entry in [
        (w.bank_a.address, "finance.line.no_consent"),
        (w.bank_a.address, "finance.line.no_record"),
        (w.bank_a.address, "answered"),
        (w.bank_b.address, "finance.line.exceeded"),
        (w.bank_b.address, "finance.line.record_stale"),
    ]:
        assert entry in logged, entry
    assert all(party != w.stranger.address for party, _ in logged)
