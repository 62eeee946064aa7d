"""Credit with consent over HTTP: oracle publishes, factory consents, banks query, every attempt logged and
anchored; refusals typed; an altered log entry fails verification. SQLite and PostgreSQL, embedded chain."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from finance_world import finance_world
from profiles import store_sample_profile
from sqlmodel import Session, col, func, select

from contracts.chain import dev_accounts
from contracts.credit import CreditRegistryClient
from contracts.credit_bank import read_bank_records, register_bank_key, verify_record
from contracts.credit_consent import ConsentOpening
from contracts.credit_record import CreditOpening
from contracts.onboarding import Onboarding
from ledger_service.credit_desk.access_log import entry_digest
from ledger_service.credit_desk.desk import FinanceDesk, desk_of
from ledger_service.credit_desk.errors import AccessLogError
from ledger_service.credit_desk.sealing import seal_for_consented
from ledger_service.service import LedgerService
from ledger_service.store.models import (
    AccessLogBatchRow,
    AccessLogRow,
    AccessRefusalTallyRow,
    AnalyticsResultRow,
)


def login(client: TestClient, account: LocalAccount) -> str:
    message = client.post("/v1/auth/challenge", json={"address": account.address}).json()["message"]
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    r = client.post("/v1/auth/token", json={"message": message, "signature": signature})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class World:
    def __init__(self, ledger: LedgerService, client: TestClient, onboarding: Onboarding) -> None:
        self.ledger, self.client, self.ob = ledger, client, onboarding
        self.oracle, self.factory, self.bank_a, self.bank_b, self.stranger = World.parties(onboarding)
        self.credit = CreditRegistryClient.from_deployment(ledger.chain, ledger.deployment)
        self.tokens: dict[str, str] = {}
        self.consents: dict[str, ConsentOpening] = {}

    def grant(self, bank: LocalAccount, expires_at: int) -> ConsentOpening:
        """The factory grants on chain itself (a fresh consent id) and registers the opening with the
        service over its signed route, as `CreditRegistryClient.grant_consent` tells it to."""
        opening = self.credit.grant_consent(self.factory, bank.address, expires_at=expires_at).opening
        body = {"bank": bank.address, "salt": "0x" + opening.salt.hex()}
        r = self.client.post("/v1/consents/openings", json=body, headers=self.h(self.factory))
        assert r.status_code == 200 and r.json()["consent"]["consent_id"] == opening.consent_id_hex, r.text
        self.consents[bank.address] = opening
        return opening

    def revoke(self, bank: LocalAccount) -> None:
        self.credit.revoke_consent(self.factory, self.consents[bank.address])

    @staticmethod
    def parties(ob: Onboarding) -> tuple[LocalAccount, ...]:
        """The oracle, the factory, two banks and a stranger: funded and admitted (on the pooled world's
        chain already: then only read)."""
        oracle, factory, bank_a, bank_b = (ob.account(n) for n in ("oracle", "factory", "bank-a", "bank-b"))
        stranger = ob.account("stranger")
        ob.admit(oracle, "analytics-oracle")
        ob.admit(factory, "supplier")
        ob.admit(bank_a, "bank")
        ob.admit(bank_b, "bank")
        return oracle, factory, bank_a, bank_b, stranger

    @property
    def desk(self) -> FinanceDesk:
        return desk_of(self.ledger)

    def h(self, who: LocalAccount) -> dict[str, str]:
        if who.address not in self.tokens:
            self.tokens[who.address] = login(self.client, who)
        return bearer(self.tokens[who.address])

    def chain_now(self) -> int:
        return int(self.ledger.chain.block("latest")["timestamp"])

    def publish_profile(self) -> str:
        """A 30-day profile of the factory, stored as published; its commitment."""
        return store_sample_profile(
            self.ledger.engine, self.factory.address, days=30, delivered_units=23_500.0, daily_output=()
        )

    def error(self, r: Any) -> tuple[int, str]:
        return r.status_code, r.json()["error"]["code"]


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    with finance_world("finance_api", db_url, World.parties, lambda s, c, ob, _admin: World(s, c, ob)) as w:
        yield w


def _publish_over_http(w: World, commitment: str) -> dict[str, Any]:
    body = {"factory": w.factory.address, "profile_commitment": commitment, "price": 12.5, "currency": "CNY"}
    r = w.client.post("/v1/credit/records/prepare", json=body, headers=w.h(w.oracle))
    assert r.status_code == 200, r.text
    prepared = r.json()
    tx = {k: v for k, v in prepared["transaction"].items() if k != "from"}
    signed = Account.sign_transaction(tx, w.oracle.key).raw_transaction.to_0x_hex()
    body |= {
        "valid_until": prepared["valid_until"],
        "salt": prepared["salt"],
        "envelopes": prepared["envelopes"],
        "signed_transaction": signed,
    }
    r = w.client.post("/v1/credit/records", json=body, headers=w.h(w.oracle))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_publish_consent_queries_log_and_anchoring(world: World) -> None:
    w = world
    commitment = w.publish_profile()

    # only the oracle may publish
    body = {"factory": w.factory.address, "profile_commitment": commitment, "price": 12.5}
    r = w.client.post("/v1/credit/records/prepare", json=body, headers=w.h(w.bank_a))
    assert w.error(r) == (403, "finance.not_an_oracle")

    published = _publish_over_http(w, commitment)
    rec = w.credit.current_record(w.factory.address)
    assert published["record"]["record_commitment"] == "0x" + rec.record_commitment.hex()
    assert published["record"]["opened"] and rec.oracle == w.oracle.address
    assert "0x" + rec.analytics_commitment.hex() == published["assessment_commitment"]["commitment"]
    # the assessment is kept with its commitment, whose one input is the profile's commitment
    stored = w.desk.assessment("0x" + rec.analytics_commitment.hex())
    assert stored is not None and stored["schema"] == "supet.credit-assessment.v1"

    # before consent: bank A refused, logged
    url = f"/v1/bank/factories/{w.factory.address}/credit"
    assert w.error(w.client.get(url, headers=w.h(w.bank_a))) == (403, "finance.no_consent")

    expires = w.chain_now() + 3600
    opening = w.grant(w.bank_a, expires)

    r = w.client.get(url, headers=w.h(w.bank_a))
    assert r.status_code == 200, r.text
    assert r.json()["current"]["grade"] == published["record"]["grade"] and len(r.json()["history"]) == 1
    # the served record is opened with its salt: it verifies against the commitment on chain
    served = CreditOpening.from_json_obj(r.json()["current"]["opening"])
    assert served.salt.hex() and verify_record(w.credit, served) == rec
    r = w.client.get(f"/v1/bank/factories/{w.factory.address}/profile", headers=w.h(w.bank_a))
    assert r.status_code == 200 and r.json()["commitment"]["commitment"] == commitment
    r = w.client.get("/v1/bank/factories", headers=w.h(w.bank_a))
    assert [f["factory"] for f in r.json()["factories"]] == [w.factory.address]
    assert r.json()["factories"][0]["record"]["valid"] is True
    # with the consent's opening: the bank finds its envelopes on chain by its id
    (held,) = r.json()["factories"][0]["consents"]
    assert (
        ConsentOpening.from_json_obj(held) == opening and held["standing"] and held["expires_at"] == expires
    )

    # bank B (admitted, no consent) and an un-admitted party
    assert w.error(w.client.get(url, headers=w.h(w.bank_b))) == (403, "finance.no_consent")
    assert w.error(w.client.get(url, headers=w.h(w.stranger))) == (403, "finance.not_a_bank")
    assert w.client.get("/v1/bank/factories", headers=w.h(w.bank_b)).json()["factories"] == []

    # the factory's consents and access log: the factory only
    r = w.client.get(f"/v1/factories/{w.factory.address}/consents", headers=w.h(w.factory))
    assert [(c["bank"], c["state"]) for c in r.json()["consents"]] == [(w.bank_a.address, "standing")]
    assert r.json()["consents"][0]["consent_id"] == opening.consent_id_hex
    log_url = f"/v1/factories/{w.factory.address}/access-log"
    assert w.error(w.client.get(log_url, headers=w.h(w.bank_a))) == (403, "finance.not_the_factory")
    page = w.client.get(log_url, headers=w.h(w.factory)).json()
    entries = page["entries"]
    # newest first; the un-admitted stranger is counted apart (not anchored), the banks are logged, their
    # refused reads too (bank A asking for the factory's own access log: issue 14's access policy)
    assert [(e["party"], e["action"], e["outcome"]) for e in entries] == [
        (w.bank_a.address, "access-log", "finance.not_the_factory"),
        (w.bank_b.address, "credit", "finance.no_consent"),
        (w.bank_a.address, "factories", "answered"),
        (w.bank_a.address, "profile", "answered"),
        (w.bank_a.address, "credit", "answered"),
        (w.bank_a.address, "credit", "finance.no_consent"),
    ]
    assert page["older_before_id"] is None and page["newer_after_id"] is None
    refused = page["refused_unadmitted"]
    assert (refused["attempts"], refused["last_party"]) == (1, w.stranger.address)
    assert refused["by_reason"] == {"finance.not_a_bank": 1} and refused["anchored"] is False
    assert all(e["anchoring"] == "pending" and e["proof"] is None for e in entries)
    assert all(len(e["request_id"]) >= 8 for e in entries)

    # expiry (chain time moves past it) and revocation
    w.ledger.chain.warp(expires + 1)
    w.ledger.chain.transfer_value(dev_accounts(1)[0], w.stranger.address, 1)  # a block at the new time
    assert w.error(w.client.get(url, headers=w.h(w.bank_a))) == (403, "finance.consent_expired")
    r = w.client.get(f"/v1/factories/{w.factory.address}/consents", headers=w.h(w.factory))
    assert r.json()["consents"][0]["state"] == "expired"
    w.grant(w.bank_a, w.chain_now() + 3600)
    assert w.client.get(url, headers=w.h(w.bank_a)).status_code == 200
    w.revoke(w.bank_a)
    assert w.error(w.client.get(url, headers=w.h(w.bank_a))) == (403, "finance.no_consent")

    # anchoring: every entry anchored, each proof verifies against the chain
    w.desk.anchorer.flush()
    entries = w.client.get(log_url, headers=w.h(w.factory)).json()["entries"]
    assert len(entries) == 9 and {e["anchoring"] for e in entries} == {"anchored"}
    batch = w.credit.access_log_batch(entries[0]["proof"]["batch_index"])
    assert batch.count == 11  # the 9 of this factory (one a refused read) and the banks' two listings
    for e in entries:
        assert w.desk.book.verify(e["id"]).root == batch.root

    # an altered entry fails, named
    victim = entries[1]["id"]
    with Session(w.ledger.engine) as s:
        row = s.get(AccessLogRow, victim)
        assert row is not None
        row.outcome = "finance.no_consent"
        s.add(row)
        s.commit()
    with pytest.raises(AccessLogError) as info:
        w.desk.book.verify(victim)
    assert info.value.code == "access_log.digest_mismatch"
    # ... and so does one whose digest was rewritten to match (the anchored root disagrees)
    with Session(w.ledger.engine) as s:
        row = s.get(AccessLogRow, victim)
        assert row is not None
        row.digest = w.desk.book.digest_of(row)
        s.add(row)
        s.commit()
    with pytest.raises(AccessLogError) as info:
        w.desk.book.verify(victim)
    assert info.value.code == "access_log.root_mismatch"
    # the other entries' proofs, as served before the alteration, still verify against the chain
    from device_attestation.merkle import verify_inclusion

    kept = entries[0]["proof"]
    verify_inclusion(
        digest=bytes.fromhex(kept["digest"][2:]),
        proof=[bytes.fromhex(p[2:]) for p in kept["proof"]],
        root=batch.root,
    )


def test_entry_digest_is_the_documented_abi_encoding() -> None:
    from eth_abi import encode
    from eth_utils import keccak

    a, b, reg = ("0x" + "11" * 20, "0x" + "22" * 20, "0x" + "33" * 20)
    d = entry_digest(
        chain_id=7,
        registry=reg,
        entry_id=1,
        ts_ms=2,
        party=a,
        factory=b,
        action="credit",
        outcome="answered",
        request_id="r1",
    )
    expected = keccak(
        encode(
            [
                "bytes32",
                "uint256",
                "address",
                "uint64",
                "uint64",
                "address",
                "address",
                "string",
                "string",
                "string",
            ],
            [keccak(b"supet.access-log.v1"), 7, reg, 1, 2, a, b, "credit", "answered", "r1"],
        )
    )
    assert d == expected
    assert d != entry_digest(
        chain_id=7,
        registry=reg,
        entry_id=1,
        ts_ms=2,
        party=a,
        factory=b,
        action="credit",
        outcome="finance.x",
        request_id="r1",
    )


def test_log_is_durable_before_the_refusal(world: World) -> None:
    """A refusal's entry is committed by the time the 403 arrives (read from a fresh session)."""
    w = world
    url = f"/v1/bank/factories/{w.factory.address}/credit"
    r = w.client.get(url, headers={**w.h(w.bank_b), "X-Request-ID": "req-durable-0001"})
    assert w.error(r) == (403, "finance.no_consent")
    with Session(w.ledger.engine) as s:
        rows = s.exec(select(AccessLogRow).where(col(AccessLogRow.request_id) == "req-durable-0001")).all()
    assert [(x.party, x.factory, x.outcome) for x in rows] == [
        (w.bank_b.address, w.factory.address, "finance.no_consent")
    ]


