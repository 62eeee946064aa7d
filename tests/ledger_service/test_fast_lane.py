"""The fast lane (ledger_service/api/fast_lane.py, issue 17.3) answers exactly as the app's routes do.

Every request is sent to two apps on the same service: the served one (fast lane on) and one without
it (every request through FastAPI's routes, the guard and the exception handlers). Status, body and
headers must be equal (the request id is fixed), for granted bundles and for every refusal on the way:
no credentials, a bad or revoked token, another party, an unknown, malformed or pending reading, a
body over the limit. The lane is seen to answer the granted ones itself, and to leave the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from reads import token
from sqlalchemy import text
from sqlalchemy.pool import QueuePool
from sqlmodel import Session, col, select
from support import TestConsortium

from contracts.chain import dev_accounts
from device_attestation.sdk import DeviceSigner, Submission
from ledger_service.api import create_app
from ledger_service.api.fast_lane import FastLane
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import BatchRow, RevokedTokenRow

RID = {"X-Request-ID": "fast-lane-test-0001"}


@pytest.fixture
def pair(ledger: LedgerService) -> Iterator[tuple[TestClient, TestClient]]:
    """The served app (fast lane) and the same app without the lane, on one service."""
    with (
        TestClient(create_app(service=ledger)) as fast,
        TestClient(create_app(service=ledger, fast_lane=False)) as slow,
    ):
        yield fast, slow


@pytest.fixture
def answered(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether the fast lane answered each proof request it looked at (True) or left it (False)."""
    seen: list[bool] = []
    original = FastLane._proof

    async def spy(self: FastLane, *args: Any) -> bool:
        done = await original(self, *args)
        seen.append(done)
        return done

    monkeypatch.setattr(FastLane, "_proof", spy)
    return seen


def _world(ledger: LedgerService, client: TestClient) -> tuple[TestConsortium, list[Submission], Submission]:
    """Three anchored readings of one device, and a fourth stored but not anchored."""
    consortium = TestConsortium(ledger.chain, ledger.deployment)
    dev = consortium.enroll("SN-FAST-1")
    ts = int(ledger.chain.w3.eth.get_block("latest")["timestamp"]) * 1000 - 30_000
    subs = [dev.sign({"temp_c": 20.0 + k}, ts_ms=ts + k) for k in range(4)]
    r = client.post("/v1/readings", json={"readings": [s.to_json_obj() for s in subs[:3]]})
    assert r.status_code == 200 and r.json()["accepted"] == 3, r.text
    ledger.anchoring.flush(timeout=30)
    r = client.post("/v1/readings", json=subs[3].to_json_obj())
    assert r.status_code == 201, r.text
    return consortium, subs[:3], subs[3]


def _same(
    fast: TestClient,
    slow: TestClient,
    path: str,
    headers: dict[str, str],
    method: str = "GET",
    content: bytes | None = None,
) -> int:
    """Send the request to both apps; assert equal answers; the status."""
    a = fast.request(method, path, headers={**RID, **headers}, content=content)
    b = slow.request(method, path, headers={**RID, **headers}, content=content)
    assert (a.status_code, a.content) == (b.status_code, b.content), (a.text, b.text)
    assert a.headers.items() == b.headers.items()
    return a.status_code


def test_granted_bundles_and_healthz_are_the_apps_answers(
    ledger: LedgerService, pair: tuple[TestClient, TestClient], answered: list[bool]
) -> None:
    fast, slow = pair
    consortium, anchored, _ = _world(ledger, fast)
    owner = {"Authorization": f"Bearer {token(fast, consortium.factory)}"}
    for sub in anchored:
        assert _same(fast, slow, f"/v1/readings/0x{sub.digest.hex()}/proof", owner) == 200
    assert answered == [True] * len(anchored)
    assert _same(fast, slow, "/healthz", {}) == 200
    metrics = fast.get("/metrics").text
    assert 'route="/v1/readings/{digest}/proof"' in metrics and 'route="/healthz"' in metrics


