"""Issue 17: three ``supet serve`` processes on one PostgreSQL database and one anvil deployment.

Exactly one of them leads anchoring. Readings are posted to all three (each device to one instance
only: the devices' sequence rules are another change's); the leader is SIGKILLed while batches are
being anchored, twice; another instance takes the lead within two batch intervals (measured: from the
kill to the new epoch in the store, and the new leader's ``/readyz`` and ``/metrics``); the first one
killed restarts as a follower. At the end every acknowledged reading is stored once and anchored once
(the chain holds exactly the store's batches: none anchored twice), and proofs served by a follower
verify.
"""

from __future__ import annotations

import random
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults import (
    Deployed,
    Fleet,
    all_anchored,
    assert_exactly_once,
    assert_served_proofs_verify,
    batches,
    deploy_on,
    describe_store,
    own_anvil,
    sample,
    wait_for,
)
from reads import bearer
from service_process import SUPET, ServiceProcess, service_env
from sqlalchemy import Engine
from support import database_url

from device_attestation.sdk import DeviceSigner, Submission
from ledger_service.anchoring.leader import read_leader
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.engine import make_engine

#: SUPET_BATCH_MAX_SECONDS of the instances: a takeover must take less than twice this.
BATCH_SECONDS = 1.0
#: How long a ``supet serve`` may take to answer (tens of seconds on a loaded 2-core machine).
START_SECONDS = 150.0


@pytest.fixture
def anvil_deployed(tmp_path: Path) -> Iterator[Deployed]:
    with own_anvil() as node:
        yield deploy_on(node, tmp_path)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from database_url("postgresql", tmp_path)


def post(url: str, subs: list[Submission]) -> set[bytes]:
    """POST readings; every one must be acknowledged."""
    r = httpx.post(f"{url}/v1/readings", json={"readings": [s.to_json_obj() for s in subs]}, timeout=30)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert all("receipt" in x for x in results), [x for x in results if "receipt" not in x][:3]
    return {bytes.fromhex(x["receipt"]["digest"][2:]) for x in results}


class Feed:
    """The readings of one device (posted to one instance only)."""

    def __init__(self, device: DeviceSigner, seed: int) -> None:
        self.device = device
        self.rng = random.Random(seed)

    def sign(self, n: int) -> list[Submission]:
        return [
            self.device.sign(
                {"temp_c": round(self.rng.uniform(-20, 40), 3), "good_units": self.rng.randrange(1000)},
                ts_ms=int(time.time() * 1000) - 100,
            )
            for _ in range(n)
        ]


class Phases:
    """When each phase of the test ended (seconds since its start), printed at the end."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: list[str] = []

    def __call__(self, what: str) -> None:
        self.marks.append(f"{what} {time.monotonic() - self.t0:.1f}s")


def post_into(out: set[bytes], url: str, subs: list[Submission]) -> None:
    out.update(post(url, subs))


def newer_epoch(engine: Engine, epoch: int) -> int | None:
    """The store's lead epoch once it is past ``epoch``."""
    now = read_leader(engine)[0]
    return now if now > epoch else None


def lead_of(svc: ServiceProcess) -> dict[str, Any]:
    r = httpx.get(f"{svc.url}/readyz", timeout=5)
    lead = r.json()["anchoring_leader"]
    assert isinstance(lead, dict), lead
    return lead


def leader_gauges(svc: ServiceProcess) -> tuple[float, float]:
    text = httpx.get(f"{svc.url}/metrics", timeout=5).text
    values = {
        line.split()[0]: float(line.split()[1])
        for line in text.splitlines()
        if line.startswith("supet_anchor_leader")
    }
    return values["supet_anchor_leader"], values["supet_anchor_leader_epoch"]


def the_leader(instances: list[ServiceProcess]) -> tuple[int, int] | None:
    """(index, epoch) of the one running instance that says it leads; None while none does (a
    takeover under way). Two that say so fail at once."""
    leads = [(i, lead_of(svc)) for i, svc in enumerate(instances) if svc.proc is not None]
    leaders = [(i, int(lead["epoch"])) for i, lead in leads if lead["leader"]]
    assert len(leaders) <= 1, f"two instances lead at once: {leads}"
    return leaders[0] if leaders else None


def wait_leader(instances: list[ServiceProcess], what: str) -> tuple[int, int]:
    return wait_for(lambda: the_leader(instances), timeout=10, what=what)