def test_receivable_reads_and_anonymous_refused(world: World) -> None:
    w = world
    assert w.error(w.client.get("/v1/bank/factories")) == (401, "access.anonymous")
    r = w.client.get(f"/v1/receivables?offered_to={w.bank_a.address}", headers=w.h(w.bank_a))
    assert r.status_code == 200 and r.json() == {"parts": [], "next_offset": None}
    assert w.error(w.client.get("/v1/receivables", headers=w.h(w.bank_a))) == (400, "finance.bad_query")
    assert w.error(w.client.get("/v1/receivables/1", headers=w.h(w.bank_a))) == (404, "finance.no_receivable")


def test_receivables_listing_and_approve_need_admission_and_a_relation(world: World) -> None:
    """Issue 11 finding 11: signing in is not admission. A key the consortium never admitted cannot
    list a factory's receivables nor relay an approve; an admitted party sees only the parts it is
    related to (holder, offeree, financier, debtor, creditor); the holder and the debtor see theirs."""
    from contracts.receivables import ReceivablesClient, receivable_reference

    w = world
    core = w.ob.account("core")
    w.ob.admit(core, "core-enterprise")
    rc = ReceivablesClient.from_deployment(w.ledger.chain, w.ledger.deployment)
    from backing import suite_deployment_deliveries

    from contracts.chain import dev_accounts

    d = suite_deployment_deliveries(w.ledger, dev_accounts(1)[0], core, w.factory)  # the pool's admin
    rid, _ = rc.confirm(
        core,
        supplier=w.factory.address,
        face_value=1_000_000,
        due_date=w.chain_now() + 90 * 86_400,
        reference=receivable_reference("INV-ISSUE11-1"),
        order_id=d.order("PO-ISSUE11-1"),
        lots=[d.lot("LOT-ISSUE11-1")],
    )
    root = rc.receivable(rid).root_part
    url = f"/v1/receivables?holder={w.factory.address}"

    # a signed-in key admitted for nothing: 403, for the listing and for approve (prepare and relay)
    assert w.error(w.client.get(url, headers=w.h(w.stranger))) == (403, "finance.not_admitted")
    offers = f"/v1/receivables?offered_to={w.bank_a.address}"
    assert w.error(w.client.get(offers, headers=w.h(w.stranger))) == (403, "finance.not_admitted")
    r = w.client.post("/v1/stablecoin/approve/prepare", json={"amount": 5}, headers=w.h(w.stranger))
    assert w.error(r) == (403, "finance.not_admitted")
    r = w.client.post(
        "/v1/stablecoin/approve",
        json={"amount": 5, "signed_transaction": "0x02"},
        headers=w.h(w.stranger),
    )
    assert w.error(r) == (403, "finance.not_admitted")

    # an admitted bank with no relation to the factory's receivable sees none of its parts
    r = w.client.get(url, headers=w.h(w.bank_b))
    assert r.status_code == 200 and r.json() == {"parts": [], "next_offset": None}

    # the holder and the debtor see the part
    for who in (w.factory, core):
        r = w.client.get(url, headers=w.h(who))
        assert r.status_code == 200, r.text
        assert [(p["id"], p["holder"]) for p in r.json()["parts"]] == [(root, w.factory.address)]

    # once offered to bank A, bank A sees it among its offers; bank B still does not
    rc.offer(w.factory, root, bank=w.bank_a.address, min_price=900_000)
    r = w.client.get(offers, headers=w.h(w.bank_a))
    assert [p["id"] for p in r.json()["parts"]] == [root]
    assert w.client.get(offers, headers=w.h(w.bank_b)).json() == {"parts": [], "next_offset": None}

    # an admitted payer may prepare an approve (the bank, before financing)
    r = w.client.post("/v1/stablecoin/approve/prepare", json={"amount": 5}, headers=w.h(w.bank_a))
    assert r.status_code == 200, r.text
    assert r.json()["call"] == "approve"


