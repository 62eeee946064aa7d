"""Receivables backed by trade (issue 15.3): a receivable names its purchase order and the delivered lots
behind it; confirm checks each on chain (order: exists, the debtor's, with the supplier, standing,
accepted; lot: in the debtor's custody, the supplier's, of the order's GTIN, certified, not recalled, backing
no other receivable), one test per rule with its exact error and nothing changed by a refusal; financing
refused once a backing lot is rejected or recalled; the on-chain flag of a financed receivable naming its
banks. Real verdicts: the QualityCertifier judges each lot from a named QC device's anchored reading."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_utils import keccak
from support import reverts
from web3.logs import DISCARD

from contracts.lot_recall import LotRecallClient
from contracts.lots import OPEN_ACTION, TRANSFER_ACTION
from contracts.orders import PLACE_ACTION
from contracts.receivables import (
    CREATE_ACTION,
    MAX_BACKING_LOTS,
    BackingFault,
    InvalidReceivableInput,
    PartState,
)
from tests.contracts._chain_time import now
from tests.contracts.test_receivables import DAY, FACE, World, world  # noqa: F401 - the world fixture

#: the contract's own rules: on anvil alone (tests/conftest.py CHAIN_KINDS)
pytestmark = pytest.mark.contract_logic

OTHER_GTIN = "00036000291452"


def _confirm(
    w: World, order: bytes, lots: list[bytes], *, by: Any = None, supplier: str | None = None
) -> Any:
    """A raw confirm (no client-side checks) of a fresh reference."""
    w.delivered += 1
    fn = w.rec.contract.functions.confirm(
        supplier or w.supplier.address,
        FACE,
        now(w.chain) + 90 * DAY,
        keccak(b"ref-%d" % w.delivered),
        order,
        lots,
    )
    return w.chain.transact(fn, by or w.debtor)


def _refused(w: World, error: str, order: bytes, lots: list[bytes], **args: Any) -> None:
    """confirm reverts with ``error`` and no receivable, part or binding appears."""
    keys = [k for k in lots if len(k) == 32]
    before = (w.rec.receivable_count(), [w.rec.receivable_backed_by(k) for k in keys])
    by, supplier = args.pop("by", None), args.pop("supplier_", None)
    with reverts(error, **args):
        _confirm(w, order, lots, by=by, supplier=supplier)
    assert (w.rec.receivable_count(), [w.rec.receivable_backed_by(k) for k in keys]) == before


@pytest.fixture
def d(world: World) -> Any:  # noqa: F811 - the imported fixture
    world.deliveries.setup()
    return world.deliveries


def test_confirm_binds_order_and_lots(world: World, d: Any) -> None:  # noqa: F811
    order = d.order("PO-B1")
    lots = [d.lot("LOT-B1"), d.lot("LOT-B2")]
    result = _confirm(world, order, lots)
    (event,) = world.rec.contract.events.ReceivableBacked().process_receipt(result.receipt, errors=DISCARD)
    assert (event["args"]["receivableId"], bytes(event["args"]["orderId"])) == (1, order)
    assert [bytes(k) for k in event["args"]["lotIds"]] == lots
    assert world.rec.receivable(1).order_id == order
    assert world.rec.backing_of(1) == (order, lots)
    assert [world.rec.receivable_backed_by(k) for k in lots] == [1, 1]
    assert world.rec.backing_status(1) == (BackingFault.NONE, None)
    assert not world.rec.flag_of(1).flagged
    assert world.rec.evidence_sources() == world.sources
    with reverts("ReceivablesUnknownReceivable", receivableId=2):
        world.rec.backing_of(2)


def test_backing_count(world: World, d: Any) -> None:  # noqa: F811
    order, lot = d.order("PO-C"), d.lot("LOT-C")
    _refused(world, "ReceivablesInvalidBackingCount", order, [], count=0)
    _refused(world, "ReceivablesInvalidBackingCount", order, [lot] * 33, count=33)
    for lots in ([], [lot] * (MAX_BACKING_LOTS + 1), [lot, lot], [b"short"]):
        with pytest.raises(InvalidReceivableInput):
            world.rec.confirm(
                world.debtor,
                supplier=world.supplier.address,
                face_value=FACE,
                due_date=now(world.chain) + DAY,
                reference=b"r" * 32,
                order_id=order,
                lots=lots,
            )
    # a lot named twice in one call: the second finds it bound already (to the receivable being made)
    _refused(world, "ReceivablesLotAlreadyBacking", order, [lot, lot], lotId=lot, receivableId=1)


def test_order_rules(world: World, d: Any) -> None:  # noqa: F811
    lot = d.lot("LOT-O")
    unknown = b"\x01" * 32
    _refused(world, "ReceivablesUnknownOrder", unknown, [lot], orderId=unknown)
    order = d.order("PO-O")
    # another core enterprise cannot confirm against the debtor's order
    world.admit(world.tier2, CREATE_ACTION)
    _refused(
        world,
        "ReceivablesNotOrderBuyer",
        order,
        [lot],
        by=world.tier2,
        orderId=order,
        caller=world.tier2.address,
        buyer=world.debtor.address,
    )
    # the order is with the supplier, not with tier2 (admitted to hold parts)
    _refused(
        world,
        "ReceivablesOrderSupplierMismatch",
        order,
        [lot],
        supplier_=world.tier2.address,
        supplier=world.tier2.address,
        orderSupplier=world.supplier.address,
    )
    unaccepted = d.order("PO-UNACCEPTED", accept=False)
    _refused(world, "ReceivablesOrderNotAccepted", unaccepted, [lot], orderId=unaccepted)
    d.orders.cancel(world.debtor, order)
    _refused(world, "ReceivablesOrderCancelled", order, [lot], orderId=order)


def test_lot_rules(world: World, d: Any) -> None:  # noqa: F811
    order = d.order("PO-L")
    unknown = b"\x02" * 32
    _refused(world, "ReceivablesUnknownLot", order, [unknown], lotId=unknown)
    undelivered = d.lot("LOT-UNDELIVERED", deliver=False)
    args = {"debtor": world.debtor.address, "custodian": world.supplier.address}
    _refused(world, "ReceivablesLotNotInCustody", order, [undelivered], lotId=undelivered, **args)
    # proposed but not accepted: still the supplier's
    d.lots.propose_transfer(world.supplier, undelivered, world.debtor.address)
    _refused(world, "ReceivablesLotNotInCustody", order, [undelivered], lotId=undelivered, **args)
    # a lot tier2 produced and delivered: the supplier never held it
    world.admit(world.tier2, OPEN_ACTION)
    theirs = dataclasses.replace(d, supplier=world.tier2, terms={}).lot("LOT-TIER2")
    _refused(
        world, "ReceivablesLotNotFromSupplier", order, [theirs], lotId=theirs, supplier=world.supplier.address
    )
    other = d.lot("LOT-OTHER-GTIN", gtin=OTHER_GTIN, verdict=None)
    _refused(
        world,
        "ReceivablesLotGtinMismatch",
        order,
        [other],
        lotId=other,
        lotGtin=int(OTHER_GTIN),
        orderGtin=int(d.gtin),
    )
    unjudged = d.lot("LOT-UNJUDGED", verdict=None)
    _refused(world, "ReceivablesLotNotCertified", order, [unjudged], lotId=unjudged)
    rejected = d.lot("LOT-REJECTED", verdict="rejected")
    _refused(world, "ReceivablesLotNotCertified", order, [rejected], lotId=rejected)
    recalled = d.lot("LOT-RECALLED")
    LotRecallClient(d.lots).recall(world.supplier, recalled, "contaminated batch")
    _refused(world, "ReceivablesLotRecalled", order, [recalled], lotId=recalled)
    # one bad lot among good ones refuses the whole confirmation
    good = d.lot("LOT-GOOD")
    _refused(world, "ReceivablesLotNotCertified", order, [good, rejected], lotId=rejected)
    assert world.rec.receivable_backed_by(good) is None


def test_a_lot_backs_one_receivable_for_good(world: World, d: Any) -> None:  # noqa: F811
    order = d.order("PO-ONCE")
    lot = d.lot("LOT-ONCE")
    _confirm(world, order, [lot])
    _refused(world, "ReceivablesLotAlreadyBacking", order, [lot], lotId=lot, receivableId=1)
    # repaid: the binding stays
    world.fund(world.debtor, FACE)
    world.rec.repay(world.debtor, 1)
    _refused(world, "ReceivablesLotAlreadyBacking", d.order("PO-AGAIN"), [lot], lotId=lot, receivableId=1)


def _offered(world: World, d: Any, tag: str) -> tuple[int, int, bytes]:  # noqa: F811
    """A receivable on one certified lot; its root offered to the bank, who funded its price."""
    lot = d.lot(f"LOT-{tag}")
    _confirm(world, d.order(f"PO-{tag}"), [lot])
    rid = world.rec.receivable_count()
    root = world.rec.receivable(rid).root_part
    world.rec.offer(world.supplier, root, bank=world.bank.address, min_price=FACE // 2)
    world.fund(world.bank, FACE)
    return rid, root, lot


def test_finance_refused_once_a_backing_lot_is_rejected(world: World, d: Any) -> None:  # noqa: F811
    rid, root, lot = _offered(world, d, "REJ")
    d.judge(lot, "LOT-REJ", good=False)  # a bound violation outweighs the certificate
    assert world.rec.backing_status(rid) == (BackingFault.REJECTED, lot)
    before = world.balances()
    with reverts("ReceivablesBackingLotRejected", receivableId=rid, lotId=lot):
        world.finance(world.bank, root, FACE // 2)
    assert world.rec.part(root).state is PartState.OFFERED and world.balances() == before


def test_finance_refused_once_a_backing_lot_is_recalled(world: World, d: Any) -> None:  # noqa: F811
    rid, root, lot = _offered(world, d, "REC")
    LotRecallClient(d.lots).recall(world.supplier, lot, "recalled upstream")
    assert world.rec.backing_status(rid) == (BackingFault.RECALLED, lot)
    before = world.balances()
    with reverts("ReceivablesBackingLotRecalled", receivableId=rid, lotId=lot):
        world.finance(world.bank, root, FACE // 2)
    assert world.rec.part(root).state is PartState.OFFERED and world.balances() == before


def test_flag_a_financed_receivable(world: World, d: Any) -> None:  # noqa: F811
    lot = d.lot("LOT-FLAG")
    _confirm(world, d.order("PO-FLAG"), [lot])
    root = world.rec.receivable(1).root_part
    halves, _ = world.rec.split(world.supplier, root, [FACE // 2] * 2, [world.supplier.address] * 2)
    with reverts("ReceivablesUnknownReceivable", receivableId=2):
        world.rec.flag_receivable(world.outsider, 2)
    with reverts("ReceivablesBackingSound", receivableId=1):
        world.rec.flag_receivable(world.outsider, 1)
    for bank, part in zip((world.bank, world.bank2), halves, strict=True):
        world.rec.offer(world.supplier, part, bank=bank.address, min_price=FACE // 4)
        world.fund(bank, FACE // 4)
    world.finance(world.bank, halves[0], FACE // 4)
    LotRecallClient(d.lots).recall(world.supplier, lot, "recall")
    # financing the other half is refused now; the first is flagged to its bank only
    with reverts("ReceivablesBackingLotRecalled", receivableId=1, lotId=lot):
        world.finance(world.bank2, halves[1], FACE // 4)
    banks, result = world.rec.flag_receivable(world.outsider, 1)
    assert banks == [world.bank.address]
    to_banks = world.rec.contract.events.FlaggedToBank().process_receipt(result.receipt, errors=DISCARD)
    assert [(e["args"]["bank"], bytes(e["args"]["lotId"])) for e in to_banks] == [(world.bank.address, lot)]
    flag = world.rec.flag_of(1)
    assert flag.flagged and (flag.fault, flag.lot, flag.by) == (
        BackingFault.RECALLED,
        lot,
        world.outsider.address,
    )
    assert flag.flagged_at == world.chain.block(result.block_number)["timestamp"]
    with reverts("ReceivablesAlreadyFlagged", receivableId=1, flaggedAt=flag.flagged_at):
        world.rec.flag_receivable(world.outsider, 1)


def test_flag_names_every_bank_and_needs_a_financed_unpaid_part(world: World, d: Any) -> None:  # noqa: F811
    lot = d.lot("LOT-F2")
    _confirm(world, d.order("PO-F2"), [lot])
    root = world.rec.receivable(1).root_part
    parts, _ = world.rec.split(world.supplier, root, [FACE // 4] * 4, [world.supplier.address] * 4)
    d.judge(lot, "LOT-F2", good=False)
    with reverts("ReceivablesNotFinanced", receivableId=1):
        world.rec.flag_receivable(world.outsider, 1)
    # the same bank financed two parts before the verdict changed: named once (a second lot shows it)
    lot2 = d.lot("LOT-F3")
    _confirm(world, d.order("PO-F3"), [lot2])
    root2 = world.rec.receivable(2).root_part
    parts2, _ = world.rec.split(world.supplier, root2, [FACE // 4] * 4, [world.supplier.address] * 4)
    for bank, part in zip((world.bank, world.bank2, world.bank), parts2[:3], strict=True):
        world.rec.offer(world.supplier, part, bank=bank.address, min_price=FACE // 8)
        world.fund(bank, FACE // 8)
        world.finance(bank, part, FACE // 8)
    d.judge(lot2, "LOT-F3", good=False)
    banks, _ = world.rec.flag_receivable(world.outsider, 2)
    assert banks == [world.bank.address, world.bank2.address]
    # a repaid receivable is not flagged
    world.fund(world.debtor, FACE)
    world.rec.repay(world.debtor, 1)
    paid_at = world.rec.receivable(1).paid_at
    with reverts("ReceivablesAlreadyPaid", receivableId=1, paidAt=paid_at):
        world.rec.flag_receivable(world.outsider, 1)
    assert not world.rec.flag_of(1).flagged and parts


def test_admissions_still_apply(world: World, d: Any) -> None:  # noqa: F811
    """The debtor's admission comes first: an unadmitted caller learns nothing about the backing."""
    order, lot = d.order("PO-ADM"), d.lot("LOT-ADM")
    world.admit(world.debtor, CREATE_ACTION, False)
    _refused(world, "ReceivablesNotAdmitted", order, [lot], party=world.debtor.address, action=CREATE_ACTION)
    assert PLACE_ACTION and TRANSFER_ACTION  # admitted in the world fixture
