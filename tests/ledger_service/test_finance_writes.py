"""Party writes over HTTP by prepare-and-relay: consents, the receivable lifecycle, approvals, and every
refusal of the relay (wrong signer, altered data, other contract, replay, not admitted, reverts).
SQLite and PostgreSQL, embedded chain with a simulated clock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from backing import Deliveries, backing_json, suite_deployment_deliveries
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from finance_world import finance_world
from pydantic import SecretStr
from sqlmodel import Session

from contracts.chain import Chain
from contracts.credit import CreditRegistryClient, model_version
from contracts.credit_consent import ConsentOpening, consent_id
from contracts.credit_record import CreditOpening, new_salt
from contracts.onboarding import Onboarding
from contracts.receivables import PartState, ReceivablesClient, StablecoinClient, receivable_reference
from ledger_service.api.errors import http_status
from ledger_service.credit_desk.desk import publish_args
from ledger_service.credit_desk.sealing import store_opening
from ledger_service.service import LedgerService
from ledger_service.store.models import ConsentOpeningRow
from tests.helpers.credit_lines import attest, publish_records

DAY = 86_400


class World:
    def __init__(
        self, ledger: LedgerService, client: TestClient, ob: Onboarding, admin: LocalAccount
    ) -> None:
        self.ledger, self.client, self.ob, self.admin = ledger, client, ob, admin
        self.chain = ledger.chain
        self.core, self.factory, self.tier2, self.bank_a, self.oracle, self.stranger = World.parties(ob)
        self.rc = ReceivablesClient.from_deployment(self.chain, ledger.deployment)
        self.coin = StablecoinClient(self.chain, self.rc.token())
        self.credit = CreditRegistryClient.from_deployment(self.chain, ledger.deployment)
        self.tokens: dict[str, str] = {}
        self._deliveries: Deliveries | None = None

    def backing(self, tag: str) -> dict[str, Any]:
        """A fresh order of the core enterprise's with the factory and a certified lot delivered to it."""
        if self._deliveries is None:
            self._deliveries = suite_deployment_deliveries(self.ledger, self.admin, self.core, self.factory)
        return backing_json(self._deliveries, tag)

    @staticmethod
    def parties(ob: Onboarding) -> tuple[LocalAccount, ...]:
        """The core enterprise, two suppliers, a bank, the oracle and a stranger: funded and admitted (on
        the pooled world's chain already: then only read)."""
        names = ("core", "factory", "tier2", "bank-a", "oracle", "stranger")
        core, factory, tier2, bank_a, oracle, stranger = (ob.account(n) for n in names)
        ob.admit(core, "core-enterprise")
        ob.admit(factory, "supplier")
        ob.admit(tier2, "supplier")
        ob.admit(bank_a, "bank")
        ob.admit(oracle, "analytics-oracle")
        return core, factory, tier2, bank_a, oracle, stranger

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

    def nonce(self, who: LocalAccount) -> int:
        return int(self.chain.w3.eth.get_transaction_count(who.address))

    def prepare(self, who: LocalAccount, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.client.post(f"{path}/prepare", json=body or {}, headers=self.h(who))
        assert r.status_code == 200, r.text
        return dict(r.json())

    @staticmethod
    def sign(who: LocalAccount, tx: dict[str, Any]) -> str:
        unsigned = {k: v for k, v in tx.items() if k != "from"}
        return str(Account.sign_transaction(unsigned, who.key).raw_transaction.to_0x_hex())

    def relay(self, who: LocalAccount, path: str, body: dict[str, Any] | None, signed: str) -> Any:
        return self.client.post(
            path, json={**(body or {}), "signed_transaction": signed}, headers=self.h(who)
        )

    def write(self, who: LocalAccount, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """Prepare, sign with ``who``'s own key (as a wallet would), relay; the relay's answer."""
        prepared = self.prepare(who, path, body)
        r = self.relay(who, path, body, self.sign(who, prepared["transaction"]))
        assert r.status_code == 200, r.text
        return dict(r.json())

    @staticmethod
    def error(r: Any) -> tuple[int, str]:
        return r.status_code, r.json()["error"]["code"]


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    with finance_world("finance_writes", db_url, World.parties, World) as w:
        w.coin.mint(w.admin, w.core.address, 2_000_000)
        w.coin.mint(w.admin, w.bank_a.address, 1_000_000)
        yield w


def _confirm_body(w: World, reference: str = "INV-2026-0001", face: int = 1_000_000) -> dict[str, Any]:
    return {
        "supplier": w.factory.address,
        "face_value": face,
        "due_date": w.now() + 30 * DAY,
        "reference": reference,
        **w.backing(reference),
    }


def test_receivable_lifecycle_and_consent_over_http(world: World) -> None:
    w = world
    # the core enterprise confirms what it owes the factory
    body = _confirm_body(w)
    prepared = w.prepare(w.core, "/v1/receivables", body)
    assert (
        prepared["transaction"]["to"] == w.rc.address
        and prepared["transaction"]["chainId"] == w.chain.chain_id
    )
    assert prepared["transaction"]["nonce"] == w.nonce(w.core)
    r = w.relay(w.core, "/v1/receivables", body, w.sign(w.core, prepared["transaction"]))
    assert r.status_code == 200, r.text
    rid, root = r.json()["receivable_id"], r.json()["root_part"]
    rec = w.rc.receivable(rid)
    assert (rec.debtor, rec.supplier, rec.face_value) == (w.core.address, w.factory.address, 1_000_000)
    assert rec.reference == receivable_reference("INV-2026-0001") and rec.due_date == body["due_date"]

    # the factory splits to its tier-2 supplier, then offers its own part to bank A
    out = w.write(
        w.factory,
        f"/v1/receivables/parts/{root}/split",
        {"amounts": [600_000, 400_000], "holders": [w.factory.address, w.tier2.address]},
    )
    mine, theirs = out["children"]
    assert (w.rc.part(theirs).holder, w.rc.part(theirs).amount) == (w.tier2.address, 400_000)
    w.write(
        w.factory, f"/v1/receivables/parts/{mine}/offer", {"bank": w.bank_a.address, "min_price": 570_000}
    )
    assert w.rc.part(mine).state == PartState.OFFERED and w.rc.offers_to(w.bank_a.address) == [mine]

    # the bank's view of the offer: the supplier's record withheld without consent
    offers_url = f"/v1/receivables?offered_to={w.bank_a.address}"
    (p,) = w.client.get(offers_url, headers=w.h(w.bank_a)).json()["parts"]
    assert p["supplier_credit"] is None and p["supplier_credit_withheld"]["code"] == "finance.no_consent"
    credit_url = f"/v1/bank/factories/{w.factory.address}/credit"
    assert w.error(w.client.get(credit_url, headers=w.h(w.bank_a))) == (403, "finance.no_consent")

    # consent over HTTP (the factory's own signed grantConsent): the bank's query is answered
    opening = CreditOpening(
        factory=w.factory.address,
        oracle=w.oracle.address,
        grade=3,
        pd_ppm=12_000,
        limit=50_000_000,
        currency="CNY",
        reasons=("a test record",),
        valid_until=w.now() + 90 * DAY,
        model_version=model_version("test"),
        analytics_commitment=b"\x07" * 32,
        salt=new_salt(),
    )
    store_opening(w.ledger.engine, opening)  # the service keeps the record it serves, with its salt
    w.credit.publish_record(w.oracle, w.factory.address, **publish_args(opening))
    expires = w.now() + 10 * DAY
    grant = {"bank": w.bank_a.address, "expires_at": expires}
    # the prepare step makes the consent's opening and keeps it before it answers; the chain gets its
    # id only (the bank is nowhere in the transaction)
    prepared = w.prepare(w.factory, "/v1/consents", grant)
    consent = ConsentOpening.from_json_obj(prepared["consent"])
    assert (consent.factory, consent.bank) == (w.factory.address, w.bank_a.address)
    assert w.bank_a.address[2:].lower() not in prepared["transaction"]["data"].lower()
    assert consent.consent_id.hex() in prepared["transaction"]["data"]
    with Session(w.ledger.engine) as s:
        row = s.get(ConsentOpeningRow, consent.consent_id_hex)
        assert row is not None and (row.bank, row.salt) == (w.bank_a.address, "0x" + consent.salt.hex())
    # preparing again reuses the pair's consent (so the relay sends the same call)
    assert w.prepare(w.factory, "/v1/consents", grant)["consent"] == prepared["consent"]
    r = w.relay(w.factory, "/v1/consents", grant, w.sign(w.factory, prepared["transaction"]))
    assert r.status_code == 200 and r.json()["consent"] == prepared["consent"], r.text
    c = w.credit.consent_of(consent.consent_id)
    assert (
        c.expires_at == expires
        and c.factory == w.factory.address
        and w.credit.consent_stands(consent.consent_id)
    )
    # the bank gets the consent with its consented factories: its envelopes' id and salt
    r = w.client.get("/v1/bank/factories", headers=w.h(w.bank_a))
    (held,) = r.json()["factories"][0]["consents"]
    assert ConsentOpening.from_json_obj(held) == consent
    # a factory cannot consent to itself
    r = w.client.post(
        "/v1/consents/prepare", json={**grant, "bank": w.factory.address}, headers=w.h(w.factory)
    )
    assert w.error(r) == (400, "finance.bad_consent")
    r = w.client.get(credit_url, headers=w.h(w.bank_a))
    assert r.status_code == 200 and r.json()["current"]["grade"] == "S3"
    (p,) = w.client.get(offers_url, headers=w.h(w.bank_a)).json()["parts"]
    assert p["supplier_credit"]["grade"] == "S3" and "supplier_credit_withheld" not in p

    # bank A approves the Receivables for the price, gets the oracle's credit-line statement (issue 15)
    # and finances at a discount
    out = w.write(w.bank_a, "/v1/stablecoin/approve", {"amount": 580_000})
    assert w.coin.allowance(w.bank_a.address, w.rc.address) == 580_000
    w.ledger.settings = w.ledger.settings.model_copy(update={"oracle_key": SecretStr(w.oracle.key.hex())})
    r = w.client.post(f"/v1/bank/receivables/parts/{mine}/line", headers=w.h(w.bank_a))
    assert r.status_code == 200 and r.json()["headroom_after"] == str(50_000_000 - 600_000), r.text
    fin = {"price": 580_000, "line": r.json()["attestation"]}
    prepared = w.prepare(w.bank_a, f"/v1/receivables/parts/{mine}/finance", fin)
    assert "approve" in prepared["note"]
    r = w.relay(
        w.bank_a,
        f"/v1/receivables/parts/{mine}/finance",
        fin,
        w.sign(w.bank_a, prepared["transaction"]),
    )
    assert r.status_code == 200, r.text
    part = w.rc.part(mine)
    assert (part.state, part.holder, part.financed_price) == (PartState.FINANCED, w.bank_a.address, 580_000)
    assert w.coin.balance_of(w.factory.address) == 580_000 and w.coin.balance_of(w.bank_a.address) == 420_000

    # financing twice: refused before signing, with the contract's custom error and its arguments
    r = w.client.post(f"/v1/receivables/parts/{mine}/finance/prepare", json=fin, headers=w.h(w.bank_a))
    assert w.error(r) == (409, "finance.reverts")
    assert r.json()["error"]["details"] == {
        "error": "ReceivablesNotOffered",
        "args": {"partId": mine, "state": int(PartState.FINANCED)},
    }

    # the factory revokes over HTTP: the bank's query is refused from then on
    revoked = w.write(w.factory, "/v1/consents/revoke", {"bank": w.bank_a.address})
    assert revoked["consent_id"] == consent.consent_id_hex and not w.credit.consent_stands(consent.consent_id)
    assert w.error(w.client.get(credit_url, headers=w.h(w.bank_a))) == (403, "finance.no_consent")
    r = w.client.get(f"/v1/factories/{w.factory.address}/consents", headers=w.h(w.factory))
    assert [(x["bank"], x["state"]) for x in r.json()["consents"]] == [(w.bank_a.address, "revoked")]
    # revoking again (by id): the contract's refusal, before anything is signed
    r = w.client.post(
        "/v1/consents/revoke/prepare", json={"consent_id": consent.consent_id_hex}, headers=w.h(w.factory)
    )
    assert w.error(r) == (409, "finance.reverts")
    assert r.json()["error"]["details"]["error"] == "CreditRegistryNoStandingConsent"
    both = {"bank": w.bank_a.address, "consent_id": consent.consent_id_hex}
    r = w.client.post("/v1/consents/revoke/prepare", json=both, headers=w.h(w.factory))
    assert w.error(r) == (400, "finance.bad_query")
    # granting again renews the same consent (the pair's opening): the bank reads again
    again = w.write(w.factory, "/v1/consents", {"bank": w.bank_a.address, "expires_at": w.now() + DAY})
    assert again["consent"] == consent.to_json_obj() and w.credit.consent_stands(consent.consent_id)
    assert w.client.get(credit_url, headers=w.h(w.bank_a)).status_code == 200

    # at maturity the debtor approves and repays: the bank and the tier-2 supplier are paid
    w.chain.warp(rec.due_date)
    w.write(w.core, "/v1/stablecoin/approve", {"amount": 1_000_000})
    out = w.write(w.core, f"/v1/receivables/{rid}/repay")
    assert "approve" in out["note"]
    assert w.rc.receivable(rid).paid_at >= rec.due_date
    assert w.coin.balance_of(w.bank_a.address) == 420_000 + 600_000
    assert w.coin.balance_of(w.tier2.address) == 400_000
    assert w.coin.balance_of(w.factory.address) == 580_000
    assert w.coin.balance_of(w.core.address) == 1_000_000
    assert {w.rc.part(i).state for i in w.rc.parts_of(rid)} == {PartState.PAID}


def test_transfer_and_withdraw_offer(world: World) -> None:
    w = world
    rid = w.write(w.core, "/v1/receivables", _confirm_body(w))["receivable_id"]
    root = w.rc.receivable(rid).root_part
    w.write(
        w.factory, f"/v1/receivables/parts/{root}/offer", {"bank": w.bank_a.address, "min_price": 900_000}
    )
    w.write(w.factory, f"/v1/receivables/parts/{root}/withdraw-offer")
    assert w.rc.part(root).state == PartState.ACTIVE and w.rc.offers_to(w.bank_a.address) == []
    w.write(w.factory, f"/v1/receivables/parts/{root}/transfer", {"to": w.tier2.address})
    assert w.rc.part(root).holder == w.tier2.address


def test_every_refusal_of_the_relay(world: World) -> None:
    w = world
    url = "/v1/receivables"
    body = _confirm_body(w)

    # not admitted for the action: refused before anything is prepared
    for who, path, b in [
        (w.stranger, url, body),
        (w.factory, url, body),  # a supplier is not a debtor
        (w.stranger, "/v1/receivables/parts/1/finance", {"price": 1, "line": {}}),
        (w.bank_a, "/v1/consents", {"bank": w.bank_a.address, "expires_at": w.now() + DAY}),
        (w.stranger, "/v1/receivables/parts/1/offer", {"bank": w.bank_a.address, "min_price": 1}),
    ]:
        r = w.client.post(f"{path}/prepare", json=b, headers=w.h(who))
        assert w.error(r) == (403, "finance.not_admitted"), (path, r.text)

    prepared = w.prepare(w.core, url, body)
    tx = prepared["transaction"]
    before = w.nonce(w.core)

    # signed by another key
    r = w.relay(w.core, url, body, w.sign(w.tier2, tx))
    assert w.error(r) == (403, "finance.relay_signer")
    # a relay by the key that signed, with another body than the one it signed
    r = w.relay(w.tier2, url, body, w.sign(w.tier2, tx))
    assert w.error(r) == (403, "finance.not_admitted")
    # altered data (another face value), signed by the right key
    other = w.client.post(f"{url}/prepare", json={**body, "face_value": 999}, headers=w.h(w.core)).json()
    r = w.relay(w.core, url, body, w.sign(w.core, other["transaction"]))
    assert w.error(r) == (400, "finance.relay_mismatch") and "data" in r.json()["error"]["message"]
    # the same call addressed to another contract
    r = w.relay(w.core, url, body, w.sign(w.core, {**tx, "to": w.credit.address}))
    assert w.error(r) == (400, "finance.relay_mismatch") and w.rc.address in r.json()["error"]["message"]
    # value attached, another chain id, garbage
    r = w.relay(w.core, url, body, w.sign(w.core, {**tx, "value": 1}))
    assert w.error(r) == (400, "finance.relay_mismatch")
    r = w.relay(w.core, url, body, w.sign(w.core, {**tx, "chainId": tx["chainId"] + 1}))
    assert w.error(r) == (400, "finance.relay_mismatch")
    r = w.relay(w.core, url, body, "0x02abcdef")
    assert w.error(r) == (400, "finance.relay_bad_transaction")
    # the prepared call as an EIP-7702 transaction delegating a third account's code (issue 11, finding 8)
    r = w.relay(w.core, url, body, _retyped(w.core, tx, w.chain, 4, w.rc.address, w.stranger))
    assert w.error(r) == (400, "finance.relay_type")
    assert r.json()["error"]["details"] == {"type": 4, "accepted": [1, 2]}
    assert bytes(w.chain.w3.eth.get_code(w.stranger.address)) == b""
    # nothing was sent by any of these
    assert w.nonce(w.core) == before and w.rc.receivable_count() == 0

    # the prepared one goes through; the same signed bytes again are a replay
    signed = w.sign(w.core, tx)
    assert w.relay(w.core, url, body, signed).status_code == 200
    r = w.relay(w.core, url, body, signed)
    assert w.error(r) == (409, "finance.relay_nonce") and r.json()["error"]["details"]["nonce"] == before
    assert w.rc.receivable_count() == 1

    # a revert is answered at prepare time with the custom error and its arguments
    r = w.client.post(f"{url}/prepare", json=body, headers=w.h(w.core))
    assert w.error(r) == (409, "finance.reverts")
    ref = receivable_reference(body["reference"])
    assert r.json()["error"]["details"] == {
        "error": "ReceivablesDuplicateReference",
        "args": {"debtor": w.core.address, "ref": "0x" + ref.hex(), "receivableId": 1},
    }
    r = w.client.post(
        f"{url}/prepare", json={**body, "reference": "INV-2", "due_date": 5}, headers=w.h(w.core)
    )
    assert w.error(r) == (409, "finance.reverts")
    assert r.json()["error"]["details"]["error"] == "ReceivablesDueDateInPast"

    # a transaction signed while valid and relayed after the state changed: the revert is named
    w.write(w.factory, "/v1/receivables/parts/1/offer", {"bank": w.bank_a.address, "min_price": 900_000})
    w.write(w.bank_a, "/v1/stablecoin/approve", {"amount": 950_000})
    publish_records(w.credit, w.oracle, [w.factory.address], valid_for=90 * DAY)
    fin = {"price": 950_000, "line": attest(w.rc, w.oracle, w.bank_a.address, 1).to_json_obj()}
    signed = w.sign(w.bank_a, w.prepare(w.bank_a, "/v1/receivables/parts/1/finance", fin)["transaction"])
    w.write(w.factory, "/v1/receivables/parts/1/withdraw-offer")
    r = w.relay(w.bank_a, "/v1/receivables/parts/1/finance", fin, signed)
    assert w.error(r) == (409, "finance.reverted")
    assert r.json()["error"]["details"]["error"] == "ReceivablesNotOffered"
    assert w.rc.part(1).state == PartState.ACTIVE and w.coin.balance_of(w.bank_a.address) == 1_000_000

    # only the debtor repays; an unknown receivable is 404
    r = w.client.post("/v1/receivables/1/repay/prepare", json={}, headers=w.h(w.bank_a))
    assert w.error(r) == (403, "finance.not_the_debtor")
    r = w.client.post("/v1/receivables/9/repay/prepare", json={}, headers=w.h(w.core))
    assert w.error(r) == (404, "finance.no_receivable")
    # no party: 401
    assert w.error(w.client.post(f"{url}/prepare", json=body)) == (401, "auth.missing")


def test_malformed_addresses_and_queries_are_400(world: World) -> None:
    w = world
    h = w.h(w.bank_a)
    for path in [
        "/v1/receivables?holder=0xnope",
        "/v1/receivables?offered_to=12345",
        "/v1/receivables",
        f"/v1/receivables?holder={w.core.address}&offered_to={w.core.address}",
        "/v1/factories/0x1234/consents",
        "/v1/factories/not-an-address/access-log",
        "/v1/bank/factories/0xZZ/credit",
        "/v1/bank/factories/0x12/profile",
    ]:
        r = w.client.get(path, headers=h)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["code"] in ("finance.bad_address", "finance.bad_query"), path
    r = w.client.post(
        "/v1/receivables/parts/1/offer/prepare", json={"bank": "nope", "min_price": 1}, headers=w.h(w.factory)
    )
    assert w.error(r) == (400, "finance.bad_address")
    r = w.client.post(
        "/v1/consents/prepare",
        json={"bank": "0x" + "g" * 40, "expires_at": w.now() + DAY},
        headers=w.h(w.factory),
    )
    assert w.error(r) == (400, "finance.bad_address")
    r = w.client.post(
        "/v1/receivables/parts/1/split/prepare",
        json={"amounts": [1, 2, 3], "holders": [w.core.address, w.tier2.address]},
        headers=w.h(w.factory),
    )
    assert w.error(r) == (400, "finance.bad_split")


def test_relay_on_both_chains(suite: Any) -> None:
    """The relay's revert, replay and mined-revert answers on the embedded chain and on anvil."""
    from ledger_service.tx_relay import RelayRefused, expected_call, prepare, relay

    chain: Chain = suite.chain
    party, bank = suite.accounts[5], suite.accounts[8]
    credit = CreditRegistryClient.from_deployment(chain, suite.deployment)
    coin = StablecoinClient(chain, ReceivablesClient.from_deployment(chain, suite.deployment).token())

    # a call the contract refuses is refused before signing, with its custom error and arguments
    never = consent_id(party.address, bank.address, bytes(32))
    revoke = credit.revoke_call(never)
    with pytest.raises(RelayRefused) as info:
        prepare(chain, party.address, revoke, context="revokeConsent")
    assert (info.value.code, http_status(info.value)) == ("finance.reverts", 409)
    assert info.value.details == {
        "error": "CreditRegistryNoStandingConsent",
        "args": {"factory": party.address, "consentId": "0x" + never.hex()},
    }
    # signed anyway with a gas of its own: relayed, refused by the chain, the revert named, no state change
    tx = revoke.build_transaction(
        {
            "from": party.address,
            "chainId": chain.chain_id,
            "nonce": chain.w3.eth.get_transaction_count(party.address),
            "gas": 200_000,
        }
    )
    signed = World.sign(party, dict(tx))
    with pytest.raises(RelayRefused) as info:
        relay(chain, party.address, expected_call(chain, revoke), signed, context="revokeConsent")
    assert info.value.code == "finance.reverted"
    assert info.value.details["error"] == "CreditRegistryNoStandingConsent"

    # a good one, then its replay
    approve = coin.contract.functions.approve(bank.address, 5)
    prepared = prepare(chain, party.address, approve, context="approve")
    signed = World.sign(party, prepared)
    done = relay(chain, party.address, expected_call(chain, approve), signed, context="approve")
    assert chain.receipt(done.tx_hash) is not None and coin.allowance(party.address, bank.address) == 5
    with pytest.raises(RelayRefused) as info:
        relay(chain, party.address, expected_call(chain, approve), signed, context="approve")
    assert (info.value.code, http_status(info.value)) == ("finance.relay_nonce", 409)
    # a nonce that leaves a gap would wait in the node's queue: refused
    fresh = prepare(chain, party.address, approve, context="approve")
    ahead = World.sign(party, {**fresh, "nonce": fresh["nonce"] + 5})
    with pytest.raises(RelayRefused) as info:
        relay(chain, party.address, expected_call(chain, approve), ahead, context="approve")
    assert info.value.code == "finance.relay_nonce" and "gap" in info.value.message
    # the prepared approve checked against another call: mismatch, nothing sent
    other = coin.contract.functions.approve(bank.address, 6)
    with pytest.raises(RelayRefused) as info:
        relay(
            chain,
            party.address,
            expected_call(chain, other),
            World.sign(party, prepare(chain, party.address, approve, context="approve")),
            context="approve",
        )
    assert info.value.code == "finance.relay_mismatch" and coin.allowance(party.address, bank.address) == 5


def _retyped(
    who: LocalAccount, tx: dict[str, Any], chain: Chain, tx_type: int, delegate: str, authority: LocalAccount
) -> str:
    """The prepared call signed by ``who`` as a transaction of ``tx_type``, as a hostile wallet would.

    Type 4 (EIP-7702) carries ``authority``'s signed authorization to run ``delegate``'s code on its
    account; type 3 (EIP-4844) a blob hash; type 0 is legacy (EIP-155); type 1 (EIP-2930) an access list.
    """
    base = {k: v for k, v in tx.items() if k not in ("from", "type")}
    fees = {
        "maxFeePerGas": base.pop("maxFeePerGas"),
        "maxPriorityFeePerGas": base.pop("maxPriorityFeePerGas"),
    }
    if tx_type == 0:
        return World.sign(who, {**base, "gasPrice": fees["maxFeePerGas"]})
    if tx_type == 1:
        entry = {"address": delegate, "storageKeys": ["0x" + "00" * 32]}
        return World.sign(who, {**base, "gasPrice": fees["maxFeePerGas"], "accessList": [entry]})
    if tx_type == 3:
        blob = {"maxFeePerBlobGas": 10**9, "blobVersionedHashes": ["0x01" + "ab" * 31]}
        return World.sign(who, {**base, **fees, **blob})
    assert tx_type == 4
    auth_nonce = chain.w3.eth.get_transaction_count(authority.address)
    auth = Account.sign_authorization(
        {"chainId": chain.chain_id, "address": delegate, "nonce": auth_nonce}, authority.key
    )
    return World.sign(who, {**base, **fees, "authorizationList": [auth]})


def test_relay_forwards_only_the_prepared_transaction_types(suite: Any) -> None:
    """Issue 11 finding 8: an EIP-7702 (type 4) transaction with an authorization list, a blob (type 3)
    and a legacy (type 0) one are refused with ``finance.relay_type``, an access list the service did not
    prepare with ``finance.relay_extra_fields``; nothing is sent, no code is set. The prepared call
    signed as EIP-2930 (type 1, no access list) is relayed. Embedded chain and anvil (osaka: 7702 on)."""
    from ledger_service.tx_relay import RelayRefused, expected_call, prepare, relay

    chain: Chain = suite.chain
    party, third, bank = suite.accounts[5], suite.accounts[7], suite.accounts[8]
    coin = StablecoinClient(chain, ReceivablesClient.from_deployment(chain, suite.deployment).token())
    approve = coin.contract.functions.approve(bank.address, 7)
    expected = expected_call(chain, approve)
    delegate = coin.address  # any contract: the code a 7702 authorization would install on the party
    nonce = chain.w3.eth.get_transaction_count(party.address)

    for tx_type, code in [(4, "finance.relay_type"), (3, "finance.relay_type"), (0, "finance.relay_type")]:
        prepared = prepare(chain, party.address, approve, context="approve")
        signed = _retyped(party, prepared, chain, tx_type, delegate, third)
        with pytest.raises(RelayRefused) as info:
            relay(chain, party.address, expected, signed, context="approve")
        assert (info.value.code, http_status(info.value)) == (code, 400), tx_type
        assert info.value.details == {"type": tx_type, "accepted": [1, 2]}
    # EIP-2930 with an access list the service did not prepare; EIP-1559 with one
    prepared = prepare(chain, party.address, approve, context="approve")
    for signed in (
        _retyped(party, prepared, chain, 1, delegate, third),
        World.sign(
            party, {**prepared, "accessList": [{"address": delegate, "storageKeys": ["0x" + "00" * 32]}]}
        ),
    ):
        with pytest.raises(RelayRefused) as info:
            relay(chain, party.address, expected, signed, context="approve")
        assert info.value.code == "finance.relay_extra_fields" and info.value.details == {
            "fields": ["accessList"]
        }
    # nothing was sent: no nonce spent, no allowance, no code set on the third account (nor the party's)
    assert chain.w3.eth.get_transaction_count(party.address) == nonce
    assert coin.allowance(party.address, bank.address) == 0
    assert bytes(chain.w3.eth.get_code(third.address)) == b""
    assert bytes(chain.w3.eth.get_code(party.address)) == b""

    # the prepared call signed as EIP-2930 (type 1) without an access list is relayed
    base = {
        k: v for k, v in prepared.items() if k not in ("from", "type", "maxFeePerGas", "maxPriorityFeePerGas")
    }
    type1 = World.sign(party, {**base, "gasPrice": prepared["maxFeePerGas"], "accessList": []})
    done = relay(chain, party.address, expected, type1, context="approve")
    assert chain.receipt(done.tx_hash) is not None and coin.allowance(party.address, bank.address) == 7


def test_a_bank_checks_the_backing_over_http(world: World) -> None:
    """Issue 15.3: the backing package served to a bank, each step checked against the chain; the value
    step needs the order's opening, sent with the request."""
    w = world
    rid = w.write(w.core, "/v1/receivables", _confirm_body(w, "INV-CHECK", face=500 * 1_000))["receivable_id"]
    assert w._deliveries is not None
    openings = [t.to_json_obj() for t in w._deliveries.terms.values()]
    url = f"/v1/receivables/{rid}/check"
    r = w.client.post(url, json={"order_terms": openings}, headers=w.h(w.bank_a))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["ok"] and [s["step"] for s in report["steps"]] == [
        "receivable",
        "order",
        "lots",
        "custody",
        "quality",
        "confirmation",
        "value",
    ]
    assert "500000 <= 500 delivered x unit price 1000" in report["steps"][-1]["detail"]
    r = w.client.post(url, json={}, headers=w.h(w.bank_a))
    assert r.status_code == 200 and not r.json()["ok"]
    assert [s["step"] for s in r.json()["steps"] if not s["ok"]] == ["value"]
    bad = w.client.post(url, json={"order_terms": [{"format": "nonsense"}]}, headers=w.h(w.bank_a))
    assert w.error(bad) == (400, "finance.bad_order_terms")
    assert w.client.post(url, json={}).status_code == 401
