"""Re-rating (issue 15): superseding records from newer data, nothing when nothing moved, renewal before
expiry, the grade history with reasons for a consented bank only, claims safe against a chain that goes
down and against a second pass. SQLite and PostgreSQL, on the pooled finance world."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from finance_world import finance_world
from profiles import store_sample_profile
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from contracts.credit import CreditRegistryClient
from contracts.errors import ChainError
from contracts.onboarding import Onboarding
from ledger_service.config import Settings
from ledger_service.credit_desk.consents import register_opening
from ledger_service.credit_desk.desk import FinanceDesk, desk_of
from ledger_service.credit_desk.rerating import CLAIMED, PUBLISHED, Rerater
from ledger_service.credit_desk.rerating_worker import ReratingWorker
from ledger_service.errors import ConfigError
from ledger_service.service import LedgerService
from ledger_service.store.models import CreditOpeningRow, CreditRatingRow

#: The factory's first profile: 30 days, sound figures; and the one after a bad month.
GOOD: dict[str, Any] = dict(days=30, delivered_units=23_500.0, daily_output=())
BAD: dict[str, Any] = dict(
    GOOD, first_pass_yield=0.80, quality=0.82, oee=0.52, otif=0.55, volatility=0.30, inventory_days=25.0
)


class World:
    def __init__(self, ledger: LedgerService, client: TestClient, ob: Onboarding) -> None:
        self.ledger, self.client, self.ob = ledger, client, ob
        self.oracle, self.factory, self.bank_a, self.bank_b, self.stranger = World.parties(ob)
        self.credit = CreditRegistryClient.from_deployment(ledger.chain, ledger.deployment)
        self.tokens: dict[str, str] = {}

    @staticmethod
    def parties(ob: Onboarding) -> tuple[LocalAccount, ...]:
        oracle, factory, bank_a, bank_b = (ob.account(n) for n in ("oracle", "factory", "bank-a", "bank-b"))
        ob.admit(oracle, "analytics-oracle")
        ob.admit(factory, "supplier")
        ob.admit(bank_a, "bank")
        ob.admit(bank_b, "bank")
        return oracle, factory, bank_a, bank_b, ob.account("stranger")

    @property
    def desk(self) -> FinanceDesk:
        return desk_of(self.ledger)

    def rerater(self, **kw: Any) -> Rerater:
        return Rerater(self.desk, self.oracle, **kw)

    def profile(self, **figures: Any) -> str:
        time.sleep(0.003)  # profiles are ordered by their store time (ms)
        return store_sample_profile(self.ledger.engine, self.factory.address, **figures)

    def first_record(self, *, valid_days: int = 90) -> None:
        commitment = self.profile(**GOOD)
        self.desk.publish(self.oracle, self.factory.address, commitment, price=12.5, valid_days=valid_days)

    def consent(self, bank: LocalAccount) -> None:
        now = int(self.ledger.chain.block("latest")["timestamp"])
        grant = self.credit.grant_consent(self.factory, bank.address, expires_at=now + 86_400 * 30)
        register_opening(self.credit, self.ledger.engine, grant.opening)

    def h(self, who: LocalAccount) -> dict[str, str]:
        if who.address not in self.tokens:
            c = self.client
            message = c.post("/v1/auth/challenge", json={"address": who.address}).json()["message"]
            sig = who.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
            r = c.post("/v1/auth/token", json={"message": message, "signature": sig})
            self.tokens[who.address] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[who.address]}"}

    def records(self) -> int:
        return self.credit.record_count(self.factory.address)

    def ratings(self) -> list[CreditRatingRow]:
        with Session(self.ledger.engine) as s:
            return list(s.exec(select(CreditRatingRow)).all())


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    with finance_world("rerating", db_url, World.parties, lambda s, c, ob, _a: World(s, c, ob)) as w:
        yield w


def test_new_data_moving_the_grade_publishes_a_superseding_record_with_its_reason(world: World) -> None:
    w = world
    w.first_record()
    w.consent(w.bank_a)
    first = w.desk.served(w.desk.current_record(w.factory.address))  # type: ignore[arg-type]
    # no newer profile: nothing to do
    (o,) = w.rerater().run().outcomes
    assert (o.action, w.records()) == ("no_new_data", 1)

    w.profile(**BAD)
    (o,) = w.rerater().run().outcomes
    assert o.action == "published" and w.records() == 2, o
    current = w.desk.served(w.desk.current_record(w.factory.address))  # type: ignore[arg-type]
    assert (o.grade_before, o.grade_after) == (first["grade"], current["grade"]) != (first["grade"],) * 2
    assert "First-pass yield 96.0% -> 80.0% (worse" in o.detail and o.detail.startswith(
        f"{first['grade']} -> {current['grade']}"
    )
    (row,) = w.ratings()
    assert (row.status, row.record_index, row.previous_grade) == (PUBLISHED, 1, first["grade_rank"])

    # the reason is nowhere on chain in clear: the publishing transaction carries the commitment only
    tx = w.ledger.chain.w3.eth.get_transaction(o.tx_hash)  # type: ignore[arg-type]
    assert b"First-pass yield" not in bytes(tx["input"]) and b"->" not in bytes(tx["input"])

    # idempotent: the same data again publishes nothing
    (again,) = w.rerater().run().outcomes
    assert (again.action, w.records(), len(w.ratings())) == ("no_new_data", 2, 1)

    # the consented bank reads the history with the reasons
    url = f"/v1/bank/factories/{w.factory.address}/grades"
    r = w.client.get(url, headers=w.h(w.bank_a))
    assert r.status_code == 200, r.text
    grades = r.json()["grades"]
    assert [(g["index"], g["grade"], g["previous_grade"], g["source"]) for g in grades] == [
        (0, first["grade"], None, "oracle"),
        (1, current["grade"], first["grade"], "rerating"),
    ]
    assert grades[1]["changed"] and grades[1]["reason"] == o.detail
    assert {m["feature"] for m in grades[1]["moves"]} >= {"first_pass_yield", "oee"}
    # refused without a standing consent, and for a party that is no bank; both written down
    assert w.client.get(url, headers=w.h(w.bank_b)).json()["error"]["code"] == "finance.no_consent"
    assert w.client.get(url, headers=w.h(w.stranger)).json()["error"]["code"] == "finance.not_a_bank"
    log = w.desk.book.page(w.factory.address, limit=10).entries
    assert (log[0].party, log[0].outcome) == (w.bank_b.address, "finance.no_consent")
    # the portal's bank page shows the history
    w.h(w.bank_a)
    cookie = {"Cookie": f"supet_session={w.tokens[w.bank_a.address]}"}
    page = w.client.get(f"/portal/bank/factories/{w.factory.address}", headers=cookie)
    assert page.status_code == 200 and "First-pass yield 96.0% -&gt; 80.0%" in page.text


def test_nothing_published_when_the_newer_profile_rates_the_same(world: World) -> None:
    w = world
    w.first_record()
    w.profile(**GOOD, sellable_units=23_900.0)  # new data, another commitment, no scored feature moved
    (o,) = w.rerater().run().outcomes
    assert (o.action, w.records(), w.ratings()) == ("unchanged", 1, [])
    assert o.grade_before == o.grade_after


def test_a_record_about_to_expire_is_renewed_once(world: World) -> None:
    w = world
    w.first_record(valid_days=4)
    (o,) = w.rerater().run().outcomes
    assert o.action == "no_new_data"
    w.ledger.chain.warp(int(w.ledger.chain.block("latest")["timestamp"]) + 3 * 86_400)
    w.ledger.chain.transfer_value(w.oracle, w.stranger.address, 1)  # a block at the new time
    (o,) = w.rerater().run().outcomes
    assert o.action == "published" and o.detail.startswith("renewed before expiry") and w.records() == 2
    assert o.grade_before == o.grade_after
    (again,) = w.rerater().run().outcomes
    assert (again.action, w.records()) == ("no_new_data", 2)


def test_chain_down_leaves_nothing_half_done_and_the_next_pass_publishes_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = world
    w.first_record()
    w.profile(**BAD)
    desk = w.desk

    def down(*_a: Any, **_k: Any) -> Any:
        raise ChainError("node unreachable")

    # down before anything is claimed: nothing stored
    with monkeypatch.context() as m:
        m.setattr(desk, "current_record", down)
        (o,) = w.rerater().run().outcomes
    assert o.action == "failed" and w.ratings() == [] and w.records() == 1

    # down while publishing: the claim stays, no record on chain, the bank sees one grade
    with monkeypatch.context() as m:
        m.setattr(desk.credit, "publish_record", down)
        (o,) = w.rerater().run().outcomes
    assert o.action == "failed" and w.records() == 1
    (claim,) = w.ratings()
    assert claim.status == CLAIMED
    # a pass within the settle time leaves the claim to whoever may still be sending it
    (busy,) = w.rerater(settle_s=600).run().outcomes
    assert busy.action == "busy" and w.records() == 1
    # later: the claim never reached the chain, dropped with its opening; the pass publishes once
    (o,) = w.rerater(settle_s=0).run().outcomes
    assert o.action == "published" and w.records() == 2
    (row,) = w.ratings()
    assert row.status == PUBLISHED and row.record_commitment != claim.record_commitment
    with Session(w.ledger.engine) as s:
        assert s.get(CreditOpeningRow, claim.record_commitment) is None
        assert len(s.exec(select(CreditOpeningRow)).all()) == 2
    (again,) = w.rerater(settle_s=0).run().outcomes
    assert (again.action, w.records()) == ("no_new_data", 2)


def test_a_record_is_superseded_by_one_pass_only(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two passes (two instances) rating the same record: the second, running while the first sends, finds
    the claim and publishes nothing; the claim's unique previous record refuses a second claim."""
    w = world
    w.first_record()
    w.profile(**BAD)
    first, second = w.rerater(), w.rerater(settle_s=600)
    send = w.desk.credit.publish_record
    seen: list[str] = []

    def racing(*a: Any, **k: Any) -> Any:
        seen.extend(o.action for o in second.run().outcomes)
        return send(*a, **k)

    monkeypatch.setattr(w.desk.credit, "publish_record", racing)
    (o,) = first.run().outcomes
    assert o.action == "published" and seen == ["busy"] and w.records() == 2
    (row,) = w.ratings()
    twin = CreditRatingRow(**{**row.model_dump(), "record_commitment": "0x" + "ab" * 32})
    with pytest.raises(IntegrityError), Session(w.ledger.engine) as s:
        s.add(twin)
        s.commit()


def test_the_schedule_runs_passes_until_stopped(world: World) -> None:
    w = world
    w.first_record()
    w.profile(**BAD)
    worker = ReratingWorker(lambda: w.rerater(), 0.05)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while worker.passes < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert worker.passes >= 3 and worker.last_error is None
    assert w.records() == 2  # one superseding record, however many passes
    assert worker.last_report is not None and worker.last_report.outcomes[0].action == "no_new_data"


def test_a_schedule_without_the_oracle_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="SUPET_RERATING_ORACLE_KEY"):
        Settings(rerating_interval_seconds=60)
    assert Settings().rerating_interval_seconds == 0  # off unless asked for
