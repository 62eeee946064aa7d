"""The single submits' verifier thread (ledger_service/ingest/verifier.py, issue 17.3): the same outcomes
as :func:`check_one`, in order, the submissions of one loop iteration in one job; a failure in the
thread answers typed (never a hang); a cancelled waiter is skipped; an idle thread ends and the next
job starts another."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from device_attestation import DeviceKey
from device_attestation.reading import Domain
from device_attestation.sdk import DeviceSigner
from ledger_service.errors import IngestUnavailable
from ledger_service.ingest import verifier as verifier_module
from ledger_service.ingest.checks import Checked, check_one
from ledger_service.ingest.verifier import Verifier

DOMAIN = Domain(chain_id=31337, verifying_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3")


def _device(device_id: str) -> tuple[DeviceSigner, tuple[str, Any]]:
    key = DeviceKey.generate("p256")
    return DeviceSigner(device_id=device_id, key=key, domain=DOMAIN), (
        "p256",
        (key.public_key.x, key.public_key.y),
    )


def _submissions() -> list[tuple[dict[str, Any], tuple[str, Any]]]:
    """Good and bad submissions interleaved: a good one, a forged signature, another device's signature,
    an altered reading, a malformed body, a scheme mismatch, then good ones."""
    dev, key = _device("DEV-VERIFY-1")
    other, other_key = _device("DEV-VERIFY-2")
    subs = [dev.sign({"temp_c": 20.0 + k}, ts_ms=1_700_000_000_000 + k).to_json_obj() for k in range(6)]
    foreign = other.sign({"temp_c": 1.0}, ts_ms=1_700_000_000_000).to_json_obj()
    return [
        (subs[0], key),
        ({**subs[1], "signature": "0x" + "11" * 64}, key),
        ({**subs[2], "signature": foreign["signature"]}, key),
        ({**subs[3], "reading": {**subs[3]["reading"], "metrics": {"temp_c": 99.0}}}, key),
        ({"reading": "not an object"}, key),
        (subs[4], ("secp256k1", "0x" + "22" * 20)),
        (subs[5], key),
        (foreign, other_key),
    ]


def test_outcomes_are_check_ones_in_order_one_job_a_loop_iteration() -> None:
    items = _submissions()
    verifier = Verifier(DOMAIN.chain_id, DOMAIN.verifying_contract)

    async def run() -> list[Any]:
        return list(await asyncio.gather(*(verifier.check(obj, key) for obj, key in items)))

    results = asyncio.run(run())
    expected = [check_one(DOMAIN, 0, obj, key)[1] for obj, key in items]
    assert [r[1] for r in results] == expected
    kinds = [type(r[1]) is Checked for r in results]
    assert kinds == [True, False, False, False, False, False, True, True]
    assert [r[1][0] for r in results[1:4]] == ["signature.bad"] * 3
    assert verifier.jobs == 1 and verifier.checked == len(items)  # one loop iteration, one job


def test_a_failing_check_answers_typed_and_the_thread_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    items = _submissions()
    verifier = Verifier(DOMAIN.chain_id, DOMAIN.verifying_contract)
    real = verifier_module.check_chunk

    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in the checks")

    async def run() -> None:
        monkeypatch.setattr(verifier_module, "check_chunk", broken)
        outcomes = await asyncio.gather(*(verifier.check(o, k) for o, k in items), return_exceptions=True)
        assert all(isinstance(o, IngestUnavailable) for o in outcomes), outcomes
        assert outcomes[0].code == "ingest.unavailable"  # type: ignore[union-attr]
        monkeypatch.setattr(verifier_module, "check_chunk", real)
        _, checked = await asyncio.wait_for(verifier.check(*items[0]), 30)
        assert type(checked) is Checked

    asyncio.run(run())


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # it dies on purpose
def test_a_thread_that_dies_fails_its_queued_jobs_and_the_next_job_starts_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A thread ended by something other than an Exception: the job it was checking and those queued
    behind it fail typed at once (not after the timeout); a later job gets a new thread."""
    items = _submissions()
    verifier = Verifier(DOMAIN.chain_id, DOMAIN.verifying_contract)
    entered, release = threading.Event(), threading.Event()
    real = verifier_module.check_chunk

    def dying(*args: Any) -> Any:
        entered.set()
        assert release.wait(30)
        raise SystemExit("the thread is gone")

    async def run() -> None:
        monkeypatch.setattr(verifier_module, "check_chunk", dying)
        first = verifier.check(*items[0])
        while not entered.is_set():  # the first job is in the thread: the second one queues behind it
            await asyncio.sleep(0.001)
        second = verifier.check(*items[6])
        await asyncio.sleep(0.01)  # handed over
        release.set()
        for waiter in (first, second):
            with pytest.raises(IngestUnavailable):
                await asyncio.wait_for(waiter, 10)
        monkeypatch.setattr(verifier_module, "check_chunk", real)
        _, checked = await asyncio.wait_for(verifier.check(*items[0]), 30)
        assert type(checked) is Checked

    asyncio.run(run())


