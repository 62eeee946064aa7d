"""A lot's timeline over HTTP: opening, readings in two anchored batches, a custody transfer, a
certification, and a pending reading, in time order with their references; paging by cursor.

:func:`build_lot` is also the scenario of ``tests/cli/test_audit_cli.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from reads import bearer, sign_client_in
from sqlmodel import Session, col, select
from support import TestConsortium

from auditor.bundle import ProofBundle
from auditor.verify import verify_bundle
from contracts.certifier import SPEC_ACTION, QualityCertifierClient, SpecMetric, batch_readings
from contracts.chain import Chain, dev_accounts
from contracts.lots import OPEN_ACTION, TRANSFER_ACTION, LotRegistryClient, lot_key
from device_attestation.sdk import DeviceSigner, Submission
from ledger_service.service import LedgerService
from ledger_service.store.batch_tree import decode_tree
from ledger_service.store.models import BatchRow, ReadingRow

LOT = "LOT-HIST-0001"
GTIN = "04006381333931"
M = 1_000_000


@dataclass
class LotScenario:
    """What :func:`build_lot` did, for the assertions."""

    lot_id: str
    supplier: LocalAccount
    recipient: LocalAccount
    first: list[Submission]
    second: list[Submission]
    pending: list[Submission]
    other_lot: list[Submission]
    txs: dict[str, str] = field(default_factory=dict)

    @property
    def anchored(self) -> list[Submission]:
        return self.first + self.second


def _travel(chain: Chain, seconds: int) -> int:
    """Move the embedded chain's clock ``seconds`` past its latest block; the new time (s)."""
    latest = int(chain.w3.eth.get_block("latest")["timestamp"])
    chain.w3.provider.ethereum_tester.time_travel(latest + seconds)  # type: ignore[attr-defined]
    return latest + seconds


def _batches_of(ledger: LedgerService, subs: list[Submission]) -> list[tuple[Any, ...]]:
    """The ``BatchReadings`` of anchored submissions, from the ledger's stored trees."""
    wanted = {s.digest for s in subs}
    out = []
    with Session(ledger.engine) as s:
        rows = [r[0] if isinstance(r, tuple) else r for r in s.exec(select(ReadingRow))]
        batch_ids = sorted({r.batch_id for r in rows if r.digest in wanted and r.batch_id is not None})
        for bid in batch_ids:
            batch = s.get(BatchRow, bid)
            assert batch is not None and batch.chain_batch_id is not None
            digests = [
                bytes(d)
                for (d,) in s.execute(
                    select(col(ReadingRow.digest))
                    .where(col(ReadingRow.batch_id) == bid)
                    .order_by(col(ReadingRow.id))
                )
            ]
            tree = decode_tree(batch.tree, digests)
            mine = [x for x in subs if x.digest in set(digests)]
            out.append(batch_readings(batch.chain_batch_id, tree, mine))
    return out


