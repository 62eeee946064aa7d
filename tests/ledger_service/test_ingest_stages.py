"""The ingest pipeline's checking threads and its stages (issue 17.3), and the MQTT bridge's use of them:
the next micro-batch checked while the previous one commits, handed to the writer only once that
commit is decided, acknowledged after its own commit, in order."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from mqtt_side import DeviceSide, Mosquitto, make_bridge, started, stored, stored_pairs, uid
from support import TestConsortium, now_ms

from ledger_service.api.errors import http_status
from ledger_service.errors import IngestUnavailable
from ledger_service.ingest import pipeline as pipeline_module
from ledger_service.ingest.pipeline import VERIFY_THREAD, IngestPipeline, ItemResult, Prepared
from ledger_service.ingest.receipts import Outcome
from ledger_service.service import LedgerService

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def threaded(ledger: LedgerService, workers: int = 2) -> IngestPipeline:
    """A pipeline on the service's registry and writer that checks in ``workers`` threads."""
    return IngestPipeline(
        settings=ledger.settings.model_copy(update={"verify_workers": workers}),
        registry=ledger.registry,
        committer=ledger.committer,
        chain_id=ledger.pipeline.chain_id,
        anchor_address=ledger.pipeline.anchor_address,
    )


def mixed_batch(consortium: TestConsortium, n: int) -> tuple[list[Any], list[str | None]]:
    """``n`` good submissions of two devices with a forged one, an unknown device's and a non-submission
    among them; the code each gets (None: accepted)."""
    devs = [consortium.enroll(uid(f"SN-THR{i}"), "p256") for i in range(2)]
    objs: list[Any] = []
    codes: list[str | None] = []
    for i in range(n):
        objs.append(devs[i % 2].sign({"temp_c": float(i)}, ts_ms=now_ms() - 1000).to_json_obj())
        codes.append(None)
    forged = devs[0].sign({"temp_c": -1.0}, ts_ms=now_ms() - 1000).to_json_obj()
    sig = bytearray(bytes.fromhex(forged["signature"][2:]))
    sig[7] ^= 0x01
    forged["signature"] = "0x" + sig.hex()
    objs.insert(n // 2, forged)
    codes.insert(n // 2, "signature.")
    unknown = dict(objs[0], reading=dict(objs[0]["reading"], device_id="SN-NEVER-ENROLLED"))
    objs.insert(3, unknown)
    codes.insert(3, "device.unknown")
    objs.append([1, 2, 3])
    codes.append("")  # refused, whatever the code
    return objs, codes


@SQLITE_ONLY
def test_checking_threads_decide_each_submission_in_order(
    ledger: LedgerService, consortium: TestConsortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.start()
    pipeline = threaded(ledger)
    pipeline.start()
    seen: set[str] = set()
    real = pipeline_module.check_chunk
    together = threading.Barrier(2, timeout=10)  # the two chunks are checked at the same time

    def recording(*args: Any) -> Any:
        seen.add(threading.current_thread().name)
        if len(seen) <= 2 and threading.current_thread().name.startswith(VERIFY_THREAD):
            together.wait()
        return real(*args)

    monkeypatch.setattr(pipeline_module, "check_chunk", recording)
    try:
        objs, codes = mixed_batch(consortium, 40)
        results = pipeline.submit(objs, source="http")
        assert [r.index for r in results] == list(range(len(objs)))
        for r, code in zip(results, codes, strict=True):
            if code is None:
                assert r.accepted, r
            else:
                assert r.code is not None and r.code.startswith(code), (r, code)
        assert stored(ledger) == 40
        # checked in the pipeline's threads (both had a share), not in the calling thread
        assert {name.split("_")[0] for name in seen} == {VERIFY_THREAD} and len(seen) == 2, seen
        # a batch this small is checked in the calling thread
        seen.clear()
        (again,) = pipeline.submit([objs[0]], source="http")
        assert again.accepted and seen == {threading.current_thread().name}
    finally:
        pipeline.stop()


@SQLITE_ONLY
def test_a_failing_check_is_a_typed_error_and_stores_nothing(
    ledger: LedgerService, consortium: TestConsortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.start()
    pipeline = threaded(ledger)
    pipeline.start()
    try:
        objs, _ = mixed_batch(consortium, 20)

        def broken(*args: Any) -> Any:
            raise RuntimeError("a bug in the checks")

        with monkeypatch.context() as m:
            m.setattr(pipeline_module, "check_chunk", broken)
            with pytest.raises(IngestUnavailable) as failed:
                pipeline.submit(objs, source="http")
        assert failed.value.code == "ingest.unavailable" and http_status(failed.value) == 503
        assert stored(ledger) == 0
        # the threads survive a failed chunk
        assert sum(r.accepted for r in pipeline.submit(objs, source="http")) == 20
        # checking threads shut down under a request: a typed error, not a hang
        assert pipeline._verifiers is not None
        pipeline._verifiers.shutdown(wait=True)
        with pytest.raises(IngestUnavailable):
            pipeline.submit(objs, source="http")
    finally:
        pipeline.stop()


@SQLITE_ONLY
def test_run_cpu_uses_a_worker_process_only_with_checking_threads(ledger: LedgerService) -> None:
    assert ledger.pipeline.run_cpu(os.getpid) == os.getpid()  # verify_workers=0: the calling thread
    pipeline = threaded(ledger, workers=1)
    try:
        assert pipeline.run_cpu(os.getpid) != os.getpid()
    finally:
        pipeline.stop()


# ---------------------------------------------------------------- the MQTT bridge's stages


class Staged:
    """The real pipeline's stages, recorded; each commit's answer held back ``hold`` seconds (so the next
    micro-batch's checks overlap it), and the first ``failures`` commits answered ``store.unavailable``."""

    def __init__(self, inner: IngestPipeline, hold: float = 0.0, failures: int = 0) -> None:
        self.inner = inner
        self.hold = hold
        self.failures = failures
        self.events: list[tuple[str, int, float]] = []
        self.prepared = 0
        self.enqueued = 0
        self._lock = threading.Lock()

    def _note(self, what: str, k: int) -> None:
        with self._lock:
            self.events.append((what, k, time.monotonic()))

    def submit(self, objs: Sequence[Any], *, source: str) -> list[ItemResult]:
        return self.inner.submit(objs, source=source)

    def prepare(self, objs: Sequence[Any], *, source: str) -> tuple[int, Prepared]:
        k = self.prepared
        self.prepared += 1
        self._note("prepare", k)
        return k, self.inner.prepare(objs, source=source)

    def enqueue(self, prepared: tuple[int, Prepared]) -> Future[list[Outcome]]:
        k, inner = prepared
        self._note("enqueue", k)
        self.enqueued += 1
        out: Future[list[Outcome]] = Future()
        if self.enqueued <= self.failures:
            down = ("store.unavailable", "down")
            threading.Timer(self.hold, self._resolve, (out, k, [down] * len(inner.candidates))).start()
            return out
        real = self.inner.enqueue(inner)
        real.add_done_callback(
            lambda f: threading.Timer(self.hold, self._resolve, (out, k, f.result())).start()
        )
        return out

    def _resolve(self, out: Future[list[Outcome]], k: int, outcomes: list[Outcome]) -> None:
        self._note("resolved", k)
        out.set_result(outcomes)

    def finish(self, prepared: tuple[int, Prepared], outcomes: Sequence[Outcome]) -> list[ItemResult]:
        return self.inner.finish(prepared[1], outcomes)

    def when(self, what: str) -> dict[int, float]:
        with self._lock:
            return {k: t for w, k, t in self.events if w == what}


def publish_readings(
    consortium: TestConsortium, devices: DeviceSide, n: int, prefix: str
) -> tuple[str, list[str]]:
    dev = consortium.enroll(uid(prefix), "p256")
    subs = [dev.sign({"temp_c": float(i)}, ts_ms=now_ms() - 2000) for i in range(n)]
    devices.publish_many([(dev.device_id, s.to_json_obj()) for s in subs])
    return dev.device_id, ["0x" + s.digest.hex() for s in subs]


@pytest.mark.mqtt
@SQLITE_ONLY
def test_the_next_micro_batch_is_checked_while_the_previous_one_commits(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    ledger.start()
    stages = Staged(ledger.pipeline, hold=0.3)
    bridge = started(make_bridge(broker.url, stages, batch_max=4, batch_wait=0.05))
    try:
        device, digests = publish_readings(consortium, devices, 16, "SN-OVERLAP")
        got = devices.got(16, timeout=30)
        # answered in the order of delivery, each after its commit, every reading in order (no gap)
        assert [b["digest"] for _, b in got] == digests
        assert all(b["gap"] is None and b["device_id"] == device for _, b in got), got
        assert [q for _, q in sorted(stored_pairs(ledger))] == list(range(1, 17))
        prepared, enqueued, resolved = stages.when("prepare"), stages.when("enqueue"), stages.when("resolved")
        assert len(prepared) >= 2
        for k in range(1, len(enqueued)):
            # handed to the writer only once the previous commit was decided
            assert enqueued[k] >= resolved[k - 1], stages.events
        # and checked while it was committing
        assert any(prepared[k] < resolved[k - 1] for k in range(1, len(prepared))), stages.events
    finally:
        bridge.stop()


@pytest.mark.mqtt
@SQLITE_ONLY
def test_a_failed_commit_holds_the_next_micro_batch_back(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    """The first commit fails (store unavailable) while the next micro-batch is already checked: that
    one must not be stored before the first (its first reading would report a gap); everything comes
    again from the broker and is stored once, in order."""
    ledger.start()
    stages = Staged(ledger.pipeline, hold=0.3, failures=1)
    bridge = started(make_bridge(broker.url, stages, batch_max=4, batch_wait=0.05))
    try:
        _, digests = publish_readings(consortium, devices, 12, "SN-HOLD")
        got = devices.got(12, timeout=30)
        time.sleep(0.3)
        assert [b["digest"] for _, b in devices.receipts] == digests
        assert all(b["gap"] is None for _, b in got), got
        assert [q for _, q in sorted(stored_pairs(ledger))] == list(range(1, 13))
        s = bridge.stats()
        assert s.deferred >= 1 and s.redelivered >= 1 and s.accepted == 12
    finally:
        bridge.stop()


@pytest.mark.mqtt
@SQLITE_ONLY
def test_a_failing_check_falls_back_to_each_submission_alone(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    ledger.start()

    class BrokenOnce(Staged):
        def prepare(self, objs: Sequence[Any], *, source: str) -> tuple[int, Prepared]:
            if self.prepared == 0:
                self.prepared += 1
                raise IngestUnavailable("the checks are not running")
            return super().prepare(objs, source=source)

    stages = BrokenOnce(ledger.pipeline)
    bridge = started(make_bridge(broker.url, stages, batch_max=4, batch_wait=0.2))
    try:
        _, digests = publish_readings(consortium, devices, 4, "SN-ALONE")
        got = devices.got(4, timeout=20)
        assert [b["digest"] for _, b in got] == digests
        assert stored(ledger) == 4 and bridge.stats().dead_lettered == 0
    finally:
        bridge.stop()