def test_a_stuck_thread_times_out_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    items = _submissions()
    verifier = Verifier(DOMAIN.chain_id, DOMAIN.verifying_contract)
    release = threading.Event()
    monkeypatch.setattr(verifier_module, "VERIFY_TIMEOUT", 0.2)
    monkeypatch.setattr(verifier_module, "check_chunk", lambda *a: release.wait(30) and [])

    async def run() -> None:
        with pytest.raises(IngestUnavailable):
            await asyncio.wait_for(verifier.check(*items[0]), 10)

    try:
        asyncio.run(run())
    finally:
        release.set()


def test_a_cancelled_waiter_is_skipped_and_the_others_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    items = _submissions()
    verifier = Verifier(DOMAIN.chain_id, DOMAIN.verifying_contract)

    async def run() -> None:
        waiters = [verifier.check(o, k) for o, k in items]
        waiters[0].cancel()
        rest = await asyncio.gather(*waiters[1:])
        assert [r[1] for r in rest] == [check_one(DOMAIN, 0, o, k)[1] for o, k in items[1:]]

    asyncio.run(run())


def test_an_idle_thread_ends_and_the_next_job_starts_another(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verifier_module, "IDLE_SECONDS", 0.05)
    items = _submissions()
    verifier = Verifier(DOMAIN.chain_id, DOMAIN.verifying_contract)

    async def run() -> None:
        for _ in range(3):
            _, checked = await asyncio.wait_for(verifier.check(*items[0]), 30)
            assert type(checked) is Checked
            thread = verifier._thread
            assert thread is not None
            await asyncio.sleep(0.3)
            assert not thread.is_alive() and verifier._thread is None

    asyncio.run(run())


def test_jobs_queued_while_the_thread_is_busy_are_checked_together_each_answered_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = _submissions()
    verifier = Verifier(DOMAIN.chain_id, DOMAIN.verifying_contract)
    real = verifier_module.check_chunk
    entered, release = threading.Event(), threading.Event()
    rounds: list[int] = []

    def held_first(chain_id: int, contract: str, chunk: Any) -> Any:
        rounds.append(len(chunk))
        if len(rounds) == 1:
            entered.set()
            assert release.wait(30)
        return real(chain_id, contract, chunk)

    monkeypatch.setattr(verifier_module, "check_chunk", held_first)

    async def run() -> None:
        first = verifier.check(*items[0])
        while not entered.is_set():
            await asyncio.sleep(0.001)
        later = []
        for obj, key in items[1:]:  # one job a loop iteration, all queued behind the first
            later.append(verifier.check(obj, key))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        release.set()
        results = await asyncio.wait_for(asyncio.gather(first, *later), 30)
        assert [r[1] for r in results] == [check_one(DOMAIN, 0, o, k)[1] for o, k in items]

    asyncio.run(run())
    assert rounds == [1, len(items) - 1]  # the queued jobs in one pass
    assert verifier.jobs == len(items)
