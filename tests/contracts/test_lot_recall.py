"""LotRegistry recall notices on the embedded chain: a producer or an admitted party recalls a lot, the
lots downstream (split off, made from it, across tiers) are flagged in batches with every edge checked on
chain, and every refusal has its exact error and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from support import reverts
from web3.logs import DISCARD

from contracts.lot_recall import (
    MAX_FLAG_BATCH,
    RECALL_ACTION,
    InvalidRecall,
    LotRecallClient,
    reason_hash,
)
from contracts.lots import OPEN_ACTION, TransformInput, TransformOutput, lot_key
from tests.contracts.test_lots import GTIN, T0, T1, World, make_world

pytestmark = pytest.mark.parametrize("chain", ["embedded"], indirect=True)

GTIN_FINISHED = "00036000291452"
REASON = "lab: lead above 90 mg/kg in retained sample 7"


@dataclass
class Graph:
    """RAW (supplier, 1000 kg) split into RAW-A (300) and RAW-B (200); RAW-A handed to the factory, which
    makes FIN (10 pcs) from it and its own OWN (50 kg) and splits FIN-X (4) off FIN; OTHER is unrelated."""

    world: World
    recalls: LotRecallClient
    factory: LocalAccount
    raw: bytes
    raw_a: bytes
    raw_b: bytes
    own: bytes
    fin: bytes
    fin_x: bytes
    other: bytes


@pytest.fixture
def graph(suite: Any) -> Graph:
    world = make_world(suite)
    s, factory = world.supplier, world.distributor
    world.admit(factory, OPEN_ACTION)
    world.open("RAW", quantity=1000)
    world.open("OTHER", quantity=5)
    world.lots.split_lot(s, "RAW", {"RAW-A": 300, "RAW-B": 200})
    world.lots.propose_transfer(s, "RAW-A", factory.address)
    world.lots.accept_transfer(factory, "RAW-A")
    world.lots.open_lot(
        factory, lot_id="OWN", gtin=GTIN, quantity=50, unit="kg", produced_from_ms=T0, produced_to_ms=T1
    )
    out = TransformOutput(
        lot_id="FIN", gtin=GTIN_FINISHED, quantity=10, unit="pcs", produced_from_ms=T0, produced_to_ms=T1
    )
    ins = [
        TransformInput(lot="RAW-A", quantity=300, unit="kg"),
        TransformInput(lot="OWN", quantity=20, unit="kg"),
    ]
    world.lots.transform(factory, ins, [out])
    world.lots.split_lot(factory, "FIN", {"FIN-X": 4})
    return Graph(
        world=world,
        recalls=LotRecallClient(world.lots),
        factory=factory,
        raw=lot_key("RAW", s.address),
        raw_a=lot_key("RAW-A", s.address),
        raw_b=lot_key("RAW-B", s.address),
        own=lot_key("OWN", factory.address),
        fin=lot_key("FIN", factory.address),
        fin_x=lot_key("FIN-X", factory.address),
        other=lot_key("OTHER", s.address),
    )


def _state(g: Graph) -> tuple[Any, ...]:
    """Every recall fact about the graph's lots (to assert a refusal changed nothing)."""
    keys = (g.raw, g.raw_a, g.raw_b, g.own, g.fin, g.fin_x, g.other)
    count = g.recalls.notice_count()
    notices = tuple(g.recalls.notice(i) for i in range(1, count + 1))
    return count, notices, tuple(g.recalls.notice_of(k) for k in keys)


def test_producer_recalls_and_flags_downstream_across_tiers(graph: Graph) -> None:
    g, w = graph, graph.world
    assert g.recalls.notice_count() == 0 and not g.recalls.is_recalled(g.raw)
    done = g.recalls.recall(w.supplier, g.raw, REASON)
    assert done.notice_id == 1
    (event,) = w.lots.contract.events.RecallIssued().process_receipt(done.tx.receipt, errors=DISCARD)
    assert dict(event["args"]) == {
        "noticeId": 1,
        "lotId": g.raw,
        "by": w.supplier.address,
        "reasonHash": reason_hash(REASON),
    }
    notice = g.recalls.notice(1)
    assert (notice.root, notice.by, notice.reason_hash, notice.flagged) == (
        g.raw,
        w.supplier.address,
        reason_hash(REASON),
        0,
    )
    assert g.recalls.is_recalled(g.raw) and g.recalls.notice_of(g.raw) == 1
    assert not g.recalls.is_recalled(g.fin)

    # parents before children: a split child, a transformation output (one input flagged is enough), its split
    flagged = g.recalls.flag_downstream(w.outsider, 1, [g.raw_a, g.raw_b, g.fin, g.fin_x], batch=2)
    assert flagged.flagged == 4 and len(flagged.txs) == 2
    events = w.lots.contract.events.LotFlagged().process_receipt(flagged.txs[0].receipt, errors=DISCARD)
    assert [dict(e["args"]) for e in events] == [
        {"noticeId": 1, "lotId": g.raw_a},
        {"noticeId": 1, "lotId": g.raw_b},
    ]
    for key in (g.raw_a, g.raw_b, g.fin, g.fin_x):
        assert g.recalls.is_recalled(key) and g.recalls.notice_of(key) == 1
    assert g.recalls.notice(1).flagged == 4
    # the other input of FIN and the unrelated lot are not downstream
    assert not g.recalls.is_recalled(g.own) and not g.recalls.is_recalled(g.other)
    # flagging again skips what is flagged: nothing sent, and a raw batch flags none
    assert g.recalls.flag_downstream(w.outsider, 1, [g.raw_a, g.fin]).flagged == 0
    tx = g.recalls.flag_batch(w.outsider, 1, [g.fin, g.fin_x])
    assert w.lots.contract.events.LotFlagged().process_receipt(tx.receipt, errors=DISCARD) == ()
    assert g.recalls.notice(1).flagged == 4


