"""Fault: a reorg takes away the block holding an anchor (``anvil_reorg``, params ``[depth, txs]``).

The worker notices the anchoring receipt vanished (or moved to another block) and anchors the
batch again in the new chain, or adopts the anchoring the new chain already holds: never twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faults import (
    Deployed,
    Fleet,
    all_anchored,
    anchoring_of,
    assert_exactly_once,
    assert_service_proofs_verify,
    batches,
    deploy_on,
    describe_store,
    in_process_service,
    own_anvil,
    submit_all,
    wait_for,
)
from hexbytes import HexBytes

from contracts.chain import Chain
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import BatchRow


@dataclass
class Rig:
    deployed: Deployed
    service: LedgerService
    fleet: Fleet

    def reorg(self, depth: int, txs: list[list[object]] | None = None) -> None:
        self.deployed.node.rpc("anvil_reorg", [depth, txs or []])

    def raw_tx(self, tx_hash: str) -> str:
        return HexBytes(self.deployed.chain.w3.eth.get_raw_transaction(HexBytes(tx_hash))).to_0x_hex()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A service on its own anvil with the anchoring worker driven by hand (``anchoring=False``)."""
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=202)
        service = in_process_service(deployed, f"sqlite:///{tmp_path}/ledger.db", anchoring=False)
        service.start()
        try:
            yield Rig(deployed=deployed, service=service, fleet=fleet)
        finally:
            service.stop()


def only_batch(rig: Rig) -> BatchRow:
    (b,) = batches(rig.service.engine)
    return b


@pytest.mark.anvil
def test_reorged_anchor_is_sent_again(rig: Rig) -> None:
    chain, anchor, worker = rig.deployed.chain, rig.deployed.anchor, rig.service.anchoring
    accepted = submit_all(rig.service, rig.fleet.sign(12))
    worker.flush(timeout=20)
    before = anchoring_of(only_batch(rig))
    assert anchor.batch_count() == 1

    rig.reorg(chain.block_number() - before.block_number + 1)
    assert chain.receipt(before.tx_hash) is None, "anvil_reorg did not drop the anchoring tx"
    assert anchor.batch_of_root(before.root) == 0 and anchor.batch_count() == 0

    worker.check_reorgs()  # the receipt is gone
    b = only_batch(rig)
    assert (b.status, b.tx_hash, b.block_hash, b.chain_batch_id) == (BatchStatus.CLOSED, None, None, None)

    worker.flush(timeout=20)
    after = anchoring_of(only_batch(rig))
    assert after.block_hash != before.block_hash
    assert_exactly_once(rig.service.engine, chain, rig.deployed.deployment, expected=accepted)
    assert_service_proofs_verify(rig.service, accepted)


@pytest.mark.anvil
def test_reorg_of_several_anchors_while_a_new_batch_is_sent(rig: Rig) -> None:
    """Three batches in three blocks; the last two reorged away; a fourth is sent before the worker
    notices (its cached nonce is now too high, so the tx waits behind a gap): all end anchored once."""
    chain, anchor, worker, engine = (
        rig.deployed.chain,
        rig.deployed.anchor,
        rig.service.anchoring,
        rig.service.engine,
    )
    accepted: set[bytes] = set()
    for _ in range(3):
        accepted |= submit_all(rig.service, rig.fleet.sign(5))
        worker.flush(timeout=20)
    first, second, third = (anchoring_of(b) for b in batches(engine))
    assert first.block_number < second.block_number < third.block_number

    rig.reorg(chain.block_number() - second.block_number + 1)
    assert anchor.batch_count() == 1

    accepted |= submit_all(rig.service, rig.fleet.sign(5))
    worker.tick(force=True)  # closes and sends batch 4, then notices the reorg
    assert [b.status for b in batches(engine)] == [
        BatchStatus.ANCHORED,
        BatchStatus.CLOSED,
        BatchStatus.CLOSED,
        BatchStatus.SUBMITTED,
    ]

    worker.flush(timeout=30)
    now = [anchoring_of(b) for b in batches(engine)]
    assert now[0].block_hash == first.block_hash, "an untouched anchoring was changed"
    assert {now[1].block_hash, now[2].block_hash}.isdisjoint({second.block_hash, third.block_hash})
    assert_exactly_once(engine, chain, rig.deployed.deployment, expected=accepted)
    assert_service_proofs_verify(rig.service, accepted)


