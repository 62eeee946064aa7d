"""Resubmissions and gaps over HTTP: an identical reading gets the same receipt and is stored once (alone, in
a batch, twice in one batch, re-signed, re-encoded); skipped sequence numbers are reported and counted."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from reads import bearer
from sqlalchemy import select
from support import TestConsortium, now_ms, stored

from device_attestation.keys import DeviceKey
from device_attestation.reading import Domain, Reading, reading_digest
from device_attestation.signing import sign_digest
from ledger_service.service import LedgerService
from ledger_service.store.models import DeviceHeadRow


def head(ledger: LedgerService, device_id: str) -> tuple[int, int, int, int]:
    """(last_seq, readings, gaps, missing) of a device."""
    t = DeviceHeadRow.__table__.c  # type: ignore[attr-defined]
    with ledger.engine.connect() as conn:
        row = conn.execute(
            select(t.last_seq, t.readings, t.gaps, t.missing).where(t.device_id == device_id)
        ).one()
    last_seq, readings, gaps, missing = row
    return last_seq, readings, gaps, missing


def signed(
    key: DeviceKey, device_id: str, seq: int, ts_ms: int, domain: Domain, **fields: Any
) -> dict[str, Any]:
    fields.setdefault("metrics", {"temp_c": 21.5, "good_units": 120})
    r = Reading(device_id=device_id, seq=seq, ts_ms=ts_ms, **fields)
    sig = sign_digest(key, reading_digest(r, domain))
    return {"reading": r.to_json_obj(), "scheme": key.scheme.value, "signature": "0x" + sig.hex()}


def digest_of(sub: dict[str, Any], domain: Domain) -> str:
    return "0x" + reading_digest(Reading.from_json_obj(sub["reading"]), domain).hex()


# ------------------------------------------------------------------------------------------------ idempotency


def test_identical_resubmission_gets_the_same_receipt(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium, subtests: Any
) -> None:
    for scheme in ("p256", "secp256k1"):
        with subtests.test(scheme):
            _resubmit_identically(client, ledger, consortium, scheme)


def _resubmit_identically(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium, scheme: str
) -> None:
    device_id = f"SN-IDEM-1-{scheme}"
    device = consortium.enroll(device_id, scheme)
    sub = device.sign({"temp_c": 21.5}, ts_ms=now_ms() - 1_000, lot_id="LOT-1").to_json_obj()
    first = client.post("/v1/readings", json=sub)
    assert first.status_code == 201, first.text
    expected = {
        "digest": digest_of(sub, consortium.domain),
        "device_id": device_id,
        "seq": 1,
        "status": "accepted",
        "gap": None,
    }
    assert first.json() == expected
    after_first = stored(ledger)
    for _ in range(3):
        again = client.post("/v1/readings", json=sub)
        assert again.status_code == 201 and again.json() == expected, again.text
    assert stored(ledger) == after_first
    assert head(ledger, device_id) == (1, 1, 0, 0)
    # still the same receipt once the device has moved on
    later = [device.sign({"temp_c": 22.0 + i}, ts_ms=now_ms() - 500).to_json_obj() for i in range(2)]
    assert client.post("/v1/readings", json={"readings": later}).json()["accepted"] == 2
    assert client.post("/v1/readings", json=sub).json() == expected
    assert head(ledger, device_id) == (3, 3, 0, 0)
    assert stored(ledger)["readings"] == after_first["readings"] + 2


def test_identical_batch_resubmission(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    a = consortium.enroll("SN-IDEM-2", "p256")
    b = consortium.enroll("GW-IDEM-2", "secp256k1")
    ts = now_ms() - 5_000
    subs = [s.sign({"n": i}, ts_ms=ts + i).to_json_obj() for i in range(3) for s in (a, b)]
    first = client.post("/v1/readings", json={"readings": subs})
    assert first.status_code == 200 and first.json()["accepted"] == 6, first.text
    after_first = stored(ledger)
    again = client.post("/v1/readings", json={"readings": subs})
    assert again.json() == first.json()
    # and mixed: old ones with a new one, in another order
    new = a.sign({"n": 9}, ts_ms=ts + 10).to_json_obj()
    mixed = client.post("/v1/readings", json={"readings": [subs[4], new, subs[0]]}).json()
    assert mixed["accepted"] == 3
    assert [x["receipt"] for x in mixed["results"]] == [
        first.json()["results"][4]["receipt"],
        {
            "digest": digest_of(new, consortium.domain),
            "device_id": "SN-IDEM-2",
            "seq": 4,
            "status": "accepted",
            "gap": None,
        },
        first.json()["results"][0]["receipt"],
    ]
    assert stored(ledger) == {**after_first, "readings": 7}

    # the same reading several times in one batch: one reading, the same receipt each time
    sub = a.sign({"t": 1}, ts_ms=ts + 20).to_json_obj()
    nxt = a.sign({"t": 2}, ts_ms=ts + 21).to_json_obj()
    answer = client.post("/v1/readings", json={"readings": [sub, nxt, sub, sub]}).json()
    assert answer["accepted"] == 4 and answer["rejected"] == 0
    receipts = [x["receipt"] for x in answer["results"]]
    assert receipts[0] == receipts[2] == receipts[3] and receipts[0]["seq"] == 5
    assert receipts[1]["seq"] == 6
    assert stored(ledger) == {**after_first, "readings": 9}
    assert head(ledger, "SN-IDEM-2") == (6, 6, 0, 0)


def test_resigned_or_reencoded_reading_is_the_same_reading(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    """Identity is the digest: another (valid) P-256 signature or another JSON spelling of the same
    reading gets the same receipt, and the first stored form stands."""
    device = consortium.enroll("SN-IDEM-4", "p256")
    key, domain = device.key, consortium.domain
    ts = now_ms() - 1_000
    original = signed(key, "SN-IDEM-4", 1, ts, domain, metrics={"good_units": 120, "temp_c": 21.5})
    resigned = signed(key, "SN-IDEM-4", 1, ts, domain, metrics={"good_units": 120, "temp_c": 21.5})
    assert resigned["signature"] != original["signature"]  # ECDSA P-256 signing is randomised
    reencoded = {
        "signature": original["signature"],
        "scheme": "p256",
        "reading": {
            "metrics": {"temp_c": 21.50, "good_units": 120.0},
            "ts_ms": ts,
            "seq": 1,
            "device_id": "SN-IDEM-4",
        },
    }
    first = client.post("/v1/readings", json=original)
    assert first.status_code == 201
    for other in (resigned, reencoded):
        r = client.post("/v1/readings", json=other)
        assert r.status_code == 201 and r.json() == first.json(), r.text
    assert stored(ledger) == {"readings": 1, "heads": 1, "equivocations": 0}
    status = client.get(f"/v1/readings/{first.json()['digest']}", headers=bearer(client, consortium.factory))
    status = status.json()
    assert status["signature"] == original["signature"]
    assert status["reading"] == original["reading"]


# ------------------------------------------------------------------------------------------------ gaps


def test_gaps_are_reported_and_counted(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-GAP-1", "p256")
    key, domain = device.key, consortium.domain
    t = now_ms() - 100_000

    def post(seq: int) -> dict[str, Any]:
        r = client.post("/v1/readings", json=signed(key, "SN-GAP-1", seq, t + seq, domain))
        assert r.status_code == 201, r.text
        return r.json()

    assert post(1)["gap"] is None
    assert post(5)["gap"] == [2, 4]
    assert head(ledger, "SN-GAP-1") == (5, 2, 1, 3)
    assert post(6)["gap"] is None
    assert post(10)["gap"] == [7, 9]
    assert head(ledger, "SN-GAP-1") == (10, 4, 2, 6)
    # within one batch, each receipt reports its own gap
    answer = client.post(
        "/v1/readings", json={"readings": [signed(key, "SN-GAP-1", s, t + s, domain) for s in (11, 13, 20)]}
    ).json()
    assert [x["receipt"]["gap"] for x in answer["results"]] == [None, [12, 12], [14, 19]]
    assert head(ledger, "SN-GAP-1") == (20, 7, 4, 13)
    assert stored(ledger) == {"readings": 7, "heads": 1, "equivocations": 0}


def test_a_device_starting_above_one_reports_the_numbers_before_it(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-GAP-2", "secp256k1", start_seq=4)
    r = client.post("/v1/readings", json=device.sign({"t": 1}, ts_ms=now_ms() - 1_000).to_json_obj())
    assert r.status_code == 201 and r.json()["gap"] == [1, 3]
    assert head(ledger, "SN-GAP-2") == (4, 1, 1, 3)
    # the largest seq the store holds (BIGINT) is accepted; beyond it see test_rejections.py
    big = consortium.enroll("SN-GAP-3", "p256", start_seq=2**63 - 1)
    r = client.post("/v1/readings", json=big.sign({"t": 1}, ts_ms=now_ms() - 1_000).to_json_obj())
    assert r.status_code == 201 and r.json()["gap"] == [1, 2**63 - 2], r.text
    assert head(ledger, "SN-GAP-3") == (2**63 - 1, 1, 1, 2**63 - 2)


def test_resubmission_of_a_reading_that_reported_a_gap(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-GAP-4", "p256")
    key, domain = device.key, consortium.domain
    t = now_ms() - 10_000
    assert client.post("/v1/readings", json=signed(key, "SN-GAP-4", 1, t, domain)).status_code == 201
    five = signed(key, "SN-GAP-4", 5, t + 5, domain)
    first = client.post("/v1/readings", json=five).json()
    assert first["gap"] == [2, 4]
    assert client.post("/v1/readings", json=five).json() == first
