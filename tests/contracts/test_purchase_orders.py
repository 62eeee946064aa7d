"""PurchaseOrders on both chains: placing orders (admission of buyer and supplier, GTIN, every field
check, ids derived from the buyer and its nonce), acceptance once by the supplier only, cancelling once
by the buyer only, the enumeration views, the gate, and every refusal with its exact error and no
state change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from support import reverts

from contracts.chain import Chain
from contracts.errors import DeploymentError
from contracts.orders import (
    PLACE_ACTION,
    SUPPLY_ACTION,
    InvalidOrder,
    PurchaseOrdersClient,
    deploy_purchase_orders,
    due_day,
    order_id,
    order_key,
)
from contracts.participant_ids import ACTIONS

GTIN = 4006381333931  # GTIN-14 04006381333931
DUE = 20_600  # 2026-05-27


@dataclass
class World:
    chain: Chain
    gate: Any
    orders: PurchaseOrdersClient
    operator: LocalAccount
    buyer: LocalAccount
    supplier: LocalAccount
    other_buyer: LocalAccount
    outsider: LocalAccount

    def admit(self, party: LocalAccount, action: bytes = PLACE_ACTION, admitted: bool = True) -> None:
        self.chain.transact(self.gate.functions.setAdmitted(party.address, action, admitted), self.operator)

    def place(self, reference: str = "PO-1", buyer: LocalAccount | None = None, **kw: Any) -> Any:
        args: dict[str, Any] = {
            "supplier": self.supplier.address,
            "gtin": GTIN,
            "quantity": 500,
            "due_day": DUE,
        }
        args.update(kw)
        return self.orders.place(buyer or self.buyer, reference, **args)

    def snapshot(self) -> tuple[Any, ...]:
        """Every view (to assert a refusal changed nothing)."""
        keys = [order_id(self.buyer.address, r) for r in ("PO-1", "PO-2")]
        return (
            [self.orders.order(k) if self.orders.exists(k) else None for k in keys],
            self.orders.orders_of_supplier(self.supplier.address),
            self.orders.orders_of_buyer(self.buyer.address),
            self.orders.orders_of_buyer(self.other_buyer.address),
        )


@pytest.fixture
def world(suite: Any) -> World:
    chain: Chain = suite.chain
    op = suite.operator
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    address = deploy_purchase_orders(chain, op, deployment=suite.deployment, gate_address=gate_address)
    w = World(
        chain=chain,
        gate=chain.contract("StaticAdmissionGate", gate_address),
        orders=PurchaseOrdersClient(chain, address),
        operator=op,
        buyer=suite.accounts[2],
        supplier=suite.accounts[3],
        other_buyer=suite.accounts[4],
        outsider=suite.accounts[6],
    )
    w.admit(w.buyer)
    w.admit(w.other_buyer)
    w.admit(w.supplier, SUPPLY_ACTION)
    return w


# ---------------------------------------------------------------- helpers


def test_order_key_and_due_day() -> None:
    assert order_key("PO-2026-0042") == keccak(b"PO-2026-0042")
    assert order_key("订单-7") == keccak("订单-7".encode())
    with pytest.raises(InvalidOrder, match="cannot be empty"):
        order_key("")
    assert due_day(date(1970, 1, 2)) == 1
    assert due_day(date(2026, 5, 27)) == DUE
    # an aware datetime counts in UTC: 01:00 at UTC+8 is still the previous UTC day
    east = timezone(timedelta(hours=8))
    assert due_day(datetime(2026, 5, 28, 1, 0, tzinfo=east)) == DUE
    assert due_day(datetime(2026, 5, 27, 23, 59, tzinfo=UTC)) == DUE
    with pytest.raises(InvalidOrder, match="no time zone"):
        due_day(datetime(2026, 5, 27))


def test_action_is_known_to_the_consortium() -> None:
    assert ACTIONS["supet.order.place"] == PLACE_ACTION == keccak(b"supet.order.place")
    assert ACTIONS["supet.lot.open"] == SUPPLY_ACTION


# ---------------------------------------------------------------- placing


def test_place_order(world: World) -> None:
    result = world.place("PO-1", quantity=1200)
    key = order_id(world.buyer.address, "PO-1")
    fn = world.orders.contract.functions.orderIdOf(world.buyer.address, order_key("PO-1"))
    assert key == world.chain.call(fn)
    (event,) = world.orders.contract.events.OrderPlaced().process_receipt(result.receipt)
    assert event["args"]["orderId"] == key
    assert (event["args"]["buyer"], event["args"]["supplier"]) == (
        world.buyer.address,
        world.supplier.address,
    )
    assert (event["args"]["gtin"], event["args"]["quantity"], event["args"]["dueDay"]) == (GTIN, 1200, DUE)

    o = world.orders.order("PO-1", buyer=world.buyer.address)
    placed_at = world.chain.block(result.block_number)["timestamp"]
    assert o.key == key and world.orders.exists(key)
    assert (o.buyer, o.supplier) == (world.buyer.address, world.supplier.address)
    assert (o.gtin, o.quantity, o.due_day) == (GTIN, 1200, DUE)
    assert (o.placed_at, o.cancelled_at, o.cancelled) == (placed_at, 0, False)
    assert (o.accepted_at, o.accepted) == (0, False)
    assert o.due_date == date(2026, 5, 27)
    assert world.orders.order(key) == o  # by key as well as by reference

    world.place("PO-2", buyer=world.other_buyer, due_day=1)  # a past due day is allowed (backfill)
    other = order_id(world.other_buyer.address, "PO-2")
    assert world.orders.orders_of_supplier(world.supplier.address) == [key, other]
    assert world.orders.orders_of_buyer(world.buyer.address) == [key]
    assert world.orders.orders_of_buyer(world.other_buyer.address) == [other]
    assert world.orders.orders_of_supplier(world.outsider.address) == []


def test_place_refusals_change_nothing(world: World) -> None:
    world.place("PO-1")
    before = world.snapshot()
    cases: list[tuple[str, str | bytes, dict[str, Any], dict[str, Any]]] = [
        ("PurchaseOrdersOrderExists", "PO-1", {}, {"orderId": order_id(world.buyer.address, "PO-1")}),
        ("PurchaseOrdersZeroNonce", bytes(32), {}, {}),
        (
            "PurchaseOrdersInvalidSupplier",
            "PO-2",
            {"supplier": "0x" + "00" * 20},
            {"supplier": "0x" + "00" * 20},
        ),
        (
            "PurchaseOrdersInvalidSupplier",
            "PO-2",
            {"supplier": world.buyer.address},
            {"supplier": world.buyer.address},
        ),
        (
            "PurchaseOrdersNotAdmitted",
            "PO-2",
            {"supplier": world.outsider.address},
            {"party": world.outsider.address, "action": SUPPLY_ACTION},
        ),
        ("GtinInvalidCheckDigit", "PO-2", {"gtin": 4006381333932}, {"expected": 1, "found": 2}),
        ("GtinInvalidLength", "PO-2", {"gtin": 10**14}, {"length": 15}),
        ("PurchaseOrdersZeroQuantity", "PO-2", {"quantity": 0}, {}),
        ("PurchaseOrdersZeroDueDay", "PO-2", {"due_day": 0}, {}),
    ]
    for error, ref, kwargs, args in cases:
        with reverts(error, **args):
            world.place(ref, **kwargs)
    assert world.snapshot() == before
    assert not world.orders.exists("PO-2", buyer=world.buyer.address)


def test_only_admitted_buyers_place(world: World) -> None:
    with reverts("PurchaseOrdersNotAdmitted", party=world.outsider.address, action=PLACE_ACTION):
        world.place("PO-2", buyer=world.outsider)
    world.admit(world.buyer, admitted=False)  # admission is asked at each order
    with reverts("PurchaseOrdersNotAdmitted", party=world.buyer.address, action=PLACE_ACTION):
        world.place("PO-2")
    assert world.orders.orders_of_supplier(world.supplier.address) == []


# ---------------------------------------------------------------- cancelling


def test_cancel_once_by_the_buyer(world: World) -> None:
    world.place("PO-1")
    key = order_id(world.buyer.address, "PO-1")
    before = world.snapshot()
    with reverts(
        "PurchaseOrdersNotBuyer", caller=world.supplier.address, orderId=key, buyer=world.buyer.address
    ):
        world.orders.cancel(world.supplier, key)
    with reverts("PurchaseOrdersUnknownOrder", orderId=order_id(world.buyer.address, "PO-9")):
        world.orders.cancel(world.buyer, "PO-9")
    assert world.snapshot() == before

    result = world.orders.cancel(world.buyer, "PO-1")
    (event,) = world.orders.contract.events.OrderCancelled().process_receipt(result.receipt)
    assert (event["args"]["orderId"], event["args"]["buyer"], event["args"]["supplier"]) == (
        key,
        world.buyer.address,
        world.supplier.address,
    )
    o = world.orders.order(key)
    cancelled_at = world.chain.block(result.block_number)["timestamp"]
    assert o.cancelled and o.cancelled_at == cancelled_at
    with reverts("PurchaseOrdersAlreadyCancelled", orderId=key, cancelledAt=cancelled_at):
        world.orders.cancel(world.buyer, "PO-1")
    # a cancelled order stays on record, its id stays taken
    assert world.orders.orders_of_supplier(world.supplier.address) == [key]
    with reverts("PurchaseOrdersOrderExists", orderId=key):
        world.place("PO-1")
    # a buyer no longer admitted may still cancel its orders
    world.place("PO-2")
    world.admit(world.buyer, admitted=False)
    world.orders.cancel(world.buyer, "PO-2")
    assert world.orders.order("PO-2", buyer=world.buyer.address).cancelled


def test_unknown_order_view(world: World) -> None:
    b = world.buyer.address
    with reverts("PurchaseOrdersUnknownOrder", orderId=order_id(b, "PO-404")):
        world.orders.order("PO-404", buyer=b)
    assert not world.orders.exists("PO-404", buyer=b)
    with pytest.raises(InvalidOrder, match="32 bytes"):
        world.orders.order(b"short")
    with pytest.raises(InvalidOrder, match="name its buyer"):
        world.orders.order("PO-404")


# ---------------------------------------------------------------- ids and acceptance (issue 12, finding 11)


def test_another_buyer_cannot_take_an_order_id(world: World) -> None:
    """Before the fix the id was the buyer's choice: another buyer placing "PO-1" first took it, and
    the real buyer's order was refused (PurchaseOrdersOrderExists). Now ids include the buyer."""
    world.place("PO-1", buyer=world.other_buyer, quantity=1)
    world.place("PO-1", quantity=500)  # the same reference by another buyer: its own order
    mine, theirs = order_id(world.buyer.address, "PO-1"), order_id(world.other_buyer.address, "PO-1")
    assert mine != theirs
    assert (world.orders.order(mine).buyer, world.orders.order(mine).quantity) == (world.buyer.address, 500)
    assert world.orders.order(theirs).buyer == world.other_buyer.address
    assert world.orders.orders_of_supplier(world.supplier.address) == [theirs, mine]