def test_every_refusal_is_left_to_the_app(
    ledger: LedgerService, pair: tuple[TestClient, TestClient], answered: list[bool]
) -> None:
    fast, slow = pair
    consortium, anchored, pending = _world(ledger, fast)
    path = f"/v1/readings/0x{anchored[0].digest.hex()}/proof"
    owner_token = token(fast, consortium.factory)
    owner = {"Authorization": f"Bearer {owner_token}"}
    stranger = {"Authorization": f"Bearer {token(fast, dev_accounts(3)[2])}"}
    cases = [
        (path, {}, 401),  # nobody signed the request
        (path, {"Authorization": "Bearer not-a-token"}, 401),
        (path, {"Authorization": owner["Authorization"][:-2] + "xx"}, 401),  # altered signature
        (path, stranger, 403),  # a party that is not the device's owner
        (f"/v1/readings/0x{'ab' * 32}/proof", owner, 404),  # no such reading
        ("/v1/readings/0x1234/proof", owner, 404),  # not a digest
        (f"/v1/readings/0x{pending.digest.hex()}/proof", owner, 404),  # stored, not anchored
    ]
    for p, headers, status in cases:
        assert _same(fast, slow, p, headers) == status, p
    assert answered == [False] * len(cases)
    # left to the app: other credentials (by their headers), a query string and another method (unseen)
    answered.clear()
    assert _same(fast, slow, path, {"Authorization": f"Basic {owner_token}"}) == 401
    assert _same(fast, slow, path, {**owner, "X-Supet-Nonce": "n" * 16}) == 401
    assert _same(fast, slow, path + "?x=1", owner) == 200
    assert _same(fast, slow, path, owner, method="HEAD") >= 400
    assert answered == [False, False]
    # a body over the limit is refused before the lane, as before any route
    big = {**owner, "Content-Type": "application/json"}
    assert _same(fast, slow, path, big, content=b"[" + b"1," * 40_000 + b"1]") == 413
    # a signed-out token is refused from the next request on, by both
    assert fast.post("/v1/auth/logout", headers=owner).status_code < 300
    answered.clear()
    assert _same(fast, slow, path, owner) == 401
    assert answered == [False]


