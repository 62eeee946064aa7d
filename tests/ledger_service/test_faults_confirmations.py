"""Confirmations: with ``confirmations=3`` a batch is ``anchored`` only once 3 blocks are on top of
its anchoring tx (blocks mined one by one with ``evm_mine``); no proof is served before. A reorg
that takes the tx away while it waits for its confirmations never lets the batch count as anchored:
it is sent again after ``anchor_timeout_seconds``.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from faults import (
    Fleet,
    assert_exactly_once,
    assert_service_proofs_verify,
    batches,
    deploy_on,
    in_process_service,
    own_anvil,
    submit_all,
)

from device_attestation.merkle import verify_inclusion
from ledger_service.proofs import ProofPending, proof_bundle, reading_status
from ledger_service.store.batch_status import BatchStatus

CONFIRMATIONS = 3
TIMEOUT_S = 5.0


@pytest.mark.anvil
def test_anchored_only_after_three_blocks_on_top(tmp_path: Path) -> None:
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=909)
        service = in_process_service(
            deployed, f"sqlite:///{tmp_path}/ledger.db", anchoring=False, confirmations=CONFIRMATIONS
        )
        service.start()
        try:
            chain, worker = deployed.chain, service.anchoring
            subs = fleet.sign(8)
            accepted = submit_all(service, subs)
            worker.tick(force=True)  # closed and sent; anvil mines it at once
            (b,) = batches(service.engine)
            receipt = chain.receipt(b.tx_hash or "")
            assert b.status == BatchStatus.SUBMITTED and receipt is not None
            mined = receipt["blockNumber"]
            for on_top in range(CONFIRMATIONS):
                assert chain.block_number() == mined + on_top
                worker.tick()
                (b,) = batches(service.engine)
                assert b.status == BatchStatus.SUBMITTED, f"anchored with {on_top} blocks on top"
                assert reading_status(service, subs[0].digest).status == "batched"
                with pytest.raises(ProofPending):
                    proof_bundle(service, subs[0].digest)
                node.rpc("evm_mine", [])
            worker.tick()
            (b,) = batches(service.engine)
            assert b.status == BatchStatus.ANCHORED and b.block_number == mined
            assert chain.block_number() == mined + CONFIRMATIONS
            bundle = proof_bundle(service, subs[0].digest)
            onchain_root = bytes(deployed.anchor.batch(bundle["batch_id"]).root)
            verify_inclusion(
                digest=subs[0].digest,
                proof=[bytes.fromhex(p[2:]) for p in bundle["proof"]],
                root=onchain_root,
            )
        finally:
            service.stop()
        assert_exactly_once(service.engine, chain, deployed.deployment, expected=accepted)
        assert_service_proofs_verify(service, accepted, min_confirmations=CONFIRMATIONS)


@pytest.mark.anvil
def test_reorg_before_the_confirmations_sends_again(tmp_path: Path) -> None:
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=910)
        service = in_process_service(
            deployed,
            f"sqlite:///{tmp_path}/ledger.db",
            anchoring=False,
            confirmations=CONFIRMATIONS,
            anchor_timeout_seconds=TIMEOUT_S,
        )
        skew = [0.0]
        service.anchoring.clock = lambda: time.time() + skew[0]
        service.start()
        try:
            chain, worker = deployed.chain, service.anchoring
            accepted = submit_all(service, fleet.sign(8))
            worker.tick(force=True)
            (first,) = batches(service.engine)
            node.rpc("evm_mine", [])  # one block on top of the anchoring
            worker.tick()
            node.rpc("anvil_reorg", [2, []])  # the anchoring block and the one on top: gone
            assert chain.receipt(first.tx_hash or "") is None and deployed.anchor.batch_count() == 0
            for _ in range(CONFIRMATIONS + 1):  # the chain grows again; the tx is not in it
                node.rpc("evm_mine", [])
                worker.tick()
                (b,) = batches(service.engine)
                assert b.status == BatchStatus.SUBMITTED, (
                    "a batch whose tx is not in the chain counted as anchored"
                )
            skew[0] += TIMEOUT_S + 1
            worker.tick()  # no receipt after anchor_timeout_seconds: send again
            assert batches(service.engine)[0].status in (BatchStatus.CLOSED, BatchStatus.SUBMITTED)
            for _ in range(20):
                worker.tick()
                if batches(service.engine)[0].status == BatchStatus.ANCHORED:
                    break
                node.rpc("evm_mine", [])
            (b,) = batches(service.engine)
            assert b.status == BatchStatus.ANCHORED and b.block_hash != first.block_hash
            assert chain.block_number() >= (b.block_number or 0) + CONFIRMATIONS
        finally:
            service.stop()
        assert_exactly_once(service.engine, chain, deployed.deployment, expected=accepted)
        assert_service_proofs_verify(service, accepted, min_confirmations=CONFIRMATIONS)
