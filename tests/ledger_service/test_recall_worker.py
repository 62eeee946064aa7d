"""The recall worker (issue 15): a recall recorded outside the service ends with every downstream lot flagged
on chain; a pass is idempotent, claimed once between two instances, retried when the chain is down; the
mirror takes confirmed blocks only and rebuilds itself after a reorg; holders list the notices their lots
are under (API, portal), only their own. On SQLite and PostgreSQL (the ``ledger`` fixture's databases).

The graph is ``test_lot_trace.build_graph``'s: RAW (supplier) split into RAW-A and RAW-B, RAW-A shipped to
the factory, FIN and FIN-B made from RAW-A and OWN, FIN-X split off FIN and shipped to the retailer.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from reads import bearer
from sqlalchemy import text
from sqlmodel import Session

from contracts.errors import ChainError
from contracts.lot_recall import LotRecallClient
from ledger_service.config import Settings
from ledger_service.lots import mirror
from ledger_service.lots.mirror import META_KEY, mirror_mark, sync_lots
from ledger_service.lots.recall import remember_reason
from ledger_service.lots.recall_worker import (
    CLAIM_KEY,
    RecallFlagger,
    RecallWorker,
    claim_flagging,
    release_flagging,
)
from ledger_service.lots.trace import Direction, trace_from_store
from ledger_service.service import LedgerService
from ledger_service.store.models import MetaRow, RecallNoticeRow
from tests.ledger_service.test_lot_trace import Graph, build_graph

DOWNSTREAM_OF_RAW = ("RAW-A", "RAW-B", "FIN", "FIN-B", "FIN-X")
REASON = "lead above limit in retained sample"


@pytest.fixture
def graph(ledger: LedgerService) -> Graph:
    return build_graph(ledger)


def _flagger(g: Graph, **kw: Any) -> RecallFlagger:
    return RecallFlagger(
        engine=g.ledger.engine,
        chain=g.ledger.chain,
        deployment=g.ledger.deployment,
        sender=g.ledger.anchor_signer,
        **{"batch": 2, **kw},
    )


def _recall_outside(g: Graph, lot: str = "RAW") -> int:
    """A recall recorded straight on chain by the lot's producer: the service is not told."""
    return LotRecallClient(g.lots).recall(g.supplier, lot, REASON).notice_id


def _flagged_on_chain(g: Graph) -> set[str]:
    recalls = LotRecallClient(g.lots)
    return {name for name, key in g.keys.items() if recalls.is_recalled(bytes.fromhex(key[2:]))}


def test_a_recall_recorded_outside_the_service_ends_flagged_once(graph: Graph) -> None:
    g = graph
    notice = _recall_outside(g)
    first = _flagger(g).run()
    assert (first.notices, first.flagged, first.txs, first.errors) == (1, 5, 3, {})
    assert _flagged_on_chain(g) == {"RAW", *DOWNSTREAM_OF_RAW}
    # the store shows it at once (synced again after flagging), under the notice, reason verified
    remember_reason(g.ledger.engine, notice, REASON)
    down = trace_from_store(g.ledger.engine, g.keys["RAW"], Direction.DOWNSTREAM)
    assert {lot.recall_notice for lot in down.lots} == {notice}
    assert down.notices[notice]["flagged"] == 5 and down.notices[notice]["reason"] == REASON
    # idempotent: nothing left, nothing sent
    again = _flagger(g).run()
    assert (again.notices, again.flagged, again.txs) == (0, 0, 0)
    # a reason that is not the one hashed on chain is refused, and the kept one stays
    with pytest.raises(Exception, match="hashes to"):
        remember_reason(g.ledger.engine, notice, "something else")


def test_two_instances_flag_once(graph: Graph) -> None:
    g = graph
    _recall_outside(g)
    a, b = _flagger(g, instance="node-a"), _flagger(g, instance="node-b")
    # a holds a live claim: b only syncs
    assert claim_flagging(g.ledger.engine, "node-a", 60_000) is None
    held = b.run()
    assert held.claimed_by == "node-a" and held.txs == 0 and held.notices == 1
    assert _flagged_on_chain(g) == {"RAW"}
    release_flagging(g.ledger.engine, "node-a")
    # both at once: the lots are flagged once, in the three batches one instance needs
    reports: list[Any] = []
    threads = [threading.Thread(target=lambda f=f: reports.append(f.run())) for f in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r.flagged for r in reports) == 5 and sum(r.txs for r in reports) == 3
    assert _flagged_on_chain(g) == {"RAW", *DOWNSTREAM_OF_RAW}
    with Session(g.ledger.engine) as s:
        claim = s.get(MetaRow, CLAIM_KEY)
    assert claim is not None and claim.value.endswith(":0")  # released


