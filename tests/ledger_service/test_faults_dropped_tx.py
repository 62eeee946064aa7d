"""Fault: the anchoring transaction never gets a receipt (dropped from the pool, or stuck).

anvil's automine is switched off so the tx waits in the pool. Past ``anchor_timeout_seconds``
(the worker's clock is pushed forward instead of sleeping) the worker sends again; the batch
ends anchored exactly once, whether the first tx was dropped or is mined after all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from faults import (
    Deployed,
    Fleet,
    assert_exactly_once,
    assert_service_proofs_verify,
    batches,
    deploy_on,
    in_process_service,
    own_anvil,
    submit_all,
)

from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import BatchRow

TIMEOUT_S = 5.0


@dataclass
class Rig:
    deployed: Deployed
    service: LedgerService
    fleet: Fleet
    skew_s: float = 0.0

    def advance_clock(self, seconds: float) -> None:
        self.skew_s += seconds

    def pool(self) -> list[str]:
        content = self.deployed.node.rpc("txpool_content", [])
        return [tx["hash"] for sender in content["pending"].values() for tx in sender.values()]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    import time

    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=606)
        service = in_process_service(
            deployed, f"sqlite:///{tmp_path}/ledger.db", anchoring=False, anchor_timeout_seconds=TIMEOUT_S
        )
        r = Rig(deployed=deployed, service=service, fleet=fleet)
        service.anchoring.clock = lambda: time.time() + r.skew_s
        service.start()
        try:
            yield r
        finally:
            service.stop()


def only_batch(rig: Rig) -> BatchRow:
    (b,) = batches(rig.service.engine)
    return b


def send_into_a_stalled_pool(rig: Rig) -> tuple[set[bytes], str]:
    rig.deployed.node.rpc("evm_setAutomine", [False])
    accepted = submit_all(rig.service, rig.fleet.sign(10))
    rig.service.anchoring.tick(force=True)  # closes the batch and sends it
    b = only_batch(rig)
    assert b.status == BatchStatus.SUBMITTED and b.tx_hash is not None
    assert rig.deployed.chain.receipt(b.tx_hash) is None and rig.pool() == [b.tx_hash]
    return accepted, b.tx_hash


@pytest.mark.anvil
@pytest.mark.parametrize("drop", ["anvil_dropTransaction", "anvil_dropAllTransactions"])
def test_dropped_anchoring_tx_is_sent_again_after_the_timeout(rig: Rig, drop: str) -> None:
    worker, chain, anchor = rig.service.anchoring, rig.deployed.chain, rig.deployed.anchor
    accepted, first = send_into_a_stalled_pool(rig)
    rig.deployed.node.rpc(drop, [first] if drop == "anvil_dropTransaction" else [])
    assert rig.pool() == []

    rig.advance_clock(TIMEOUT_S - 1)
    worker.tick()
    assert only_batch(rig).status == BatchStatus.SUBMITTED, "sent again before anchor_timeout_seconds"

    rig.advance_clock(2)
    worker.tick()  # no receipt after the timeout: back to closed, nonce forgotten
    assert only_batch(rig).status == BatchStatus.CLOSED
    worker.tick()  # sent again
    again = only_batch(rig)
    assert again.status == BatchStatus.SUBMITTED and rig.pool() == [again.tx_hash]

    rig.deployed.node.rpc("evm_setAutomine", [True])
    rig.deployed.node.rpc("evm_mine", [])
    worker.flush(timeout=20)
    b = only_batch(rig)
    assert b.status == BatchStatus.ANCHORED and b.tx_hash == again.tx_hash and anchor.batch_count() == 1
    assert_exactly_once(rig.service.engine, chain, rig.deployed.deployment, expected=accepted)
    assert_service_proofs_verify(rig.service, accepted)


@pytest.mark.anvil
def test_stuck_anchoring_tx_mined_after_the_resend_counts_once(rig: Rig) -> None:
    """The first tx was only late: after the resend both reach a block; the contract refuses the
    root the second time and the worker keeps the first anchoring."""
    worker, chain, anchor = rig.service.anchoring, rig.deployed.chain, rig.deployed.anchor
    accepted, first = send_into_a_stalled_pool(rig)

    rig.advance_clock(TIMEOUT_S + 1)
    worker.tick()  # back to closed
    worker.tick()  # sent again, while the first is still in the pool
    second = only_batch(rig).tx_hash
    assert second is not None and first in rig.pool()

    rig.deployed.node.rpc("evm_setAutomine", [True])
    rig.deployed.node.rpc("evm_mine", [])
    assert chain.receipt(first) is not None and rig.pool() == []
    late = chain.receipt(second)
    assert second == first or late is None or late["status"] == 0, "the root was accepted twice"
    worker.flush(timeout=20)
    b = only_batch(rig)
    assert b.status == BatchStatus.ANCHORED and b.tx_hash == first and b.chain_batch_id == 1
    assert anchor.batch_count() == 1, "the batch was anchored twice"
    assert_exactly_once(rig.service.engine, chain, rig.deployed.deployment, expected=accepted)
    assert_service_proofs_verify(rig.service, accepted)
