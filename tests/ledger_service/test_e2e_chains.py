"""End to end on both chains: enroll, submit over HTTP, anchor, fetch bundles, verify offline and on chain."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from reads import sign_client_in
from support import TestConsortium

from auditor.bundle import ProofBundle
from auditor.verify import verify_bundle, verify_bundle_on_chain
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService


@pytest.fixture
def chain_service(suite: Any, tmp_path: Path) -> Iterator[LedgerService]:
    """A service on each chain kind (the `suite` fixture: the suite deployed once per process on the
    embedded chain and once per session on anvil, rolled back after)."""
    chain, deployment = suite.chain, suite.deployment
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/ledger.db",
        verify_workers=1,
        anchoring=True,
        batch_max_readings=7,
        batch_max_seconds=0.2,
        registry_refresh_seconds=0,
    )
    service = LedgerService.build(settings, chain=chain, deployment=deployment)
    yield service
    service.stop()


def test_end_to_end(chain_service: LedgerService) -> None:
    consortium = TestConsortium(chain_service.chain, chain_service.deployment)
    devices = [consortium.enroll("SN-E2E-P256", "p256"), consortium.enroll("GW-E2E-K1", "secp256k1")]
    now = int(time.time() * 1000) - 5_000
    subs = [
        d.sign({"temp_c": 20.0 + i / 10, "good_units": i}, ts_ms=now + i, lot_id="LOT-E2E")
        for i in range(9)
        for d in devices
    ]
    with TestClient(create_app(service=chain_service)) as client:
        body = client.post("/v1/readings", json={"readings": [s.to_json_obj() for s in subs]}).json()
        assert body["accepted"] == len(subs), body
        sign_client_in(client, consortium.factory)  # the devices' owner reads their proofs
        # the anchoring worker closes batches of 7 (and the rest after 0.2 s) and anchors them
        deadline = time.monotonic() + 60
        bundles: dict[bytes, dict] = {}  # type: ignore[type-arg]
        while len(bundles) < len(subs) and time.monotonic() < deadline:
            for s in subs:
                if s.digest not in bundles:
                    r = client.get(f"/v1/readings/0x{s.digest.hex()}/proof")
                    if r.status_code == 200:
                        bundles[s.digest] = r.json()
            time.sleep(0.1)
        assert len(bundles) == len(subs), f"only {len(bundles)}/{len(subs)} anchored within 60 s"
    batch_ids = {b["batch_id"] for b in bundles.values()}
    assert len(batch_ids) >= 3  # 18 readings in batches of at most 7
    for digest, raw in bundles.items():
        bundle = ProofBundle.from_json_obj(raw)
        offline = verify_bundle(bundle, chain=chain_service.chain, deployment=chain_service.deployment)
        on_chain = verify_bundle_on_chain(
            bundle, chain=chain_service.chain, deployment=chain_service.deployment
        )
        assert offline.digest == on_chain == digest