#: The throw-away key's queries in the flood test (each costs a refused request, about 70 ms).
FLOOD = 60


def test_unadmitted_flood_stays_out_of_the_anchored_log(world: World) -> None:
    """Issue 11 finding 6: a flood of queries of a throw-away key (admitted for nothing; 60 here, more
    than a page of the API's and the portal's log, as the finding's 210 were) adds no anchored entry
    and cost no gas; the factory sees them counted; the newest real bank access is on the first page
    of its log (newest first), and older pages are reached by their cursor."""
    w = world
    url = f"/v1/bank/factories/{w.factory.address}/credit"
    log_url = f"/v1/factories/{w.factory.address}/access-log"
    w.grant(w.bank_a, w.chain_now() + 3600)
    for _ in range(30):  # real bank accesses, older than the flood
        assert w.client.get(url, headers=w.h(w.bank_a)).status_code == 200
    with Session(w.ledger.engine) as s:
        logged_before = s.exec(select(AccessLogRow)).all()
    throwaway = Account.create()
    frozen = time.time()  # the tally counts per wall-clock hour: the flood stays in one hour
    w.desk.tally.clock = lambda: frozen
    for _ in range(FLOOD):
        assert w.error(w.client.get(url, headers=w.h(throwaway))) == (403, "finance.not_a_bank")
    assert (
        w.client.get(url, headers={**w.h(w.bank_b), "X-Request-ID": "req-newest-real-1"}).status_code == 403
    )
    with Session(w.ledger.engine) as s:
        logged_after = s.exec(select(AccessLogRow)).all()
    assert len(logged_after) == len(logged_before) + 1  # only bank B's (admitted) refusal
    assert w.desk.tally.rows() == 1  # one row for (factory, not_a_bank, this hour), whatever the count

    page = w.client.get(log_url, params={"limit": 20}, headers=w.h(w.factory)).json()
    first = page["entries"][0]
    assert (first["party"], first["outcome"], first["request_id"]) == (
        w.bank_b.address,
        "finance.no_consent",
        "req-newest-real-1",
    )
    assert all(e["party"] != throwaway.address for e in page["entries"])
    assert page["refused_unadmitted"]["attempts"] == FLOOD
    assert page["refused_unadmitted"]["last_party"] == throwaway.address

    # every page, newest first, following the cursors; back again with the newer cursor
    seen = list(page["entries"])
    cursor = page["older_before_id"]
    while cursor is not None:
        nxt = w.client.get(log_url, params={"limit": 20, "before_id": cursor}, headers=w.h(w.factory)).json()
        assert len(nxt["entries"]) <= 20 and nxt["newer_after_id"] == nxt["entries"][0]["id"]
        seen += nxt["entries"]
        cursor = nxt["older_before_id"]
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids, reverse=True) and len(ids) == 31
    back = w.client.get(
        log_url, params={"limit": 20, "after_id": nxt["newer_after_id"]}, headers=w.h(w.factory)
    ).json()
    assert [e["id"] for e in back["entries"]] == ids[:20] and back["newer_after_id"] is None

    # the anchorer sends only what the log holds: no batch for the flood
    w.desk.anchorer.flush()
    with Session(w.ledger.engine) as s:
        batched = s.exec(select(func.sum(AccessLogBatchRow.count))).one()
    assert batched == len(logged_after)

    # bad paging input is a typed 400/422, not a page
    r = w.client.get(log_url, params={"before_id": 5, "after_id": 1}, headers=w.h(w.factory))
    assert w.error(r) == (400, "finance.bad_query")
    r = w.client.get(log_url, params={"limit": 201}, headers=w.h(w.factory))
    assert r.status_code == 422


