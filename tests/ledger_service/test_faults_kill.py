"""Fault: the service is killed (SIGKILL) at any point, then restarted.

``supet serve`` runs as a subprocess against the test's own anvil; readings are posted over HTTP
and the process is killed right after a request returned, in the middle of a request, or while
batches are being anchored (seeded kill points). A client resends what was never acknowledged.
At the end every acknowledged reading is stored once and anchored once.

The narrowest crash window, "the anchoring tx was sent but the process died before recording it",
is hit deterministically by driving the worker by hand.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account.signers.local import LocalAccount
from faults import (
    Deployed,
    Fleet,
    all_anchored,
    assert_exactly_once,
    assert_served_proofs_verify,
    assert_service_proofs_verify,
    batches,
    deploy_on,
    describe_store,
    in_process_service,
    own_anvil,
    sample,
    submit_all,
    wait_for,
)
from reads import bearer
from service_process import SUPET, ServiceProcess, service_env

from contracts.chain import Chain
from device_attestation.sdk import Submission
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.engine import make_engine


@pytest.fixture
def anvil_deployed(tmp_path: Path) -> Iterator[Deployed]:
    with own_anvil() as node:
        yield deploy_on(node, tmp_path)


def post(url: str, subs: list[Submission], timeout: float = 30) -> set[bytes]:
    """POST a batch; every item must be acknowledged (accepted, or the same receipt again)."""
    r = httpx.post(f"{url}/v1/readings", json={"readings": [s.to_json_obj() for s in subs]}, timeout=timeout)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    refused = [x for x in results if "receipt" not in x]
    assert not refused, f"the service refused resent or new readings: {refused[:3]}"
    got = {bytes.fromhex(x["receipt"]["digest"][2:]) for x in results}
    assert got == {s.digest for s in subs}
    return got


@pytest.mark.anvil
@pytest.mark.slow
@pytest.mark.scenario
def test_sigkill_at_seeded_points_loses_and_duplicates_nothing(
    anvil_deployed: Deployed, db_url: str, tmp_path: Path
) -> None:
    rng = random.Random(4242)
    deployed = anvil_deployed
    require_supet()
    fleet = Fleet(deployed.consortium, 3, seed=404)
    svc = ServiceProcess(env=service_env(deployed, db_url), cwd=tmp_path, log=tmp_path / "serve.log")
    engine = make_engine(db_url)
    acknowledged: set[bytes] = set()
    unacknowledged: list[Submission] = []  # sent, answer lost with the process: the client resends
    kills: list[tuple[str, dict[str, Any]]] = []
    try:
        svc.start()
        # each kill point once, the one that must hit a batch in flight twice (the assertion below needs
        # one of them to land on a closed or submitted batch); a second kill during a POST added a service
        # start (about 3 CPU-s for each database) and no kind of kill the others do not make
        modes = ["after_post", "during_post", "during_anchoring", "during_anchoring"]
        for mode in modes:
            for _ in range(rng.randint(1, 3)):
                acknowledged |= post(svc.url, fleet.sign(rng.randint(5, 30)))
            if mode == "during_post":
                subs = fleet.sign(rng.randint(150, 300))
                answered: list[set[bytes]] = []

                def send(subs: list[Submission] = subs, answered: list[set[bytes]] = answered) -> None:
                    with contextlib.suppress(httpx.HTTPError):  # the process died under the request
                        answered.append(post(svc.url, subs))

                t = threading.Thread(target=send)
                t.start()
                time.sleep(rng.uniform(0.0, 0.25))
                svc.kill()
                t.join(30)
                assert not t.is_alive()
                if answered:
                    acknowledged |= answered[0]
                else:
                    unacknowledged += subs
            elif mode == "during_anchoring":
                wait_for(
                    lambda: (
                        any(b.status in (BatchStatus.CLOSED, BatchStatus.SUBMITTED) for b in batches(engine))
                        or not describe_store(engine)["pending"]
                    ),
                    timeout=10,
                    interval=0.005,
                    what="a batch being anchored",
                )
                time.sleep(rng.uniform(0.0, 0.2))
                svc.kill()
            else:
                svc.kill()
            kills.append((mode, describe_store(engine)))  # the store as the kill left it
            svc.start()
            if unacknowledged:  # the client retries what was never acknowledged, in its order
                acknowledged |= post(svc.url, unacknowledged)
                unacknowledged = []
        acknowledged |= post(svc.url, fleet.sign(17))
        wait_for(
            lambda: all_anchored(engine),
            timeout=60,
            what="every reading anchored after the restarts",
            detail=lambda: (describe_store(engine), kills, svc.tail(1500)),
        )
        bundles, chosen = served_proofs(svc.url, acknowledged, deployed.consortium.factory)
        assert_served_proofs_verify(bundles, deployed.chain, deployed.deployment, expected=chosen)
        svc.kill(signal.SIGTERM)
        result = assert_exactly_once(engine, deployed.chain, deployed.deployment, expected=acknowledged)
        assert result.readings == len(acknowledged) and len(kills) == len(modes)
        in_flight = [k for k in kills if {"closed", "submitted"} & set(k[1]["batches"])]
        assert in_flight, f"no kill hit a batch being anchored: {kills}"
        assert svc.starts == len(modes) + 1
    finally:
        svc.kill()
        engine.dispose()


def served_proofs(
    url: str, digests: set[bytes], owner: LocalAccount
) -> tuple[list[dict[str, Any]], list[bytes]]:
    """GET the proof bundles of a sample of ``digests`` from the running service, as the devices' owner
    (signed in: readings are not public, issue 14)."""
    chosen = sample(digests)
    bundles = []
    with httpx.Client(base_url=url, timeout=10) as client:
        headers = bearer(client, owner)
    for d in chosen:
        r = httpx.get(f"{url}/v1/readings/0x{d.hex()}/proof", timeout=10, headers=headers)
        assert r.status_code == 200, r.text
        bundles.append(r.json())
    return bundles, chosen


def require_supet() -> None:
    assert SUPET.exists(), f"{SUPET} is missing: install the project (pip install -e .)"


# ---------------------------------------------------------------- the crash window, by hand


@pytest.mark.anvil
def test_tx_sent_but_not_recorded_is_adopted_after_restart(anvil_deployed: Deployed, tmp_path: Path) -> None:
    """The process sent ``anchorBatch`` and died before writing ``submitted``: on restart the batch is
    still ``closed``; the resend is refused (root already anchored) and the earlier anchoring adopted."""
    deployed = anvil_deployed
    db_url = f"sqlite:///{tmp_path}/ledger.db"
    fleet = Fleet(deployed.consortium, 2, seed=505)
    first = in_process_service(deployed, db_url, anchoring=False)
    first.start()
    try:
        accepted = submit_all(first, fleet.sign(11))
        batch_id = first.anchoring.close_batch(force=True)
        assert batch_id is not None
        (b,) = batches(first.engine)
        # what _send does, up to the crash: the tx leaves, nothing is recorded
        fn = first.anchoring.contract.functions.anchorBatch(b.root, b.count)
        sent = first.chain.send(fn, first.anchoring.signer)
        deployed.chain.wait(sent, timeout=10)
    finally:
        first.stop()  # the "crash": this worker never records the tx
    assert batches(first.engine)[0].status == BatchStatus.CLOSED and deployed.anchor.batch_count() == 1

    # restart: a new process (new chain connection, no cached nonce), same store
    second = in_process_service(deployed, db_url, anchoring=False, chain=Chain.connect(deployed.node.url))
    second.start()
    try:
        second.anchoring.tick()
        b = batches(second.engine)[0]
        assert b.status == BatchStatus.SUBMITTED and b.tx_hash == sent and b.chain_batch_id == 1, (
            "not adopted"
        )
        second.anchoring.flush(timeout=20)
        b = batches(second.engine)[0]
        assert b.status == BatchStatus.ANCHORED and b.tx_hash == sent and b.chain_batch_id == 1
        assert deployed.anchor.batch_count() == 1, "the batch was anchored twice"
        # the worker goes on anchoring new batches normally after adopting
        accepted |= submit_all(second, fleet.sign(4))
        second.anchoring.flush(timeout=20)
    finally:
        second.stop()
    assert_exactly_once(second.engine, deployed.chain, deployed.deployment, expected=accepted)
    assert_service_proofs_verify(second, accepted)


@pytest.mark.anvil
@pytest.mark.scenario  # two service starts, the chain stopped and restarted: tens of seconds
def test_restart_while_the_chain_is_down_keeps_ingest_open(tmp_path: Path) -> None:
    """Compound fault: the service is killed while the chain is unreachable and restarted before it
    is back. Ingest does not need the chain, so it must open again; anchoring catches up later."""
    require_supet()
    with own_anvil(tmp_path / "anvil-state.json") as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=707)
        db_url = f"sqlite:///{tmp_path}/ledger.db"
        svc = ServiceProcess(env=service_env(deployed, db_url), cwd=tmp_path, log=tmp_path / "serve.log")
        engine = make_engine(db_url)
        try:
            svc.start()
            acknowledged = post(svc.url, fleet.sign(10))
            wait_for(lambda: all_anchored(engine), timeout=20, what="the first readings anchored")
            node.stop()  # the chain goes away (its state is written)...
            svc.kill()  # ...and the service dies while it is away
            svc.start(timeout=60)  # opens although the chain is unreachable (20 s was missed under load)
            acknowledged |= post(svc.url, fleet.sign(10))
            node.start()
            wait_for(
                lambda: all_anchored(engine),
                timeout=60,
                what="every reading anchored once the chain is back",
                detail=lambda: describe_store(engine),
            )
            bundles, chosen = served_proofs(svc.url, acknowledged, deployed.consortium.factory)
            assert_served_proofs_verify(bundles, deployed.chain, deployed.deployment, expected=chosen)
            svc.kill(signal.SIGTERM)
            assert_exactly_once(engine, deployed.chain, deployed.deployment, expected=acknowledged)
        finally:
            svc.kill()
            engine.dispose()