def test_supplier_accepts_once(world: World) -> None:
    """The supplier is checked at placement and accepts the order itself, once, while it stands."""
    world.place("PO-1")
    key = order_id(world.buyer.address, "PO-1")
    before = world.snapshot()
    with reverts(
        "PurchaseOrdersNotSupplier", caller=world.buyer.address, orderId=key, supplier=world.supplier.address
    ):
        world.orders.accept(world.buyer, key)
    with reverts("PurchaseOrdersUnknownOrder", orderId=order_id(world.buyer.address, "PO-9")):
        world.orders.accept(world.supplier, "PO-9", buyer=world.buyer.address)
    world.admit(world.supplier, SUPPLY_ACTION, admitted=False)
    with reverts("PurchaseOrdersNotAdmitted", party=world.supplier.address, action=SUPPLY_ACTION):
        world.orders.accept(world.supplier, key)
    world.admit(world.supplier, SUPPLY_ACTION)
    assert world.snapshot() == before and not world.orders.order(key).accepted

    result = world.orders.accept(world.supplier, "PO-1", buyer=world.buyer.address)
    (event,) = world.orders.contract.events.OrderAccepted().process_receipt(result.receipt)
    assert (event["args"]["orderId"], event["args"]["buyer"], event["args"]["supplier"]) == (
        key,
        world.buyer.address,
        world.supplier.address,
    )
    accepted_at = world.chain.block(result.block_number)["timestamp"]
    o = world.orders.order(key)
    assert o.accepted and o.accepted_at == accepted_at
    with reverts("PurchaseOrdersAlreadyAccepted", orderId=key, acceptedAt=accepted_at):
        world.orders.accept(world.supplier, key)
    # the buyer may still cancel an accepted order; a cancelled one cannot be accepted
    world.orders.cancel(world.buyer, key)
    world.place("PO-2")
    world.orders.cancel(world.buyer, "PO-2")
    two = order_id(world.buyer.address, "PO-2")
    cancelled_at = world.orders.order(two).cancelled_at
    with reverts("PurchaseOrdersAlreadyCancelled", orderId=two, cancelledAt=cancelled_at):
        world.orders.accept(world.supplier, two)


