"""Receivables and the test stablecoin on both chains: confirmation, split, transfer, offer and
withdrawal, financing against the token, repayment of every leaf, default after the grace period and
late cure; every refusal with its exact error and arguments, and nothing changed by a refusal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from backing import Deliveries
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from support import TestConsortium, reverts
from web3.logs import DISCARD

from contracts.certifier import SPEC_ACTION, QualityCertifierClient
from contracts.chain import Chain
from contracts.credit import PUBLISH_ACTION, CreditRegistryClient, deploy_credit_registry
from contracts.deploy import deploy_suite
from contracts.errors import DeploymentError
from contracts.lots import OPEN_ACTION, TRANSFER_ACTION, LotRegistryClient, deploy_supply_chain
from contracts.orders import PLACE_ACTION, PurchaseOrdersClient, deploy_purchase_orders
from contracts.participant_ids import ACTIONS
from contracts.receivables import (
    CREATE_ACTION,
    FINANCE_ACTION,
    GRACE_PERIOD,
    HOLD_ACTION,
    MAX_PARTS,
    InvalidReceivableInput,
    PartState,
    ReceivablesClient,
    StablecoinClient,
    deploy_finance_settlement,
    receivable_reference,
)
from tests.contracts._chain_time import now, set_time
from tests.helpers.credit_lines import attest, publish_records

#: the contract's own rules: on anvil alone (tests/conftest.py CHAIN_KINDS)
pytestmark = pytest.mark.contract_logic

DAY = 86_400
FACE = 1_000_000  # 10,000.00 tCNY
ZERO = "0x" + "00" * 20
REF = receivable_reference("INV-2026-001")


@dataclass
class World:
    chain: Chain
    gate: Any
    rec: ReceivablesClient
    coin: StablecoinClient
    operator: LocalAccount
    debtor: LocalAccount
    supplier: LocalAccount
    tier2: LocalAccount
    tier3: LocalAccount
    bank: LocalAccount
    bank2: LocalAccount
    outsider: LocalAccount
    deliveries: Deliveries
    sources: tuple[str, str, str]  # PurchaseOrders, LotRegistry, QualityCertifier
    credit: CreditRegistryClient
    oracle: LocalAccount
    delivered: int = 0

    def backing(self) -> dict[str, Any]:
        """A fresh accepted order and one certified lot delivered to the debtor: ``confirm``'s backing."""
        if self.deliveries.device is None:
            self.deliveries.setup()
        self.delivered += 1
        order = self.deliveries.order(f"PO-{self.delivered}")
        return {"order_id": order, "lots": [self.deliveries.lot(f"LOT-{self.delivered}")]}

    def admit(self, party: LocalAccount, action: bytes, admitted: bool = True) -> None:
        self.chain.transact(self.gate.functions.setAdmitted(party.address, action, admitted), self.operator)

    def confirm(self, *, face: int = FACE, ref: bytes = REF, due_in: int = 90 * DAY) -> tuple[int, int]:
        rid, _ = self.rec.confirm(
            self.debtor,
            supplier=self.supplier.address,
            face_value=face,
            due_date=now(self.chain) + due_in,
            reference=ref,
            **self.backing(),
        )
        return rid, self.rec.receivable(rid).root_part

    def finance(
        self, bank: LocalAccount, part_id: int, price: int, rec: ReceivablesClient | None = None
    ) -> Any:
        """``bank`` finances ``part_id`` at ``price`` with the oracle's credit-line statement."""
        rec = rec or self.rec
        return rec.finance(bank, part_id, price, attest(rec, self.oracle, bank.address, part_id))

    def fund(self, party: LocalAccount, amount: int) -> None:
        self.coin.mint(self.operator, party.address, amount)
        self.coin.approve(party, self.rec.address, amount)

    def parts(self, *ids: int) -> list[Any]:
        return [self.rec.part(i) for i in ids]

    def leaf_sum(self, rid: int) -> int:
        return sum(self.rec.part(i).amount for i in self.rec.parts_of(rid))

    def balances(self) -> list[int]:
        who = (self.debtor, self.supplier, self.tier2, self.tier3, self.bank, self.bank2)
        return [self.coin.balance_of(p.address) for p in who]


@pytest.fixture
def world(suite: Any) -> World:
    chain: Chain = suite.chain
    op = suite.operator
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    supply = deploy_supply_chain(chain, op, deployment=suite.deployment, gate_address=gate_address)
    orders = deploy_purchase_orders(chain, op, deployment=suite.deployment, gate_address=gate_address)
    sources = (orders, supply["LotRegistry"], supply["QualityCertifier"])
    credit = deploy_credit_registry(chain, op, deployment=suite.deployment, gate_address=gate_address)
    out = deploy_finance_settlement(
        chain,
        op,
        deployment=suite.deployment,
        gate_address=gate_address,
        orders=sources[0],
        lots=sources[1],
        certifier=sources[2],
        credit_registry=credit,
    )
    a = suite.accounts
    w = World(
        chain=chain,
        gate=chain.contract("StaticAdmissionGate", gate_address),
        rec=ReceivablesClient(chain, out["Receivables"]),
        coin=StablecoinClient(chain, out["TestStablecoin"]),
        operator=op,
        debtor=a[1],
        supplier=a[2],
        tier2=a[3],
        tier3=a[4],
        bank=a[5],
        bank2=a[6],
        outsider=a[7],
        deliveries=Deliveries(
            chain=chain,
            lots=LotRegistryClient(chain, sources[1]),
            certifier=QualityCertifierClient(chain, sources[2]),
            orders=PurchaseOrdersClient(chain, sources[0]),
            anchor=suite.contract("ReadingAnchor"),
            admin=op,
            consortium=TestConsortium(chain, suite.deployment),
            buyer=a[1],
            supplier=a[2],
        ),
        sources=sources,
        credit=CreditRegistryClient(chain, credit),
        oracle=a[8],
    )
    for action in (CREATE_ACTION, PLACE_ACTION, SPEC_ACTION, TRANSFER_ACTION):
        w.admit(w.debtor, action)
    w.admit(w.supplier, OPEN_ACTION)
    for p in (w.supplier, w.tier2, w.tier3):
        w.admit(p, HOLD_ACTION)
    for p in (w.bank, w.bank2):
        w.admit(p, FINANCE_ACTION)
    # every holder may sell within a credit line (issue 15; the line itself: test_credit_line.py)
    w.admit(w.oracle, PUBLISH_ACTION)
    publish_records(
        w.credit, w.oracle, [p.address for p in (w.supplier, w.tier2, w.tier3)], valid_for=400 * DAY
    )
    return w


