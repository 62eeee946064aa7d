"""The single-submit path (ledger_service/ingest/single.py, issue 17.3): one reading checked in-process (in
the verifier thread) and committed by the group writer, under the device rules exactly as a batch is.

Submissions go through the served app (fast lane) over ASGI, many at once on one event loop; the service
is started by a TestClient around them. The pipeline's threaded path is watched: a reading of an enrolled
device never takes it.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from support import TestConsortium, now_ms, stored

from device_attestation.sdk import DeviceSigner
from ledger_service.api import create_app
from ledger_service.ingest import single
from ledger_service.ingest import verifier as verifier_module
from ledger_service.ingest.committer import Committer
from ledger_service.ingest.pipeline import IngestPipeline
from ledger_service.service import LedgerService
from ledger_service.store.models import DeviceHeadRow, EquivocationRow

SubmitCalls = list[int]


@pytest.fixture
def app_client(ledger: LedgerService) -> Iterator[TestClient]:
    """The served app, its service started (the writer running) for the test's duration."""
    with TestClient(create_app(service=ledger)) as c:
        yield c


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> SubmitCalls:
    """The sizes of the submissions that took the pipeline's threaded path."""
    calls: SubmitCalls = []
    original = IngestPipeline.submit

    def spy(self: IngestPipeline, objs: Any, *, source: str) -> Any:
        calls.append(len(objs))
        return original(self, objs, source=source)

    monkeypatch.setattr(IngestPipeline, "submit", spy)
    return calls