def test_an_admitted_party_recalls_a_lot_it_did_not_produce(graph: Graph) -> None:
    g, w = graph, graph.world
    certifier = w.retailer
    before = _state(g)
    with reverts(
        "LotRegistryNotRecaller", caller=certifier.address, lotId=g.own, producer=g.factory.address
    ) as err:
        g.recalls.recall(certifier, g.own, REASON)
    assert "supet.lot.recall" in str(err.value)
    assert _state(g) == before
    w.admit(certifier, RECALL_ACTION)
    assert g.recalls.recall(certifier, g.own, REASON).notice_id == 1
    assert g.recalls.notice(1).by == certifier.address
    # FIN is made from OWN too: flaggable under OWN's notice
    assert g.recalls.flag_downstream(w.outsider, 1, [g.fin, g.fin_x]).flagged == 2
    # a party that lost its admission is refused again
    w.admit(certifier, RECALL_ACTION, False)
    with reverts("LotRegistryNotRecaller", caller=certifier.address, lotId=g.raw):
        g.recalls.recall(certifier, g.raw, REASON)


def test_recall_refusals_change_nothing(graph: Graph) -> None:
    g, w = graph, graph.world
    unknown = lot_key("NOPE", w.supplier.address)
    before = _state(g)
    with reverts("LotRegistryUnknownLot", lotId=unknown):
        g.recalls.recall(w.supplier, unknown, REASON)
    with reverts("LotRegistryZeroReason"):
        g.recalls.chain.transact(w.lots.contract.functions.recall(g.raw, b"\x00" * 32), w.supplier)
    # the custodian of a split child is its issuer, not its producer
    with reverts(
        "LotRegistryNotRecaller", caller=g.factory.address, lotId=g.raw_a, producer=w.supplier.address
    ):
        g.recalls.recall(g.factory, g.raw_a, REASON)
    assert _state(g) == before

    g.recalls.recall(w.supplier, g.raw, REASON)
    g.recalls.flag_downstream(w.outsider, 1, [g.raw_a])
    before = _state(g)
    with reverts("LotRegistryAlreadyRecalled", lotId=g.raw, noticeId=1):
        g.recalls.recall(w.supplier, g.raw, "again")
    with reverts("LotRegistryAlreadyRecalled", lotId=g.raw_a, noticeId=1):
        g.recalls.recall(w.supplier, g.raw_a, "a flagged lot is recalled already")
    assert _state(g) == before


def test_flagging_refusals_change_nothing(graph: Graph) -> None:
    g, w = graph, graph.world
    g.recalls.recall(w.supplier, g.raw, REASON)
    before = _state(g)
    flag = w.lots.contract.functions.flagDownstream
    with reverts("LotRegistryUnknownNotice", noticeId=2):
        g.recalls.flag_batch(w.outsider, 2, [g.raw_a])
    with reverts("LotRegistryUnknownNotice", noticeId=0):
        g.recalls.flag_batch(w.outsider, 0, [g.raw_a])
    with reverts("LotRegistryInvalidFlagBatch", count=0):
        g.recalls.chain.transact(flag(1, []), w.outsider)
    with reverts("LotRegistryInvalidFlagBatch", count=MAX_FLAG_BATCH + 1):
        g.recalls.chain.transact(flag(1, [g.raw_a] * (MAX_FLAG_BATCH + 1)), w.outsider)
    unknown = lot_key("NOPE", w.supplier.address)
    with reverts("LotRegistryUnknownLot", lotId=unknown):
        g.recalls.flag_batch(w.outsider, 1, [g.raw_a, unknown])
    # not downstream at all, and a child before its parent: the whole batch is refused
    with reverts("LotRegistryNotDownstream", noticeId=1, lotId=g.other) as err:
        g.recalls.flag_batch(w.outsider, 1, [g.raw_a, g.other])
    assert "flag its parent or inputs first" in str(err.value)
    with reverts("LotRegistryNotDownstream", noticeId=1, lotId=g.fin):
        g.recalls.flag_batch(w.outsider, 1, [g.fin, g.raw_a])
    with reverts("LotRegistryNotDownstream", noticeId=1, lotId=g.own):
        g.recalls.flag_batch(w.outsider, 1, [g.raw_a, g.fin, g.own])
    assert _state(g) == before
    with reverts("LotRegistryUnknownNotice", noticeId=7):
        g.recalls.notice(7)


def test_client_checks_before_sending(graph: Graph) -> None:
    g, w = graph, graph.world
    with pytest.raises(InvalidRecall, match="needs a reason"):
        g.recalls.recall(w.supplier, g.raw, "  ")
    with pytest.raises(InvalidRecall, match="1 to 128 lots, not 0"):
        g.recalls.flag_batch(w.outsider, 1, [])
    with pytest.raises(InvalidRecall, match="32 bytes"):
        g.recalls.flag_batch(w.outsider, 1, [b"\x01" * 31])
    with pytest.raises(InvalidRecall, match="holds 1 to 128"):
        g.recalls.flag_downstream(w.outsider, 1, [g.raw_a], batch=0)
    assert g.recalls.notice_count() == 0
    # views answer for keys no lot has
    unknown = lot_key("NOPE", w.supplier.address)
    assert not g.recalls.is_recalled(unknown) and g.recalls.notice_of(unknown) == 0
    assert g.recalls.is_recalled("RAW") is False  # text resolves through the LotNamed index
