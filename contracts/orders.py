"""Typed client of the PurchaseOrders contract: orders a core enterprise places with its suppliers.

- An order's id is derived from its buyer and a nonce: :func:`order_id` is
  ``keccak256(abi.encode(buyer, nonce))`` and the nonce is :func:`order_key`
  (``keccak256(utf8(order reference))``), so the buyer's own order number (``"PO-2026-0042"``) finds
  the order again and no other buyer can take the id.
- :class:`PurchaseOrdersClient`: :meth:`~PurchaseOrdersClient.place` (buyer),
  :meth:`~PurchaseOrdersClient.accept` (supplier), :meth:`~PurchaseOrdersClient.cancel` (buyer) and
  every view; :class:`PurchaseOrder` is an order as the contract holds it.
- An order's quantity and unit price (its terms) are on chain only as a salted commitment
  (:mod:`contracts.order_terms`): :meth:`~PurchaseOrdersClient.place` draws the salt and returns the
  opening (:class:`PlacedOrder`), which the buyer keeps and sends the supplier;
  :meth:`~PurchaseOrdersClient.accept` takes that opening and accepts exactly those terms;
  :meth:`~PurchaseOrdersClient.verify_terms` checks an opening against the chain.
- :func:`due_day` turns a UTC date into the contract's due day (days since 1970-01-01).
- :func:`deploy_purchase_orders` deploys the contract next to a suite.

Deliveries are not recorded here: they are accepted LotRegistry custody transfers to the buyer,
matched to accepted orders off chain by the analytics (on-time-in-full).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.types import BlockIdentifier

from contracts.chain import Chain, TxResult
from contracts.deployment import Deployment
from contracts.errors import ContractsError, DeploymentError
from contracts.order_terms import OrderTerms, OrderTermsMismatch

__all__ = [
    "CONTRACT_NAME",
    "PLACE_ACTION",
    "SUPPLY_ACTION",
    "InvalidOrder",
    "PlacedOrder",
    "PurchaseOrder",
    "PurchaseOrdersClient",
    "deploy_purchase_orders",
    "due_day",
    "order_id",
    "order_key",
]

CONTRACT_NAME = "PurchaseOrders"
#: The admission-gate action a buyer needs to place an order.
PLACE_ACTION = keccak(b"supet.order.place")
#: The action a supplier needs to be ordered from and to accept (it opens lots, so it can deliver).
SUPPLY_ACTION = keccak(b"supet.lot.open")

_ZERO_ADDRESS = "0x" + "00" * 20
_EPOCH = date(1970, 1, 1)


class InvalidOrder(ContractsError):
    """An order reference, nonce or id is unusable (refused before anything reaches the chain)."""

    code = "order.invalid"


def order_key(reference: str) -> bytes:
    """``keccak256(utf8(reference))``: the nonce of the order the buyer calls ``reference``."""
    if not reference:
        raise InvalidOrder("an order reference cannot be empty: use the buyer's order number")
    return keccak(reference.encode("utf-8"))


def due_day(day: date | datetime) -> int:
    """Days since 1970-01-01 of ``day`` (a date, or an aware datetime taken in UTC)."""
    if isinstance(day, datetime):
        if day.tzinfo is None:
            raise InvalidOrder(f"{day.isoformat()} has no time zone: pass an aware datetime or a date")
        day = day.astimezone(UTC).date()
    return (day - _EPOCH).days


def _nonce(order: str | bytes) -> bytes:
    if isinstance(order, str):
        return order_key(order)
    if len(order) != 32:
        raise InvalidOrder(f"an order nonce is 32 bytes, got {len(order)}; pass the order reference as text")
    return bytes(order)


def order_id(buyer: str, order: str | bytes) -> bytes:
    """The on-chain id of ``buyer``'s order ``order`` (its reference, or its 32-byte nonce):
    ``keccak256(abi.encode(buyer, nonce))``, as ``PurchaseOrders.orderIdOf``."""
    return keccak(encode(["address", "bytes32"], [to_checksum_address(buyer), _nonce(order)]))


def _id(order: str | bytes, buyer: str | None) -> bytes:
    """An order id: ``order`` as a 32-byte id, or the id of ``buyer``'s order reference ``order``."""
    if isinstance(order, str):
        if buyer is None:
            raise InvalidOrder(f"order {order!r} is a reference: name its buyer, or pass the order id")
        return order_id(buyer, order)
    if len(order) != 32:
        raise InvalidOrder(f"an order id is 32 bytes, got {len(order)}")
    return bytes(order)