# ---------------------------------------------------------------- stablecoin and helpers


def test_stablecoin(world: World) -> None:
    c = world.coin
    assert (c.name(), c.symbol(), c.decimals(), c.total_supply()) == ("supET Test Yuan", "tCNY", 2, 0)
    c.mint(world.operator, world.debtor.address, 12_345)
    assert c.balance_of(world.debtor.address) == 12_345 == c.total_supply()
    with reverts("OwnableUnauthorizedAccount", account=world.debtor.address):
        c.mint(world.debtor, world.debtor.address, 1)
    c.approve(world.debtor, world.rec.address, 100)
    assert c.allowance(world.debtor.address, world.rec.address) == 100
    assert world.rec.token() == c.address
    assert receivable_reference("INV-2026-001") == keccak(b"INV-2026-001")
    with pytest.raises(InvalidReceivableInput, match="cannot be empty"):
        receivable_reference("")
    with pytest.raises(InvalidReceivableInput, match="one holder per amount"):
        world.rec.split(world.supplier, 1, [1, 2], [world.tier2.address])
    assert ACTIONS["supet.receivable.hold"] == HOLD_ACTION


# ---------------------------------------------------------------- confirmation


def test_confirm(world: World) -> None:
    due = now(world.chain) + 90 * DAY
    backing = world.backing()
    rid, result = world.rec.confirm(
        world.debtor, supplier=world.supplier.address, face_value=FACE, due_date=due, reference=REF, **backing
    )
    assert rid == 1
    (event,) = world.rec.contract.events.ReceivableConfirmed().process_receipt(result.receipt, errors=DISCARD)
    args = event["args"]
    assert (args["debtor"], args["supplier"], args["faceValue"], args["dueDate"]) == (
        world.debtor.address,
        world.supplier.address,
        FACE,
        due,
    )
    r = world.rec.receivable(rid)
    assert (r.id, r.debtor, r.supplier, r.face_value, r.due_date, r.reference) == (
        1,
        world.debtor.address,
        world.supplier.address,
        FACE,
        due,
        REF,
    )
    assert r.order_id == backing["order_id"]
    assert world.rec.backing_of(rid) == (backing["order_id"], backing["lots"])
    assert world.rec.receivable_backed_by(backing["lots"][0]) == rid
    assert r.created_at == world.chain.block(result.block_number)["timestamp"] and not r.paid
    (root,) = world.parts(r.root_part)
    assert (root.receivable_id, root.parent, root.holder, root.amount) == (1, 0, world.supplier.address, FACE)
    assert root.state is PartState.ACTIVE and root.offered_to is None and root.financed_by is None
    assert world.rec.parts_of(rid) == world.rec.all_parts_of(rid) == [r.root_part]
    assert world.rec.parts_held_by(world.supplier.address) == [r.root_part]
    assert world.rec.receivable_of(world.debtor.address, REF) == rid
    assert world.rec.receivable_count() == 1


def test_confirm_refusals_change_nothing(world: World) -> None:
    world.confirm()
    t = now(world.chain)
    fns = world.rec.contract.functions
    s, d = world.supplier.address, world.debtor
    backing = world.backing()

    def confirm(
        supplier: str = s, face: int = FACE, due: int = t + DAY, ref: bytes = keccak(b"2"), by: Any = d
    ):
        return world.chain.transact(
            fns.confirm(supplier, face, due, ref, backing["order_id"], backing["lots"]), by
        )

    with reverts("ReceivablesNotAdmitted", party=world.outsider.address, action=CREATE_ACTION):
        confirm(by=world.outsider)
    with reverts("ReceivablesInvalidSupplier", supplier=ZERO):
        confirm(supplier=ZERO)
    with reverts("ReceivablesInvalidSupplier", supplier=d.address):
        confirm(supplier=d.address)
    with reverts("ReceivablesNotAdmitted", party=world.bank.address, action=HOLD_ACTION):
        confirm(supplier=world.bank.address)
    with reverts("ReceivablesZeroFaceValue"):
        confirm(face=0)
    with reverts("ReceivablesDueDateInPast", dueDate=t - 1):
        confirm(due=t - 1)
    with reverts("ReceivablesZeroReference"):
        confirm(ref=bytes(32))
    with reverts("ReceivablesDuplicateReference", debtor=d.address, ref=REF, receivableId=1):
        confirm(ref=REF)
    assert world.rec.receivable_count() == 1
    for rid in (0, 2):
        with reverts("ReceivablesUnknownReceivable", receivableId=rid):
            world.rec.receivable(rid)
        with reverts("ReceivablesUnknownReceivable", receivableId=rid):
            world.rec.parts_of(rid)
    for pid in (0, 2):
        with reverts("ReceivablesUnknownPart", partId=pid):
            world.rec.part(pid)


