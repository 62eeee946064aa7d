"""Enrollment state shared through the database (issue 17): challenges and prepared enrollments.

Two service instances on one PostgreSQL database run side by side; on SQLite (one instance at a time)
"the other instance" is the service restarted on the same file. A challenge issued by one is answered
on the other, an enrollment prepared on one is relayed and confirmed on the other (with the check
against the certificate verified when it was prepared), a challenge is redeemed once over every
instance, the per-party limit counts every instance's challenges, and expired challenges are purged.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_enrollment import ask_challenge, certified_device, possession_for, prepare, relay
from embedded_pool import deployed_embedded
from fastapi.testclient import TestClient
from reads import bearer
from sqlalchemy import func, select
from support import TestConsortium

from contracts.chain import dev_accounts
from device_attestation.certificates import ca_key_hash, certificate_fingerprint
from device_attestation.sdk import DeviceSigner
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.enrollment.challenges import StoredChallengeBook
from ledger_service.enrollment.errors import EnrollmentRefused, TooManyChallenges
from ledger_service.service import LedgerService
from ledger_service.store.engine import make_engine
from ledger_service.store.models import EnrollmentChallengeRow, PreparedEnrollmentRow

AUDIENCE = "eip155:31337:0x5FbDB2315678afecb367f032d93F642f64180aa3"
PARTY, OTHER = dev_accounts(3)[1].address, dev_accounts(3)[2].address


class Instances:
    """Service instances on one database, each answering through its own ``TestClient``.

    PostgreSQL: two services run at once. SQLite: one at a time; turning to the other instance stops
    the running one and starts a new service on the same file (a restart: nothing kept in memory).
    """

    def __init__(self, db_url: str, data_dir: Path, chain: Any, deployment: Any) -> None:
        self.db_url, self.data_dir, self.chain, self.deployment = db_url, data_dir, chain, deployment
        self.shared = not db_url.startswith("sqlite")
        self.running: dict[str, tuple[LedgerService, TestClient]] = {}
        self.starts = 0

    def on(self, name: str) -> TestClient:
        if name in self.running:
            return self.running[name][1]
        if not self.shared:
            self.close()  # SQLite: one instance at a time, restarted
        settings = Settings(
            database_url=self.db_url,
            data_dir=self.data_dir,  # one token secret: a token from one instance works on the other
            verify_workers=0,
            anchoring=False,
            registry_refresh_seconds=0,
        )
        service = LedgerService.build(settings, chain=self.chain, deployment=self.deployment)
        client = TestClient(create_app(service=service))
        client.__enter__()
        self.starts += 1
        self.running[name] = (service, client)
        return client

    def service(self, name: str) -> LedgerService:
        self.on(name)
        return self.running[name][0]

    def close(self) -> None:
        for _, client in self.running.values():
            client.__exit__(None, None, None)
        self.running.clear()


@pytest.fixture
def instances(db_url: str, tmp_path: Path) -> Iterator[tuple[Instances, TestConsortium]]:
    with deployed_embedded("DeviceRegistry") as (chain, deployment):
        consortium = TestConsortium(chain, deployment)
        pair = Instances(db_url, tmp_path, chain, deployment)
        try:
            yield pair, consortium
        finally:
            pair.close()


def code(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


def test_enrollment_steps_on_different_instances(instances: tuple[Instances, TestConsortium]) -> None:
    pair, consortium = instances
    factory = consortium.factory
    auth = bearer(pair.on("a"), factory)

    # challenge on A, prepared on B, relayed and confirmed on A: verified where it was prepared
    device = certified_device(consortium.ca_key, consortium.ca_cert, "SN-SHARED-1")
    challenge = ask_challenge(pair.on("a"), auth)
    r = prepare(pair.on("b"), auth, device, challenge, factory.address)
    assert r.status_code == 200, r.text
    prepared = r.json()
    stored = pair.service("b").enrollment.prepared.get(factory.address, "SN-SHARED-1")  # the row, decoded
    assert stored is not None and stored.data == prepared["data"] and stored.fn_name == "enrollP256"
    assert "0x" + stored.args[0].hex() == prepared["device_id_hash"]
    assert {"x": "0x" + stored.args[1].hex(), "y": "0x" + stored.args[2].hex()} == prepared["key"]
    again = prepare(pair.on("a"), auth, device, challenge, factory.address)  # the challenge is spent
    assert code(again) == (422, "pop.unknown_challenge")
    r = relay(pair.on("a"), auth, factory, "SN-SHARED-1", prepared)
    assert r.status_code == 200, r.text
    assert r.json()["verified_here"] is True and r.json()["registry"]["owner"] == factory.address
    assert r.json()["registry"]["cert_fingerprint"] == prepared["cert_fingerprint"]
    assert _rows(pair, PreparedEnrollmentRow) == 0  # confirmed: forgotten everywhere

    # the device's readings are taken by the other instance at once
    signer = DeviceSigner(device_id="SN-SHARED-1", key=device.key, domain=consortium.domain)
    active_from = consortium.registry.device("SN-SHARED-1").active_from_ms
    reading = signer.sign({"temp_c": 20.5}, ts_ms=max(int(time.time() * 1000), active_from))
    r = pair.on("b").post("/v1/readings", json=reading.to_json_obj())
    assert r.status_code == 201, r.text
    if not pair.shared:
        assert pair.starts >= 4  # every switch above was a restart


def test_confirm_on_another_instance_checks_the_prepared_certificate(
    instances: tuple[Instances, TestConsortium],
) -> None:
    """Prepared on A with one certificate; the party then sends an enrollment of the same device with another
    certificate itself: B, confirming, finds the prepared enrollment and refuses the mismatch."""
    pair, consortium = instances
    factory = consortium.factory
    auth = bearer(pair.on("a"), factory)
    device = certified_device(consortium.ca_key, consortium.ca_cert, "SN-SHARED-2")
    challenge = ask_challenge(pair.on("a"), auth)
    assert prepare(pair.on("a"), auth, device, challenge, factory.address).status_code == 200
    other = certified_device(consortium.ca_key, consortium.ca_cert, "SN-SHARED-2", key=device.key)
    assert certificate_fingerprint(other.cert) != certificate_fingerprint(device.cert)
    sent = consortium.registry.enroll_p256(
        factory,
        device_id="SN-SHARED-2",
        x=device.key.public_key.x,
        y=device.key.public_key.y,
        cert_fingerprint=certificate_fingerprint(other.cert),
        ca_key_hash=ca_key_hash(consortium.ca_cert),
        active_from_ms=0,
        birth_signature=other.birth.signature,
        possession_signature=bytes.fromhex(possession_for(device, factory.address, challenge)[2:]),
    )
    r = pair.on("b").post("/v1/devices/SN-SHARED-2/confirm", headers=auth, json={"tx_hash": sent.tx_hash})
    assert code(r) == (422, "enroll.mismatch"), r.text
    assert "another certificate than the one verified here" in r.json()["error"]["message"]


def test_relay_of_a_lapsed_preparation_is_refused_everywhere(
    instances: tuple[Instances, TestConsortium],
) -> None:
    pair, consortium = instances
    factory = consortium.factory
    auth = bearer(pair.on("a"), factory)
    device = certified_device(consortium.ca_key, consortium.ca_cert, "SN-SHARED-3", "secp256k1")
    prepared = prepare(pair.on("a"), auth, device, ask_challenge(pair.on("a"), auth), factory.address).json()
    desk = pair.service("b").enrollment
    real = desk.clock
    desk.clock = lambda: real() + dt.timedelta(minutes=16)  # past PREPARED_TTL
    try:
        assert code(relay(pair.on("b"), auth, factory, "SN-SHARED-3", prepared)) == (
            409,
            "enroll.not_prepared",
        )
    finally:
        desk.clock = real
    assert not consortium.registry.device("SN-SHARED-3").enrolled


# ------------------------------------------------------------------ the book itself, over two engines


def _books(db_url: str, *, max_open: int = 256) -> tuple[StoredChallengeBook, StoredChallengeBook]:
    """Two instances' books (an engine each, as two processes have) on one database."""
    max_age = dt.timedelta(minutes=6)
    return (
        StoredChallengeBook(make_engine(db_url), AUDIENCE, max_age=max_age, max_open=max_open),
        StoredChallengeBook(make_engine(db_url), AUDIENCE, max_age=max_age, max_open=max_open),
    )


