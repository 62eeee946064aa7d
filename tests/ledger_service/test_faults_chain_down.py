"""Fault: the chain goes away while readings arrive, then comes back (anvil restarted with ``--state``).

Ingest never waits for the chain: every reading is acknowledged while the node is down. The
anchoring worker keeps the closed batches, retries them with growing delays, and once the node
is back every accepted reading ends in exactly one anchored batch: none lost, none twice.
"""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path

import pytest
from faults import (
    Fleet,
    all_anchored,
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

from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus


def pump(
    service: LedgerService, fleet: Fleet, accepted: set[bytes], seconds: float, per_step: int = 6
) -> None:
    """Submit readings continuously for ``seconds`` (each group is acknowledged before the next)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        accepted |= submit_all(service, fleet.sign(per_step))
        time.sleep(0.03)


@pytest.mark.anvil
@pytest.mark.slow
def test_chain_down_while_readings_arrive(db_url: str, tmp_path: Path) -> None:
    with own_anvil(tmp_path / "anvil-state.json") as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 3, seed=101)
        service = in_process_service(deployed, db_url, batch_max_readings=20, batch_max_seconds=0.3)
        engine = service.engine
        accepted: set[bytes] = set()
        service.start()
        try:
            # 1. the chain is up: readings flow and batches get anchored
            pump(service, fleet, accepted, 0.8)
            wait_for(
                lambda: any(b.status == BatchStatus.ANCHORED for b in batches(engine)),
                timeout=20,
                what="a first anchored batch while the chain is up",
                detail=lambda: describe_store(engine),
            )
            height = deployed.chain.block_number()

            # 2. the chain goes down (SIGTERM: anvil writes its --state); ingest keeps accepting
            node.stop()
            seen: dict[int, list[tuple[int, int]]] = {}  # batch id -> distinct (attempts, next_attempt_ms)
            down_until = time.monotonic() + 12
            while True:
                pump(service, fleet, accepted, 0.1)
                for b in batches(engine):
                    if b.status == BatchStatus.CLOSED and b.attempts > 0:
                        track = seen.setdefault(int(b.id or 0), [])
                        if not track or track[-1] != (b.attempts, b.next_attempt_ms):
                            track.append((b.attempts, b.next_attempt_ms))
                if max((len(t) for t in seen.values()), default=0) >= 4:
                    break
                assert time.monotonic() < down_until, (
                    f"no batch was retried 4 times in 12 s with the chain down: {seen}; "
                    f"{describe_store(engine)}"
                )
            failing = [b for b in batches(engine) if b.status == BatchStatus.CLOSED and b.attempts > 0]
            assert failing, "no batch is waiting for the chain"
            assert all(b.last_error and "unreachable" in b.last_error for b in failing), [
                b.last_error for b in failing
            ]
            assert service.anchoring.last_error and "unreachable" in service.anchoring.last_error
            # retries of one batch back off: attempt k comes at least 0.5 s * 2^(k-1) after attempt k-1
            for batch_id, track in seen.items():
                for (a0, n0), (a1, n1) in itertools.pairwise(track):
                    if a1 == a0 + 1:
                        backoff = 500 * 2 ** (a1 - 1)
                        assert n1 - n0 >= backoff, f"batch {batch_id}: attempts {track} retried too soon"
                        assert n1 - n0 < backoff + 3000, f"batch {batch_id}: attempts {track} retried late"
            down_count = len(accepted)

            # 3. the chain comes back with its state; readings keep arriving
            node.start()
            assert deployed.chain.block_number() >= height, "anvil lost its chain across the restart"
            pump(service, fleet, accepted, 0.5)
            wait_for(
                lambda: all_anchored(engine),
                timeout=60,
                what="every reading anchored after the chain came back",
                detail=lambda: describe_store(engine),
            )
        finally:
            service.stop()
        result = assert_exactly_once(engine, deployed.chain, deployed.deployment, expected=accepted)
        assert_service_proofs_verify(service, accepted)
        assert result.readings == len(accepted) > down_count > 0
        assert max(b.attempts for b in batches(engine)) >= 4


@pytest.mark.anvil
@pytest.mark.slow
def test_node_crash_loses_the_latest_anchors(tmp_path: Path) -> None:
    """anvil killed with SIGKILL does not write ``--state``: restarted, it is back at its last clean
    stop and the anchorings made since are gone. The worker anchors those batches again."""
    with own_anvil(tmp_path / "anvil-state.json") as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=102)
        service = in_process_service(deployed, f"sqlite:///{tmp_path}/ledger.db", anchor_timeout_seconds=5)
        engine, chain = service.engine, deployed.chain
        accepted: set[bytes] = set()
        service.start()
        try:
            pump(service, fleet, accepted, 0.5)
            wait_for(lambda: all_anchored(engine), timeout=20, what="the first readings anchored")
            service.anchoring.stop()  # quiet while the node is cleanly restarted
            node.stop()  # clean stop: the state file holds everything so far
            node.start()
            saved_height = chain.block_number()
            saved_hash = chain.w3.eth.get_block(saved_height)["hash"]
            service.anchoring.start()

            pump(service, fleet, accepted, 0.8)
            wait_for(lambda: all_anchored(engine), timeout=20, what="the next readings anchored")
            lost = [b for b in batches(engine) if (b.block_number or 0) > saved_height]
            assert lost, "no anchoring after the clean stop: the crash would lose nothing"
            node.stop(sig=signal.SIGKILL)  # crash: nothing written
            pump(service, fleet, accepted, 0.3)
            node.start()
            assert chain.w3.eth.get_block(saved_height)["hash"] == saved_hash
            for b in lost:  # the blocks that held them are gone (whatever the worker sends meanwhile)
                block = (
                    chain.w3.eth.get_block(b.block_number or 0)
                    if (b.block_number or 0) <= chain.block_number()
                    else None
                )
                assert block is None or block["hash"].to_0x_hex() != b.block_hash, "anvil kept a lost block"

            pump(service, fleet, accepted, 0.3)
            wait_for(
                lambda: (
                    all_anchored(engine)
                    and all(
                        (r := chain.receipt(b.tx_hash or "")) is not None
                        and HexBytes(r["blockHash"]).to_0x_hex() == b.block_hash
                        for b in batches(engine)
                    )
                ),
                timeout=60,
                what="the lost anchorings made again in the restored chain",
                detail=lambda: describe_store(engine),
            )
        finally:
            service.stop()
        result = assert_exactly_once(engine, chain, deployed.deployment, expected=accepted)
        assert_service_proofs_verify(service, accepted)
        assert result.batches > len(lost)