@pytest.mark.anvil
def test_reorged_anchor_remined_in_the_new_chain_is_kept(rig: Rig) -> None:
    """The new chain holds the same anchoring tx in another block: the worker follows it, sends nothing."""
    chain, anchor, worker = rig.deployed.chain, rig.deployed.anchor, rig.service.anchoring
    accepted = submit_all(rig.service, rig.fleet.sign(9))
    worker.flush(timeout=20)
    before = anchoring_of(only_batch(rig))

    rig.reorg(chain.block_number() - before.block_number + 1, [[rig.raw_tx(before.tx_hash), 0]])
    moved = chain.receipt(before.tx_hash)
    assert moved is not None and HexBytes(moved["blockHash"]).to_0x_hex() != before.block_hash

    worker.check_reorgs()  # same tx, other block
    assert only_batch(rig).status == BatchStatus.SUBMITTED
    worker.flush(timeout=20)
    after = anchoring_of(only_batch(rig))
    assert after.tx_hash == before.tx_hash and after.chain_batch_id == before.chain_batch_id == 1
    assert after.block_hash == HexBytes(moved["blockHash"]).to_0x_hex()
    assert anchor.batch_count() == 1
    assert_exactly_once(rig.service.engine, chain, rig.deployed.deployment, expected=accepted)
    assert_service_proofs_verify(rig.service, accepted)


@pytest.mark.anvil
def test_reorged_anchor_rebroadcast_before_the_resend_is_adopted(rig: Rig) -> None:
    """The tx vanished, the worker put the batch back to ``closed``, then the original tx is mined
    again (a peer rebroadcast it): the resend is refused by the contract and the worker adopts."""
    chain, anchor, worker = rig.deployed.chain, rig.deployed.anchor, rig.service.anchoring
    accepted = submit_all(rig.service, rig.fleet.sign(7))
    worker.flush(timeout=20)
    before = anchoring_of(only_batch(rig))
    raw = rig.raw_tx(before.tx_hash)

    rig.reorg(chain.block_number() - before.block_number + 1)
    worker.check_reorgs()
    assert only_batch(rig).status == BatchStatus.CLOSED

    rig.deployed.node.rpc("eth_sendRawTransaction", [raw])
    wait_for(lambda: chain.receipt(before.tx_hash), timeout=10, what="the rebroadcast tx to be mined")
    assert anchor.batch_count() == 1

    worker.flush(timeout=20)
    after = anchoring_of(only_batch(rig))
    assert after.tx_hash == before.tx_hash and after.chain_batch_id == 1
    assert anchor.batch_count() == 1, "the batch was anchored twice"
    assert_exactly_once(rig.service.engine, chain, rig.deployed.deployment, expected=accepted)
    assert_service_proofs_verify(rig.service, accepted)


def store_matches_chain(service: LedgerService) -> bool:
    """Every batch's recorded anchoring is the one in the current chain (receipt in that block)."""
    for b in batches(service.engine):
        receipt = service.chain.receipt(b.tx_hash) if b.tx_hash else None
        if receipt is None or HexBytes(receipt["blockHash"]).to_0x_hex() != b.block_hash:
            return False
    return True


@pytest.mark.anvil
@pytest.mark.slow
def test_reorgs_while_readings_arrive(tmp_path: Path) -> None:
    """The anchoring thread runs, readings flow, and reorgs of 1 to 4 blocks strike at seeded moments."""
    rng = random.Random(2024)
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 3, seed=303)
        service = in_process_service(
            deployed,
            f"sqlite:///{tmp_path}/ledger.db",
            batch_max_readings=15,
            batch_max_seconds=0.2,
            anchor_timeout_seconds=5,
        )
        engine, chain = service.engine, deployed.chain
        base = chain.block_number()  # enrollment is below: never reorged
        accepted: set[bytes] = set()
        reorgs = 0
        hit: set[tuple[int | None, str | None]] = set()  # anchorings the reorgs took away
        service.start()
        try:
            for _ in range(4):
                end = time.monotonic() + rng.uniform(0.4, 1.0)
                while time.monotonic() < end:
                    accepted |= submit_all(service, fleet.sign(5))
                    time.sleep(0.02)
                wait_for(lambda: chain.block_number() >= base + 4, timeout=60, what="a few anchoring blocks")
                head = chain.block_number()
                depth = min(rng.randint(1, 4), head - base)
                hit |= {(b.id, b.tx_hash) for b in batches(engine) if (b.block_number or 0) > head - depth}
                node.rpc("anvil_reorg", [depth, []])
                reorgs += 1
            accepted |= submit_all(service, fleet.sign(5))
            wait_for(
                lambda: all_anchored(engine) and store_matches_chain(service),
                timeout=60,
                what="every reading anchored in the chain as it is after the reorgs",
                detail=lambda: describe_store(engine),
            )
        finally:
            service.stop()
        result = assert_exactly_once(engine, chain, deployed.deployment, expected=accepted)
        assert_service_proofs_verify(service, accepted)
        assert reorgs == 4 and result.readings == len(accepted)
        assert hit, "no reorg took away an anchoring: the test proved nothing"