@pytest.mark.anvil
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.scenario
def test_three_instances_one_leader_takeover_within_two_batch_intervals(
    pg_url: str, anvil_deployed: Deployed, tmp_path: Path
) -> None:
    assert SUPET.exists(), f"{SUPET} is missing: install the project (pip install -e .)"
    deployed = anvil_deployed
    env = service_env(deployed, pg_url)
    env.update(
        SUPET_BATCH_MAX_SECONDS=str(BATCH_SECONDS),
        SUPET_BATCH_MAX_READINGS="12",
        SUPET_TOKEN_SECRET=secrets.token_hex(32),  # the same on each: any instance serves any client
    )
    mark = Phases()
    # enrolled right after the deployment: a device's activation is dated from the latest block's time
    fleet = Fleet(deployed.consortium, 3, seed=170)  # p256, secp256k1, p256
    fleets = [Feed(device, i) for i, device in enumerate(fleet.devices)]  # device i posts to instance i
    mark("devices enrolled")
    instances = [ServiceProcess(env=env, cwd=tmp_path, log=tmp_path / f"serve-{i}.log") for i in range(3)]
    engine = make_engine(pg_url)
    acknowledged: set[bytes] = set()
    takeovers: list[float] = []
    kills: list[dict[str, Any]] = []
    try:
        for svc in instances:
            # one after the other: started side by side, the instances' registry mirrors insert the
            # same device rows at once and one start fails on the unique key (not this test's subject)
            svc.start(timeout=START_SECONDS)
        mark("3 instances started")
        leader, epoch = wait_leader(instances, "one leader among the three instances")
        assert epoch >= 1
        for i, svc in enumerate(instances):
            assert leader_gauges(svc)[0] == (1.0 if i == leader else 0.0)
        assert leader_gauges(instances[leader]) == (1.0, float(epoch))

        for rnd in range(2):  # each instance's devices post to that instance only
            for i, svc in enumerate(instances):
                acknowledged |= post(svc.url, fleets[i].sign(10 + 3 * rnd))

        for kill in range(2):
            leader, epoch = wait_leader(instances, "the leader")
            # a burst on every instance: the leader closes and sends several batches of 12
            for i, svc in enumerate(instances):
                acknowledged |= post(svc.url, fleets[i].sign(60))
            wait_for(
                lambda: any(b.status in (BatchStatus.CLOSED, BatchStatus.SUBMITTED) for b in batches(engine)),
                timeout=10,
                interval=0.005,
                what="a batch being anchored",
            )
            killed_at = time.monotonic()
            instances[leader].kill()  # SIGKILL, mid-batch
            mark(f"leader {leader} killed")
            kills.append({"leader": leader, "epoch": epoch, **describe_store(engine)})
            # the followers keep taking readings meanwhile
            posting = [
                threading.Thread(target=post_into, args=(acknowledged, instances[i].url, fleets[i].sign(15)))
                for i in range(3)
                if i != leader
            ]
            for t in posting:
                t.start()
            new_epoch = wait_for(
                lambda e=epoch: newer_epoch(engine, e),
                timeout=10,
                interval=0.01,
                what="another instance taking the lead",
            )
            took = time.monotonic() - killed_at
            takeovers.append(took)
            for t in posting:
                t.join(30)
                assert not t.is_alive()
            new_leader, seen_epoch = wait_leader(instances, "the new leader saying so")
            assert new_leader != leader and seen_epoch == new_epoch == epoch + 1
            assert leader_gauges(instances[new_leader]) == (1.0, float(new_epoch))
            assert took < 2 * BATCH_SECONDS, (
                f"takeover took {took:.2f}s, more than two batch intervals ({2 * BATCH_SECONDS:.1f}s)"
            )
            mark("takeover checked")
            if kill == 0:  # back as a follower (once: a start is the slow part of this test)
                instances[leader].start(timeout=START_SECONDS)
                mark(f"instance {leader} restarted")
                assert not lead_of(instances[leader])["leader"]
                acknowledged |= post(instances[leader].url, fleets[leader].sign(7))

        running = [i for i, svc in enumerate(instances) if svc.proc is not None]
        assert len(running) == 2
        for i in running:
            acknowledged |= post(instances[i].url, fleets[i].sign(5))
        wait_for(
            lambda: all_anchored(engine),
            timeout=60,
            what="every reading anchored after the takeovers",
            detail=lambda: (describe_store(engine), kills, [svc.tail(800) for svc in instances]),
        )
        mark("all anchored")
        leader, _ = wait_leader(instances, "the leader at the end")
        follower = instances[next(i for i in running if i != leader)]
        chosen = sample(acknowledged)
        with httpx.Client(base_url=follower.url, timeout=10) as client:
            headers = bearer(client, deployed.consortium.factory)
            bundles = []
            for d in chosen:
                r = client.get(f"/v1/readings/0x{d.hex()}/proof", headers=headers)
                assert r.status_code == 200, r.text
                bundles.append(r.json())
        assert_served_proofs_verify(bundles, deployed.chain, deployed.deployment, expected=chosen)
        for svc in instances:
            svc.kill(signal.SIGTERM)
        result = assert_exactly_once(engine, deployed.chain, deployed.deployment, expected=acknowledged)
        assert result.readings == len(acknowledged)
        in_flight = [k for k in kills if {"closed", "submitted"} & set(k["batches"])]
        assert in_flight, f"no kill hit a batch being anchored: {kills}"
        print(
            f"\ntakeovers (SIGKILL to the new epoch in the store): {[f'{t:.3f}s' for t in takeovers]}; "
            f"{result.readings} readings in {result.batches} batches, each anchored once; {mark.marks}"
        )
    finally:
        for svc in instances:
            svc.kill()
        engine.dispose()
