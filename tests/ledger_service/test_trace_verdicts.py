"""A trace's upstream verdicts come from a real certification (issue 15): the lot of ``test_lot_history``'s
scenario is certified through ``QualityCertifier.certifyLot`` from its anchored QC readings; the mirror
takes the ``LotCertified`` event, the upstream trace of a lot split off it shows the verdict (spec version,
certifier, block), ``verify_trace`` finds it standing on chain, and a store that lies about it is caught.
On SQLite and PostgreSQL."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from fastapi.testclient import TestClient
from sqlalchemy import text

from contracts.chain import dev_accounts
from contracts.lots import LotRegistryClient, lot_key
from ledger_service.lots.mirror import sync_lots
from ledger_service.lots.trace import Direction, trace_from_store, verify_trace
from ledger_service.service import LedgerService


def _scenario_module() -> ModuleType:
    path = Path(__file__).parent / "test_lot_history.py"
    spec = importlib.util.spec_from_file_location("lot_history_scenario_verdicts", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


scenario = _scenario_module()


def test_upstream_verdicts_are_the_certifiers_events(ledger: LedgerService, client: TestClient) -> None:
    sc = scenario.build_lot(ledger, client, certify=True)
    auditor = dev_accounts(8)[7]
    receipt = ledger.chain.receipt(sc.txs["certified"])
    assert receipt is not None
    # the holder splits a part off the certified lot: its upstream trace reaches the verdict
    lots = LotRegistryClient.from_deployment(ledger.chain, ledger.deployment)
    lots.split_lot(sc.recipient, sc.lot_id, {"LOT-HIST-PART": 100})
    sync_lots(ledger.engine, ledger.chain, ledger.deployment)
    parent = "0x" + lot_key(sc.lot_id, sc.supplier.address).hex()
    child = "0x" + lot_key("LOT-HIST-PART", sc.recipient.address).hex()

    up = trace_from_store(ledger.engine, child, Direction.UPSTREAM)
    assert [(lot.key, lot.depth) for lot in up.lots] == [(parent, 1)]
    (verdict,) = up.lots[0].verdicts
    assert verdict == {
        "verdict": "certified",
        "spec_version": 1,
        "reason": None,
        "by": auditor.address,
        "block_number": receipt["blockNumber"],
    }
    assert up.root.verdicts == ()  # the part itself was never judged
    check = verify_trace(ledger.chain, ledger.deployment, up)
    assert check.ok, check.mismatches

    # a store that says the lot was rejected, or forgets the verdict, is caught against the chain
    with ledger.engine.begin() as conn:
        conn.execute(text("UPDATE lot_verdicts SET verdict = 'rejected' WHERE lot_key = :k"), {"k": parent})
    lied = verify_trace(
        ledger.chain, ledger.deployment, trace_from_store(ledger.engine, child, Direction.UPSTREAM)
    )
    assert [m for m in lied.mismatches if "verdict certified" in m and parent in m]
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM lot_verdicts WHERE lot_key = :k"), {"k": parent})
    forgot = verify_trace(
        ledger.chain, ledger.deployment, trace_from_store(ledger.engine, child, Direction.UPSTREAM)
    )
    assert len(forgot.mismatches) == 1 and "None in the store" in forgot.mismatches[0]