# ---------------------------------------------------------------- split and transfer


def test_split_conserves_value(world: World) -> None:
    rid, root = world.confirm()
    kids, result = world.rec.split(
        world.supplier,
        root,
        [500_000, 300_000, 200_000],
        [world.tier2.address, world.tier3.address, world.supplier.address],
    )
    assert kids == [2, 3, 4]
    created = world.rec.contract.events.PartCreated().process_receipt(result.receipt, errors=DISCARD)
    assert [(e["args"]["partId"], e["args"]["parent"], e["args"]["amount"]) for e in created] == [
        (2, root, 500_000),
        (3, root, 300_000),
        (4, root, 200_000),
    ]
    (ev,) = world.rec.contract.events.PartSplit().process_receipt(result.receipt, errors=DISCARD)
    assert (ev["args"]["partId"], ev["args"]["children"]) == (root, kids)
    assert world.rec.part(root).state is PartState.SPLIT
    assert world.rec.parts_of(rid) == kids and world.rec.all_parts_of(rid) == [root, *kids]
    assert world.leaf_sum(rid) == FACE
    assert [p.holder for p in world.parts(*kids)] == [
        world.tier2.address,
        world.tier3.address,
        world.supplier.address,
    ]
    # the split parent stays with its splitter (documented: partsHeldBy includes non-leaf parts)
    assert sorted(world.rec.parts_held_by(world.supplier.address)) == [root, 4]
    # a child splits further
    grandkids, _ = world.rec.split(world.tier2, 2, [1, 499_999], [world.tier3.address, world.tier3.address])
    assert world.rec.parts_of(rid) == [3, 4, *grandkids] and world.leaf_sum(rid) == FACE
    assert world.rec.part(grandkids[0]).parent == 2


def test_split_refusals_change_nothing(world: World) -> None:
    rid, root = world.confirm()
    t2, t3 = world.tier2.address, world.tier3.address
    before = world.rec.part(root)
    cases: list[tuple[str, LocalAccount, list[int], list[str], dict[str, Any]]] = [
        (
            "ReceivablesNotHolder",
            world.tier2,
            [1, FACE - 1],
            [t2, t3],
            {"caller": t2, "holder": world.supplier.address},
        ),
        ("ReceivablesInvalidSplit", world.supplier, [FACE], [t2], {"amounts": 1, "holders": 1}),
        ("ReceivablesInvalidSplit", world.supplier, [1] * 17, [t2] * 17, {"amounts": 17, "holders": 17}),
        ("ReceivablesInvalidSplit", world.supplier, [1, FACE - 1], [t2], {"amounts": 2, "holders": 1}),
        ("ReceivablesZeroSplitAmount", world.supplier, [FACE, 0], [t2, t3], {"index": 1}),
        (
            "ReceivablesSplitSumMismatch",
            world.supplier,
            [1, FACE],
            [t2, t3],
            {"partId": root, "sum": FACE + 1},
        ),
        ("ReceivablesSplitSumMismatch", world.supplier, [1, 2], [t2, t3], {"sum": 3, "amount": FACE}),
        ("ReceivablesInvalidHolder", world.supplier, [1, FACE - 1], [t2, ZERO], {"to": ZERO}),
        (
            "ReceivablesNotAdmitted",
            world.supplier,
            [1, FACE - 1],
            [t2, world.outsider.address],
            {"party": world.outsider.address, "action": HOLD_ACTION},
        ),
    ]
    for error, sender, amounts, holders, args in cases:
        with reverts(error, **args):
            world.chain.transact(world.rec.contract.functions.split(root, amounts, holders), sender)
    assert world.rec.part(root) == before and world.rec.all_parts_of(rid) == [root]
    world.rec.split(world.supplier, root, [1, FACE - 1], [t2, t3])
    with reverts("ReceivablesPartNotActive", partId=root, state=PartState.SPLIT):
        world.rec.split(world.supplier, root, [1, FACE - 1], [t2, t3])


def test_parts_per_receivable_are_capped(world: World) -> None:
    """The root may add MAX_PARTS - 1 parts; each split divides what is left evenly among the children."""
    rid, root = world.confirm(face=10_000)
    assert world.rec.part(root).split_quota == MAX_PARTS - 1
    holders = [world.supplier.address] * 16
    leaves, _ = world.rec.split(world.supplier, root, [625] * 16, holders)  # 111 left: 15 x 7 + 6
    assert [world.rec.part(i).split_quota for i in leaves] == [7] * 15 + [6]
    assert world.rec.part(root).split_quota == 0
    with reverts("ReceivablesSplitQuotaExceeded", partId=leaves[0], children=8, quota=7):
        world.rec.split(world.supplier, leaves[0], [1] * 7 + [618], holders[:8])
    kids, _ = world.rec.split(world.supplier, leaves[0], [1] * 6 + [619], holders[:7])
    assert [world.rec.part(i).split_quota for i in kids] == [0] * 7
    with reverts("ReceivablesSplitQuotaExceeded", partId=kids[-1], children=2, quota=0):
        world.rec.split(world.supplier, kids[-1], [1, 618], holders[:2])
    for leaf in leaves[1:]:  # every subtree spends its whole quota: exactly MAX_PARTS parts
        q = world.rec.part(leaf).split_quota
        world.rec.split(world.supplier, leaf, [1] * (q - 1) + [626 - q], holders[:q])
    assert len(world.rec.all_parts_of(rid)) == MAX_PARTS and world.leaf_sum(rid) == 10_000


