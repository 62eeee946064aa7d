// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IAdmissionGate} from "./IAdmissionGate.sol";
import {Gtin} from "./Gtin.sol";

/**
 * @title PurchaseOrders
 * @notice Purchase orders a buying core enterprise places with its suppliers: what (GTIN-14), how much,
 * and by which day. They are the reference the factory profile's on-time-in-full metric measures
 * deliveries against.
 *
 * A buyer admitted by the consortium's admission gate for {PLACE_ACTION} places an order under an id
 * of its choosing (the Python client uses `keccak256(utf8(order reference))`). The due day counts days
 * since 1970-01-01 UTC: the order is due by the end of that UTC day. A due day in the past is allowed
 * (orders may be recorded after the fact, e.g. when a consortium starts using the ledger). The buyer
 * may cancel its order once; a cancelled order stays on record with its cancellation time.
 *
 * Deliveries are not recorded here: they are accepted custody transfers of lots to the buyer
 * (LotRegistry); the analytics match them to orders off chain.
 */
contract PurchaseOrders is AccessControl {
    /// @notice The action asked of the admission gate before a party places an order.
    bytes32 public constant PLACE_ACTION = keccak256("supet.order.place");

    /**
     * @notice An order as recorded. `dueDay` is days since 1970-01-01 UTC; `placedAt` and `cancelledAt`
     * are block times (seconds), `cancelledAt` zero while the order stands.
     */
    struct Order {
        address buyer;
        address supplier;
        uint64 gtin;
        uint256 quantity;
        uint32 dueDay;
        uint64 placedAt;
        uint64 cancelledAt;
    }

    mapping(bytes32 orderId => Order) private _orders;
    mapping(address supplier => bytes32[]) private _ofSupplier;
    mapping(address buyer => bytes32[]) private _ofBuyer;
    IAdmissionGate private _gate;

    /// @notice The admission gate does not admit `party` for `action`.
    error PurchaseOrdersNotAdmitted(address party, bytes32 action);
    /// @notice The admission gate cannot be the zero address.
    error PurchaseOrdersZeroGate();
    /// @notice An order id cannot be zero.
    error PurchaseOrdersZeroOrderId();
    /// @notice An order with this id already exists.
    error PurchaseOrdersOrderExists(bytes32 orderId);
    /// @notice No order has this id.
    error PurchaseOrdersUnknownOrder(bytes32 orderId);
    /// @notice The supplier is the zero address or the buyer itself.
    error PurchaseOrdersInvalidSupplier(address supplier);
    /// @notice An order's quantity must be above zero.
    error PurchaseOrdersZeroQuantity();
    /// @notice An order's due day must be above zero (days since 1970-01-01 UTC).
    error PurchaseOrdersZeroDueDay();
    /// @notice Only the order's buyer `buyer` may cancel it.
    error PurchaseOrdersNotBuyer(address caller, bytes32 orderId, address buyer);
    /// @notice The order was already cancelled, at block time `cancelledAt`.
    error PurchaseOrdersAlreadyCancelled(bytes32 orderId, uint64 cancelledAt);

    /// @notice `buyer` ordered `quantity` of product `gtin` from `supplier`, due by the end of UTC day `dueDay`.
    event OrderPlaced(
        bytes32 indexed orderId,
        address indexed buyer,
        address indexed supplier,
        uint64 gtin,
        uint256 quantity,
        uint32 dueDay
    );
    /// @notice The buyer cancelled the order.
    event OrderCancelled(bytes32 indexed orderId, address indexed buyer, address indexed supplier);
    /// @notice The admission gate changed.
    event AdmissionGateSet(address gate);

    /**
     * @param admin Receives the default admin role (may replace the admission gate).
     * @param gate The admission gate asked before orders are placed.
     */
    constructor(address admin, IAdmissionGate gate) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
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
     * @notice Place an order; the caller (admitted for {PLACE_ACTION}) is its buyer.
     * @param orderId The order's id: new and not zero.
     * @param supplier Who is to deliver; neither zero nor the caller.
     * @param gtin The product's GTIN-14 as a number (check digit verified).
     * @param quantity How much is ordered, above zero (in the unit of the product's lots).
     * @param dueDay Days since 1970-01-01 UTC, above zero: the order is due by the end of that day.
     */
    function placeOrder(bytes32 orderId, address supplier, uint64 gtin, uint256 quantity, uint32 dueDay)
        external
    {
        _requireAdmitted(msg.sender, PLACE_ACTION);
        if (orderId == bytes32(0)) revert PurchaseOrdersZeroOrderId();
        if (_orders[orderId].buyer != address(0)) revert PurchaseOrdersOrderExists(orderId);
        if (supplier == address(0) || supplier == msg.sender) revert PurchaseOrdersInvalidSupplier(supplier);
        Gtin.check(gtin);
        if (quantity == 0) revert PurchaseOrdersZeroQuantity();
        if (dueDay == 0) revert PurchaseOrdersZeroDueDay();
        _place(orderId, supplier, gtin, quantity, dueDay);
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
    function _place(bytes32 orderId, address supplier, uint64 gtin, uint256 quantity, uint32 dueDay) private {
        _orders[orderId] = Order({
            buyer: msg.sender,
            supplier: supplier,
            gtin: gtin,
            quantity: quantity,
            dueDay: dueDay,
            placedAt: uint64(block.timestamp),
            cancelledAt: 0
        });
        _ofSupplier[supplier].push(orderId);
        _ofBuyer[msg.sender].push(orderId);
        emit OrderPlaced(orderId, msg.sender, supplier, gtin, quantity, dueDay);
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