def test_refusal_tally_is_bounded_per_hour(world: World) -> None:
    """A key naming many factories cannot grow the tally: past the cap, attempts share one row."""
    from ledger_service.credit_desk.access_log import OVERFLOW_FACTORY, RefusalTally

    tally = RefusalTally(engine=world.ledger.engine, max_factories=3)
    party = Account.create().address
    for i in range(10):
        tally.record(party=party, factory="0x" + f"{i + 1:040x}", reason="finance.not_a_bank", request_id="r")
    tally.record(party=party, factory=None, reason="finance.not_a_bank", request_id="r")
    assert tally.rows() == 5  # 3 factories, the catch-all, the no-factory listing
    with Session(world.ledger.engine) as s:
        rows = s.exec(select(AccessRefusalTallyRow)).all()
    counts = {r.factory: r.count for r in rows}
    assert counts[OVERFLOW_FACTORY] == 7 and counts[""] == 1 and sum(counts.values()) == 11
    assert tally.summary("0x" + f"{1:040x}").attempts == 1


def test_a_second_oracle_cannot_publish_for_a_bound_factory(world: World) -> None:
    """Issue 12, finding 10 over HTTP: the factory is bound to the oracle that first published for it;
    another admitted oracle is refused before anything is stored or prepared."""
    w = world
    commitment = w.publish_profile()
    _publish_over_http(w, commitment)
    rival = w.ob.account("oracle-2")
    w.ob.admit(rival, "analytics-oracle")
    with Session(w.ledger.engine) as s:
        before = len(s.exec(select(AnalyticsResultRow)).all())
    body = {"factory": w.factory.address, "profile_commitment": commitment, "price": 12.5, "currency": "CNY"}
    r = w.client.post("/v1/credit/records/prepare", json=body, headers=w.h(rival))
    assert w.error(r) == (403, "finance.not_the_factory_oracle"), r.text
    assert w.oracle.address in r.json()["error"]["message"]
    with Session(w.ledger.engine) as s:
        assert len(s.exec(select(AnalyticsResultRow)).all()) == before
    assert w.credit.record_count(w.factory.address) == 1
    assert w.credit.current_record(w.factory.address).oracle == w.oracle.address