def test_chain_down_is_retried_at_the_next_pass(graph: Graph, monkeypatch: pytest.MonkeyPatch) -> None:
    g = graph
    _recall_outside(g)
    worker = RecallWorker(lambda: _flagger(g), interval=60)
    real_send = g.ledger.chain.send

    def down(*_a: Any, **_k: Any) -> str:
        raise ChainError("connection refused")

    monkeypatch.setattr(g.ledger.chain, "send", down)
    report = worker.run_once()
    assert report is not None and report.flagged == 0 and "connection refused" in (worker.last_error or "")
    monkeypatch.setattr(g.ledger.chain, "block_number", lambda: (_ for _ in ()).throw(ChainError("down")))
    assert worker.run_once() is None and "down" in (worker.last_error or "")  # the sync itself failed
    monkeypatch.undo()
    assert g.ledger.chain.send == real_send
    report = worker.run_once()
    assert report is not None and report.flagged == 5 and worker.last_error is None
    assert _flagged_on_chain(g) == {"RAW", *DOWNSTREAM_OF_RAW}


def _mine(g: Graph, n: int) -> None:
    g.ledger.chain.w3.provider.ethereum_tester.mine_blocks(n)  # type: ignore[attr-defined]


def test_only_confirmed_blocks_are_mirrored(graph: Graph) -> None:
    g = graph
    _mine(g, 3)
    sync_lots(g.ledger.engine, g.ledger.chain, g.ledger.deployment, confirmations=3)
    _recall_outside(g)
    shallow = _flagger(g, confirmations=3).run()
    assert shallow.notices == 0 and _flagged_on_chain(g) == {"RAW"}  # the notice is 0 blocks deep
    assert mirror_mark(g.ledger.engine, g.ledger.deployment).block == g.ledger.chain.block_number() - 3
    _mine(g, 3)
    deep = _flagger(g, confirmations=3).run()
    assert deep.notices == 1 and deep.flagged == 5


def test_a_reorg_below_the_mirror_rebuilds_it(graph: Graph) -> None:
    g = graph
    tester: Any = g.ledger.chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    sync_lots(g.ledger.engine, g.ledger.chain, g.ledger.deployment)
    before = tester.take_snapshot()
    notice = _recall_outside(g)
    remember_reason(g.ledger.engine, notice, REASON)
    sync_lots(g.ledger.engine, g.ledger.chain, g.ledger.deployment)
    assert trace_from_store(g.ledger.engine, g.keys["RAW"], Direction.DOWNSTREAM).root.recall_notice == notice
    # the recall's block is taken away; another block takes its height (the retailer's lot ships back)
    tester.revert_to_snapshot(before)
    g.ledger.chain.reset_nonce(g.supplier.address)
    g.lots.propose_transfer(g.retailer, "FIN-X", g.factory.address)
    g.lots.accept_transfer(g.factory, "FIN-X")
    sync_lots(g.ledger.engine, g.ledger.chain, g.ledger.deployment)
    down = trace_from_store(g.ledger.engine, g.keys["RAW"], Direction.DOWNSTREAM)
    assert down.root.recall_notice is None and down.notices == {}
    assert {lot.lot_id: lot.custodian for lot in down.lots}["FIN-X"] == g.factory.address
    with Session(g.ledger.engine) as s:
        gone = s.get(RecallNoticeRow, notice)
    assert gone is not None and gone.block_number == 0 and gone.root_key == ""  # a placeholder: never flagged
    assert _flagger(g).run().notices == 0
    # a new notice takes the id: the kept text does not hash to its reason, so it is not shown
    again = LotRecallClient(g.lots).recall(g.supplier, "RAW", "another reason").notice_id
    assert again == notice
    sync_lots(g.ledger.engine, g.ledger.chain, g.ledger.deployment)
    with Session(g.ledger.engine) as s:
        row = s.get(RecallNoticeRow, notice)
    assert row is not None and row.block_number > 0 and row.reason is None