def build_lot(ledger: LedgerService, client: TestClient, *, certify: bool = True) -> LotScenario:
    """Open a lot, anchor two batches of its readings around a custody transfer, certify it, and
    leave one reading pending. Chain time is moved so every step has its own time."""
    chain = ledger.chain
    # The readings carry the chain's times, and eth-tester stamps each block at least a second after
    # its parent: with the suite's contracts deployed in well under a second per block, the chain runs
    # ahead of the wall clock by about a minute here. The ledger's future-skew check would then refuse
    # the readings, so this scenario's ingest allows ten minutes.
    ledger.pipeline.settings = ledger.pipeline.settings.model_copy(update={"max_future_skew_ms": 600_000})
    # the supplier is the consortium's factory: its own devices measure its lot
    op, supplier, _, recipient, _, enterprise, _, auditor = dev_accounts(8)
    consortium = TestConsortium(chain, ledger.deployment)
    assert consortium.factory.address == supplier.address
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    for name in ("LotRegistry", "QualityCertifier"):
        chain.transact(ledger.deployment.contract(chain, name).functions.setAdmissionGate(gate_address), op)
    for party, action in (
        (supplier, OPEN_ACTION),
        (supplier, TRANSFER_ACTION),
        (recipient, TRANSFER_ACTION),
        (enterprise, SPEC_ACTION),
    ):
        chain.transact(gate.functions.setAdmitted(party.address, action, True), op)
    lots = LotRegistryClient.from_deployment(chain, ledger.deployment)
    certifier = QualityCertifierClient.from_deployment(chain, ledger.deployment)
    certifier.set_spec_owner(op, GTIN, enterprise.address)
    certifier.set_spec(enterprise, GTIN, [SpecMetric(name="temp_c", min=2 * M, max=8 * M)], min_samples=2)
    sensors: list[DeviceSigner] = [
        consortium.enroll("SN-LOT-A", "p256"),
        consortium.enroll("GW-LOT-B", "secp256k1"),
    ]

    txs: dict[str, str] = {}
    t0 = _travel(chain, 1)
    txs["opened"] = lots.open_lot(
        supplier, lot_id=LOT, gtin=GTIN, quantity=500, unit="kg", produced_from_ms=0, produced_to_ms=1
    ).tx_hash

    def post(subs: list[Submission]) -> None:
        r = client.post("/v1/readings", json={"readings": [s.to_json_obj() for s in subs]})
        assert r.status_code == 200 and r.json()["accepted"] == len(subs), r.text

    base = t0 * 1000
    first = [
        sensors[0].sign({"temp_c": 4.0}, ts_ms=base + 2000, lot_id=LOT),
        sensors[1].sign({"temp_c": 4.5}, ts_ms=base + 2500, lot_id=LOT),
        sensors[0].sign({"temp_c": 5.0}, ts_ms=base + 3000, lot_id=LOT),
    ]
    other_lot = [sensors[1].sign({"temp_c": 6.0}, ts_ms=base + 3500, lot_id="LOT-HIST-OTHER")]
    post(first + other_lot)
    ledger.anchoring.flush(timeout=30)

    _travel(chain, 10)
    txs["transfer_proposed"] = lots.propose_transfer(supplier, LOT, recipient.address).tx_hash
    txs["transfer_accepted"] = lots.accept_transfer(recipient, LOT).tx_hash
    t1 = _travel(chain, 10)
    second = [
        sensors[0].sign({"temp_c": 3.5}, ts_ms=t1 * 1000 + 1000, lot_id=LOT),
        sensors[1].sign({"temp_c": 6.5}, ts_ms=t1 * 1000 + 2000, lot_id=LOT),
    ]
    post(second)
    ledger.anchoring.flush(timeout=30)
    scenario = LotScenario(
        lot_id=LOT,
        supplier=supplier,
        recipient=recipient,
        first=first,
        second=second,
        pending=[],
        other_lot=other_lot,
        txs=txs,
    )
    if certify:
        _travel(chain, 10)
        txs["certified"] = certifier.certify_lot(auditor, LOT, _batches_of(ledger, first + second)).tx_hash
        assert certifier.certificate(LOT).certified
    t2 = _travel(chain, 10)
    scenario.pending = [sensors[0].sign({"temp_c": 4.2}, ts_ms=t2 * 1000 + 1000, lot_id=LOT)]
    post(scenario.pending)
    return scenario


def _all_steps(client: TestClient, lot_id: str, limit: int) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        r = client.get(f"/v1/lots/{lot_id}/history", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["steps"]) <= limit
        steps += page["steps"]
        cursor = page["next_cursor"]
        if cursor is None:
            return steps


def test_lot_history_in_order_with_references(client: TestClient, ledger: LedgerService) -> None:
    sc = build_lot(ledger, client)
    r = client.get(f"/v1/lots/{sc.lot_id}/history")  # issue 14: a lot's evidence is not public
    assert r.status_code == 401 and r.json()["error"]["code"] == "access.anonymous"
    sign_client_in(client, sc.supplier)  # its supplier (and issuer) reads it
    r = client.get(f"/v1/lots/{sc.lot_id}/history")
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["lot_id"] == sc.lot_id and page["on_chain"] is True and page["next_cursor"] is None
    steps = page["steps"]
    assert [s["kind"] for s in steps] == [
        "opened",
        "reading",
        "reading",
        "reading",
        "transfer_proposed",
        "transfer_accepted",
        "reading",
        "reading",
        "certified",
        "reading",
    ]
    times = [s["time_ms"] for s in steps]
    assert times == sorted(times)

    chain_steps = [s for s in steps if s["kind"] != "reading"]
    for s in chain_steps:
        ref = s["reference"]
        assert ref["type"] == "transaction" and ref["tx_hash"] == sc.txs[s["kind"]]
        receipt = ledger.chain.w3.eth.get_transaction_receipt(ref["tx_hash"])
        assert receipt["blockNumber"] == ref["block_number"]
    opened, proposed, accepted, certified = chain_steps
    assert opened["details"]["gtin"] == GTIN and opened["details"]["quantity"] == "500"
    assert opened["details"]["unit"] == "kg" and opened["actor"] == sc.supplier.address
    assert proposed["actor"] == sc.supplier.address and proposed["details"]["to"] == sc.recipient.address
    assert accepted["actor"] == sc.recipient.address
    assert certified["details"]["spec_version"] == 1 and certified["details"]["samples"] == 5
    assert certified["details"]["spec"]["metrics"][0]["name"] == "temp_c"

    readings = [s for s in steps if s["kind"] == "reading"]
    expected = sc.first + sc.second + sc.pending
    assert [s["reference"]["digest"] for s in readings] == ["0x" + x.digest.hex() for x in expected]
    for step in readings[:-1]:
        ref = step["reference"]
        assert ref["status"] == "anchored" and ref["batch_id"] is not None
        bundle = ProofBundle.from_json_obj(ref["proof"])
        verified = verify_bundle(bundle, chain=ledger.chain, deployment=ledger.deployment)
        assert "0x" + verified.digest.hex() == ref["digest"] and bundle.reading.lot_id == sc.lot_id
    pending = readings[-1]["reference"]
    assert pending["status"] == "pending" and pending["proof"] is None and pending["batch_id"] is None

    # paging: every page size gives the same steps
    for limit in (1, 3, 4):
        assert _all_steps(client, sc.lot_id, limit) == steps