@dataclass(frozen=True, kw_only=True)
class PurchaseOrder:
    """An order as the contract holds it (``cancelled_at`` 0 while it stands, ``accepted_at`` 0 until the
    supplier accepts; times are block seconds). ``key`` is its on-chain id. The quantity and unit price
    are not on chain: ``terms_commitment`` commits to them (:class:`~contracts.order_terms.OrderTerms`)."""

    key: bytes
    buyer: str
    supplier: str
    gtin: int
    terms_commitment: bytes
    due_day: int
    placed_at: int
    cancelled_at: int
    accepted_at: int

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at != 0

    @property
    def accepted(self) -> bool:
        return self.accepted_at != 0

    @property
    def due_date(self) -> date:
        """The UTC day the order is due by the end of."""
        return date.fromordinal(_EPOCH.toordinal() + self.due_day)


@dataclass(frozen=True, kw_only=True)
class PlacedOrder:
    """A placed order: its transaction and its terms' opening (the buyer keeps it and sends it to the
    supplier; without its salt nobody can tell the figures from the chain)."""

    tx: TxResult
    terms: OrderTerms

    @property
    def order_id(self) -> bytes:
        return self.terms.order_id


class PurchaseOrdersClient:
    """Reads and writes of one PurchaseOrders contract."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.contract = chain.contract(CONTRACT_NAME, address)

    @classmethod
    def from_deployment(cls, chain: Chain, deployment: Deployment) -> PurchaseOrdersClient:
        return cls(chain, deployment.address(CONTRACT_NAME))

    @property
    def address(self) -> str:
        return str(self.contract.address)

    # --- writes

    def place(
        self,
        buyer: LocalAccount,
        order: str | bytes,
        *,
        supplier: str,
        gtin: int,
        quantity: int,
        unit_price: int,
        due_day: int,
    ) -> PlacedOrder:
        """Place ``order`` (its reference, or its 32-byte nonce) as ``buyer`` for ``quantity`` units at
        ``unit_price`` minor units each. Its id is :func:`order_id` (``buyer``, ``order``). Only the
        commitment to the terms, with a fresh salt, goes on chain; the opening is returned (keep it, and
        send it to the supplier). A quantity that is not above zero is refused here
        (:class:`~contracts.order_terms.InvalidTerms`): the contract cannot see it."""
        nonce = _nonce(order)
        terms = OrderTerms.fresh(order_id(buyer.address, nonce), quantity=quantity, unit_price=unit_price)
        fn = self.contract.functions.placeOrder(
            nonce, to_checksum_address(supplier), gtin, terms.commitment(), due_day
        )
        return PlacedOrder(tx=self.chain.transact(fn, buyer), terms=terms)

    def place_committed(
        self,
        buyer: LocalAccount,
        order: str | bytes,
        *,
        supplier: str,
        gtin: int,
        terms_commitment: bytes,
        due_day: int,
    ) -> TxResult:
        """Place ``order`` with a commitment made elsewhere (e.g. by the buyer's own ERP from an
        :class:`~contracts.order_terms.OrderTerms` it drew); the contract checks the rest."""
        fn = self.contract.functions.placeOrder(
            _nonce(order), to_checksum_address(supplier), gtin, bytes(terms_commitment), due_day
        )
        return self.chain.transact(fn, buyer)

    def accept(
        self,
        supplier: LocalAccount,
        order: str | bytes,
        terms: OrderTerms | bytes,
        *,
        buyer: str | None = None,
    ) -> TxResult:
        """Accept ``order`` (its id, or ``buyer``'s reference) as its supplier, on ``terms``: the opening
        the buyer sent (or its 32-byte commitment); once, while it stands. The contract refuses terms
        other than the order's (``PurchaseOrdersTermsMismatch``)."""
        key = _id(order, buyer)
        if isinstance(terms, OrderTerms):
            if terms.order_id != key:
                raise InvalidOrder(
                    f"the terms are those of order 0x{terms.order_id.hex()}, not of order 0x{key.hex()}"
                )
            commitment = terms.commitment()
        else:
            if len(terms) != 32:
                raise InvalidOrder(f"a terms commitment is 32 bytes, got {len(terms)}")
            commitment = bytes(terms)
        return self.chain.transact(self.contract.functions.acceptOrder(key, commitment), supplier)

    def cancel(self, buyer: LocalAccount, order: str | bytes) -> TxResult:
        """Cancel ``order`` (the buyer's reference, or the order id); only its buyer may, once."""
        return self.chain.transact(self.contract.functions.cancelOrder(_id(order, buyer.address)), buyer)

    # --- views

    def terms_match(self, terms: OrderTerms, *, block: BlockIdentifier = "latest") -> bool:
        """Whether ``terms`` open their order's commitment, as the contract answers (``termsMatch``)."""
        fn = self.contract.functions.termsMatch(terms.order_id, terms.quantity, terms.unit_price, terms.salt)
        return bool(self.chain.call(fn, block=block))

    def verify_terms(self, terms: OrderTerms, *, block: BlockIdentifier = "latest") -> PurchaseOrder:
        """The order, once ``terms`` are checked against its commitment on chain; raises
        :class:`~contracts.order_terms.OrderTermsMismatch` (with both values) when they do not open it."""
        o = self.order(terms.order_id, block=block)
        given = terms.commitment()
        if given != o.terms_commitment:
            raise OrderTermsMismatch(
                f"the terms given for order 0x{o.key.hex()} do not open its commitment on chain "
                f"(0x{o.terms_commitment.hex()}; they give 0x{given.hex()}): the quantity, the unit price or "
                "the salt differ from what was placed",
                order_id=o.key,
                committed=o.terms_commitment,
                given=given,
            )
        return o

    def exists(self, order: str | bytes, *, buyer: str | None = None) -> bool:
        """Whether ``order`` (its id, or ``buyer``'s reference) exists."""
        return bool(self.chain.call(self.contract.functions.exists(_id(order, buyer))))

    def order(
        self, order: str | bytes, *, buyer: str | None = None, block: BlockIdentifier = "latest"
    ) -> PurchaseOrder:
        """The order: its id, or ``buyer``'s reference (``ContractRevert`` ``PurchaseOrdersUnknownOrder``
        when there is none)."""
        key = _id(order, buyer)
        t = self.chain.call(self.contract.functions.order(key), block=block)
        return PurchaseOrder(
            key=key,
            buyer=to_checksum_address(t[0]),
            supplier=to_checksum_address(t[1]),
            gtin=int(t[2]),
            terms_commitment=bytes(t[3]),
            due_day=int(t[4]),
            placed_at=int(t[5]),
            cancelled_at=int(t[6]),
            accepted_at=int(t[7]),
        )

    def orders_of_supplier(self, supplier: str) -> list[bytes]:
        """Ids of every order placed with ``supplier``, oldest first (cancelled ones included)."""
        fn = self.contract.functions.ordersOfSupplier(to_checksum_address(supplier))
        return [bytes(k) for k in self.chain.call(fn)]

    def orders_of_buyer(self, buyer: str) -> list[bytes]:
        """Ids of every order ``buyer`` placed, oldest first (cancelled ones included)."""
        fn = self.contract.functions.ordersOfBuyer(to_checksum_address(buyer))
        return [bytes(k) for k in self.chain.call(fn)]

    def admission_gate(self) -> str:
        return to_checksum_address(self.chain.call(self.contract.functions.admissionGate()))


def deploy_purchase_orders(
    chain: Chain,
    deployer: LocalAccount,
    *,
    deployment: Deployment,
    gate_address: str,
    admin: str | None = None,
) -> str:
    """Deploy a PurchaseOrders asking the gate at ``gate_address``; ``admin`` (default the deployer)
    may replace the gate. Returns its address."""
    if chain.chain_id != deployment.chain_id:
        raise DeploymentError(
            f"the deployment is for chain {deployment.chain_id} but the node serves chain "
            f"{chain.chain_id}: deploy PurchaseOrders next to its suite"
        )
    gate = to_checksum_address(gate_address)
    if gate == to_checksum_address(_ZERO_ADDRESS):
        raise DeploymentError("PurchaseOrders needs an admission gate: deploy the participant registry first")
    result = chain.deploy(CONTRACT_NAME, deployer, to_checksum_address(admin or deployer.address), gate)
    if result.contract_address is None:  # pragma: no cover - a mined constructor always has an address
        raise DeploymentError("the PurchaseOrders constructor was mined without a contract address")
    return str(result.contract_address)
