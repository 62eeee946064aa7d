"""Tracing from the store and recall (issue 15): a multi-tier graph (splits, a transformation with two
inputs and two outputs, custody transfers) traced both ways, re-checked against the chain (a tampered
store is caught), shown only to entitled parties, and a recall flagged downstream in batches."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from reads import bearer
from sqlalchemy import text

from contracts.chain import dev_accounts
from contracts.lot_recall import RECALL_ACTION, LotRecallClient
from contracts.lots import (
    OPEN_ACTION,
    TRANSFER_ACTION,
    LotRegistryClient,
    TransformInput,
    TransformOutput,
    lot_key,
)
from ledger_service.lots.mirror import sync_lots
from ledger_service.lots.recall import flag_recall, remember_reason
from ledger_service.lots.trace import Direction, TraceTooLarge, trace_from_store, verify_trace
from ledger_service.portal.views import lot_view
from ledger_service.service import LedgerService

GTIN = "04006381333931"
GTIN_FINISHED = "00036000291452"


@dataclass
class Graph:
    """Tier 2 ``supplier`` opens RAW (1000 kg), splits RAW-A (300) and RAW-B (200), ships RAW-A to the
    ``factory``; the factory makes FIN (10 pcs) and FIN-B (5 pcs) from RAW-A (300) and its own OWN (20 of
    50 kg), splits FIN-X (4) off FIN and ships it to the ``retailer``. OTHER is unrelated."""

    ledger: LedgerService
    lots: LotRegistryClient
    supplier: LocalAccount
    factory: LocalAccount
    retailer: LocalAccount
    outsider: LocalAccount
    keys: dict[str, str]


def build_graph(ledger: LedgerService) -> Graph:
    chain = ledger.chain
    op, supplier, factory, retailer, outsider = dev_accounts(5)
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    chain.transact(
        ledger.deployment.contract(chain, "LotRegistry").functions.setAdmissionGate(gate_address), op
    )
    for party, action in (
        (supplier, OPEN_ACTION),
        (factory, OPEN_ACTION),
        (factory, TRANSFER_ACTION),
        (retailer, TRANSFER_ACTION),
    ):
        chain.transact(gate.functions.setAdmitted(party.address, action, True), op)
    lots = LotRegistryClient.from_deployment(chain, ledger.deployment)
    window = {"gtin": GTIN, "unit": "kg", "produced_from_ms": 0, "produced_to_ms": 1}
    lots.open_lot(supplier, lot_id="RAW", quantity=1000, **window)  # type: ignore[arg-type]
    lots.open_lot(supplier, lot_id="OTHER", quantity=5, **window)  # type: ignore[arg-type]
    lots.split_lot(supplier, "RAW", {"RAW-A": 300, "RAW-B": 200})
    lots.propose_transfer(supplier, "RAW-A", factory.address)
    lots.accept_transfer(factory, "RAW-A")
    lots.open_lot(factory, lot_id="OWN", quantity=50, **window)  # type: ignore[arg-type]

    def out(lot_id: str, quantity: int) -> TransformOutput:
        return TransformOutput(
            lot_id=lot_id,
            gtin=GTIN_FINISHED,
            quantity=quantity,
            unit="pcs",
            produced_from_ms=0,
            produced_to_ms=1,
        )

    inputs = [
        TransformInput(lot="RAW-A", quantity=300, unit="kg"),
        TransformInput(lot="OWN", quantity=20, unit="kg"),
    ]
    lots.transform(factory, inputs, [out("FIN", 10), out("FIN-B", 5)])
    lots.split_lot(factory, "FIN", {"FIN-X": 4})
    lots.propose_transfer(factory, "FIN-X", retailer.address)
    lots.accept_transfer(retailer, "FIN-X")
    issuers = {"RAW": supplier, "OTHER": supplier, "RAW-A": supplier, "RAW-B": supplier}
    names = ["RAW", "RAW-A", "RAW-B", "OTHER", "OWN", "FIN", "FIN-B", "FIN-X"]
    keys = {n: "0x" + lot_key(n, issuers.get(n, factory).address).hex() for n in names}
    return Graph(ledger, lots, supplier, factory, retailer, outsider, keys)


@pytest.fixture
def graph(ledger: LedgerService) -> Graph:
    return build_graph(ledger)


def test_downstream_and_upstream_from_the_store(graph: Graph) -> None:
    g, k = graph, graph.keys
    sync_lots(g.ledger.engine, g.ledger.chain, g.ledger.deployment)
    down = trace_from_store(g.ledger.engine, k["RAW"], Direction.DOWNSTREAM)
    depth = {lot.key: lot.depth for lot in down.lots}
    assert depth == {k["RAW-A"]: 1, k["RAW-B"]: 1, k["FIN"]: 2, k["FIN-B"]: 2, k["FIN-X"]: 3}
    holders = {lot.key: lot.custodian for lot in down.lots}
    assert holders[k["FIN-X"]] == g.retailer.address and holders[k["FIN"]] == g.factory.address
    assert holders[k["RAW-B"]] == g.supplier.address
    kinds = {(e.parent, e.child): (e.kind, e.quantity) for e in down.edges}
    assert kinds == {
        (k["RAW"], k["RAW-A"]): ("split", "300"),
        (k["RAW"], k["RAW-B"]): ("split", "200"),
        (k["RAW-A"], k["FIN"]): ("transform", "300"),
        (k["RAW-A"], k["FIN-B"]): ("transform", "300"),
        (k["FIN"], k["FIN-X"]): ("split", "4"),
    }
    up = trace_from_store(g.ledger.engine, k["FIN-X"], Direction.UPSTREAM)
    assert {lot.key: lot.depth for lot in up.lots} == {k["FIN"]: 1, k["RAW-A"]: 2, k["OWN"]: 2, k["RAW"]: 3}
    producers = {lot.key: lot.supplier for lot in up.lots}
    assert producers[k["RAW"]] == g.supplier.address and producers[k["OWN"]] == g.factory.address
    assert producers[k["RAW-A"]] == g.supplier.address  # a split child keeps its producer
    assert trace_from_store(g.ledger.engine, k["OTHER"], Direction.DOWNSTREAM).lots == []
    with pytest.raises(TraceTooLarge):
        trace_from_store(g.ledger.engine, k["RAW"], Direction.DOWNSTREAM, max_lots=4)

    # both re-check against the chain; a tampered store is caught
    assert verify_trace(g.ledger.chain, g.ledger.deployment, down).ok
    assert verify_trace(g.ledger.chain, g.ledger.deployment, up).ok
    with g.ledger.engine.begin() as conn:
        conn.execute(
            text("UPDATE lot_mirror SET custodian = :x WHERE key = :k"),
            {"x": g.outsider.address, "k": k["FIN-X"]},
        )
        conn.execute(text("DELETE FROM lot_edges WHERE child_key = :k"), {"k": k["FIN-B"]})
    tampered = trace_from_store(g.ledger.engine, k["RAW"], Direction.DOWNSTREAM)
    check = verify_trace(g.ledger.chain, g.ledger.deployment, tampered)
    assert not check.ok and len(check.mismatches) == 2
    assert any("held by" in m and k["FIN-X"] in m for m in check.mismatches)
    assert any("leaves out 1 lot" in m and k["FIN-B"] in m for m in check.mismatches)


def test_recall_flags_every_downstream_lot_in_batches(graph: Graph) -> None:
    g, k = graph, graph.keys
    recalls = LotRecallClient(g.lots)
    notice = recalls.recall(g.supplier, "RAW", "lead above limit in retained sample").notice_id
    remember_reason(g.ledger.engine, notice, "lead above limit in retained sample")
    done = flag_recall(g.ledger.engine, g.ledger.chain, g.ledger.deployment, g.outsider, notice, batch=2)
    assert done.flagged == 5 and len(done.txs) == 3
    for name in ("RAW", "RAW-A", "RAW-B", "FIN", "FIN-B", "FIN-X"):
        assert recalls.is_recalled(bytes.fromhex(k[name][2:])), name
    assert not recalls.is_recalled("OWN") and not recalls.is_recalled("OTHER")
    down = trace_from_store(g.ledger.engine, k["RAW"], Direction.DOWNSTREAM)
    assert {lot.recall_notice for lot in down.lots} == {notice} and down.root.recall_notice == notice
    assert down.notices[notice]["reason"] == "lead above limit in retained sample"
    assert down.notices[notice]["flagged"] == 5 and down.notices[notice]["by"] == g.supplier.address
    assert verify_trace(g.ledger.chain, g.ledger.deployment, down).ok
    # again: nothing left to flag
    assert flag_recall(g.ledger.engine, g.ledger.chain, g.ledger.deployment, g.outsider, notice).flagged == 0


def test_trace_over_http_only_to_entitled_parties(graph: Graph, client: TestClient) -> None:
    g = graph
    path = "/v1/lots/FIN-X/trace?direction=upstream"
    r = client.get(path, headers=bearer(client, g.retailer))  # the holder
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["root"]["holder"] == g.retailer.address and body["count"] == 4
    assert {lot["lot_id"]: lot["producer"] for lot in body["lots"]}["RAW"] == g.supplier.address
    r = client.get("/v1/lots/RAW/trace?direction=downstream", headers=bearer(client, g.supplier))
    assert r.status_code == 200 and {lot["lot_id"] for lot in r.json()["lots"]} == {
        "RAW-A",
        "RAW-B",
        "FIN",
        "FIN-B",
        "FIN-X",
    }
    refused = client.get(path, headers=bearer(client, g.outsider))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "access.not_custodian"
    assert client.get(path).status_code == 401
    bad = client.get("/v1/lots/FIN-X/trace?direction=sideways", headers=bearer(client, g.retailer))
    assert bad.status_code in (400, 422)
    missing = client.get("/v1/lots/NOPE/trace?direction=upstream", headers=bearer(client, g.retailer))
    assert missing.status_code in (401, 403, 404)

    # a recall shows in the trace and in the lot's timeline
    admitted = dev_accounts(6)[5]
    gate = g.ledger.chain.contract(
        "StaticAdmissionGate",
        g.ledger.deployment.contract(g.ledger.chain, "LotRegistry").functions.admissionGate().call(),
    )
    g.ledger.chain.transact(
        gate.functions.setAdmitted(admitted.address, RECALL_ACTION, True), dev_accounts(1)[0]
    )
    notice = LotRecallClient(g.lots).recall(admitted, "RAW", "supplier audit failed").notice_id
    remember_reason(g.ledger.engine, notice, "supplier audit failed")
    flag_recall(g.ledger.engine, g.ledger.chain, g.ledger.deployment, g.outsider, notice)
    body = client.get(path, headers=bearer(client, g.retailer)).json()
    assert body["root"]["recalled"] and body["root"]["recall_notice"] == notice
    assert [n["notice_id"] for n in body["recall_notices"]] == [notice]
    history = client.get("/v1/lots/FIN-X/history", headers=bearer(client, g.retailer)).json()
    assert history["recall"]["recalled"] and history["recall"]["notice"]["notice_id"] == notice
    assert history["recall"]["notice"]["by"] == admitted.address
    other = client.get("/v1/lots/OWN/history", headers=bearer(client, g.factory)).json()
    assert other["recall"] == {"recalled": False, "notice": None}

    # and on the portal's lot page (FIN-X disclosed by its holder, so its page is public)
    assert lot_view(g.ledger, "FIN-X").recall == (
        f"Recalled under notice {notice}, issued on lot {g.keys['RAW']} by {admitted.address}: "
        "supplier audit failed"
    )
    r = client.post("/v1/lots/FIN-X/disclosure", json={}, headers=bearer(client, g.retailer))
    assert r.status_code == 200, r.text
    page = client.get("/portal/lots?lot_id=FIN-X")
    assert page.status_code == 200 and 'id="recall"' in page.text and f"notice {notice}" in page.text
    assert lot_view(g.ledger, "OWN").recall is None