def test_unknown_lot_and_bad_cursor(client: TestClient, ledger: LedgerService) -> None:
    assert client.get("/v1/lots/NO-SUCH-LOT/history").status_code == 401  # nobody signed in
    sign_client_in(client, dev_accounts(2)[1])
    r = client.get("/v1/lots/NO-SUCH-LOT/history")
    assert r.status_code == 404 and r.json()["error"]["code"] == "lot.not_found"
    r = client.get("/v1/lots/NO-SUCH-LOT/history", params={"cursor": "not-a-cursor"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "lot.bad_cursor"


def test_readings_only_lot_and_openapi(client: TestClient, ledger: LedgerService) -> None:
    consortium = TestConsortium(ledger.chain, ledger.deployment)
    dev = consortium.enroll("SN-OFFCHAIN-1", "secp256k1")
    ts = int(ledger.chain.w3.eth.get_block("latest")["timestamp"]) * 1000
    sub = dev.sign({"temp_c": 1.0}, ts_ms=ts, lot_id="LOT-NOT-OPENED")
    assert client.post("/v1/readings", json=sub.to_json_obj()).status_code == 201
    # a lot id no lot on chain has: each device owner reads its own readings naming it, as its issuer
    owner = bearer(client, consortium.factory)
    r = client.get("/v1/lots/LOT-NOT-OPENED/history", headers=owner)
    assert r.status_code == 403 and r.json()["error"]["code"] == "access.not_custodian"
    params = {"issuer": consortium.factory.address}
    page = client.get("/v1/lots/LOT-NOT-OPENED/history", params=params, headers=owner).json()
    assert page["on_chain"] is False
    assert [(s["kind"], s["reference"]["status"]) for s in page["steps"]] == [("reading", "pending")]

    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/lots/{lot_id}/history"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"lot_id", "cursor", "limit", "issuer"}
    assert "409" in op["responses"]
    assert op["responses"]["200"]["content"]["application/json"]["example"]["steps"][0]["kind"] == "opened"
    assert "404" in op["responses"]


def test_split_lot_history(client: TestClient, ledger: LedgerService) -> None:
    sc = build_lot(ledger, client, certify=False)
    lots = LotRegistryClient.from_deployment(ledger.chain, ledger.deployment)
    _travel(ledger.chain, 10)
    tx = lots.split_lot(sc.recipient, sc.lot_id, {"LOT-HIST-0001-A": 200}).tx_hash
    sign_client_in(client, sc.recipient)  # a custodian of the parent, the issuer of the child
    parent = _all_steps(client, sc.lot_id, 100)
    assert parent[-1]["kind"] == "split" and parent[-1]["reference"]["tx_hash"] == tx
    assert parent[-1]["details"] == {
        "child_lot_id": "LOT-HIST-0001-A",
        "child_key": parent[-1]["details"]["child_key"],
        "quantity": "200",
        "remaining": "300",
    }
    child = client.get("/v1/lots/LOT-HIST-0001-A/history").json()
    assert child["on_chain"] is True
    (opened,) = child["steps"]
    assert opened["kind"] == "opened" and opened["reference"]["tx_hash"] == tx
    assert opened["details"]["split_from"] == sc.lot_id and opened["actor"] == sc.recipient.address


# ---------------------------------------------------------------- whose readings count (issue 11.2)


def enroll_for(ledger: LedgerService, party: LocalAccount, device_id: str) -> DeviceSigner:
    """A secp256k1 device owned by ``party`` (granted the enroller role), with the test CA."""
    import datetime as dt

    from contracts.enrollment import enroll_with_device_key
    from device_attestation.birth import attest_birth
    from device_attestation.certificates import make_device_csr
    from device_attestation.keys import DeviceKey
    from device_attestation.manufacturer_ca import issue_device_certificate

    consortium = TestConsortium(ledger.chain, ledger.deployment)
    consortium.registry.grant_enroller(consortium.operator, party.address)
    key = DeviceKey.generate("secp256k1")
    now = dt.datetime.now(dt.UTC)
    cert = issue_device_certificate(
        ca_key=consortium.ca_key,
        ca_cert=consortium.ca_cert,
        csr=make_device_csr(key, device_id),
        valid_days=10,
        not_before=now - dt.timedelta(hours=1),
    )
    enroll_with_device_key(
        registry=consortium.registry,
        party=party,
        certificate=cert,
        ca_certificates=[consortium.ca_cert],
        device_key=key,
        birth=attest_birth(ca_key=consortium.ca_key, ca_cert=consortium.ca_cert, certificate=cert),
        now=now,
        active_from_ms=0,
    )
    return DeviceSigner(device_id=device_id, key=key, domain=consortium.domain)


def _stored(ledger: LedgerService) -> list[tuple[str, int]]:
    with Session(ledger.engine) as s:
        return sorted((r.device_id, r.seq) for r in s.exec(select(ReadingRow)))


def _chain_ms(ledger: LedgerService) -> int:
    return int(ledger.chain.w3.eth.get_block("latest")["timestamp"]) * 1000


def test_issue11_a_competitor_device_cannot_add_readings_to_a_lot(
    client: TestClient, ledger: LedgerService
) -> None:
    """Issue 11.2: factory B's device submitted a reading naming factory A's lot; it was accepted and
    shown in A's timeline (and could then fail A's certificate on chain)."""
    sc = build_lot(ledger, client)
    rival = dev_accounts(7)[6]
    rival_device = enroll_for(ledger, rival, "RIVAL-GW-1")
    ledger.registry.refresh()
    sign_client_in(client, sc.supplier)
    timeline = client.get(f"/v1/lots/{sc.lot_id}/history").json()
    before = _stored(ledger)
    attack = rival_device.sign({"temp_c": 40.0}, ts_ms=_chain_ms(ledger), lot_id=sc.lot_id)
    r = client.post("/v1/readings", json=attack.to_json_obj())
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "reading.lot_not_yours"
    assert rival.address in error["message"] and sc.lot_id in error["message"]
    assert _stored(ledger) == before  # nothing stored
    assert client.get(f"/v1/lots/{sc.lot_id}/history").json() == timeline
    # the custodian's devices may speak for it (cold chain at the recipient)
    cold = enroll_for(ledger, sc.recipient, "DIST-GW-1")
    ledger.registry.refresh()
    r = client.post(
        "/v1/readings",
        json=cold.sign({"temp_c": 5.0}, ts_ms=_chain_ms(ledger), lot_id=sc.lot_id).to_json_obj(),
    )
    assert r.status_code == 201, r.text
    # a lot id nobody has on chain is the device owner's own business
    free = rival_device.sign({"temp_c": 5.0}, ts_ms=_chain_ms(ledger), lot_id="RIVAL-OWN-LOT")
    assert client.post("/v1/readings", json=free.to_json_obj()).status_code == 201


def test_issue11_readings_stored_before_the_lot_was_opened_count_only_for_their_owner(
    client: TestClient, ledger: LedgerService
) -> None:
    sc = build_lot(ledger, client, certify=False)  # admission and the lot registry's test gate
    lots = LotRegistryClient.from_deployment(ledger.chain, ledger.deployment)
    rival = dev_accounts(7)[6]
    rival_device = enroll_for(ledger, rival, "RIVAL-GW-2")
    ledger.registry.refresh()
    early = rival_device.sign({"temp_c": 40.0}, ts_ms=_chain_ms(ledger), lot_id="LOT-LATER")
    assert client.post("/v1/readings", json=early.to_json_obj()).status_code == 201  # no such lot yet
    lots.open_lot(
        sc.supplier,
        lot_id="LOT-LATER",
        gtin=GTIN,
        quantity=5,
        unit="kg",
        produced_from_ms=0,
        produced_to_ms=1,
    )
    ledger.registry.refresh()
    consortium = TestConsortium(ledger.chain, ledger.deployment)
    own = consortium.enroll("SN-LATER-1", "secp256k1")
    ledger.registry.refresh()
    mine = own.sign({"temp_c": 4.0}, ts_ms=_chain_ms(ledger), lot_id="LOT-LATER")
    assert client.post("/v1/readings", json=mine.to_json_obj()).status_code == 201
    sign_client_in(client, sc.supplier)
    page = client.get("/v1/lots/LOT-LATER/history").json()
    assert page["issuer"] == sc.supplier.address
    assert page["lot_key"] == "0x" + lot_key("LOT-LATER", sc.supplier.address).hex()
    readings = [s["actor"] for s in page["steps"] if s["kind"] == "reading"]
    assert readings == ["SN-LATER-1"]  # the rival's earlier reading is not the lot's
    late = rival_device.sign({"temp_c": 40.0}, ts_ms=_chain_ms(ledger) + 1, lot_id="LOT-LATER")
    r = client.post("/v1/readings", json=late.to_json_obj())
    assert r.status_code == 422 and r.json()["error"]["code"] == "reading.lot_not_yours"

    # the rival opens its own LOT-LATER: its key differs, and the id alone is ambiguous now
    gate = ledger.chain.contract(
        "StaticAdmissionGate", ledger.chain.call(lots.contract.functions.admissionGate())
    )
    ledger.chain.transact(gate.functions.setAdmitted(rival.address, OPEN_ACTION, True), dev_accounts(1)[0])
    lots.open_lot(
        rival, lot_id="LOT-LATER", gtin=GTIN, quantity=1, unit="kg", produced_from_ms=0, produced_to_ms=1
    )
    r = client.get("/v1/lots/LOT-LATER/history")
    assert r.status_code == 409 and r.json()["error"]["code"] == "lot.ambiguous", r.text
    assert rival.address in r.json()["error"]["message"]
    refused = client.get("/v1/lots/LOT-LATER/history", params={"issuer": rival.address})
    assert refused.status_code == 403  # the rival's lot is the rival's to read
    theirs = client.get(
        "/v1/lots/LOT-LATER/history", params={"issuer": rival.address}, headers=bearer(client, rival)
    ).json()
    assert [s["actor"] for s in theirs["steps"] if s["kind"] == "reading"] == ["RIVAL-GW-2"]
    ours = client.get("/v1/lots/LOT-LATER/history", params={"issuer": sc.supplier.address}).json()
    assert [s["actor"] for s in ours["steps"] if s["kind"] == "reading"] == ["SN-LATER-1"]


def test_registry_mirror_follows_a_revocation_moved_earlier(
    client: TestClient, ledger: LedgerService
) -> None:
    """Issue 12.1: revocation times only move earlier now; the service's mirror follows each move."""
    consortium = TestConsortium(ledger.chain, ledger.deployment)
    # active from as early as the registry allows (its block's time less 60 s: issue 12.2)
    device = consortium.enroll("SN-EARLIER-1", "secp256k1", active_from_ms=_chain_ms(ledger) - 55_000)
    active = consortium.registry.device("SN-EARLIER-1").active_from_ms
    now = _chain_ms(ledger)
    assert now - active >= 55_000
    consortium.registry.revoke(consortium.factory, "SN-EARLIER-1", now - 10_000)
    ledger.registry.refresh()
    assert ledger.registry.lookup("SN-EARLIER-1").revoked_at_ms == now - 10_000  # type: ignore[union-attr]
    between = device.sign({"t": 1.0}, ts_ms=active + 20_000)
    consortium.registry.revoke(consortium.operator, "SN-EARLIER-1", active + 10_000)  # the operator: earlier
    ledger.registry.refresh()
    assert ledger.registry.lookup("SN-EARLIER-1").revoked_at_ms == active + 10_000  # type: ignore[union-attr]
    before = _stored(ledger)
    r = client.post("/v1/readings", json=between.to_json_obj())
    assert r.status_code == 422 and r.json()["error"]["code"] == "device.revoked", r.text
    assert f"revoked from {active + 10_000}" in r.json()["error"]["message"]
    assert _stored(ledger) == before
