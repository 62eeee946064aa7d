"""``GET /v1/lots/{lot_id}/certification-package``: the ledger builds the package, anyone certifies with it.

The scenario is ``build_lot`` of ``test_lot_history.py`` without its certification: a lot opened, two
anchored batches of its readings (the first mixed with a reading of another lot), one reading pending.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi.testclient import TestClient
from reads import sign_client_in
from support import TestConsortium

from contracts.certification_package import load_package, load_package_obj
from contracts.certifier import QualityCertifierClient
from contracts.chain import dev_accounts
from device_attestation.reading import Reading, reading_struct
from ledger_service.service import LedgerService

URL = "/v1/lots/{}/certification-package"


def _scenario_module() -> ModuleType:
    path = Path(__file__).parent / "test_lot_history.py"
    spec = importlib.util.spec_from_file_location("lot_history_scenario_cert", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


scenario = _scenario_module()


def _key(reading: Reading) -> tuple[bytes, int]:
    s = reading_struct(reading)
    return bytes(s.device_id), int(s.seq)


def test_package_certifies_the_lot(client: TestClient, ledger: LedgerService, tmp_path: Path) -> None:
    sc = scenario.build_lot(ledger, client, certify=False)
    assert client.get(URL.format(sc.lot_id)).status_code == 401  # issue 14: the QC readings are not public
    sign_client_in(client, sc.recipient)  # the lot's holder (a custodian) builds its package
    r = client.get(URL.format(sc.lot_id))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["format"] == "supet.certification-package.v1" and body["lot_id"] == sc.lot_id
    assert len(body["batches"]) == 2
    ids = [b["batch_id"] for b in body["batches"]]
    assert ids == sorted(ids)

    path = tmp_path / "package.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    named, batches = load_package(path)
    assert named == sc.lot_id
    # exactly the anchored readings of the lot: not the pending one, not the other lot's
    in_package = {(bytes(r[0]), int(r[1])) for b in batches for r in b[1]}
    assert in_package == {_key(s.reading) for s in sc.anchored}
    assert not in_package & {_key(s.reading) for s in sc.pending + sc.other_lot}
    assert [len(b[1]) for b in batches] == [len(sc.first), len(sc.second)]

    certifier = QualityCertifierClient.from_deployment(ledger.chain, ledger.deployment)
    auditor = dev_accounts(8)[7]
    certifier.certify_lot(auditor, sc.lot_id, batches)
    cert = certifier.certificate(sc.lot_id)
    assert cert.certified and cert.samples == len(sc.anchored)


def test_unknown_lot_and_lot_without_anchored_readings(client: TestClient, ledger: LedgerService) -> None:
    factory = dev_accounts(2)[1]  # the consortium's factory, which owns the device below
    sign_client_in(client, factory)
    r = client.get(URL.format("NO-SUCH-LOT"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "lot.not_found"

    # readings of a lot never opened on chain: still unknown
    dev = TestConsortium(ledger.chain, ledger.deployment).enroll("SN-CERT-PKG-1", "secp256k1")
    ts = int(ledger.chain.w3.eth.get_block("latest")["timestamp"]) * 1000
    sub = dev.sign({"temp_c": 1.0}, ts_ms=ts, lot_id="LOT-NOT-OPENED")
    assert client.post("/v1/readings", json=sub.to_json_obj()).status_code == 201
    ledger.anchoring.flush(timeout=30)
    r = client.get(URL.format("LOT-NOT-OPENED"), params={"issuer": factory.address})
    assert r.status_code == 404 and r.json()["error"]["code"] == "lot.not_found"


def test_opened_lot_with_only_pending_readings(client: TestClient, ledger: LedgerService) -> None:
    sc = scenario.build_lot(ledger, client, certify=False)
    lots = scenario.LotRegistryClient.from_deployment(ledger.chain, ledger.deployment)
    lots.open_lot(
        sc.supplier,
        lot_id="LOT-PENDING",
        gtin=scenario.GTIN,
        quantity=1,
        unit="kg",
        produced_from_ms=0,
        produced_to_ms=1,
    )
    dev = TestConsortium(ledger.chain, ledger.deployment).enroll("SN-CERT-PKG-2", "p256")
    ts = int(ledger.chain.w3.eth.get_block("latest")["timestamp"]) * 1000
    sub = dev.sign({"temp_c": 4.0}, ts_ms=ts, lot_id="LOT-PENDING")
    assert client.post("/v1/readings", json=sub.to_json_obj()).status_code == 201  # not anchored
    sign_client_in(client, sc.supplier)
    r = client.get(URL.format("LOT-PENDING"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "lot.no_anchored_readings"
    assert client.get(URL.format(sc.lot_id)).status_code == 200


def test_openapi_documents_the_route(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/v1/lots/{lot_id}/certification-package"]["get"]
    assert {"200", "404", "503"} <= set(op["responses"])
    assert "supet lot certify" in op["description"]
    example = op["responses"]["200"]["content"]["application/json"]["example"]
    assert example["format"] == "supet.certification-package.v1"


def _epcis_scenario() -> ModuleType:
    path = Path(__file__).parent / "test_lot_epcis.py"
    spec = importlib.util.spec_from_file_location("lot_epcis_scenario_cert", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_package_is_paged_by_whole_batches_and_cached(client: TestClient, ledger: LedgerService) -> None:
    """Issue 11 finding 7: the package is served in pages of whole batches (at most `limit` readings
    unless one batch is bigger), whose batches together are exactly the whole package; a repeated GET
    is served from the cache; a new anchored batch is a new page, not a stale answer."""
    from ledger_service.lots.certification import certification_package
    from ledger_service.lots.epcis import export_cache_of

    lot_id = "LOT-PKG-PAGED"
    subs, devices = _epcis_scenario().lot_with_readings(ledger, client, lot_id=lot_id, batches=[5, 7, 9])
    sign_client_in(client, dev_accounts(2)[1])  # the lot's supplier
    whole = certification_package(ledger, lot_id)
    assert [len(b["readings"]) for b in whole["batches"]] == [5, 7, 9]

    def pages(limit: int) -> list[dict[str, Any]]:
        out, cursor = [], None
        while True:
            params: dict[str, Any] = {"limit": limit} | ({"cursor": cursor} if cursor else {})
            r = client.get(URL.format(lot_id), params=params)
            assert r.status_code == 200, r.text
            out.append(r.json())
            cursor = r.json()["next_cursor"]
            assert ("next" in r.links) == (cursor is not None)
            if cursor is None:
                return out

    for limit, sizes in (
        (10, [[5], [7], [9]]),
        (12, [[5, 7], [9]]),
        (3, [[5], [7], [9]]),
        (100, [[5, 7, 9]]),
    ):
        got = pages(limit)
        assert [[len(b["readings"]) for b in p["batches"]] for p in got] == sizes, limit
        assert [b for p in got for b in p["batches"]] == whole["batches"]
        load_package_obj({**got[0], "batches": [b for p in got for b in p["batches"]]})

    cache = export_cache_of(ledger)
    hits = cache.hits
    first = client.get(URL.format(lot_id), params={"limit": 12})
    assert cache.hits == hits + 1 and first.json()["batches"] == pages(12)[0]["batches"]

    more = [devices[0].sign({"temp_c": 4.4}, ts_ms=subs[-1].reading.ts_ms + 10, lot_id=lot_id)]
    assert client.post("/v1/readings", json=more[0].to_json_obj()).status_code == 201
    ledger.anchoring.flush(timeout=30)
    got = pages(100)
    assert [len(b["readings"]) for b in got[0]["batches"]] == [5, 7, 9, 1]

    r = client.get(URL.format(lot_id), params={"cursor": "x1"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "lot.bad_cursor"
    over = client.get(URL.format(lot_id), params={"limit": 5001})
    assert over.status_code == 422 and over.json()["error"]["code"] == "request.page_too_large"
