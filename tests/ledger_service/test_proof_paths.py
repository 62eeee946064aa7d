"""Proofs from stored paths (issue 17.3): each reading's proof path is stored when its batch is closed,
so a proof bundle is one row read. The bundles served are the ones rebuilt from scratch, byte for byte;
readings batched before the paths were stored are still served (from the batch's stored tree, and
filled by migration 0012 on a populated store); the bulk reads page every anchored reading once."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from reads import sign_client_in
from sqlalchemy import update
from sqlmodel import Session, col, select
from support import TestConsortium

from auditor.bundle import ProofBundle, build_bundle
from auditor.verify import verify_bundle
from contracts.errors import ContractsError
from device_attestation.errors import ProofMismatch
from device_attestation.merkle import MerkleTree, leaf_hash
from device_attestation.reading import Reading
from device_attestation.sdk import DeviceSigner, Submission
from ledger_service import proofs
from ledger_service.api.responses import FastJSONResponse
from ledger_service.jsonio import loads_exact
from ledger_service.proofs import proof_bundle
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.batch_tree import build_encoded_tree, decode_tree, path_from_nodes, split_path
from ledger_service.store.migrations import downgrade, upgrade
from ledger_service.store.models import BatchRow, ReadingRow
from ledger_service.store.queries import batch_digests

LOT = "LOT-PROOFS-1"


def _digests(rng: random.Random, n: int) -> list[bytes]:
    return [rng.randbytes(32) for _ in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 17, 1000])
def test_stored_paths_are_the_rebuilt_proofs(n: int) -> None:
    rng = random.Random(n)
    digests = _digests(rng, n)
    root, nodes, paths = build_encoded_tree(digests)
    tree = MerkleTree.build(rng.sample(digests, n))  # the tree does not depend on the order given
    assert root == tree.root and nodes == b"".join(tree.tree)
    for d, path in zip(digests, paths, strict=True):
        assert split_path(path) == tree.proof(d)
        assert path_from_nodes(nodes, d) == path  # the fallback for readings batched before 0012
    with pytest.raises(Exception, match="not in its batch"):
        path_from_nodes(nodes, rng.randbytes(32))


def _sensor(consortium: TestConsortium, name: str) -> DeviceSigner:
    return consortium.enroll(name)


def _post(client: TestClient, subs: list[Submission]) -> None:
    r = client.post("/v1/readings", json={"readings": [s.to_json_obj() for s in subs]})
    assert r.status_code == 200 and r.json()["accepted"] == len(subs), r.text


def _anchored_world(ledger: LedgerService, client: TestClient) -> tuple[TestConsortium, list[Submission]]:
    """Two devices' readings (most naming LOT) anchored in batches of 1, 2, 3 and 11 readings."""
    consortium = TestConsortium(ledger.chain, ledger.deployment)
    a, b = _sensor(consortium, "SN-PP-A"), _sensor(consortium, "SN-PP-B")
    ts = int(ledger.chain.w3.eth.get_block("latest")["timestamp"]) * 1000 - 30_000
    subs: list[Submission] = []
    k = 0
    for size in (1, 2, 3, 11):
        group = []
        for _ in range(size):
            k += 1
            dev = a if k % 3 else b
            group.append(dev.sign({"temp_c": 20.0 + k}, ts_ms=ts + k, lot_id=LOT if k % 4 else None))
        _post(client, group)
        ledger.anchoring.flush(timeout=30)
        subs += group
    sign_client_in(client, consortium.factory)
    return consortium, subs


def _rebuilt(ledger: LedgerService, digest: bytes) -> dict[str, Any]:
    """The bundle as served before issue 17.3: the batch's tree rebuilt from all its digests."""
    with Session(ledger.engine) as s:
        row = s.exec(select(ReadingRow).where(col(ReadingRow.digest) == digest)).one()
        batch = s.get(BatchRow, row.batch_id)
        assert batch is not None and batch.id is not None
        tree = decode_tree(batch.tree, batch_digests(s, batch.id))
        assert batch.chain_batch_id is not None and batch.tx_hash is not None
        return build_bundle(
            reading=Reading.from_json_obj(loads_exact(row.reading_json)),
            scheme=row.scheme,
            signature=row.signature,
            tree=tree,
            batch_id=batch.chain_batch_id,
            deployment=ledger.deployment,
            anchor_tx=batch.tx_hash,
        ).to_json_obj()


