"""Issue 17: enrollments in progress survive a SIGKILL and move between ``supet serve`` processes.

Two real ``supet serve`` processes on one PostgreSQL database and the test's own anvil (A anchors, B runs
with ``SUPET_ANCHORING=false``: one anchoring instance). Each enrollment is interrupted by a SIGKILL of
the instance that holds a step of it, and is finished against the restarted instance or the other one:

- device 1: challenge from A; A is killed; B verifies and prepares the enrollment with that challenge;
  A is restarted and relays and confirms it (verified against the certificate B prepared);
- device 2: challenge from B and prepared on B; B is killed and restarted; the spent challenge is
  refused on A; the party sends the transaction itself and the restarted B confirms it.

Then both devices submit readings to both instances; A anchors them all, and the proof bundles either
instance serves verify against the chain.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_enrollment import NewDevice, ask_challenge, certified_device, prepare, relay
from faults import (
    Deployed,
    all_anchored,
    assert_exactly_once,
    assert_served_proofs_verify,
    deploy_on,
    describe_store,
    own_anvil,
    wait_for,
)
from reads import bearer
from service_process import SUPET, ServiceProcess, service_env
from support import database_url

from device_attestation.sdk import DeviceSigner
from ledger_service.store.engine import make_engine


@pytest.fixture
def anvil_deployed(tmp_path: Path) -> Iterator[Deployed]:
    with own_anvil() as node:
        yield deploy_on(node, tmp_path)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from database_url("postgresql", tmp_path)


def _instance(name: str, deployed: Deployed, db_url: str, tmp_path: Path, **extra: str) -> ServiceProcess:
    env = service_env(deployed, db_url)
    env.update(SUPET_TOKEN_SECRET=_SECRET, SUPET_DATA_DIR=str(tmp_path / name), **extra)
    return ServiceProcess(env=env, cwd=tmp_path, log=tmp_path / f"serve-{name}.log")


#: Seconds a ``supet serve`` may take to answer /healthz: a start took over 40 s on a loaded 2-core host.
START_TIMEOUT = 120.0
_SECRET = secrets.token_hex(32)  # one token secret for both instances (docs/deployment.md, section 5)


def _post_readings(url: str, device: NewDevice, deployed: Deployed, n: int, start_seq: int) -> set[bytes]:
    signer = DeviceSigner(
        device_id=device.device_id, key=device.key, domain=deployed.consortium.domain, start_seq=start_seq
    )
    active_from = deployed.consortium.registry.device(device.device_id).active_from_ms
    subs = [
        signer.sign({"temp_c": 20.0 + i}, ts_ms=max(int(time.time() * 1000), active_from) + i)
        for i in range(n)
    ]
    r = httpx.post(f"{url}/v1/readings", json={"readings": [s.to_json_obj() for s in subs]}, timeout=30)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert all("receipt" in x for x in results), results
    return {s.digest for s in subs}


@pytest.mark.anvil
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.scenario  # four `supet serve` starts: 1-3 minutes on a loaded 2-core host
def test_enrollments_survive_sigkill_and_move_between_instances(
    anvil_deployed: Deployed, pg_url: str, tmp_path: Path
) -> None:
    assert SUPET.exists(), f"{SUPET} is missing: install the project (pip install -e .)"
    deployed = anvil_deployed
    consortium, factory = deployed.consortium, deployed.consortium.factory
    a = _instance("a", deployed, pg_url, tmp_path)
    b = _instance("b", deployed, pg_url, tmp_path, SUPET_ANCHORING="false")
    engine = make_engine(pg_url)
    try:
        with ThreadPoolExecutor(2) as pool:  # both first starts at once
            for started in [pool.submit(svc.start, timeout=START_TIMEOUT) for svc in (a, b)]:
                started.result()
        with httpx.Client(base_url=a.url, timeout=30) as on_a:
            auth = bearer(on_a, factory)

        # device 1: challenge from A, A killed, prepared on B, relayed and confirmed on the restarted A
        one = certified_device(consortium.ca_key, consortium.ca_cert, "SN-MULTI-1")
        with httpx.Client(base_url=a.url, timeout=30) as on_a:
            challenge = ask_challenge(on_a, auth)
        a.kill()
        with httpx.Client(base_url=b.url, timeout=30) as on_b:
            r = prepare(on_b, auth, one, challenge, factory.address)
        assert r.status_code == 200, r.text
        prepared_one = r.json()
        a.start(timeout=START_TIMEOUT)
        with httpx.Client(base_url=a.url, timeout=30) as on_a:
            again = prepare(on_a, auth, one, challenge, factory.address)
            assert again.status_code == 422 and again.json()["error"]["code"] == "pop.unknown_challenge"
            r = relay(on_a, auth, factory, "SN-MULTI-1", prepared_one)
        assert r.status_code == 200, r.text
        assert r.json()["verified_here"] is True
        assert r.json()["registry"]["cert_fingerprint"] == prepared_one["cert_fingerprint"]

        # device 2: challenge from B and prepared on B, B killed and restarted, confirmed on B
        two = certified_device(consortium.ca_key, consortium.ca_cert, "GW-MULTI-2", "secp256k1")
        with httpx.Client(base_url=b.url, timeout=30) as on_b:
            challenge = ask_challenge(on_b, auth)
            r = prepare(on_b, auth, two, challenge, factory.address)
        assert r.status_code == 200, r.text
        prepared_two = r.json()
        b.kill()
        b.start(timeout=START_TIMEOUT)
        with httpx.Client(base_url=a.url, timeout=30) as on_a:  # B spent it before it was killed
            spent = prepare(on_a, auth, two, challenge, factory.address)
        assert spent.status_code == 422 and spent.json()["error"]["code"] == "pop.unknown_challenge"
        signed = factory.sign_transaction(prepared_two["transaction"])
        tx_hash = deployed.chain.w3.eth.send_raw_transaction(signed.raw_transaction).to_0x_hex()
        with httpx.Client(base_url=b.url, timeout=30) as on_b:
            r = on_b.post("/v1/devices/GW-MULTI-2/confirm", headers=auth, json={"tx_hash": tx_hash})
        assert r.status_code == 200, r.text
        assert r.json()["verified_here"] is True and r.json()["tx_hash"] == tx_hash

        # both devices' readings, to both instances; A anchors them all
        accepted = _post_readings(a.url, one, deployed, 7, 1)
        accepted |= _post_readings(b.url, one, deployed, 6, 8)
        accepted |= _post_readings(b.url, two, deployed, 9, 1)
        accepted |= _post_readings(a.url, two, deployed, 5, 10)
        wait_for(
            lambda: all_anchored(engine),
            timeout=40,
            what="every reading anchored by A",
            detail=lambda: (describe_store(engine), a.tail(1500)),
        )
        chosen = sorted(accepted)[::4]
        bundles = []
        for i, digest in enumerate(chosen):
            svc = (a, b)[i % 2]  # either instance serves any proof
            with httpx.Client(base_url=svc.url, timeout=30) as client:
                r = client.get(f"/v1/readings/0x{digest.hex()}/proof", headers=auth)
            assert r.status_code == 200, r.text
            bundles.append(r.json())
        assert_served_proofs_verify(bundles, deployed.chain, deployed.deployment, expected=chosen)
        a.kill(signal.SIGTERM)
        b.kill(signal.SIGTERM)
        result = assert_exactly_once(engine, deployed.chain, deployed.deployment, expected=accepted)
        assert result.readings == len(accepted) == 27
        assert (a.starts, b.starts) == (2, 2)
    finally:
        a.kill()
        b.kill()
        engine.dispose()