def test_envelopes_salt_and_revocation_over_http(world: World) -> None:
    """Issue 14: the prepare step seals the record for each consented bank with a key (skipping one
    without); the submit must echo the salt it was given (another is not the signed call); the bank
    opens from its node the record the ledger serves it; after revocation nothing new is sealed for it."""
    w = world
    commitment = w.publish_profile()
    for bank in (w.bank_a, w.bank_b):
        w.grant(bank, w.chain_now() + 3600)
    register_bank_key(w.credit, w.bank_a)  # bank B registered no key: skipped, named
    body = {"factory": w.factory.address, "profile_commitment": commitment, "price": 12.5, "currency": "CNY"}
    r = w.client.post("/v1/credit/records/prepare", json=body, headers=w.h(w.oracle))
    assert r.status_code == 200, r.text
    prepared = r.json()
    assert [e["bank"] for e in prepared["envelopes"]] == [w.bank_a.address]
    assert [e["consent_id"] for e in prepared["envelopes"]] == [w.consents[w.bank_a.address].consent_id_hex]
    assert list(prepared["envelopes_skipped"]) == [w.bank_b.address]
    assert CreditOpening.from_json_obj(prepared["opening"]).salt.hex() == prepared["salt"][2:]
    tx = {k: v for k, v in prepared["transaction"].items() if k != "from"}
    signed = Account.sign_transaction(tx, w.oracle.key).raw_transaction.to_0x_hex()
    submit = body | {
        "valid_until": prepared["valid_until"],
        "salt": "0x" + "00" * 32,
        "envelopes": prepared["envelopes"],
        "signed_transaction": signed,
    }
    r = w.client.post("/v1/credit/records", json=submit, headers=w.h(w.oracle))
    assert w.error(r) == (400, "finance.relay_mismatch") and w.credit.record_count(w.factory.address) == 0
    r = w.client.post("/v1/credit/records", json=submit | {"salt": prepared["salt"]}, headers=w.h(w.oracle))
    assert r.status_code == 200, r.text
    assert r.json()["envelopes"] == [w.consents[w.bank_a.address].consent_id_hex]  # the chain's: ids only

    # the contract cannot see the bank behind a consent id: the oracle's side asks the gate, and seals
    # nothing for a bank that is not admitted (named, like a bank without a key)
    held = CreditOpening.from_json_obj(prepared["opening"])
    envelopes, sealed_for, skipped = seal_for_consented(
        w.credit, held, [w.consents[w.bank_a.address]], admitted=lambda bank: bank != w.bank_a.address
    )
    assert (envelopes, sealed_for) == ([], []) and "not admitted" in skipped[w.bank_a.address]

    (mine,) = read_bank_records(w.credit, bytes(w.bank_a.key))
    served = w.client.get(f"/v1/bank/factories/{w.factory.address}/credit", headers=w.h(w.bank_a)).json()
    assert mine.verified and mine.opening == CreditOpening.from_json_obj(served["current"]["opening"])
    assert read_bank_records(w.credit, bytes(w.bank_b.key)) == []

    w.revoke(w.bank_a)
    again = w.desk.publish(w.oracle, w.factory.address, commitment, price=12.5)
    assert again.sealed_for == () and w.desk.deliver_envelopes(w.oracle, w.factory.address) == []
    assert [r.record.index for r in read_bank_records(w.credit, bytes(w.bank_a.key))] == [0]