def test_single_submits_are_answered_as_the_route_answers_them(
    ledger: LedgerService, pair: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each submission goes to the lane's app first, then to the app without it: the second sees the
    first's effect, as a resend would (the same receipt; the same refusal)."""
    fast, slow = pair
    lane: list[bool] = []
    original = FastLane._submit

    async def spy(self: FastLane, *args: Any) -> None:
        lane.append(True)
        await original(self, *args)

    monkeypatch.setattr(FastLane, "_submit", spy)
    consortium = TestConsortium(ledger.chain, ledger.deployment)
    dev = consortium.enroll("SN-FAST-SUB")
    ts = int(ledger.chain.w3.eth.get_block("latest")["timestamp"]) * 1000 - 30_000
    first = dev.sign({"temp_c": 20.0}, ts_ms=ts)
    again = DeviceSigner(device_id=dev.device_id, key=dev.key, domain=dev.domain, start_seq=1)
    twin = again.sign({"temp_c": 99.0}, ts_ms=ts + 1)  # seq 1 again, another reading
    stranger = consortium.enroll("SN-FAST-OTHER")
    json_ct = {"Content-Type": "application/json"}

    def body(obj: Any) -> bytes:
        return orjson.dumps(obj)

    cases = [
        (body(first.to_json_obj()), 201),  # accepted; the resend answers the same receipt
        (body(twin.to_json_obj()), 409),  # the same (device, seq), another digest: refused as equivocation
        (body({**first.to_json_obj(), "signature": "0x" + "11" * 64}), 422),  # a bad signature
        (body({"reading": {"device_id": "SN-NOBODY"}, "scheme": "p256", "signature": "0x00"}), 422),
        (body({}), 422),
    ]
    for content, status in cases:
        got = _same(fast, slow, "/v1/readings", json_ct, method="POST", content=content)
        assert got == status, content
    assert len(lane) == len(cases)
    # batches, lists, forms and bodies refused by the limits go to the route, as before
    lane.clear()
    later = stranger.sign({"temp_c": 1.0}, ts_ms=ts)
    assert _same(fast, slow, "/v1/readings", json_ct, method="POST", content=b'{"readings": []}') == 200
    assert _same(fast, slow, "/v1/readings", json_ct, method="POST", content=b"[1, 2]") == 400
    assert _same(fast, slow, "/v1/readings", json_ct, method="POST", content=b"{bad json") == 400
    assert (
        _same(fast, slow, "/v1/readings?x=1", json_ct, method="POST", content=body(later.to_json_obj()))
        == 201
    )
    assert lane == []
    metrics = fast.get("/metrics").text
    assert 'method="POST",route="/v1/readings",status="201"' in metrics


def test_a_signed_out_token_is_refused_at_once_after_the_lane_answered_it_from_memory(
    ledger: LedgerService, pair: tuple[TestClient, TestClient], answered: list[bool]
) -> None:
    """The lane answers the owner's proofs from memory (the token known not signed out, on SQLite); a
    sign-out, on this app or on another app on the same service, is refused from the next request."""
    fast, slow = pair
    consortium, anchored, _ = _world(ledger, fast)
    paths = [f"/v1/readings/0x{sub.digest.hex()}/proof" for sub in anchored]
    first, second = token(fast, consortium.factory), token(fast, consortium.factory)
    for tok in (first, second):
        for p in paths:
            assert _same(fast, slow, p, {"Authorization": f"Bearer {tok}"}) == 200
    assert answered == [True] * 2 * len(paths)
    answered.clear()
    # signed out through the app without the lane: the lane's app refuses it too, at once
    assert slow.post("/v1/auth/logout", headers={"Authorization": f"Bearer {first}"}).status_code == 204
    r = fast.get(paths[0], headers={"Authorization": f"Bearer {first}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth.revoked"
    assert answered == [False]
    assert _same(fast, slow, paths[1], {"Authorization": f"Bearer {first}"}) == 401
    # the other session stands, still answered by the lane
    answered.clear()
    assert _same(fast, slow, paths[2], {"Authorization": f"Bearer {second}"}) == 200
    assert answered == [True]


def test_a_kept_bundle_is_never_served_for_a_batch_a_reorg_took_back(
    ledger: LedgerService, pair: tuple[TestClient, TestClient], answered: list[bool]
) -> None:
    """Bundles are kept serialized, but the reading's batch is read on every request: a batch a reorg
    sends back to `closed` is refused at once (404 pending), and once anchored again in another
    transaction the bundle names that transaction."""
    fast, slow = pair
    consortium, anchored, _ = _world(ledger, fast)
    owner = {"Authorization": f"Bearer {token(fast, consortium.factory)}"}
    path = f"/v1/readings/0x{anchored[0].digest.hex()}/proof"
    assert _same(fast, slow, path, owner) == 200
    before = fast.get(path, headers=owner).json()
    with Session(ledger.engine) as s:
        batch = s.exec(select(BatchRow).where(col(BatchRow.chain_batch_id) == before["batch_id"])).one()
        kept = batch.model_dump()
        batch.status, batch.tx_hash, batch.chain_batch_id = BatchStatus.CLOSED, None, None
        s.add(batch)
        s.commit()
    answered.clear()
    assert _same(fast, slow, path, owner) == 404
    assert fast.get(path, headers=owner).json()["error"]["code"] == "proof.pending"
    assert answered == [False, False]
    other_tx = "0x" + "ab" * 32
    with Session(ledger.engine) as s:
        batch = s.exec(select(BatchRow).where(col(BatchRow.id) == kept["id"])).one()
        batch.status, batch.tx_hash, batch.chain_batch_id = (
            BatchStatus.ANCHORED,
            other_tx,
            kept["chain_batch_id"],
        )
        s.add(batch)
        s.commit()
    assert _same(fast, slow, path, owner) == 200
    after = fast.get(path, headers=owner).json()
    assert after["anchor_tx"] == other_tx and after == {**before, "anchor_tx": other_tx}


def test_another_instances_sign_out_is_refused_at_once_on_a_shared_database(
    ledger: LedgerService, pair: tuple[TestClient, TestClient], answered: list[bool]
) -> None:
    """Where several instances share the database (PostgreSQL), the lane reads the token's revocation
    with the reading on every request (one statement): a sign-out another instance recorded is refused
    from the next request. The pooled connections it read on go back to the pool as they came (not in
    autocommit: a transaction begun on them later is still one)."""
    if ledger.engine.dialect.name != "postgresql":
        pytest.skip("on a SQLite file this instance is the only writer: sign-outs pass through it")
    fast, slow = pair
    consortium, anchored, _ = _world(ledger, fast)
    tok = token(fast, consortium.factory)
    owner = {"Authorization": f"Bearer {tok}"}
    path = f"/v1/readings/0x{anchored[0].digest.hex()}/proof"
    assert _same(fast, slow, path, owner) == 200
    assert answered == [True]
    party = fast.app.state.auth.authenticator.token_party(tok)  # type: ignore[attr-defined]
    with Session(ledger.engine) as s:  # another instance's sign-out: a row, nothing in this process
        s.add(
            RevokedTokenRow(
                jti=party.credential_id, party=party.address, expires_ms=2**62, revoked_ms=1_700_000_000_000
            )
        )
        s.commit()
    answered.clear()
    r = fast.get(path, headers=owner)
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth.revoked"
    assert answered == [False]
    assert _same(fast, slow, path, owner) == 401
    pool = ledger.engine.pool
    assert isinstance(pool, QueuePool)
    held = [ledger.engine.raw_connection() for _ in range(pool.checkedin())]
    try:
        assert held and all(c.dbapi_connection.autocommit is False for c in held)  # type: ignore[union-attr]
    finally:
        for c in held:
            c.close()


def test_a_lane_connection_the_server_ended_is_dropped_and_the_app_answers(
    ledger: LedgerService, pair: tuple[TestClient, TestClient], answered: list[bool]
) -> None:
    """The lane's own PostgreSQL connections are outside the engine's pool (no check at checkout): one
    the server ended fails its statement, is dropped, and the app answers that request (its pool
    replaces its own connections); the next request is the lane's again, on a new connection."""
    if ledger.engine.dialect.name != "postgresql":
        pytest.skip("the lane's own connections are PostgreSQL's")
    fast, _ = pair
    consortium, anchored, _ = _world(ledger, fast)
    owner = {"Authorization": f"Bearer {token(fast, consortium.factory)}"}
    path = f"/v1/readings/0x{anchored[0].digest.hex()}/proof"
    expected = fast.get(path, headers=owner).content
    assert answered == [True]
    with ledger.engine.connect() as conn:  # a server restart, as far as every other connection can tell
        ended = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t"
            )
        ).scalar()
    assert ended
    answered.clear()
    for _ in range(2):
        r = fast.get(path, headers=owner)
        assert r.status_code == 200 and r.content == expected, r.text
    assert answered == [False, True]