def test_a_challenge_is_redeemed_once_by_its_party(db_url: str) -> None:
    a, b = _books(db_url)
    now = dt.datetime.now(dt.UTC)
    c = a.issue(now, party=PARTY)
    with pytest.raises(EnrollmentRefused) as e:
        b.redeem(c.nonce, now, party=OTHER)  # another party's challenge: unknown, and not spent
    assert e.value.code == "pop.unknown_challenge"
    got = b.redeem(c.nonce, now, party=PARTY)
    assert (got.nonce, got.issued_at, got.audience) == (c.nonce, c.issued_at, c.audience)
    for book in (a, b):
        with pytest.raises(EnrollmentRefused, match="already used"):
            book.redeem(c.nonce, now, party=PARTY)


def test_concurrent_redemptions_on_two_instances_spend_a_challenge_once(db_url: str) -> None:
    a, b = _books(db_url)
    now = dt.datetime.now(dt.UTC)
    for _ in range(20):
        c = a.issue(now, party=PARTY)
        barrier = threading.Barrier(2)
        outcomes: list[str] = []
        threads = [
            threading.Thread(target=_spend, args=(book, c.nonce, now, barrier, outcomes)) for book in (a, b)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(outcomes) == ["pop.unknown_challenge", "redeemed"]


def _spend(
    book: StoredChallengeBook, nonce: bytes, now: dt.datetime, barrier: threading.Barrier, outcomes: list[str]
) -> None:
    barrier.wait()
    try:
        book.redeem(nonce, now, party=PARTY)
        outcomes.append("redeemed")
    except EnrollmentRefused as e:
        outcomes.append(e.code)


def test_open_challenge_limit_counts_every_instance(db_url: str) -> None:
    a, b = _books(db_url, max_open=6)
    now = dt.datetime.now(dt.UTC)
    for book in (a, a, b, a, b, b):
        book.issue(now, party=PARTY)
    b.issue(now, party=OTHER)  # another party's count is its own
    with pytest.raises(TooManyChallenges, match="holds 6 open challenges"):
        a.issue(now, party=PARTY)
    assert a.open_count(PARTY, now) == b.open_count(PARTY, now) == 6
    one = b.issue(now, party=OTHER)
    a.redeem(one.nonce, now, party=OTHER)  # redeemed: the other party's count drops
    assert a.open_count(OTHER, now) == 1

    # one short of the limit, four requests at once on both instances: exactly one is issued
    for round_ in range(8):
        party = f"0x{round_ + 1:040x}"
        for book in (a, b, a, b, a):
            book.issue(now, party=party)
        outcomes: list[str] = []
        barrier = threading.Barrier(4)
        threads = [
            threading.Thread(target=_ask, args=(book, party, now, barrier, outcomes)) for book in (a, b, a, b)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(outcomes) == ["enroll.too_many_challenges"] * 3 + ["issued"], f"round {round_}"
        assert a.open_count(party, now) == 6


def _ask(
    book: StoredChallengeBook, party: str, now: dt.datetime, barrier: threading.Barrier, outcomes: list[str]
) -> None:
    barrier.wait()
    try:
        book.issue(now, party=party)
        outcomes.append("issued")
    except TooManyChallenges as e:
        outcomes.append(e.code)


def test_expired_challenges_lapse_and_are_purged(db_url: str) -> None:
    a, b = _books(db_url, max_open=2)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    old = [a.issue(now, party=PARTY), b.issue(now, party=PARTY)]
    with pytest.raises(TooManyChallenges):
        a.issue(now, party=PARTY)
    later = now + dt.timedelta(minutes=6, seconds=1)  # past max_age
    with pytest.raises(EnrollmentRefused) as e:
        b.redeem(old[0].nonce, later, party=PARTY)
    assert e.value.code == "pop.unknown_challenge"
    assert b.open_count(PARTY, later) == 0
    fresh = b.issue(later, party=PARTY)  # lapsed ones no longer count; issuing purges them
    assert _count(b, EnrollmentChallengeRow) == 1
    assert a.redeem(fresh.nonce, later, party=PARTY).nonce == fresh.nonce
    at_edge = now + dt.timedelta(minutes=6)  # still open up to max_age
    c = a.issue(at_edge, party=OTHER)
    assert b.redeem(c.nonce, at_edge, party=OTHER).nonce == c.nonce


# ------------------------------------------------------------------ helpers


def _count(book: StoredChallengeBook, table: Any) -> int:
    with book.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table.__table__)).scalar_one())


def _rows(pair: Instances, table: Any) -> int:
    engine = next(iter(pair.running.values()))[0].engine
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table.__table__)).scalar_one())