def test_several_syncers_apply_each_event_once(graph: Graph, monkeypatch: pytest.MonkeyPatch) -> None:
    """As several instances on one database: no process lock, only the mark's check keeps them apart."""
    g = graph
    monkeypatch.setattr(mirror, "_SYNC_LOCK", contextlib.nullcontext())
    _recall_outside(g)
    _flagger(g).run()
    with g.ledger.engine.begin() as conn:  # forget the mirror's progress: every syncer replays it all
        conn.execute(text("DELETE FROM meta WHERE key = :k"), {"k": META_KEY})
        for table in ("lot_edges", "lot_verdicts", "lot_holders", "lot_mirror"):
            conn.execute(text(f"DELETE FROM {table}"))
    errors: list[BaseException] = []

    def sync() -> None:
        try:
            sync_lots(g.ledger.engine, g.ledger.chain, g.ledger.deployment)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=sync) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with Session(g.ledger.engine) as s:
        row = s.get(RecallNoticeRow, 1)
        meta = s.get(MetaRow, META_KEY)
    assert row is not None and row.flagged == 5  # each LotFlagged counted once
    assert meta is not None and meta.value.count(":") == 3  # chain:registry:block:hash


def test_the_started_service_flags_on_its_own(graph: Graph) -> None:
    """The worker runs inside the service (anchoring on): a recall made outside ends flagged."""
    g = graph
    settings = g.ledger.settings.model_copy(update={"anchoring": True, "recall_interval_seconds": 0.2})
    assert isinstance(settings, Settings)
    service = LedgerService.build(settings, chain=g.ledger.chain, deployment=g.ledger.deployment)
    service.start()
    try:
        assert service.recall is not None
        _recall_outside(g)
        deadline = time.monotonic() + 30
        while _flagged_on_chain(g) != {"RAW", *DOWNSTREAM_OF_RAW}:
            assert time.monotonic() < deadline, "the service did not flag the recall's downstream lots"
            time.sleep(0.1)
    finally:
        service.stop()
    assert service.recall is None


def test_holders_see_the_notices_their_lots_are_under(graph: Graph, client: TestClient) -> None:
    g = graph
    notice = _recall_outside(g)
    remember_reason(g.ledger.engine, notice, REASON)
    _flagger(g).run()

    def mine(who: Any, **query: Any) -> Any:
        r = client.get(f"/v1/parties/{who.address}/recalls", params=query, headers=bearer(client, who))
        assert r.status_code == 200, r.text
        return r.json()

    retailer = mine(g.retailer)
    assert [(x["lot_id"], x["held_now"], x["recalled_here"]) for x in retailer["lots"]] == [
        ("FIN-X", True, False)
    ]
    (n,) = retailer["notices"]
    assert (n["notice_id"], n["root_lot_id"], n["by"], n["reason"]) == (
        notice,
        "RAW",
        g.supplier.address,
        REASON,
    )
    factory = {x["lot_id"]: x["held_now"] for x in mine(g.factory)["lots"]}
    assert factory == {"RAW-A": True, "FIN": True, "FIN-B": True, "FIN-X": False}  # FIN-X: held before
    supplier = {x["lot_id"]: x["recalled_here"] for x in mine(g.supplier)["lots"]}
    assert supplier == {"RAW": True, "RAW-A": False, "RAW-B": False}
    assert mine(g.outsider)["lots"] == []
    # paged: two lots a page, the cursor carries on, every lot once
    seen, cursor = [], None
    while True:
        page = mine(g.factory, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [x["lot_id"] for x in page["lots"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(factory)
    # only the party itself
    path = f"/v1/parties/{g.retailer.address}/recalls"
    refused = client.get(path, headers=bearer(client, g.factory))
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "access.not_owner"
    assert client.get(path).status_code == 401
    bad = client.get(path, params={"cursor": "7:nope"}, headers=bearer(client, g.retailer))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "recall.bad_cursor"
    nobody = client.get("/v1/parties/0xnope/recalls", headers=bearer(client, g.retailer))
    assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "party.bad_address"
    # the portal's page of the signed-in party
    client.cookies.set("supet_session", bearer(client, g.retailer)["Authorization"].split()[1])
    page = client.get("/portal/recalls")
    assert page.status_code == 200 and f'id="recall-notice-{notice}"' in page.text
    assert "FIN-X" in page.text and REASON in page.text
    client.cookies.clear()
