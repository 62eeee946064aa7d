// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IAdmissionGate} from "./IAdmissionGate.sol";
import {Gtin} from "./Gtin.sol";

/**
 * @title PurchaseOrders
 * @notice Purchase orders a buying core enterprise places with its suppliers: what (GTIN-14), how much
 * at what price, and by which day. They are the reference the factory profile's on-time-in-full metric
 * measures deliveries against.
 *
 * Every consortium member reads every storage slot, log and transaction input, so the order's
 * business figures, its quantity and unit price (its **terms**), never reach the chain: the order holds
 * a salted commitment to them, {termsCommitmentOf}(orderId, quantity, unitPrice, salt) =
 * `keccak256(abi.encode(TERMS_TAG, orderId, quantity, unitPrice, salt))`, with a fresh 256-bit salt the
 * buyer's client draws. The opening (quantity, unit price, salt) travels off chain to the supplier; the
 * supplier accepts by passing the commitment it checked ({acceptOrder}), so a buyer cannot have accepted
 * terms other than the ones it sent; any party proves the terms at the moment of use, to a contract or an
 * auditor, with {termsMatch} or {verifyTerms}. Without the salt, no quantity or price can be tried
 * against the commitment (docs/access-policy.md, "What the chain holds, field by field").
 *
 * A buyer admitted by the consortium's admission gate for {PLACE_ACTION} places an order with a
 * supplier admitted for {SUPPLY_ACTION} (a party that opens lots, so can deliver). The order's id is
 * derived from the buyer and a nonce the buyer chooses, `keccak256(abi.encode(buyer, nonce))`
 * ({orderIdOf}; the Python client's nonce is `keccak256(utf8(order reference))`): no other buyer can
 * take a buyer's id first, and the buyer's own reference finds the order again. The due day counts days
 * since 1970-01-01 UTC: the order is due by the end of that UTC day. A due day in the past is allowed
 * (orders may be recorded after the fact, e.g. when a consortium starts using the ledger).
 *
 * The supplier accepts the order once ({acceptOrder}), while it stands and the supplier is still
 * admitted; only accepted orders are the supplier's commitments (the analytics count nothing else). The
 * buyer may cancel its order once, accepted or not; a cancelled order stays on record with its
 * cancellation time.
 *
 * Deliveries are not recorded here: they are accepted custody transfers of lots to the buyer
 * (LotRegistry); the analytics match them to accepted orders off chain.
 */
