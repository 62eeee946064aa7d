"""Ingest over HTTP, end to end on the embedded chain: submit, store, anchor, prove."""

from __future__ import annotations

from fastapi.testclient import TestClient
from reads import sign_client_in
from support import TestConsortium, now_ms

from auditor.bundle import ProofBundle
from auditor.verify import verify_bundle
from contracts.registry import ReadingAnchorClient, verify_reading_on_chain
from device_attestation.merkle import verify_inclusion
from device_attestation.reading import Reading, reading_struct
from ledger_service.service import LedgerService


def test_submit_anchor_and_prove(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    p256 = consortium.enroll("SN-HTTP-1", "p256")
    k1 = consortium.enroll("GW-HTTP-1", "secp256k1")
    subs = [p256.sign({"temp_c": 20.0 + i, "good_units": i}, ts_ms=now_ms() - 1000) for i in range(5)]
    subs += [k1.sign({"temp_c": 21.5}, ts_ms=now_ms() - 500, lot_id="LOT-1") for _ in range(3)]

    one = client.post("/v1/readings", json=subs[0].to_json_obj())
    assert one.status_code == 201, one.text
    assert one.json()["digest"] == "0x" + subs[0].digest.hex()
    batch = client.post("/v1/readings", json={"readings": [s.to_json_obj() for s in subs]})
    assert batch.status_code == 200
    body = batch.json()
    assert body["accepted"] == 8 and body["rejected"] == 0  # the first again: idempotent
    assert body["results"][0]["receipt"]["digest"] == one.json()["digest"]

    path = f"/v1/readings/0x{subs[1].digest.hex()}/proof"
    anonymous = client.get(path)  # issue 14: a factory's readings are not public
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "access.anonymous"
    pending = client.get(path, headers=p256.request_headers("GET", path))  # the device reads its own
    assert pending.status_code == 404 and pending.json()["status"] == "pending"
    sign_client_in(client, consortium.factory)  # the owner reads the rest

    ledger.anchoring.flush(timeout=30)
    anchor = ReadingAnchorClient(ledger.chain, ledger.deployment)
    for s in subs:
        r = client.get(f"/v1/readings/0x{s.digest.hex()}/proof")
        assert r.status_code == 200, r.text
        bundle = r.json()
        assert bundle["digest"] == "0x" + s.digest.hex()
        assert bundle["chain_id"] == ledger.chain.chain_id
        root = bytes.fromhex(bundle["root"][2:])
        proof = [bytes.fromhex(p[2:]) for p in bundle["proof"]]
        verify_inclusion(digest=s.digest, proof=proof, root=root)
        assert anchor.batch(bundle["batch_id"]).root == root
        struct = reading_struct(Reading.from_json_obj(bundle["reading"]))
        sig = bytes.fromhex(bundle["signature"][2:])
        assert verify_reading_on_chain(anchor, struct, sig, bundle["batch_id"], proof) == s.digest
        # the auditor's verifier, with the chain alone, agrees
        verified = verify_bundle(
            ProofBundle.from_json_obj(bundle), chain=ledger.chain, deployment=ledger.deployment
        )
        assert verified.digest == s.digest

    history = client.get("/v1/devices/SN-HTTP-1/readings", params={"limit": 2})
    assert history.status_code == 200
    page = history.json()
    assert [r["reading"]["seq"] for r in page["readings"]] == [1, 2] and page["next_after_seq"] == 2
    rest = client.get("/v1/devices/SN-HTTP-1/readings", params={"after_seq": 2}).json()
    assert [r["reading"]["seq"] for r in rest["readings"]] == [3, 4, 5] and rest["next_after_seq"] is None
    assert all(r["status"] == "anchored" for r in rest["readings"])


def test_deployment_and_health(client: TestClient, ledger: LedgerService) -> None:
    dep = client.get("/v1/deployment").json()
    assert dep["chain_id"] == 31337
    assert dep["domain"]["verifyingContract"] == ledger.deployment.address("ReadingAnchor")
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] == "ok" and ready.json()["chain"] == "ok"