# ---------------------------------------------------------------- gate and deployment


def test_gate_replaced_by_admin_only(world: World) -> None:
    fns = world.orders.contract.functions
    with reverts("AccessControlUnauthorizedAccount", account=world.outsider.address):
        world.chain.transact(fns.setAdmissionGate(world.outsider.address), world.outsider)
    with reverts("PurchaseOrdersZeroGate"):
        world.chain.transact(fns.setAdmissionGate("0x" + "00" * 20), world.operator)
    new_gate = world.chain.deploy(
        "StaticAdmissionGate", world.operator, world.operator.address
    ).contract_address
    assert new_gate is not None
    result = world.chain.transact(fns.setAdmissionGate(new_gate), world.operator)
    (event,) = world.orders.contract.events.AdmissionGateSet().process_receipt(result.receipt)
    assert event["args"]["gate"] == new_gate == world.orders.admission_gate()
    with reverts("PurchaseOrdersNotAdmitted", party=world.buyer.address):
        world.place("PO-1")  # the new gate admits nobody yet


def test_deploy_refusals(suite: Any) -> None:
    with reverts("PurchaseOrdersZeroGate"):
        suite.chain.deploy("PurchaseOrders", suite.operator, suite.operator.address, "0x" + "00" * 20)
    with pytest.raises(DeploymentError, match="needs an admission gate"):
        deploy_purchase_orders(
            suite.chain, suite.operator, deployment=suite.deployment, gate_address="0x" + "00" * 20
        )


def test_suite_deploys_purchase_orders_behind_the_registry(suite: Any) -> None:
    client = PurchaseOrdersClient.from_deployment(suite.chain, suite.deployment)
    assert client.admission_gate() == suite.deployment.address("ParticipantRegistry")
    assert "PurchaseOrders" in suite.deployment.artifact_hashes
    # the fresh registry admits nobody
    with reverts("PurchaseOrdersNotAdmitted", party=suite.accounts[2].address, action=PLACE_ACTION):
        client.place(
            suite.accounts[2], "PO-1", supplier=suite.accounts[3].address, gtin=GTIN, quantity=1, due_day=DUE
        )
