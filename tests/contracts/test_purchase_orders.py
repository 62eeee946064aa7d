"""PurchaseOrders on both chains: placing orders (admission of buyer and supplier, GTIN, every field
check, ids derived from the buyer and its nonce), acceptance once by the supplier only and on the terms
it received, cancelling once by the buyer only, the terms commitment (opened at the moment of use with
termsMatch / verifyTerms; no quantity found without the salt), the enumeration views, the gate, and
every refusal with its exact error and no state change."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak as raw_keccak
from eth_utils import keccak
from hexbytes import HexBytes
from support import reverts

from contracts.chain import Chain
from contracts.errors import DeploymentError
from contracts.order_terms import TERMS_TAG, InvalidTerms, OrderTerms, OrderTermsMismatch
from contracts.orders import (
    PLACE_ACTION,
    SUPPLY_ACTION,
    InvalidOrder,
    PlacedOrder,
    PurchaseOrdersClient,
    deploy_purchase_orders,
    due_day,
    order_id,
    order_key,
)
from contracts.participant_ids import ACTIONS

#: the contract's own rules: on anvil alone (tests/conftest.py CHAIN_KINDS)
pytestmark = pytest.mark.contract_logic

GTIN = 4006381333931  # GTIN-14 04006381333931
DUE = 20_600  # 2026-05-27
PRICE = 1_250  # minor units per unit


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

    def place(
        self, reference: str | bytes = "PO-1", buyer: LocalAccount | None = None, **kw: Any
    ) -> PlacedOrder:
        args: dict[str, Any] = {
            "supplier": self.supplier.address,
            "gtin": GTIN,
            "quantity": 500,
            "unit_price": PRICE,
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
    placed = world.place("PO-1", quantity=1200)
    result = placed.tx
    key = order_id(world.buyer.address, "PO-1")
    fn = world.orders.contract.functions.orderIdOf(world.buyer.address, order_key("PO-1"))
    assert key == world.chain.call(fn)
    # the client drew the opening: the order's id, the figures, a fresh 256-bit salt
    terms = placed.terms
    assert (placed.order_id, terms.quantity, terms.unit_price, len(terms.salt)) == (key, 1200, PRICE, 32)
    (event,) = world.orders.contract.events.OrderPlaced().process_receipt(result.receipt)
    assert event["args"]["orderId"] == key
    assert (event["args"]["buyer"], event["args"]["supplier"]) == (
        world.buyer.address,
        world.supplier.address,
    )
    assert (event["args"]["gtin"], event["args"]["termsCommitment"], event["args"]["dueDay"]) == (
        GTIN,
        terms.commitment(),
        DUE,
    )
    assert "quantity" not in event["args"]

    o = world.orders.order("PO-1", buyer=world.buyer.address)
    placed_at = world.chain.block(result.block_number)["timestamp"]
    assert o.key == key and world.orders.exists(key)
    assert (o.buyer, o.supplier) == (world.buyer.address, world.supplier.address)
    assert (o.gtin, o.terms_commitment, o.due_day) == (GTIN, terms.commitment(), DUE)
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
        ("PurchaseOrdersZeroDueDay", "PO-2", {"due_day": 0}, {}),
    ]
    for error, ref, kwargs, args in cases:
        with reverts(error, **args):
            world.place(ref, **kwargs)
    # the contract cannot see the quantity: the client refuses none, or a negative price, before the chain
    with pytest.raises(InvalidTerms, match="quantity must be above zero"):
        world.place("PO-2", quantity=0)
    with pytest.raises(InvalidTerms, match="unit_price must be 0 to"):
        world.place("PO-2", unit_price=-1)
    # and the contract refuses an order without a commitment
    with reverts("PurchaseOrdersZeroTermsCommitment"):
        world.orders.place_committed(
            world.buyer,
            "PO-2",
            supplier=world.supplier.address,
            gtin=GTIN,
            terms_commitment=bytes(32),
            due_day=DUE,
        )
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
    placed = world.place("PO-1", quantity=500)  # the same reference by another buyer: its own order
    mine, theirs = order_id(world.buyer.address, "PO-1"), order_id(world.other_buyer.address, "PO-1")
    assert mine != theirs
    assert world.orders.order(mine).buyer == world.buyer.address
    assert world.orders.verify_terms(placed.terms).key == mine
    assert world.orders.order(theirs).buyer == world.other_buyer.address
    assert world.orders.orders_of_supplier(world.supplier.address) == [theirs, mine]


def test_supplier_accepts_once(world: World) -> None:
    """The supplier is checked at placement and accepts the order itself, once, while it stands."""
    terms = world.place("PO-1").terms
    key = order_id(world.buyer.address, "PO-1")
    before = world.snapshot()
    with reverts(
        "PurchaseOrdersNotSupplier", caller=world.buyer.address, orderId=key, supplier=world.supplier.address
    ):
        world.orders.accept(world.buyer, key, terms)
    with reverts("PurchaseOrdersUnknownOrder", orderId=order_id(world.buyer.address, "PO-9")):
        world.orders.accept(world.supplier, "PO-9", terms.commitment(), buyer=world.buyer.address)
    world.admit(world.supplier, SUPPLY_ACTION, admitted=False)
    with reverts("PurchaseOrdersNotAdmitted", party=world.supplier.address, action=SUPPLY_ACTION):
        world.orders.accept(world.supplier, key, terms)
    world.admit(world.supplier, SUPPLY_ACTION)
    assert world.snapshot() == before and not world.orders.order(key).accepted

    result = world.orders.accept(world.supplier, "PO-1", terms, buyer=world.buyer.address)
    (event,) = world.orders.contract.events.OrderAccepted().process_receipt(result.receipt)
    assert (event["args"]["orderId"], event["args"]["buyer"], event["args"]["supplier"]) == (
        key,
        world.buyer.address,
        world.supplier.address,
    )
    assert event["args"]["termsCommitment"] == terms.commitment()
    accepted_at = world.chain.block(result.block_number)["timestamp"]
    o = world.orders.order(key)
    assert o.accepted and o.accepted_at == accepted_at
    with reverts("PurchaseOrdersAlreadyAccepted", orderId=key, acceptedAt=accepted_at):
        world.orders.accept(world.supplier, key, terms)
    # the buyer may still cancel an accepted order; a cancelled one cannot be accepted
    world.orders.cancel(world.buyer, key)
    two_terms = world.place("PO-2").terms
    world.orders.cancel(world.buyer, "PO-2")
    two = order_id(world.buyer.address, "PO-2")
    cancelled_at = world.orders.order(two).cancelled_at
    with reverts("PurchaseOrdersAlreadyCancelled", orderId=two, cancelledAt=cancelled_at):
        world.orders.accept(world.supplier, two, two_terms)


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
            suite.accounts[2],
            "PO-1",
            supplier=suite.accounts[3].address,
            gtin=GTIN,
            quantity=1,
            unit_price=PRICE,
            due_day=DUE,
        )


# ---------------------------------------------------------------- terms: a salted commitment (issue 14)


def test_supplier_accepts_only_the_terms_it_received(world: World) -> None:
    """The buyer places one set of terms and sends the supplier another: the supplier's acceptance,
    bound to the terms it received, is refused, and names both commitments. Nothing changes."""
    placed = world.place("PO-1", quantity=500)
    key = placed.order_id
    sent = OrderTerms(order_id=key, quantity=5_000, unit_price=PRICE, salt=placed.terms.salt)
    before = world.snapshot()
    with reverts(
        "PurchaseOrdersTermsMismatch",
        orderId=key,
        committed=placed.terms.commitment(),
        given=sent.commitment(),
    ):
        world.orders.accept(world.supplier, key, sent)
    with reverts(
        "PurchaseOrdersTermsMismatch", orderId=key, committed=placed.terms.commitment(), given=bytes(32)
    ):
        world.orders.accept(world.supplier, key, bytes(32))
    assert world.snapshot() == before and not world.orders.order(key).accepted
    # the client refuses another order's opening, and a commitment that is not 32 bytes
    other = world.place("PO-2").terms
    with pytest.raises(InvalidOrder, match="terms are those of order"):
        world.orders.accept(world.supplier, key, other)
    with pytest.raises(InvalidOrder, match="32 bytes"):
        world.orders.accept(world.supplier, key, b"short")
    world.orders.accept(world.supplier, key, placed.terms)
    assert world.orders.order(key).accepted


def test_terms_opened_at_the_moment_of_use(world: World) -> None:
    """termsMatch answers, verifyTerms reverts with the error that names what failed, and the Python
    check raises a typed mismatch, for every way an opening can be wrong."""
    terms = world.place("PO-1", quantity=1200, unit_price=PRICE).terms
    key = terms.order_id
    fns = world.orders.contract.functions
    committed = terms.commitment()

    def check(t: OrderTerms) -> None:
        world.chain.call(fns.verifyTerms(t.order_id, t.quantity, t.unit_price, t.salt))

    assert world.orders.terms_match(terms)
    check(terms)  # no revert
    assert world.orders.verify_terms(terms).terms_commitment == committed
    wrong = [
        OrderTerms(order_id=key, quantity=1201, unit_price=PRICE, salt=terms.salt),
        OrderTerms(order_id=key, quantity=1200, unit_price=PRICE + 1, salt=terms.salt),
        OrderTerms(order_id=key, quantity=1200, unit_price=PRICE, salt=bytes(32)),
    ]
    for t in wrong:
        assert not world.orders.terms_match(t)
        with reverts("PurchaseOrdersTermsMismatch", orderId=key, committed=committed, given=t.commitment()):
            check(t)
        with pytest.raises(OrderTermsMismatch, match="do not open its commitment") as e:
            world.orders.verify_terms(t)
        assert (e.value.order_id, e.value.committed, e.value.given) == (key, committed, t.commitment())
    # a commitment to zero units (made without the client) never opens
    zero = keccak(
        bytes.fromhex(
            "".join(
                x.hex()
                for x in (
                    world.chain.call(fns.TERMS_TAG()),
                    order_id(world.buyer.address, "PO-0"),
                    (0).to_bytes(32, "big"),
                    PRICE.to_bytes(32, "big"),
                    terms.salt,
                )
            )
        )
    )
    assert (
        world.chain.call(fns.termsCommitmentOf(order_id(world.buyer.address, "PO-0"), 0, PRICE, terms.salt))
        == zero
    )
    world.orders.place_committed(
        world.buyer, "PO-0", supplier=world.supplier.address, gtin=GTIN, terms_commitment=zero, due_day=DUE
    )
    zero_key = order_id(world.buyer.address, "PO-0")
    assert not world.chain.call(fns.termsMatch(zero_key, 0, PRICE, terms.salt))
    with reverts("PurchaseOrdersZeroQuantity"):
        world.chain.call(fns.verifyTerms(zero_key, 0, PRICE, terms.salt))
    # an unknown order
    unknown = order_id(world.buyer.address, "PO-9")
    with reverts("PurchaseOrdersUnknownOrder", orderId=unknown):
        world.chain.call(fns.termsMatch(unknown, 1, PRICE, terms.salt))
    with reverts("PurchaseOrdersUnknownOrder", orderId=unknown):
        world.chain.call(fns.verifyTerms(unknown, 1, PRICE, terms.salt))


def test_a_full_node_cannot_brute_force_the_quantity(world: World) -> None:
    """A member with a node reads the order's slot, its event and the placing transaction's input. It
    tries every quantity from 1 to 100,000 at the true unit price, with every salt it can derive from
    the public values (and none: a zero salt): none opens the commitment. With the real salt, the same
    search finds it."""
    placed = world.place("PO-1", quantity=31_337, unit_price=PRICE)
    key, committed = placed.order_id, placed.terms.commitment()
    tx_hash = bytes.fromhex(str(placed.tx.tx_hash).removeprefix("0x"))
    tx = world.chain.w3.eth.get_transaction(HexBytes(tx_hash))
    calldata = bytes(tx["input"])
    (event,) = world.orders.contract.events.OrderPlaced().process_receipt(placed.tx.receipt)
    o = world.orders.order(key)
    assert o.terms_commitment == committed == event["args"]["termsCommitment"]
    # the figures are nowhere in the public record, as ABI words
    for figure in (31_337, PRICE, 31_337 * PRICE):
        assert figure.to_bytes(32, "big") not in calldata
    # no salt (zero: the order hashed bare) and every salt a member could take from the public values
    salts = [bytes(32), key, committed, tx_hash, order_key("PO-1")]
    assert _quantities_opening(key, PRICE, salts, range(1, 100_001), committed) == []
    # the same search with the real salt finds the quantity
    assert _quantities_opening(key, PRICE, [placed.terms.salt], range(31_000, 32_000), committed) == [31_337]


def _quantities_opening(
    key: bytes, price: int, salts: list[bytes], quantities: range, committed: bytes
) -> list[int]:
    """The quantities whose terms (at ``price``, with any of ``salts``) give ``committed``: the words of
    ``abi.encode(TERMS_TAG, orderId, quantity, unitPrice, salt)`` laid out once, the quantity's word
    rewritten per try (about 10 us a hash)."""
    found = []
    for salt in salts:
        buf = bytearray(TERMS_TAG + key + bytes(32) + price.to_bytes(32, "big") + salt)
        for q in quantities:
            buf[64:96] = q.to_bytes(32, "big")
            if raw_keccak(bytes(buf)) == committed:
                found.append(q)
    return found