class StaleReceipts:
    """The service's chain answering, for chosen transactions, the receipt they had before a reorg
    took their block away (as a node whose transaction index lags its block index does)."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.stale: dict[str, Any] = {}
        self._receipt = chain.receipt

    def keep(self, tx_hash: str) -> None:
        self.stale[tx_hash] = self._receipt(tx_hash)
        assert self.stale[tx_hash] is not None

    def receipt(self, tx_hash: str) -> Any:
        found = self._receipt(tx_hash)
        return found if found is not None else self.stale.get(tx_hash)


@pytest.fixture
def fast_rig(tmp_path: Path) -> Iterator[Rig]:
    """:func:`rig` with a 1 s anchoring timeout (a tx without a canonical receipt is sent again soon)."""
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=404)
        service = in_process_service(
            deployed, f"sqlite:///{tmp_path}/ledger.db", anchoring=False, anchor_timeout_seconds=1
        )
        service.start()
        try:
            yield Rig(deployed=deployed, service=service, fleet=fleet)
        finally:
            service.stop()


@pytest.mark.anvil
def test_anchoring_answered_from_a_reorged_away_block_is_not_kept(
    fast_rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reorg took the anchoring's block away but the node still answers its old receipt: the
    batch goes back to ``closed`` all the same, so it does not keep chain batch 1 while the next
    batch is anchored as chain batch 1 (the store held two batches with one chain batch id)."""
    rig = fast_rig
    chain, anchor, worker, engine = (
        rig.deployed.chain,
        rig.deployed.anchor,
        rig.service.anchoring,
        rig.service.engine,
    )
    accepted = submit_all(rig.service, rig.fleet.sign(6))
    worker.flush(timeout=20)
    before = anchoring_of(only_batch(rig))
    stale = StaleReceipts(rig.service.chain)
    stale.keep(before.tx_hash)
    monkeypatch.setattr(rig.service.chain, "receipt", stale.receipt)

    rig.reorg(chain.block_number() - before.block_number + 1)
    assert chain.receipt(before.tx_hash) is None and anchor.batch_count() == 0

    worker.check_reorgs()
    b = only_batch(rig)
    assert (b.status, b.tx_hash, b.block_hash, b.chain_batch_id) == (BatchStatus.CLOSED, None, None, None)

    accepted |= submit_all(rig.service, rig.fleet.sign(6))
    worker.flush(timeout=20)
    assert_exactly_once(engine, chain, rig.deployed.deployment, expected=accepted)
    assert_service_proofs_verify(rig.service, accepted)


@pytest.mark.anvil
def test_receipt_from_a_reorged_away_block_is_not_confirmed(
    fast_rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sent batch whose block a reorg took away before it was confirmed, the node still answering
    the old receipt: not recorded as anchored on it; sent again after the timeout, anchored once."""
    rig = fast_rig
    chain, anchor, worker, engine = (
        rig.deployed.chain,
        rig.deployed.anchor,
        rig.service.anchoring,
        rig.service.engine,
    )
    accepted = submit_all(rig.service, rig.fleet.sign(6))
    assert worker.close_batch(force=True) is not None
    worker.advance()  # sends it
    sent = only_batch(rig)
    assert sent.status == BatchStatus.SUBMITTED and sent.tx_hash is not None
    mined = wait_for(lambda: chain.receipt(sent.tx_hash or ""), timeout=10, what="the anchoring tx mined")
    stale = StaleReceipts(rig.service.chain)
    stale.keep(sent.tx_hash)
    monkeypatch.setattr(rig.service.chain, "receipt", stale.receipt)

    rig.reorg(chain.block_number() - mined["blockNumber"] + 1)
    assert chain.receipt(sent.tx_hash) is None and anchor.batch_count() == 0

    worker.advance()  # confirms against the old receipt?
    b = only_batch(rig)
    assert (b.status, b.block_hash, b.chain_batch_id) == (BatchStatus.SUBMITTED, None, None)

    accepted |= submit_all(rig.service, rig.fleet.sign(6))
    worker.flush(timeout=20)
    assert_exactly_once(engine, chain, rig.deployed.deployment, expected=accepted)
    assert_service_proofs_verify(rig.service, accepted)