def post_all(client: TestClient, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST each body as its own single submission, all at once on one event loop."""

    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ledger") as c:
            return list(await asyncio.gather(*(c.post("/v1/readings", json=b) for b in bodies)))

    return asyncio.run(run())


def head(ledger: LedgerService, device_id: str) -> tuple[int, int, int, int] | None:
    """(last_seq, readings, gaps, missing) of a device, None when it has no head."""
    t = DeviceHeadRow.__table__.c  # type: ignore[attr-defined]
    with ledger.engine.connect() as conn:
        row = conn.execute(
            select(t.last_seq, t.readings, t.gaps, t.missing).where(t.device_id == device_id)
        ).first()
    return None if row is None else (row[0], row[1], row[2], row[3])


def test_concurrent_consecutive_seqs_of_one_device_are_all_accepted(
    app_client: TestClient, ledger: LedgerService, consortium: TestConsortium, threaded: SubmitCalls
) -> None:
    """Seqs 1..30 of one device sent at once in a shuffled order: every one accepted, in one or a few
    group transactions; those that arrive after a higher seq fill its gap; no gap is left."""
    dev = consortium.enroll("SN-SINGLE-SEQ")
    ts = now_ms() - 60_000
    subs = [dev.sign({"temp_c": 20.0 + k}, ts_ms=ts + k).to_json_obj() for k in range(30)]
    order = list(range(30))
    random.Random(7).shuffle(order)
    commits = ledger.pipeline.committer.commits
    answers = post_all(app_client, [subs[i] for i in order])
    assert [r.status_code for r in answers] == [201] * 30, [r.text for r in answers]
    assert sorted(r.json()["seq"] for r in answers) == list(range(1, 31))
    assert head(ledger, dev.device_id) == (30, 30, head(ledger, dev.device_id)[2], 0)  # type: ignore[index]
    assert stored(ledger)["readings"] == 30
    assert ledger.pipeline.committer.commits - commits < 30  # grouped: fewer transactions than submits
    assert threaded == []  # none took the thread-and-worker path
    assert ledger.pipeline.accepted == 30


def test_resubmission_returns_the_same_receipt_and_stores_once(
    app_client: TestClient, ledger: LedgerService, consortium: TestConsortium, threaded: SubmitCalls
) -> None:
    """The same reading sent five times at once, then again alone, and its gap-reporting receipt kept."""
    dev = consortium.enroll("SN-SINGLE-IDEM")
    ts = now_ms() - 60_000
    skipping = DeviceSigner(device_id=dev.device_id, key=dev.key, domain=dev.domain, start_seq=3)
    sub = skipping.sign({"temp_c": 21.5}, ts_ms=ts).to_json_obj()  # seq 3: seqs 1 and 2 skipped
    answers = post_all(app_client, [sub] * 5)
    assert {r.status_code for r in answers} == {201}
    receipts = {r.content for r in answers}
    assert len(receipts) == 1, receipts
    again = app_client.post("/v1/readings", json=sub)
    assert again.status_code == 201 and again.content in receipts
    assert again.json()["gap"] == [1, 2] and again.json()["seq"] == 3
    assert stored(ledger)["readings"] == 1
    assert head(ledger, dev.device_id) == (3, 1, 1, 2)
    assert threaded == []


def test_bad_signature_is_refused_typed_and_stores_nothing(
    app_client: TestClient, ledger: LedgerService, consortium: TestConsortium, threaded: SubmitCalls
) -> None:
    dev = consortium.enroll("SN-SINGLE-BAD")
    good = dev.sign({"temp_c": 20.0}, ts_ms=now_ms() - 60_000).to_json_obj()
    other = consortium.enroll("SN-SINGLE-OTHER")
    foreign = other.sign({"temp_c": 20.0}, ts_ms=now_ms() - 60_000).to_json_obj()
    before = stored(ledger)
    forged = [
        {**good, "signature": "0x" + "11" * 64},  # not a signature of this reading
        {**good, "signature": foreign["signature"]},  # another device's signature
        {**good, "reading": {**good["reading"], "metrics": {"temp_c": 99.0}}},  # the reading altered
    ]
    answers = post_all(app_client, forged)
    for r in answers:
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"].startswith("signature."), r.text
    assert stored(ledger) == before
    assert head(ledger, dev.device_id) is None
    assert ledger.pipeline.rejections["signature.bad"] >= 1
    assert threaded == []
    # the genuine reading is still accepted afterwards, as seq 1
    ok = app_client.post("/v1/readings", json=good)
    assert ok.status_code == 201 and ok.json()["seq"] == 1


def test_equivocation_is_refused_and_recorded_once(
    app_client: TestClient, ledger: LedgerService, consortium: TestConsortium, threaded: SubmitCalls
) -> None:
    """Two different readings with seq 1 sent at once: one is accepted, the other refused as equivocation
    and kept as evidence; sending the refused one again adds no second piece of evidence."""
    dev = consortium.enroll("SN-SINGLE-EQ")
    ts = now_ms() - 60_000
    one = dev.sign({"temp_c": 20.0}, ts_ms=ts).to_json_obj()
    twin = DeviceSigner(device_id=dev.device_id, key=dev.key, domain=dev.domain, start_seq=1)
    two = twin.sign({"temp_c": 30.0}, ts_ms=ts + 1).to_json_obj()
    answers = post_all(app_client, [one, two])
    assert sorted(r.status_code for r in answers) == [201, 409]
    refused = next(i for i, r in enumerate(answers) if r.status_code == 409)
    assert answers[refused].json()["error"]["code"] == "reading.equivocation"
    again = app_client.post("/v1/readings", json=[one, two][refused])
    assert again.status_code == 409
    t = EquivocationRow.__table__.c  # type: ignore[attr-defined]
    with ledger.engine.connect() as conn:
        evidence = conn.execute(select(t.seq).where(t.device_id == dev.device_id)).all()
    assert [tuple(e) for e in evidence] == [(1,)]
    assert stored(ledger)["readings"] == 1
    assert threaded == []


def test_a_failed_commit_acknowledges_nothing(
    app_client: TestClient,
    ledger: LedgerService,
    consortium: TestConsortium,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database failing under a group: every submission in it answered 503 store.unavailable, nothing
    stored; once it is back, the same readings are accepted."""
    dev = consortium.enroll("SN-SINGLE-DOWN")
    ts = now_ms() - 60_000
    subs = [dev.sign({"temp_c": 20.0 + k}, ts_ms=ts + k).to_json_obj() for k in range(5)]

    def down(self: Committer, flat: Any, *, look_up_all: bool = False) -> Any:
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    with monkeypatch.context() as m:
        m.setattr(Committer, "_write", down)
        answers = post_all(app_client, subs)
    assert {r.status_code for r in answers} == {503}
    assert {r.json()["error"]["code"] for r in answers} == {"store.unavailable"}
    assert stored(ledger)["readings"] == 0
    answers = post_all(app_client, subs)
    assert {r.status_code for r in answers} == {201}
    assert stored(ledger)["readings"] == 5


def test_a_cancelled_wait_leaves_the_writer_working(
    app_client: TestClient, ledger: LedgerService, consortium: TestConsortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A submission whose waiter is cancelled while its group commits (a client gone, a shutdown) is still
    committed, and the writer goes on answering the next ones."""
    dev = consortium.enroll("SN-SINGLE-CANCEL")
    ts = now_ms() - 60_000
    first, second = (dev.sign({"temp_c": 20.0 + k}, ts_ms=ts + k).to_json_obj() for k in range(2))

    enqueued: list[int] = []
    original = Committer.enqueue

    def spy(self: Committer, candidates: Any) -> Any:
        enqueued.append(len(candidates))
        return original(self, candidates)

    monkeypatch.setattr(Committer, "enqueue", spy)
    # the writer holds the first group until the waiter is cancelled (a fast commit could answer it first)
    gate = threading.Event()
    process = Committer._process

    def held(self: Committer, jobs: Any) -> None:
        assert gate.wait(30), "the waiter was not cancelled"
        process(self, jobs)

    monkeypatch.setattr(Committer, "_process", held)

    async def run() -> None:
        task = asyncio.create_task(single.submit_one(ledger.pipeline, first, source="http"))
        while not enqueued:  # handed to the writer: cancel while it commits
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.set()
        result = await single.submit_one(ledger.pipeline, second, source="http")
        assert result.receipt is not None and result.receipt.seq == 2

    asyncio.run(run())
    again = app_client.post("/v1/readings", json=first)  # committed all the same: the same receipt
    assert again.status_code == 201 and again.json()["seq"] == 1
    assert stored(ledger)["readings"] == 2


def test_unknown_device_and_registry_refresh(
    app_client: TestClient,
    ledger: LedgerService,
    consortium: TestConsortium,
    threaded: SubmitCalls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a refresh interval: a device enrolled after the mirror's last look is found (the pipeline's
    path asks the chain), then its next readings take the in-process path; a device nobody enrolled is
    refused as unknown."""
    monkeypatch.setattr(
        ledger.pipeline,
        "settings",
        ledger.pipeline.settings.model_copy(update={"registry_refresh_seconds": 30}),
    )
    ts = now_ms() - 60_000
    early = consortium.enroll("SN-SINGLE-EARLY")
    r = app_client.post("/v1/readings", json=early.sign({"temp_c": 1.0}, ts_ms=ts).to_json_obj())
    assert r.status_code == 201 and threaded == []  # the first submission refreshed the mirror
    dev = consortium.enroll("SN-SINGLE-LATE")  # after that refresh: not in the mirror yet
    subs = [dev.sign({"temp_c": 20.0 + k}, ts_ms=ts + k).to_json_obj() for k in range(3)]
    r = app_client.post("/v1/readings", json=subs[0])
    assert r.status_code == 201, r.text
    assert threaded == [1]  # the pipeline decided (its lookup refreshed the mirror)
    answers = post_all(app_client, subs[1:])
    assert [a.status_code for a in answers] == [201, 201]
    assert threaded == [1]
    nobody = {**subs[0], "reading": {**subs[0]["reading"], "device_id": "SN-NOBODY-AT-ALL"}}
    r = app_client.post("/v1/readings", json=nobody)
    assert r.status_code == 422 and r.json()["error"]["code"] == "device.unknown"


def test_checks_run_in_the_verifier_thread_and_its_failure_answers_503(
    app_client: TestClient,
    ledger: LedgerService,
    consortium: TestConsortium,
    threaded: SubmitCalls,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The signatures are verified in the verifier thread, not on the event loop; when that thread's
    check fails, every submission of the job is answered 503 ``ingest.unavailable`` and nothing is
    stored; once it works again the same readings are accepted."""
    dev = consortium.enroll("SN-SINGLE-VERIFIER")
    ts = now_ms() - 60_000
    subs = [dev.sign({"temp_c": 20.0 + k}, ts_ms=ts + k).to_json_obj() for k in range(4)]
    real = verifier_module.check_chunk
    threads: list[str] = []

    def spy(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args)

    def broken(*args: Any) -> Any:
        raise ValueError("a bug in the checks")

    with monkeypatch.context() as m:
        m.setattr(verifier_module, "check_chunk", broken)
        answers = post_all(app_client, subs)
    assert {r.status_code for r in answers} == {503}, [r.text for r in answers]
    assert {r.json()["error"]["code"] for r in answers} == {"ingest.unavailable"}
    assert stored(ledger)["readings"] == 0
    monkeypatch.setattr(verifier_module, "check_chunk", spy)
    answers = post_all(app_client, subs)
    assert [r.status_code for r in answers] == [201] * 4
    assert sorted(r.json()["seq"] for r in answers) == [1, 2, 3, 4]
    assert threads and set(threads) == {"supet-verifier"}
    assert stored(ledger)["readings"] == 4
    assert threaded == []