def test_consent_openings_registered_only_when_on_chain(world: World) -> None:
    """Issue 14: a factory that granted on chain itself registers the opening (bank and salt) over its
    signed route; the service keeps it only when the chain holds that id as the caller's grant, and
    refuses, storing nothing, an opening of no consent, another party's, or a malformed one."""
    w = world
    url = "/v1/consents/openings"
    from ledger_service.store.models import ConsentOpeningRow

    def kept() -> int:
        with Session(w.ledger.engine) as s:
            return len(s.exec(select(ConsentOpeningRow)).all())

    never = {"bank": w.bank_a.address, "salt": "0x" + "11" * 32}
    assert w.error(w.client.post(url, json=never, headers=w.h(w.factory))) == (
        400,
        "finance.consent.not_on_chain",
    )
    bad = {"bank": w.bank_a.address, "salt": "0x1234"}
    assert w.error(w.client.post(url, json=bad, headers=w.h(w.factory))) == (400, "finance.bad_consent")
    itself = {"bank": w.factory.address, "salt": "0x" + "11" * 32}
    assert w.error(w.client.post(url, json=itself, headers=w.h(w.factory))) == (400, "finance.bad_consent")
    assert w.client.post(url, json=never).status_code == 401
    assert kept() == 0
    # the factory's real consent: the bank cannot register it as its own (the id is the factory's)
    grant = w.credit.grant_consent(w.factory, w.bank_a.address, expires_at=w.chain_now() + 3600)
    body = {"bank": w.bank_a.address, "salt": "0x" + grant.opening.salt.hex()}
    assert w.error(w.client.post(url, json=body, headers=w.h(w.bank_a))) == (400, "finance.bad_consent")
    assert kept() == 0
    # until registered, the service does not know whom the id is for: the bank is refused
    credit_url = f"/v1/bank/factories/{w.factory.address}/credit"
    assert w.error(w.client.get(credit_url, headers=w.h(w.bank_a))) == (403, "finance.no_consent")
    r = w.client.get(f"/v1/factories/{w.factory.address}/consents", headers=w.h(w.factory))
    assert [(c["consent_id"], c["bank"], c["state"]) for c in r.json()["consents"]] == [
        (grant.opening.consent_id_hex, None, "standing")
    ]
    r = w.client.post(url, json=body, headers=w.h(w.factory))
    assert r.status_code == 200 and r.json()["consent"]["standing"] is True, r.text
    assert kept() == 1
    assert (
        w.client.post(url, json=body, headers=w.h(w.factory)).status_code == 200 and kept() == 1
    )  # idempotent
    assert w.client.get(credit_url, headers=w.h(w.bank_a)).status_code == 200
    # bank B holds no opening of that id: nothing
    assert w.error(w.client.get(credit_url, headers=w.h(w.bank_b))) == (403, "finance.no_consent")