def test_one_holder_cannot_use_up_the_split_budget(world: World) -> None:
    """Issue 12, finding 9: tier 2 splits its half as far as it can; the supplier's half keeps its own
    quota (before the fix, tier 2 filled the shared MAX_PARTS and the supplier's split was refused)."""
    rid, root = world.confirm(face=100_000)
    mine, theirs = world.rec.split(
        world.supplier, root, [50_000, 50_000], [world.supplier.address, world.tier2.address]
    )[0]
    assert (world.rec.part(mine).split_quota, world.rec.part(theirs).split_quota) == (63, 62)
    t2 = world.tier2.address
    open_ = [theirs]
    while open_:
        pid = open_.pop()
        p = world.rec.part(pid)
        n = min(16, p.split_quota, p.amount)
        if n < 2:
            continue
        amounts = [p.amount // n] * (n - 1) + [p.amount - (n - 1) * (p.amount // n)]
        kids, _ = world.rec.split(world.tier2, pid, amounts, [t2] * n)
        open_.extend(kids)
    used = len(world.rec.all_parts_of(rid))
    assert used == 3 + 62  # tier 2 spent all of its subtree's quota, and no more
    held = [world.rec.part(i) for i in world.rec.parts_held_by(t2)]
    leaf = max((p for p in held if p.state is PartState.ACTIVE), key=lambda p: p.amount).id
    with reverts("ReceivablesSplitQuotaExceeded", partId=leaf, children=2, quota=0):
        world.rec.split(world.tier2, leaf, [1, world.rec.part(leaf).amount - 1], [t2, t2])
    kids, _ = world.rec.split(world.supplier, mine, [3_125] * 16, [world.supplier.address] * 16)
    assert len(kids) == 16 and world.leaf_sum(rid) == 100_000
    assert len(world.rec.all_parts_of(rid)) == used + 16 <= MAX_PARTS


def test_transfer(world: World) -> None:
    _, root = world.confirm()
    result = world.rec.transfer(world.supplier, root, world.tier2.address)
    (ev,) = world.rec.contract.events.PartTransferred().process_receipt(result.receipt, errors=DISCARD)
    assert (ev["args"]["from"], ev["args"]["to"]) == (world.supplier.address, world.tier2.address)
    assert world.rec.part(root).holder == world.tier2.address
    assert world.rec.parts_held_by(world.supplier.address) == []
    assert world.rec.parts_held_by(world.tier2.address) == [root]
    with reverts(
        "ReceivablesNotHolder", caller=world.supplier.address, partId=root, holder=world.tier2.address
    ):
        world.rec.transfer(world.supplier, root, world.tier3.address)
    for to in (ZERO, world.tier2.address):
        with reverts("ReceivablesInvalidHolder", to=to):
            world.rec.transfer(world.tier2, root, to)
    with reverts("ReceivablesNotAdmitted", party=world.bank.address, action=HOLD_ACTION):
        world.rec.transfer(world.tier2, root, world.bank.address)
    world.rec.offer(world.tier2, root, bank=world.bank.address, min_price=1)
    with reverts("ReceivablesPartNotActive", partId=root, state=PartState.OFFERED):
        world.rec.transfer(world.tier2, root, world.tier3.address)
    assert world.rec.part(root).holder == world.tier2.address


# ---------------------------------------------------------------- offers and financing


def test_offer_and_withdraw(world: World) -> None:
    _, root = world.confirm()
    b = world.bank.address
    before = world.rec.part(root)
    with reverts("ReceivablesNotHolder", caller=world.tier2.address):
        world.rec.offer(world.tier2, root, bank=b, min_price=1)
    for bank in (ZERO, world.supplier.address):
        with reverts("ReceivablesInvalidBank", bank=bank):
            world.rec.offer(world.supplier, root, bank=bank, min_price=1)
    with reverts("ReceivablesNotAdmitted", party=world.tier2.address, action=FINANCE_ACTION):
        world.rec.offer(world.supplier, root, bank=world.tier2.address, min_price=1)
    for price in (0, FACE + 1):
        with reverts("ReceivablesInvalidMinPrice", partId=root, minPrice=price, amount=FACE):
            world.rec.offer(world.supplier, root, bank=b, min_price=price)
    with reverts("ReceivablesNotOffered", partId=root, state=PartState.ACTIVE):
        world.rec.withdraw_offer(world.supplier, root)
    assert world.rec.part(root) == before and world.rec.offers_to(b) == []

    result = world.rec.offer(world.supplier, root, bank=b, min_price=950_000)
    (ev,) = world.rec.contract.events.PartOffered().process_receipt(result.receipt, errors=DISCARD)
    assert (ev["args"]["holder"], ev["args"]["bank"], ev["args"]["minPrice"]) == (
        world.supplier.address,
        b,
        950_000,
    )
    p = world.rec.part(root)
    assert (p.state, p.offered_to, p.min_price) == (PartState.OFFERED, b, 950_000)
    assert world.rec.offers_to(b) == [root]
    with reverts("ReceivablesPartNotActive", partId=root, state=PartState.OFFERED):
        world.rec.offer(world.supplier, root, bank=world.bank2.address, min_price=1)
    with reverts("ReceivablesNotHolder", caller=b):
        world.rec.withdraw_offer(world.bank, root)
    result = world.rec.withdraw_offer(world.supplier, root)
    (ev,) = world.rec.contract.events.OfferWithdrawn().process_receipt(result.receipt, errors=DISCARD)
    assert ev["args"]["bank"] == b
    assert world.rec.part(root) == before and world.rec.offers_to(b) == []


def test_finance(world: World) -> None:
    rid, root = world.confirm()
    kids, _ = world.rec.split(
        world.supplier, root, [600_000, 400_000], [world.supplier.address, world.tier2.address]
    )
    b = world.bank.address
    world.rec.offer(world.supplier, kids[0], bank=b, min_price=570_000)
    world.rec.offer(world.tier2, kids[1], bank=b, min_price=380_000)
    assert sorted(world.rec.offers_to(b)) == kids
    world.coin.mint(world.operator, b, 2_000_000)

    # refusals first, nothing moves
    with reverts("ReceivablesNotOfferedTo", caller=world.bank2.address, partId=kids[0], offeredTo=b):
        world.finance(world.bank2, kids[0], 570_000)
    for price in (569_999, 600_001):
        with reverts(
            "ReceivablesPriceOutOfRange", partId=kids[0], price=price, minPrice=570_000, amount=600_000
        ):
            world.finance(world.bank, kids[0], price)
    with reverts("ReceivablesNotOffered", partId=root, state=PartState.SPLIT):
        world.finance(world.bank, root, 1)
    with reverts("ERC20InsufficientAllowance", spender=world.rec.address, allowance=0, needed=570_000):
        world.finance(world.bank, kids[0], 570_000)
    world.admit(world.bank, FINANCE_ACTION, admitted=False)
    world.coin.approve(world.bank, world.rec.address, 2_000_000)
    with reverts("ReceivablesNotAdmitted", party=b, action=FINANCE_ACTION):
        world.finance(world.bank, kids[0], 570_000)
    world.admit(world.bank, FINANCE_ACTION)
    assert world.rec.part(kids[0]).state is PartState.OFFERED

    bal = world.balances()
    result = world.finance(world.bank, kids[0], 580_000)
    (ev,) = world.rec.contract.events.PartFinanced().process_receipt(result.receipt, errors=DISCARD)
    assert (ev["args"]["seller"], ev["args"]["bank"], ev["args"]["price"]) == (
        world.supplier.address,
        b,
        580_000,
    )
    after = world.balances()
    assert after[1] - bal[1] == 580_000 and bal[4] - after[4] == 580_000
    p = world.rec.part(kids[0])
    assert (p.state, p.holder, p.financed_by, p.financed_price) == (PartState.FINANCED, b, b, 580_000)
    assert (p.offered_to, p.min_price) == (None, 0)
    assert world.rec.offers_to(b) == [kids[1]]
    assert world.rec.parts_held_by(b) == [kids[0]] and world.rec.parts_held_by(world.supplier.address) == [
        root
    ]
    assert world.leaf_sum(rid) == FACE

    # financed is final: no second financing, no offer, split or transfer by the bank
    with reverts("ReceivablesNotOffered", partId=kids[0], state=PartState.FINANCED):
        world.finance(world.bank, kids[0], 580_000)
    world.admit(world.bank, HOLD_ACTION)
    with reverts("ReceivablesPartNotActive", partId=kids[0], state=PartState.FINANCED):
        world.rec.transfer(world.bank, kids[0], world.tier2.address)
    with reverts("ReceivablesPartNotActive", partId=kids[0], state=PartState.FINANCED):
        world.rec.split(world.bank, kids[0], [1, 599_999], [b, b])
    with reverts("ReceivablesPartNotActive", partId=kids[0], state=PartState.FINANCED):
        world.rec.offer(world.bank, kids[0], bank=world.bank2.address, min_price=1)

    # from the due date on, nothing is offered or financed
    due = world.rec.receivable(rid).due_date
    set_time(world.chain, due)
    with reverts("ReceivablesPastDue", receivableId=rid, dueDate=due):
        world.finance(world.bank, kids[1], 380_000)
    world.rec.withdraw_offer(world.tier2, kids[1])
    with reverts("ReceivablesPastDue", receivableId=rid, dueDate=due):
        world.rec.offer(world.tier2, kids[1], bank=b, min_price=1)


# ---------------------------------------------------------------- settlement


def test_repay_pays_every_leaf_once(world: World) -> None:
    rid, root = world.confirm()
    kids, _ = world.rec.split(
        world.supplier,
        root,
        [500_000, 300_000, 200_000],
        [world.supplier.address, world.tier2.address, world.tier3.address],
    )
    b = world.bank.address
    world.fund(world.bank, 500_000)
    world.rec.offer(world.supplier, kids[0], bank=b, min_price=480_000)
    world.finance(world.bank, kids[0], 480_000)
    world.rec.offer(world.tier2, kids[1], bank=b, min_price=1)  # an open offer lapses at repayment
    with reverts(
        "ReceivablesNotDebtor", caller=world.supplier.address, receivableId=rid, debtor=world.debtor.address
    ):
        world.rec.repay(world.supplier, rid)
    world.coin.mint(world.operator, world.debtor.address, FACE)
    world.coin.approve(world.debtor, world.rec.address, FACE - 1)
    with reverts("ERC20InsufficientAllowance", allowance=FACE - 1, needed=FACE):
        world.rec.repay(world.debtor, rid)
    assert not world.rec.receivable(rid).paid and world.rec.part(kids[1]).state is PartState.OFFERED

    world.coin.approve(world.debtor, world.rec.address, FACE)
    supply = world.coin.total_supply()
    bal = world.balances()
    result = world.rec.repay(world.debtor, rid)
    paid = world.rec.contract.events.PartPaid().process_receipt(result.receipt, errors=DISCARD)
    assert [(e["args"]["partId"], e["args"]["holder"], e["args"]["amount"]) for e in paid] == [
        (kids[0], b, 500_000),
        (kids[1], world.tier2.address, 300_000),
        (kids[2], world.tier3.address, 200_000),
    ]
    (ev,) = world.rec.contract.events.ReceivablePaid().process_receipt(result.receipt, errors=DISCARD)
    assert (ev["args"]["receivableId"], ev["args"]["faceValue"]) == (rid, FACE)
    after = world.balances()
    assert [a - x for a, x in zip(after, bal, strict=True)] == [-FACE, 0, 300_000, 200_000, 500_000, 0]
    assert world.coin.total_supply() == supply
    assert world.coin.balance_of(world.rec.address) == 0 == world.rec.escrow_total()
    assert world.rec.contract.events.PaymentEscrowed().process_receipt(result.receipt, errors=DISCARD) == ()
    assert all(p.state is PartState.PAID for p in world.parts(*kids))
    assert world.rec.part(root).state is PartState.SPLIT
    assert world.rec.offers_to(b) == [] and world.rec.part(kids[1]).offered_to is None
    r = world.rec.receivable(rid)
    assert r.paid_at == world.chain.block(result.block_number)["timestamp"]

    # paid once; nothing moves afterwards
    world.coin.mint(world.operator, world.debtor.address, FACE)
    world.coin.approve(world.debtor, world.rec.address, FACE)
    with reverts("ReceivablesAlreadyPaid", receivableId=rid, paidAt=r.paid_at):
        world.rec.repay(world.debtor, rid)
    with reverts("ReceivablesPartNotActive", partId=kids[1], state=PartState.PAID):
        world.rec.transfer(world.tier2, kids[1], world.tier3.address)
    with reverts("ReceivablesPartNotActive", partId=kids[1], state=PartState.PAID):
        world.rec.split(world.tier2, kids[1], [1, 299_999], [world.tier2.address] * 2)
    with reverts("ReceivablesPartNotActive", partId=kids[2], state=PartState.PAID):
        world.rec.offer(world.tier3, kids[2], bank=b, min_price=1)
    with reverts("ReceivablesNotOffered", partId=kids[1], state=PartState.PAID):
        world.finance(world.bank, kids[1], 1)
    set_time(world.chain, r.due_date + GRACE_PERIOD + 1)
    with reverts("ReceivablesNotDefaultable", partId=kids[0], state=PartState.PAID):
        world.rec.mark_defaulted(world.outsider, kids[0])
    with reverts("ReceivablesUnknownReceivable", receivableId=rid + 1):
        world.rec.repay(world.debtor, rid + 1)


def test_default_after_grace_and_late_cure(world: World) -> None:
    rid, root = world.confirm()
    kids, _ = world.rec.split(
        world.supplier, root, [700_000, 300_000], [world.supplier.address, world.tier2.address]
    )
    world.rec.offer(world.tier2, kids[1], bank=world.bank.address, min_price=1)
    due = world.rec.receivable(rid).due_date
    limit = due + GRACE_PERIOD
    set_time(world.chain, limit - 1)
    # the estimate runs on a pending block one second or so later: still within the grace period
    with reverts("ReceivablesGracePeriodRunning", partId=kids[0], defaultableAfter=limit):
        world.rec.mark_defaulted(world.outsider, kids[0])
    set_time(world.chain, limit + 1)
    with reverts("ReceivablesNotDefaultable", partId=root, state=PartState.SPLIT):
        world.rec.mark_defaulted(world.outsider, root)
    result = world.rec.mark_defaulted(world.outsider, kids[0])
    (ev,) = world.rec.contract.events.PartDefaulted().process_receipt(result.receipt, errors=DISCARD)
    assert (ev["args"]["partId"], ev["args"]["holder"], ev["args"]["by"], ev["args"]["amount"]) == (
        kids[0],
        world.supplier.address,
        world.outsider.address,
        700_000,
    )
    world.rec.mark_defaulted(world.outsider, kids[1])  # an offered part: its offer lapses
    assert world.rec.offers_to(world.bank.address) == []
    assert [p.state for p in world.parts(*kids)] == [PartState.DEFAULTED] * 2
    with reverts("ReceivablesNotDefaultable", partId=kids[0], state=PartState.DEFAULTED):
        world.rec.mark_defaulted(world.outsider, kids[0])
    with reverts("ReceivablesPartNotActive", partId=kids[0], state=PartState.DEFAULTED):
        world.rec.transfer(world.supplier, kids[0], world.tier2.address)
    assert world.leaf_sum(rid) == FACE

    # late repayment cures the defaulted parts
    world.fund(world.debtor, FACE)
    world.rec.repay(world.debtor, rid)
    assert [p.state for p in world.parts(*kids)] == [PartState.PAID] * 2
    assert world.coin.balance_of(world.supplier.address) == 700_000


def _settling_in(world: World, token_name: str) -> tuple[ReceivablesClient, StablecoinClient, Any]:
    """A second Receivables behind the world's gate, settling in a fresh test token ``token_name``."""
    chain, op = world.chain, world.operator
    token = chain.deploy(token_name, op, op.address).contract_address
    assert token is not None
    credit = world.credit.address
    address = chain.deploy(
        "Receivables", op, op.address, world.gate.address, token, *world.sources, credit
    ).contract_address
    assert address is not None
    contract = chain.contract(token_name, token)
    return ReceivablesClient(chain, address), StablecoinClient(chain, token), contract


def test_frozen_holder_does_not_block_repayment(world: World) -> None:
    """Issue 12, finding 4: the token freezes one holder; the others are paid, its part is escrowed
    (still cured: defaulted parts become Paid), and it claims the escrow once unfrozen."""
    rec, coin, token = _settling_in(world, "FreezableToken")
    chain, op = world.chain, world.operator
    rid, _ = rec.confirm(
        world.debtor,
        supplier=world.supplier.address,
        face_value=FACE,
        due_date=now(chain) + 90 * DAY,
        reference=REF,
        **world.backing(),
    )
    root = rec.receivable(rid).root_part
    kids, _ = rec.split(
        world.supplier,
        root,
        [500_000, 300_000, 200_000],
        [world.supplier.address, world.tier2.address, world.tier3.address],
    )
    set_time(chain, rec.receivable(rid).due_date + GRACE_PERIOD + 1)
    for kid in kids:
        rec.mark_defaulted(world.outsider, kid)
    chain.transact(token.functions.setFrozen(world.tier2.address, True), op)
    coin.mint(op, world.debtor.address, FACE)
    coin.approve(world.debtor, rec.address, FACE)
    with reverts("ReceivablesOnlySelf", caller=world.outsider.address):
        chain.transact(rec.contract.functions.pushPayment(world.outsider.address, 1), world.outsider)

    # too little gas for a fair push attempt: refused outright, never escrowed by the debtor's choice
    fn = rec.contract.functions.repay(rid)
    with reverts("ReceivablesInsufficientGas"):
        chain.request(lambda: fn.call({"from": world.debtor.address, "gas": 160_000}), context="repay")

    result = rec.repay(world.debtor, rid)  # before the fix: FreezableTokenFrozen, nobody paid
    escrowed = rec.contract.events.PaymentEscrowed().process_receipt(result.receipt, errors=DISCARD)
    assert [(e["args"]["partId"], e["args"]["holder"], e["args"]["amount"]) for e in escrowed] == [
        (kids[1], world.tier2.address, 300_000)
    ]
    assert [p.state for p in (rec.part(k) for k in kids)] == [PartState.PAID] * 3
    assert rec.receivable(rid).paid
    holders = (world.supplier, world.tier2, world.tier3)
    assert [coin.balance_of(h.address) for h in holders] == [500_000, 0, 200_000]
    assert coin.balance_of(world.debtor.address) == 0
    assert coin.balance_of(rec.address) == 300_000 == rec.escrow_total() == rec.escrow_of(kids[1])
    assert rec.escrow_of(kids[0]) == rec.escrow_of(kids[2]) == 0

    # still frozen: the claim fails and the escrow stays; nothing to claim for the others
    with reverts("FreezableTokenFrozen", account=world.tier2.address):
        rec.claim_escrow(world.tier2, kids[1])
    assert rec.escrow_of(kids[1]) == 300_000
    for pid in (kids[0], root):
        with reverts("ReceivablesNothingEscrowed", partId=pid):
            rec.claim_escrow(world.outsider, pid)
    with reverts("ReceivablesUnknownPart", partId=99):
        rec.claim_escrow(world.outsider, 99)

    # unfrozen: anyone may release it, and it goes to the holder only
    chain.transact(token.functions.setFrozen(world.tier2.address, False), op)
    result = rec.claim_escrow(world.outsider, kids[1])
    (ev,) = rec.contract.events.EscrowReleased().process_receipt(result.receipt, errors=DISCARD)
    assert (ev["args"]["partId"], ev["args"]["holder"], ev["args"]["amount"]) == (
        kids[1],
        world.tier2.address,
        300_000,
    )
    assert coin.balance_of(world.tier2.address) == 300_000 and coin.balance_of(world.outsider.address) == 0
    assert coin.balance_of(rec.address) == 0 == rec.escrow_total() == rec.escrow_of(kids[1])
    with reverts("ReceivablesNothingEscrowed", partId=kids[1]):
        rec.claim_escrow(world.tier2, kids[1])


def test_fee_on_transfer_token_is_refused(world: World) -> None:
    """Issue 12, finding 5: a token that burns 1 % of each transfer. Financing and repayment are
    refused with the recipient's shortfall, and nothing is booked or moved."""
    rec, coin, _ = _settling_in(world, "FeeOnTransferToken")
    chain, op = world.chain, world.operator
    rid, _ = rec.confirm(
        world.debtor,
        supplier=world.supplier.address,
        face_value=FACE,
        due_date=now(chain) + 90 * DAY,
        reference=REF,
        **world.backing(),
    )
    root = rec.receivable(rid).root_part
    rec.offer(world.supplier, root, bank=world.bank.address, min_price=900_000)
    for party in (world.bank, world.debtor):
        coin.mint(op, party.address, FACE)
        coin.approve(party, rec.address, FACE)

    # before the fix: Financed for 950,000 while the supplier received 940,500
    with reverts(
        "ReceivablesTransferMismatch", recipient=world.supplier.address, sent=950_000, received=940_500
    ):
        world.finance(world.bank, root, 950_000, rec)
    p = rec.part(root)
    assert (p.state, p.holder, p.financed_price) == (PartState.OFFERED, world.supplier.address, 0)
    assert coin.balance_of(world.bank.address) == FACE and coin.balance_of(world.supplier.address) == 0

    # before the fix: Paid in full while the supplier received 990,000
    with reverts("ReceivablesTransferMismatch", recipient=rec.address, sent=FACE, received=990_000):
        rec.repay(world.debtor, rid)
    assert not rec.receivable(rid).paid and rec.part(root).state is PartState.OFFERED
    assert coin.balance_of(world.debtor.address) == FACE and coin.balance_of(rec.address) == 0


def test_rescue_never_takes_the_escrow(world: World) -> None:
    """Issue 12, finding 12: the admin returns tokens sent by mistake, but never what holders are owed."""
    rec, coin, token = _settling_in(world, "FreezableToken")
    chain, op = world.chain, world.operator
    rid, _ = rec.confirm(
        world.debtor,
        supplier=world.supplier.address,
        face_value=FACE,
        due_date=now(chain) + 90 * DAY,
        reference=REF,
        **world.backing(),
    )
    chain.transact(token.functions.setFrozen(world.supplier.address, True), op)
    coin.mint(op, world.debtor.address, FACE)
    coin.approve(world.debtor, rec.address, FACE)
    rec.repay(world.debtor, rid)  # the frozen supplier's whole face value is escrowed
    root = rec.receivable(rid).root_part
    assert rec.escrow_of(root) == FACE
    # a stray 5,000 of the settlement token and 700 of another token arrive by mistake
    coin.mint(op, world.outsider.address, 5_000)
    coin.transfer(world.outsider, rec.address, 5_000)
    world.coin.mint(op, rec.address, 700)

    with reverts("AccessControlUnauthorizedAccount", account=world.outsider.address):
        rec.rescue_tokens(world.outsider, coin.address, world.outsider.address, 1)
    with reverts("ReceivablesZeroRescueRecipient"):
        rec.rescue_tokens(op, coin.address, ZERO, 1)
    with reverts("ReceivablesZeroRescueAmount"):
        rec.rescue_tokens(op, coin.address, world.outsider.address, 0)
    with reverts("ReceivablesRescueExceedsFree", token=coin.address, amount=5_001, free=5_000):
        rec.rescue_tokens(op, coin.address, world.outsider.address, 5_001)
    assert coin.balance_of(rec.address) == FACE + 5_000

    result = rec.rescue_tokens(op, coin.address, world.outsider.address, 5_000)
    (ev,) = rec.contract.events.TokensRescued().process_receipt(result.receipt, errors=DISCARD)
    assert (ev["args"]["token"], ev["args"]["to"], ev["args"]["amount"], ev["args"]["by"]) == (
        coin.address,
        world.outsider.address,
        5_000,
        op.address,
    )
    assert coin.balance_of(world.outsider.address) == 5_000
    with reverts("ReceivablesRescueExceedsFree", token=coin.address, amount=1, free=0):
        rec.rescue_tokens(op, coin.address, world.outsider.address, 1)
    rec.rescue_tokens(op, world.coin.address, world.outsider.address, 700)  # another token: all of it
    assert world.coin.balance_of(world.outsider.address) == 700 and world.coin.balance_of(rec.address) == 0

    # the escrow is intact and still reaches its holder
    assert coin.balance_of(rec.address) == FACE == rec.escrow_total()
    chain.transact(token.functions.setFrozen(world.supplier.address, False), op)
    rec.claim_escrow(world.supplier, root)
    assert coin.balance_of(world.supplier.address) == FACE and coin.balance_of(rec.address) == 0


# ---------------------------------------------------------------- gate and deployment


def test_gate_and_deployment(world: World, suite: Any) -> None:
    fns = world.rec.contract.functions
    op = world.operator
    with reverts("AccessControlUnauthorizedAccount", account=world.outsider.address):
        world.chain.transact(fns.setAdmissionGate(world.outsider.address), world.outsider)
    with reverts("ReceivablesZeroGate"):
        world.chain.transact(fns.setAdmissionGate(ZERO), op)
    with reverts("ReceivablesZeroToken"):
        world.chain.deploy(
            "Receivables", op, op.address, world.gate.address, ZERO, *world.sources, world.credit.address
        )
    with reverts("ReceivablesZeroGate"):
        world.chain.deploy(
            "Receivables", op, op.address, ZERO, world.coin.address, *world.sources, world.credit.address
        )
    orders, lots, certifier = world.sources
    for bad, certifier_lots in (
        ((ZERO, lots, certifier), lots),
        ((orders, ZERO, certifier), lots),
        ((orders, lots, ZERO), ZERO),
        # the suite's certifier judges the suite's LotRegistry, not this one
        (
            (orders, lots, suite.deployment.address("QualityCertifier")),
            suite.deployment.address("LotRegistry"),
        ),
    ):
        with reverts(
            "ReceivablesInvalidEvidenceSources", orders=bad[0], lots=bad[1], certifierLots=certifier_lots
        ):
            world.chain.deploy(
                "Receivables",
                op,
                op.address,
                world.gate.address,
                world.coin.address,
                *bad,
                world.credit.address,
            )
    sources = {"orders": orders, "lots": lots, "certifier": certifier}
    with pytest.raises(DeploymentError, match="need an admission gate"):
        deploy_finance_settlement(world.chain, op, deployment=suite.deployment, gate_address=ZERO, **sources)
    with pytest.raises(DeploymentError, match="no settlement token"):
        deploy_finance_settlement(
            world.chain,
            op,
            deployment=suite.deployment,
            gate_address=world.gate.address,
            token=world.outsider.address,
            **sources,
        )
    # settling in an existing token deploys no stablecoin
    out = deploy_finance_settlement(
        world.chain,
        op,
        deployment=suite.deployment,
        gate_address=world.gate.address,
        token=world.coin.address,
        **sources,
    )
    assert (
        set(out) == {"Receivables"}
        and ReceivablesClient(world.chain, out["Receivables"]).token() == world.coin.address
    )

    # the suite: behind the registry, settling in the deployed tCNY owned by the admin
    rec = ReceivablesClient.from_deployment(suite.chain, suite.deployment)
    coin = StablecoinClient.from_deployment(suite.chain, suite.deployment)
    assert rec.admission_gate() == suite.deployment.address("ParticipantRegistry")
    assert rec.token() == coin.address
    coin.mint(op, op.address, 1)


def test_suite_without_stablecoin() -> None:
    """Deployment options are chain-independent: checked once, on a fresh embedded chain (the
    ``chain`` fixture's chains already hold the suite, so its addresses would not be the first)."""
    from contracts.chain import dev_accounts

    chain = Chain.embedded()
    op = dev_accounts(1)[0]
    d = deploy_suite(chain, op, stablecoin=False)
    assert "Receivables" not in d.contracts and "TestStablecoin" not in d.contracts
    assert "CreditRegistry" in d.contracts and "Receivables" not in d.artifact_hashes
    assert d.contracts["ReadingAnchor"] == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