def _forget_paths(ledger: LedgerService) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(update(ReadingRow).values(proof_path=None))


def test_served_bundles_equal_rebuilt_ones_before_and_after_paths(
    ledger: LedgerService, client: TestClient
) -> None:
    _, subs = _anchored_world(ledger, client)
    with Session(ledger.engine) as s:
        counts = sorted(b.count for b in s.exec(select(BatchRow)))
        assert counts == [1, 2, 3, 11]
        assert all(r.proof_path is not None for r in s.exec(select(ReadingRow)))
    served = {}
    for sub in subs:
        r = client.get(f"/v1/readings/0x{sub.digest.hex()}/proof")
        assert r.status_code == 200, r.text
        assert r.content == FastJSONResponse(_rebuilt(ledger, sub.digest)).body  # byte for byte
        served[sub.digest] = r.content
        verify_bundle(ProofBundle.from_json_obj(r.json()), chain=ledger.chain, deployment=ledger.deployment)
    _forget_paths(ledger)  # readings batched before migration 0012, by an older instance
    for sub in subs:
        assert client.get(f"/v1/readings/0x{sub.digest.hex()}/proof").content == served[sub.digest]


def _all_pages(client: TestClient, path: str, limit: int, **params: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        r = client.get(path, params={"limit": limit, **params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["proofs"]) <= limit
        out += body["proofs"]
        cursor = body["next_cursor"]
        if cursor is None:
            return out
    raise AssertionError("paging did not end")


def test_bulk_reads_page_every_anchored_reading_once(ledger: LedgerService, client: TestClient) -> None:
    consortium, subs = _anchored_world(ledger, client)
    for limit in (1, 4, 1000):
        for device in ("SN-PP-A", "SN-PP-B"):
            got = _all_pages(client, f"/v1/devices/{device}/proofs", limit)
            mine = [s for s in subs if s.reading.device_id == device]
            assert [g["digest"] for g in got] == [f"0x{s.digest.hex()}" for s in mine]  # by seq, once each
            for g in got:
                assert g == _rebuilt(ledger, bytes.fromhex(g["digest"][2:]))
        # a lot id no lot on chain has: its issuer's devices' readings naming it
        got = _all_pages(client, f"/v1/lots/{LOT}/proofs", limit, issuer=consortium.factory.address)
        named = sorted(f"0x{s.digest.hex()}" for s in subs if s.reading.lot_id == LOT)
        assert sorted(g["digest"] for g in got) == named and len(got) == len(named)
    _forget_paths(ledger)
    assert len(_all_pages(client, "/v1/devices/SN-PP-A/proofs", 5)) == sum(
        1 for s in subs if s.reading.device_id == "SN-PP-A"
    )


def test_pending_readings_are_left_out_and_bad_paging_refused(
    ledger: LedgerService, client: TestClient
) -> None:
    _, subs = _anchored_world(ledger, client)
    device = subs[0].reading.device_id
    before = _all_pages(client, f"/v1/devices/{device}/proofs", 50)
    with Session(ledger.engine) as s:  # a batch closed, not anchored yet: its readings are not listed
        batch = s.exec(select(BatchRow).order_by(col(BatchRow.id).desc())).first()
        assert batch is not None
        batch.status = BatchStatus.SUBMITTED
        s.add(batch)
        s.commit()
    after = _all_pages(client, f"/v1/devices/{device}/proofs", 50)
    assert 0 < len(after) < len(before)
    for bad in ("x1", "-1", "1" * 25, "99999999999999999999"):
        r = client.get(f"/v1/devices/{device}/proofs", params={"cursor": bad})
        assert r.status_code in (400, 422) and r.json()["error"]["code"].startswith("request."), r.text
    for limit in (0, 1001):
        r = client.get(f"/v1/devices/{device}/proofs", params={"limit": limit})
        assert r.status_code == 422, r.text


def test_migration_fills_the_paths_of_a_populated_store(ledger: LedgerService, client: TestClient) -> None:
    _, subs = _anchored_world(ledger, client)
    with Session(ledger.engine) as s:
        written = {bytes(r.digest): r.proof_path for r in s.exec(select(ReadingRow))}
    served = {s.digest: client.get(f"/v1/readings/0x{s.digest.hex()}/proof").content for s in subs}
    downgrade(ledger.engine, "0011")  # the store as it was before issue 17.3, its readings anchored
    upgrade(ledger.engine)
    with Session(ledger.engine) as s:
        filled = {bytes(r.digest): r.proof_path for r in s.exec(select(ReadingRow))}
    assert filled == written and all(p is not None for p in filled.values())
    for sub in subs:
        assert client.get(f"/v1/readings/0x{sub.digest.hex()}/proof").content == served[sub.digest]


def test_a_corrupt_stored_path_is_refused_not_served(ledger: LedgerService, client: TestClient) -> None:
    _, subs = _anchored_world(ledger, client)
    victim = subs[-1].digest
    mine = col(ReadingRow.digest) == victim
    with ledger.engine.begin() as conn:
        stored = bytes(conn.execute(select(col(ReadingRow.proof_path)).where(mine)).one()[0] or b"")
        assert stored, "the last batch has 11 readings: its paths are not empty"
        bad = stored[:-1] + bytes([stored[-1] ^ 1])
        conn.execute(update(ReadingRow).where(mine).values(proof_path=bad))
    with pytest.raises(ProofMismatch):
        proof_bundle(ledger, victim)
    with ledger.engine.begin() as conn:  # a path of a wrong length
        conn.execute(update(ReadingRow).where(mine).values(proof_path=b"\x00" * 33))
    with pytest.raises(ContractsError, match="not a whole number"):
        proof_bundle(ledger, victim)


def _pages_from(
    client: TestClient, path: str, cursor: str | None, limit: int
) -> tuple[list[str], str | None]:
    """Every bundle served from ``cursor`` on, and the resume cursor the last page gave."""
    got: list[str] = []
    for _ in range(100):
        r = client.get(path, params={"limit": limit, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        got += [p["digest"] for p in body["proofs"]]
        if body["next_cursor"] is None:
            return got, body["resume_cursor"]
        cursor = body["next_cursor"]
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("limit", [1, 2, 100])
def test_a_resumed_read_serves_late_readings_and_waits_for_batches_on_their_way(
    ledger: LedgerService, client: TestClient, limit: int
) -> None:
    """An auditor following a device: it pages to the end, comes back later with the resume cursor, and
    gets exactly what was anchored since: a late store-and-forward reading below the seqs it has
    already seen included; nothing beyond a batch still on its way is served until it is anchored."""
    consortium = TestConsortium(ledger.chain, ledger.deployment)
    device = _sensor(consortium, "SN-PP-LATE")
    sign_client_in(client, consortium.factory)
    ts = int(ledger.chain.w3.eth.get_block("latest")["timestamp"]) * 1000  # its enrollment's block
    subs = [device.sign({"temp_c": 20.0 + k}, ts_ms=ts + 10 * k) for k in range(1, 8)]
    hex_of = [f"0x{s.digest.hex()}" for s in subs]
    path = f"/v1/devices/{device.device_id}/proofs"
    _post(client, subs[0:3] + subs[4:5])  # seqs 1, 2, 3, 5: 4 is still on the device
    ledger.anchoring.flush(timeout=30)
    first, resume = _pages_from(client, path, None, limit)
    assert first == hex_of[0:3] + hex_of[4:5] and resume is not None

    _post(client, subs[3:4])  # the late reading, seq 4 (below the seq 5 already served)
    ledger.anchoring.flush(timeout=30)
    _post(client, subs[5:6])  # seq 6
    ledger.anchoring.flush(timeout=30)
    _post(client, subs[6:7])  # seq 7, in a later batch
    ledger.anchoring.flush(timeout=30)
    with Session(ledger.engine) as s:  # seq 6's batch: as if its transaction were still on its way
        batch = s.exec(select(BatchRow).order_by(col(BatchRow.id).desc()).offset(1)).first()
        assert batch is not None and batch.status == BatchStatus.ANCHORED and batch.count == 1
        on_its_way = batch.id
        batch.status = BatchStatus.SUBMITTED
        s.add(batch)
        s.commit()
    second, resume2 = _pages_from(client, path, resume, limit)
    assert second == hex_of[3:4]  # the late reading; not seq 7, which lies beyond the batch on its way
    with Session(ledger.engine) as s:
        batch = s.get(BatchRow, on_its_way)
        assert batch is not None
        batch.status = BatchStatus.ANCHORED
        s.add(batch)
        s.commit()
    third, resume3 = _pages_from(client, path, resume2, limit)
    assert third == hex_of[5:7]
    assert _pages_from(client, path, resume3, limit) == ([], resume3)  # nothing new: the same place


def test_bulk_pages_carry_the_single_bundles_byte_for_byte(ledger: LedgerService, client: TestClient) -> None:
    """A page's bundles are the single proofs' bytes, joined as they are (nothing serialized again),
    whether the single proofs were served first (kept) or the page builds them (and keeps them)."""
    _, subs = _anchored_world(ledger, client)
    device = "SN-PP-A"
    mine = [s for s in subs if s.reading.device_id == device]
    page = client.get(f"/v1/devices/{device}/proofs", params={"limit": 1000})  # built by the page
    assert page.status_code == 200, page.text
    singles = [client.get(f"/v1/readings/0x{s.digest.hex()}/proof").content for s in mine]
    assert all(
        FastJSONResponse(_rebuilt(ledger, s.digest)).body == b for s, b in zip(mine, singles, strict=True)
    )
    assert page.content == (
        b'{"device_id":"SN-PP-A","proofs":['
        + b",".join(singles)
        + b'],"next_cursor":null,'
        + f'"resume_cursor":"{page.json()["resume_cursor"]}"}}'.encode()
    )
    assert client.get(f"/v1/devices/{device}/proofs", params={"limit": 1000}).content == page.content
    for bundle in page.json()["proofs"]:
        verify_bundle(ProofBundle.from_json_obj(bundle), chain=ledger.chain, deployment=ledger.deployment)


def test_a_reading_stored_otherwise_goes_through_the_model_and_a_changed_one_is_refused(
    ledger: LedgerService, client: TestClient
) -> None:
    """Bundles are assembled without the pydantic models when the stored reading is as the service writes
    it; a reading stored otherwise (its keys in another order) is
    served through the models, the same bundle; a reading changed in the store no longer hashes to its
    digest and is refused, not served."""
    _, subs = _anchored_world(ledger, client)
    victim = subs[-1]
    mine = col(ReadingRow.digest) == victim.digest
    expected = FastJSONResponse(_rebuilt(ledger, victim.digest)).body
    obj = victim.reading.to_json_obj()
    reordered = orjson.dumps({k: obj[k] for k in reversed(list(obj))}).decode()
    with ledger.engine.begin() as conn:
        conn.execute(update(ReadingRow).where(mine).values(reading_json=reordered))
    assert client.get(f"/v1/readings/0x{victim.digest.hex()}/proof").content == expected
    changed = orjson.dumps({**obj, "metrics": {**obj["metrics"], "temp_c": 99.5}}).decode()
    with ledger.engine.begin() as conn:
        conn.execute(update(ReadingRow).where(mine).values(reading_json=changed))
    with pytest.raises(ContractsError, match="hashes to"):
        proof_bundle(ledger, victim.digest)
    with pytest.raises(ContractsError, match="hashes to"):  # the app's answer: a server error
        client.get(f"/v1/readings/0x{victim.digest.hex()}/proof")


def test_path_checks_stop_at_nodes_checked_before_only_on_the_same_rest_of_path() -> None:
    """A path's check stops at a node an earlier check reached, when the rest of the path is the very
    one checked from it then; a path that differs anywhere (below, or above the node) is refused."""
    rng = random.Random(7)
    digests = _digests(rng, 200)
    root, _, paths = build_encoded_tree(digests)
    proofs._checked.clear()
    for d, path in zip(digests, paths, strict=True):  # every path checks, the later ones stopping early
        proofs._check_path(leaf_hash(d), path, split_path(path), root)
    assert proofs._checked
    d, path = digests[-1], paths[-1]
    for k in range(len(path) // 32):  # one sibling changed, at each level: refused
        bad = path[: 32 * k] + bytes([path[32 * k] ^ 1]) + path[32 * k + 1 :]
        with pytest.raises(ProofMismatch):
            proofs._check_path(leaf_hash(d), bad, split_path(bad), root)
    with pytest.raises(ProofMismatch):  # another batch's root
        proofs._check_path(leaf_hash(d), path, split_path(path), rng.randbytes(32))
