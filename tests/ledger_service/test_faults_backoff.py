"""Retries back off: a batch that cannot be anchored is retried after 0.5 s, 1 s, 2 s ... capped at 60 s.

Unit level, with a fake clock: the worker's chain is a JSON-RPC URL where nothing listens (the
chain unreachable), or the embedded chain refusing the anchoring (the signer lacks ANCHOR_ROLE).
Between two attempts the worker ticks as often as it likes and sends nothing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from faults import batches
from sqlalchemy import Engine
from sqlmodel import Session
from web3 import Web3

from contracts.anvil import free_port
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from ledger_service.anchoring import AnchoringWorker
from ledger_service.config import Settings
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.engine import create_schema, make_engine
from ledger_service.store.models import ReadingRow

START_MS = 1_800_000_000_000
#: The delay before attempt k+1 after attempt k fails, k = 1, 2, ...
EXPECTED_DELAYS_MS = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000, 60_000, 60_000]


class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return (self.ms + 0.5) / 1000  # half a millisecond in: int(clock() * 1000) == self.ms exactly


def unreachable_chain() -> tuple[Chain, Deployment]:
    url = f"http://127.0.0.1:{free_port()}"  # free: nothing listens there
    chain = Chain(w3=Web3(Web3.HTTPProvider(url)), chain_id=31337, embedded=False, rpc=url, timeout=5)
    deployment = Deployment(
        chain_id=31337,
        contracts={
            "ReadingAnchor": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "DeviceRegistry": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
        },
        block=1,
        deployer=dev_accounts(1)[0].address,
        artifact_hashes={},
        deployed_at=dt.datetime.now(dt.UTC).isoformat(),
    )
    return chain, deployment


def stored_readings(tmp_path: Path, n: int, received_ms: int) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path}/ledger.db")
    create_schema(engine)
    with Session(engine) as s:
        for i in range(n):
            s.add(
                ReadingRow(
                    digest=bytes([i + 1]) * 32,
                    device_id="BACKOFF-1",
                    seq=i + 1,
                    ts_ms=received_ms - 10,
                    scheme="p256",
                    signature=b"\x01" * 64,
                    reading_json="{}",
                    received_ms=received_ms,
                    source="http",
                )
            )
        s.commit()
    return engine


@pytest.mark.parametrize("fault", ["chain unreachable", "anchoring refused"])
def test_retries_of_a_batch_back_off_exponentially_to_60s(tmp_path: Path, fault: str) -> None:
    engine = stored_readings(tmp_path, 5, START_MS - 1_000)
    if fault == "chain unreachable":
        chain, deployment = unreachable_chain()
        signer = dev_accounts(1)[0]
        error = "unreachable"
    else:
        chain = Chain.embedded()
        deployment = deploy_suite(chain, dev_accounts(1)[0])
        signer = dev_accounts(3)[2]  # holds no ANCHOR_ROLE: every anchorBatch reverts
        error = "AccessControlUnauthorizedAccount"
    clock = FakeClock(START_MS)
    worker = AnchoringWorker(
        settings=Settings(_env_file=None, batch_max_readings=100, batch_max_seconds=0.5),  # type: ignore[call-arg]
        engine=engine,
        chain=chain,
        deployment=deployment,
        signer=signer,
        clock=clock,
    )

    worker.tick()  # the oldest reading waited 1 s > batch_max_seconds: closed, and the first attempt fails
    attempt_ms = START_MS
    spacing = []
    for k, delay in enumerate(EXPECTED_DELAYS_MS, start=1):
        (b,) = batches(engine)
        assert (b.status, b.attempts) == (BatchStatus.CLOSED, k), (
            f"after attempt {k}: {b.status}, {b.attempts} attempts"
        )
        assert b.last_error and error in b.last_error, b.last_error
        assert worker.last_error and error in worker.last_error
        spacing.append(b.next_attempt_ms - attempt_ms)
        assert b.next_attempt_ms - attempt_ms == delay, f"attempt {k}: next in {spacing[-1]} ms, not {delay}"
        # ticking before the batch is due sends nothing
        for early in (1, delay // 2, delay - 1):
            clock.ms = attempt_ms + early
            worker.tick()
            assert batches(engine)[0].attempts == k, f"attempt {k + 1} came {early} ms after attempt {k}"
        clock.ms = attempt_ms = b.next_attempt_ms
        worker.tick()
    assert spacing == EXPECTED_DELAYS_MS
    assert batches(engine)[0].attempts == len(EXPECTED_DELAYS_MS) + 1