contract PurchaseOrders is AccessControlDefaultAdminRules {
    /// @notice The delay of a two-step admin handover (`beginDefaultAdminTransfer`, then the new admin's
    /// `acceptDefaultAdminTransfer` once it has passed); the admin may change it, itself with a delay.
    uint48 public constant ADMIN_TRANSFER_DELAY = 3 days;
    /// @notice The action asked of the admission gate before a party places an order.
    bytes32 public constant PLACE_ACTION = keccak256("supet.order.place");
    /// @notice The action a supplier must be admitted for to be ordered from and to accept: opening lots.
    bytes32 public constant SUPPLY_ACTION = keccak256("supet.lot.open");
    /// @notice The domain tag of an order's terms commitment ({termsCommitmentOf}).
    bytes32 public constant TERMS_TAG = keccak256("supet.order-terms.v1");

    /**
     * @notice An order as recorded. `termsCommitment` is {termsCommitmentOf} its quantity, unit price and
     * salt (the figures themselves are not on chain); `dueDay` is days since 1970-01-01 UTC; `placedAt`,
     * `cancelledAt` and `acceptedAt` are block times (seconds), `cancelledAt` zero while the order stands,
     * `acceptedAt` zero until the supplier accepts.
     */
    struct Order {
        address buyer;
        address supplier;
        uint64 gtin;
        bytes32 termsCommitment;
        uint32 dueDay;
        uint64 placedAt;
        uint64 cancelledAt;
        uint64 acceptedAt;
    }

    mapping(bytes32 orderId => Order) private _orders;
    mapping(address supplier => bytes32[]) private _ofSupplier;
    mapping(address buyer => bytes32[]) private _ofBuyer;
    IAdmissionGate private _gate;

    /// @notice The admission gate does not admit `party` for `action`.
    error PurchaseOrdersNotAdmitted(address party, bytes32 action);
    /// @notice The admission gate cannot be the zero address.
    error PurchaseOrdersZeroGate();
    /// @notice An order's nonce cannot be zero.
    error PurchaseOrdersZeroNonce();
    /// @notice The buyer already placed order `orderId` under this nonce.
    error PurchaseOrdersOrderExists(bytes32 orderId);
    /// @notice No order has this id.
    error PurchaseOrdersUnknownOrder(bytes32 orderId);
    /// @notice The supplier is the zero address or the buyer itself.
    error PurchaseOrdersInvalidSupplier(address supplier);
    /// @notice An order's terms commitment cannot be zero.
    error PurchaseOrdersZeroTermsCommitment();
    /// @notice An order's quantity must be above zero (checked when its terms are opened).
    error PurchaseOrdersZeroQuantity();
    /// @notice The terms given open to `given`, not to the order's commitment `committed`.
    error PurchaseOrdersTermsMismatch(bytes32 orderId, bytes32 committed, bytes32 given);
    /// @notice An order's due day must be above zero (days since 1970-01-01 UTC).
    error PurchaseOrdersZeroDueDay();
    /// @notice Only the order's buyer `buyer` may cancel it.
    error PurchaseOrdersNotBuyer(address caller, bytes32 orderId, address buyer);
    /// @notice The order was already cancelled, at block time `cancelledAt`.
    error PurchaseOrdersAlreadyCancelled(bytes32 orderId, uint64 cancelledAt);
    /// @notice Only the order's supplier `supplier` may accept it.
    error PurchaseOrdersNotSupplier(address caller, bytes32 orderId, address supplier);
    /// @notice The supplier already accepted the order, at block time `acceptedAt`.
    error PurchaseOrdersAlreadyAccepted(bytes32 orderId, uint64 acceptedAt);

    /// @notice `buyer` ordered product `gtin` from `supplier` on the terms committed to by `termsCommitment`,
    /// due by the end of UTC day `dueDay`.
    event OrderPlaced(
        bytes32 indexed orderId,
        address indexed buyer,
        address indexed supplier,
        uint64 gtin,
        bytes32 termsCommitment,
        uint32 dueDay
    );
    /// @notice The supplier accepted the order on the terms committed to by `termsCommitment`.
    event OrderAccepted(
        bytes32 indexed orderId, address indexed buyer, address indexed supplier, bytes32 termsCommitment
    );
    /// @notice The buyer cancelled the order.
    event OrderCancelled(bytes32 indexed orderId, address indexed buyer, address indexed supplier);
    /// @notice The admission gate changed.
    event AdmissionGateSet(address gate);

    /**
     * @param admin Receives the default admin role (may replace the admission gate), handed over in two
     * steps ({ADMIN_TRANSFER_DELAY}); not zero (`AccessControlInvalidDefaultAdmin`).
     * @param gate The admission gate asked before orders are placed; not zero.
     */
    constructor(address admin, IAdmissionGate gate) AccessControlDefaultAdminRules(ADMIN_TRANSFER_DELAY, admin) {
        _setGate(gate);
    }

    // ------------------------------------------------------------------ admin

    /**
     * @notice Replace the admission gate (e.g. a new participant registry).
     * @param gate The new gate; not zero.
     */
    function setAdmissionGate(IAdmissionGate gate) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setGate(gate);
    }

    // ------------------------------------------------------------------ orders

    /**
     * @notice Place an order; the caller (admitted for {PLACE_ACTION}) is its buyer. Its id is
     * {orderIdOf}(caller, `nonce`).
     * @param nonce The buyer's nonce for this order (e.g. the hash of its order number): not zero, not
     * used by this buyer before.
     * @param supplier Who is to deliver, admitted for {SUPPLY_ACTION}; neither zero nor the caller.
     * @param gtin The product's GTIN-14 as a number (check digit verified).
     * @param termsCommitment {termsCommitmentOf}(orderId, quantity, unitPrice, salt): the quantity (above
     * zero, in the unit of the product's lots), the unit price (in minor units of the settlement currency
     * per unit) and a fresh 256-bit salt, which the buyer sends the supplier off chain; not zero. The
     * contract cannot see the quantity: a commitment to zero units never opens ({termsMatch}).
     * @param dueDay Days since 1970-01-01 UTC, above zero: the order is due by the end of that day.
     * @return orderId The order's id.
     */
    function placeOrder(bytes32 nonce, address supplier, uint64 gtin, bytes32 termsCommitment, uint32 dueDay)
        external
        returns (bytes32 orderId)
    {
        _requireAdmitted(msg.sender, PLACE_ACTION);
        if (nonce == bytes32(0)) revert PurchaseOrdersZeroNonce();
        orderId = orderIdOf(msg.sender, nonce);
        if (_orders[orderId].buyer != address(0)) revert PurchaseOrdersOrderExists(orderId);
        if (supplier == address(0) || supplier == msg.sender) revert PurchaseOrdersInvalidSupplier(supplier);
        _requireAdmitted(supplier, SUPPLY_ACTION);
        Gtin.check(gtin);
        if (termsCommitment == bytes32(0)) revert PurchaseOrdersZeroTermsCommitment();
        if (dueDay == 0) revert PurchaseOrdersZeroDueDay();
        _place(orderId, supplier, gtin, termsCommitment, dueDay);
    }

    /**
     * @notice Accept an order on the terms the supplier received; by its supplier (still admitted for
     * {SUPPLY_ACTION}), once, while the order stands (not cancelled).
     * @dev The supplier computes the commitment from the opening the buyer sent it (and should check it
     * with {termsMatch} first); passing it here binds the acceptance to those terms: an order whose
     * commitment differs (the buyer placed other terms than it sent) is refused.
     * @param orderId The order's id.
     * @param termsCommitment The commitment to the terms the supplier accepts; the order's own.
     */
    function acceptOrder(bytes32 orderId, bytes32 termsCommitment) external {
        Order storage o = _requireOrder(orderId);
        if (msg.sender != o.supplier) revert PurchaseOrdersNotSupplier(msg.sender, orderId, o.supplier);
        if (o.cancelledAt != 0) revert PurchaseOrdersAlreadyCancelled(orderId, o.cancelledAt);
        if (o.acceptedAt != 0) revert PurchaseOrdersAlreadyAccepted(orderId, o.acceptedAt);
        if (termsCommitment != o.termsCommitment) {
            revert PurchaseOrdersTermsMismatch(orderId, o.termsCommitment, termsCommitment);
        }
        _requireAdmitted(msg.sender, SUPPLY_ACTION);
        o.acceptedAt = uint64(block.timestamp);
        emit OrderAccepted(orderId, o.buyer, msg.sender, termsCommitment);
    }

    /**
     * @notice Cancel an order; by its buyer, once.
     * @param orderId The order's id.
     */
    function cancelOrder(bytes32 orderId) external {
        Order storage o = _requireOrder(orderId);
        if (msg.sender != o.buyer) revert PurchaseOrdersNotBuyer(msg.sender, orderId, o.buyer);
        if (o.cancelledAt != 0) revert PurchaseOrdersAlreadyCancelled(orderId, o.cancelledAt);
        o.cancelledAt = uint64(block.timestamp);
        emit OrderCancelled(orderId, o.buyer, o.supplier);
    }

    // ------------------------------------------------------------------ views

    /// @notice The id of the order `buyer` places under `nonce`: `keccak256(abi.encode(buyer, nonce))`.
    function orderIdOf(address buyer, bytes32 nonce) public pure returns (bytes32) {
        return keccak256(abi.encode(buyer, nonce));
    }

    /**
     * @notice The commitment to an order's terms: `keccak256(abi.encode(TERMS_TAG, orderId, quantity,
     * unitPrice, salt))` (the Python client's `OrderTerms.commitment`).
     * @param orderId The order's id ({orderIdOf}).
     * @param quantity How much is ordered, in the unit of the product's lots.
     * @param unitPrice The price per unit, in minor units of the settlement currency.
     * @param salt The order's 256-bit salt.
     */
    function termsCommitmentOf(bytes32 orderId, uint256 quantity, uint256 unitPrice, bytes32 salt)
        public
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(TERMS_TAG, orderId, quantity, unitPrice, salt));
    }

    /**
     * @notice Whether (`quantity`, `unitPrice`, `salt`) opens order `orderId`'s terms commitment, with a
     * quantity above zero: what a contract or an auditor asks at the moment it uses the terms. Reverts
     * for an unknown order.
     */
    function termsMatch(bytes32 orderId, uint256 quantity, uint256 unitPrice, bytes32 salt)
        external
        view
        returns (bool)
    {
        bytes32 committed = _requireOrder(orderId).termsCommitment;
        return quantity != 0 && termsCommitmentOf(orderId, quantity, unitPrice, salt) == committed;
    }

    /**
     * @notice Revert unless (`quantity`, `unitPrice`, `salt`) opens order `orderId`'s terms commitment:
     * {PurchaseOrdersUnknownOrder}, {PurchaseOrdersZeroQuantity}, or {PurchaseOrdersTermsMismatch} with
     * the committed value and the one the opening gives (a hash cannot say which figure differs).
     */
    function verifyTerms(bytes32 orderId, uint256 quantity, uint256 unitPrice, bytes32 salt) external view {
        bytes32 committed = _requireOrder(orderId).termsCommitment;
        if (quantity == 0) revert PurchaseOrdersZeroQuantity();
        bytes32 given = termsCommitmentOf(orderId, quantity, unitPrice, salt);
        if (given != committed) revert PurchaseOrdersTermsMismatch(orderId, committed, given);
    }

    /// @notice Whether an order with this id exists.
    function exists(bytes32 orderId) external view returns (bool) {
        return _orders[orderId].buyer != address(0);
    }

    /// @notice The order (reverts for an unknown order).
    function order(bytes32 orderId) external view returns (Order memory) {
        return _requireOrder(orderId);
    }

    /// @notice The ids of every order placed with `supplier`, in the order placed (cancelled ones included).
    function ordersOfSupplier(address supplier) external view returns (bytes32[] memory) {
        return _ofSupplier[supplier];
    }

    /// @notice The ids of every order `buyer` placed, in the order placed (cancelled ones included).
    function ordersOfBuyer(address buyer) external view returns (bytes32[] memory) {
        return _ofBuyer[buyer];
    }

    /// @notice The admission gate in force.
    function admissionGate() external view returns (IAdmissionGate) {
        return _gate;
    }

    // ------------------------------------------------------------------ internal

    /// @dev Record a checked order placed by the caller.
    function _place(bytes32 orderId, address supplier, uint64 gtin, bytes32 termsCommitment, uint32 dueDay)
        private
    {
        _orders[orderId] = Order({
            buyer: msg.sender,
            supplier: supplier,
            gtin: gtin,
            termsCommitment: termsCommitment,
            dueDay: dueDay,
            placedAt: uint64(block.timestamp),
            cancelledAt: 0,
            acceptedAt: 0
        });
        _ofSupplier[supplier].push(orderId);
        _ofBuyer[msg.sender].push(orderId);
        emit OrderPlaced(orderId, msg.sender, supplier, gtin, termsCommitment, dueDay);
    }

    /// @dev Set a non-zero admission gate.
    function _setGate(IAdmissionGate gate) private {
        if (address(gate) == address(0)) revert PurchaseOrdersZeroGate();
        _gate = gate;
        emit AdmissionGateSet(address(gate));
    }

    /// @dev Revert unless the gate admits `party` for `action` now.
    function _requireAdmitted(address party, bytes32 action) private view {
        if (!_gate.isAdmitted(party, action)) revert PurchaseOrdersNotAdmitted(party, action);
    }

    /// @dev The order, or revert when there is none.
    function _requireOrder(bytes32 orderId) private view returns (Order storage o) {
        o = _orders[orderId];
        if (o.buyer == address(0)) revert PurchaseOrdersUnknownOrder(orderId);
    }
}
