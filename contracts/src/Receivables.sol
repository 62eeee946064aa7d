// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {IAdmissionGate} from "./IAdmissionGate.sol";
import {CreditRegistry} from "./CreditRegistry.sol";
import {LotRegistry} from "./LotRegistry.sol";
import {PurchaseOrders} from "./PurchaseOrders.sol";
import {QualityCertifier} from "./QualityCertifier.sol";

/**
 * @title Receivables
 * @notice Multi-tier receivables financing: a core enterprise confirms what it owes a supplier; the
 * claim can be split down the supply chain, transferred, and financed by banks; the debtor repays every
 * holder at once; unpaid parts can be marked defaulted after a grace period.
 *
 * A debtor admitted for {CREATE_ACTION} confirms a receivable (face value, due date, its own reference,
 * unique per debtor) owed to a supplier admitted for {HOLD_ACTION}; the supplier holds its root part.
 * Amounts are in the settlement token's smallest units; times are Unix seconds.
 *
 * Backing (issue 15). A receivable names the purchase order and the delivered lots behind it, and the
 * debtor can confirm only what the chain shows delivered: {confirm} checks, through PurchaseOrders,
 * LotRegistry and QualityCertifier, that the order exists, stands (not cancelled), was accepted by its
 * supplier, was placed by the caller and with the receivable's supplier; and that each lot (1 to
 * {MAX_BACKING_LOTS}) is in the caller's custody (an accepted transfer), was the supplier's (its supplier or
 * a past holder, `LotRegistry.hasHeld`), is of the order's product (GTIN), holds a certificate (its standing
 * verdict is `Certified`), is not recalled and backs no other receivable: a lot backs at most one receivable, for good
 * ({receivableBackedBy}). The order's quantity and unit price are a commitment (the chain never sees
 * them), so the face value cannot be compared with them here: the bank checks face value <= delivered
 * quantity x unit price off chain with the order's opening (`supet finance check`; docs/access-policy.md).
 * A verdict can still change after confirmation (a bound violation always stands): no part of a
 * receivable one of whose lots no longer holds a certificate, or is recalled (`LotRegistry.isRecalled`: a
 * recall notice on it or upstream of it), can be financed ({ReceivablesBackingLotRejected},
 * {ReceivablesBackingLotRecalled}); once a part is financed, anyone may flag the receivable on chain
 * ({flagReceivable}), naming the banks that financed it.
 *
 * Parts. The holder of an `Active` part may split it into 2 to {MAX_SPLIT_CHILDREN} children (each above
 * zero, summing exactly to the part, held by parties admitted for {HOLD_ACTION}; the part becomes
 * `Split`), transfer it whole to such a party, or offer it to a bank admitted for {FINANCE_ACTION} at a
 * minimum price (`Offered`; the holder may withdraw the offer, and must before doing anything else with
 * the part). The offered bank finances it before the due date at a price between the minimum and the
 * amount: the token moves from the bank to the holder (the bank approves first), the bank becomes the
 * holder, and the part is `Financed`. A financed part is final until settlement: it cannot be offered,
 * split or transferred again (a bank cannot sell it on).
 *
 * Split quota. A receivable has at most {MAX_PARTS} parts, and the budget is divided down the tree so
 * that no holder can use up another's: the root may add {MAX_PARTS} - 1 parts below it; a split of a
 * part into `n` children uses `n` of the part's quota and divides the rest evenly among the children
 * (the first `rest % n` get one more). A holder can thus only spend its own subtree's quota.
 *
 * Settlement. The debtor repays a receivable once, at any time (early, at maturity or late): the face
 * value moves from the debtor to this contract, and every leaf part (`Active`, `Offered`, `Financed` or
 * `Defaulted`) becomes `Paid` and is paid its amount. An open offer lapses. Late repayment cures
 * defaulted parts (the `PartDefaulted` event stays in the history). Anyone may mark an unpaid leaf part
 * `Defaulted` once the block time is past its due date plus {GRACE_PERIOD}.
 *
 * Escrow (pull payment). Each part's payment is pushed to its holder in an isolated call with
 * {PUSH_GAS} gas. When that transfer fails (the token froze or blacklisted the holder, the token is
 * paused for it, a receiving hook reverts or burns the gas), the part is `Paid` all the same and its
 * amount stays in this contract in escrow for that part ({escrowOf}, `PaymentEscrowed`): one holder's
 * failure never blocks the other holders' payment nor the debtor's repayment. Anyone may later release
 * a part's escrow with {claimEscrow}; it is paid only to the part's holder (never elsewhere: a token
 * issuer's freeze is respected, not routed around).
 *
 * Token. Receivables settle in one plain ERC-20 fixed at deployment. Every movement is checked by the
 * recipient's balance change: a token that delivers less (or more) than it was asked to move (a
 * transfer fee, a rebase during the transfer) is refused with {ReceivablesTransferMismatch}, so a part
 * is never booked `Financed` or `Paid` for more than its holder received. Rebasing tokens are not
 * supported: a rebase between transfers would change escrowed balances this contract cannot follow.
 *
 * Rescue. Tokens sent to this contract by mistake can be returned by the admin ({rescueTokens}); of the
 * settlement token, only what exceeds the escrowed total: what holders are owed can never be taken.
 *
 * Credit line (issue 15). Financing a part charges its amount to the line of the part's seller (its
 * holder when financed: the party that receives the bank's money), {outstandingOf}; the line is freed
 * when the part is paid (repayment, on time or late), not when it defaults (a defaulted part is still
 * owed to its bank). A seller's outstanding amount never exceeds the limit of its current valid credit
 * record in {creditRegistry}, and the limit never reaches the chain (it is in the record's commitment):
 * {finance} takes a {LineAttestation}, an EIP-712 `CreditLine` statement signed by the seller's oracle
 * (the oracle that published its current record, `CreditRegistry.oracleOf`; an EOA or an ERC-1271
 * contract) that the new outstanding total `total` is at most the limit of record `recordIndex`. The
 * contract checks that the record is the seller's current one and still valid, that the deadline has
 * not passed, that `total` is the seller's outstanding amount plus the part's, and the signature over
 * (factory, bank, part, record, total, deadline). The statement names the outstanding amount it
 * was made for, so it is spent by the financing it allows: any later financing of the same seller
 * changes the total, and the part itself is financed once.
 *
 * Invariants: the leaf parts' amounts always sum to the face value; no part is financed or paid twice;
 * nothing moves after settlement; this contract holds at least the escrowed total ({escrowTotal}); a
 * seller's {outstandingOf} is the sum of the amounts of its financed parts not yet paid.
 */
contract Receivables is AccessControlDefaultAdminRules, ReentrancyGuard, EIP712 {
    /// @notice The delay of a two-step admin handover (`beginDefaultAdminTransfer`, then the new admin's
    /// `acceptDefaultAdminTransfer` once it has passed); the admin may change it, itself with a delay.
    uint48 public constant ADMIN_TRANSFER_DELAY = 3 days;
    using SafeERC20 for IERC20;

    /// @notice The action a debtor needs to confirm a receivable.
    bytes32 public constant CREATE_ACTION = keccak256("supet.receivable.create");
    /// @notice The action a party needs to receive a part (as supplier, split child or transferee).
    bytes32 public constant HOLD_ACTION = keccak256("supet.receivable.hold");
    /// @notice The action a bank needs to be offered a part and to finance it.
    bytes32 public constant FINANCE_ACTION = keccak256("supet.receivable.finance");
    /// @notice How long after the due date an unpaid part may be marked defaulted.
    uint256 public constant GRACE_PERIOD = 30 days;
    /// @notice The most parts (root, split parents and leaves) one receivable may have; the root's split
    /// quota is one less, divided down the tree at each split.
    uint256 public constant MAX_PARTS = 128;
    /// @notice The most children one split may create.
    uint256 public constant MAX_SPLIT_CHILDREN = 16;
    /// @notice The gas each part's payment push may use; a push that needs more is escrowed instead.
    uint256 public constant PUSH_GAS = 100_000;
    /// @notice Gas kept back for the push call itself, on top of {PUSH_GAS} and its 1/64 (EIP-150).
    uint256 private constant _PUSH_CALL_OVERHEAD = 10_000;
    /// @notice The most lots one receivable may name (bounds the gas of confirm and finance).
    uint256 public constant MAX_BACKING_LOTS = 32;

    /// @notice What is wrong with a receivable's backing now (`None`: every lot holds its certificate and
    /// none is recalled; `Recalled`: recalled, or flagged downstream of a recall, `LotRegistry.isRecalled`).
    enum BackingFault {
        None,
        Rejected,
        Recalled
    }

    /// @notice A receivable's on-chain flag (all zero while none): when, which lot, why and by whom.
    struct Flag {
        uint64 flaggedAt;
        BackingFault fault;
        address by;
        bytes32 lotId;
    }

    /// @notice The EIP-712 type of a credit-line statement ({LineAttestation}): the oracle of `factory`
    /// states that `total`, the factory's outstanding financed amount once `bank` finances part `partId`,
    /// is at most the limit of the factory's record `recordIndex`; valid until `deadline` (Unix seconds).
    bytes32 public constant CREDIT_LINE_TYPEHASH = keccak256(
        "CreditLine(address factory,address bank,uint256 partId,uint256 recordIndex,uint256 total,uint64 deadline)"
    );

    /// @notice The life of a part (`None`: no such part).
    enum PartState {
        None,
        Active,
        Offered,
        Financed,
        Split,
        Paid,
        Defaulted
    }

    /// @notice A receivable as confirmed; `paidAt` is zero until the debtor repays it.
    struct Receivable {
        uint256 id;
        address debtor;
        address supplier;
        uint64 dueDate;
        uint64 createdAt;
        uint64 paidAt;
        uint256 faceValue;
        bytes32 ref;
        uint256 rootPart;
        bytes32 orderId;
    }

    /**
     * @notice A part of a receivable. `parent` is zero for the root; `splitQuota` is how many parts may
     * still be created below it (zero once split); `offeredTo`/`minPrice` describe the open offer (zero
     * when none); `financedBy`/`financedPrice` are set once financed.
     */
    struct Part {
        uint256 id;
        uint256 receivableId;
        uint256 parent;
        address holder;
        PartState state;
        uint16 splitQuota;
        address offeredTo;
        address financedBy;
        uint256 amount;
        uint256 minPrice;
        uint256 financedPrice;
    }

    /**
     * @notice What a bank passes to {finance}: the seller's oracle's signed `CreditLine` statement.
     * `recordIndex` is the seller's current record in `CreditRegistry` (its bound oracle's history),
     * `total` the seller's outstanding financed amount after this financing, `deadline` the last second
     * it may be used, `signature` the oracle's (65-byte ECDSA, or what its ERC-1271 contract accepts).
     */
    struct LineAttestation {
        uint256 recordIndex;
        uint256 total;
        uint64 deadline;
        bytes signature;
    }

    IERC20 private immutable _token;
    PurchaseOrders private immutable _orders;
    LotRegistry private immutable _lots;
    QualityCertifier private immutable _certifier;
    CreditRegistry private _credit;
    mapping(address factory => uint256) private _outstanding;
    mapping(uint256 partId => address factory) private _lineOf;
    IAdmissionGate private _gate;
    Receivable[] private _receivables;
    Part[] private _parts;
    mapping(uint256 receivableId => uint256[]) private _partsOf;
    mapping(address debtor => mapping(bytes32 ref => uint256 receivableId)) private _byReference;
    mapping(address holder => uint256[]) private _held;
    mapping(uint256 partId => uint256) private _heldIndex;
    mapping(address bank => uint256[]) private _offers;
    mapping(uint256 partId => uint256) private _offerIndex;
    mapping(uint256 partId => uint256) private _escrow;
    uint256 private _escrowTotal;
    mapping(uint256 receivableId => bytes32[]) private _backingLots;
    mapping(bytes32 lotId => uint256 receivableId) private _backedBy;
    mapping(uint256 receivableId => Flag) private _flags;

    /// @notice The admission gate does not admit `party` for `action`.
    error ReceivablesNotAdmitted(address party, bytes32 action);
    /// @notice The admission gate cannot be the zero address.
    error ReceivablesZeroGate();
    /// @notice The settlement token cannot be the zero address.
    error ReceivablesZeroToken();
    /// @notice The supplier is the zero address or the debtor itself.
    error ReceivablesInvalidSupplier(address supplier);
    /// @notice PurchaseOrders, LotRegistry and QualityCertifier cannot be the zero address, and the
    /// certifier must judge the lots of this LotRegistry (`lotRegistry` of the certifier: `certifierLots`).
    error ReceivablesInvalidEvidenceSources(address orders, address lots, address certifierLots);
    /// @notice A receivable names 1 to {MAX_BACKING_LOTS} lots; `count` were given.
    error ReceivablesInvalidBackingCount(uint256 count);
    /// @notice No purchase order has this id.
    error ReceivablesUnknownOrder(bytes32 orderId);
    /// @notice The order's buyer is `buyer`: only it may confirm a receivable for the order.
    error ReceivablesNotOrderBuyer(bytes32 orderId, address caller, address buyer);
    /// @notice The order was placed with `orderSupplier`, not with the receivable's `supplier`.
    error ReceivablesOrderSupplierMismatch(bytes32 orderId, address supplier, address orderSupplier);
    /// @notice The buyer cancelled the order at block time `cancelledAt`.
    error ReceivablesOrderCancelled(bytes32 orderId, uint64 cancelledAt);
    /// @notice The supplier has not accepted the order.
    error ReceivablesOrderNotAccepted(bytes32 orderId);
    /// @notice No lot has this key.
    error ReceivablesUnknownLot(bytes32 lotId);
    /// @notice The lot is in `custodian`'s custody, not the debtor's (it was not delivered, or not accepted).
    error ReceivablesLotNotInCustody(bytes32 lotId, address debtor, address custodian);
    /// @notice The supplier neither produced nor held the lot.
    error ReceivablesLotNotFromSupplier(bytes32 lotId, address supplier);
    /// @notice The lot is of product `lotGtin`; the order is for `orderGtin`.
    error ReceivablesLotGtinMismatch(bytes32 lotId, uint64 lotGtin, uint64 orderGtin);
    /// @notice The lot's standing verdict is not a certificate (none yet, or rejected).
    error ReceivablesLotNotCertified(bytes32 lotId);
    /// @notice The lot is recalled, or flagged downstream of a recall (`LotRegistry.isRecalled`).
    error ReceivablesLotRecalled(bytes32 lotId);
    /// @notice The lot already backs receivable `receivableId` (a lot backs at most one, for good).
    error ReceivablesLotAlreadyBacking(bytes32 lotId, uint256 receivableId);
    /// @notice Backing lot `lotId` of the receivable no longer holds a certificate (rejected since): no
    /// part of it can be financed.
    error ReceivablesBackingLotRejected(uint256 receivableId, bytes32 lotId);
    /// @notice Backing lot `lotId` of the receivable is recalled (or flagged downstream of a recall): no
    /// part of it can be financed.
    error ReceivablesBackingLotRecalled(uint256 receivableId, bytes32 lotId);
    /// @notice Every backing lot of the receivable is sound: nothing to flag.
    error ReceivablesBackingSound(uint256 receivableId);
    /// @notice No part of the receivable is financed: nothing to flag to a bank.
    error ReceivablesNotFinanced(uint256 receivableId);
    /// @notice The receivable was flagged already, at block time `flaggedAt`.
    error ReceivablesAlreadyFlagged(uint256 receivableId, uint64 flaggedAt);
    /// @notice A receivable's face value must be above zero.
    error ReceivablesZeroFaceValue();
    /// @notice The due date must be after the block time `nowSeconds`.
    error ReceivablesDueDateInPast(uint64 dueDate, uint256 nowSeconds);
    /// @notice A receivable needs the debtor's reference (e.g. the invoice number's hash).
    error ReceivablesZeroReference();
    /// @notice The debtor already confirmed receivable `receivableId` under this reference.
    error ReceivablesDuplicateReference(address debtor, bytes32 ref, uint256 receivableId);
    /// @notice No receivable has this id.
    error ReceivablesUnknownReceivable(uint256 receivableId);
    /// @notice No part has this id.
    error ReceivablesUnknownPart(uint256 partId);
    /// @notice Only the part's holder `holder` may do this.
    error ReceivablesNotHolder(address caller, uint256 partId, address holder);
    /// @notice The part is in `state`; this needs it `Active`.
    error ReceivablesPartNotActive(uint256 partId, PartState state);
    /// @notice A split names `amounts` amounts and `holders` holders: they must match, 2 to 16.
    error ReceivablesInvalidSplit(uint256 amounts, uint256 holders);
    /// @notice Child `index` of a split has a zero amount.
    error ReceivablesZeroSplitAmount(uint256 index);
    /// @notice The children's amounts sum to `sum`; the part holds `amount`.
    error ReceivablesSplitSumMismatch(uint256 partId, uint256 sum, uint256 amount);
    /// @notice Splitting part `partId` into `children` needs that much quota; its subtree has `quota` left.
    error ReceivablesSplitQuotaExceeded(uint256 partId, uint256 children, uint256 quota);
    /// @notice A part cannot go to the zero address, nor be transferred to its holder.
    error ReceivablesInvalidHolder(address to);
    /// @notice An offer's minimum price must be above zero and at most the part's amount.
    error ReceivablesInvalidMinPrice(uint256 partId, uint256 minPrice, uint256 amount);
    /// @notice A part cannot be offered to the zero address or to its holder.
    error ReceivablesInvalidBank(address bank);
    /// @notice The part is in `state`, not `Offered`.
    error ReceivablesNotOffered(uint256 partId, PartState state);
    /// @notice The part is offered to `offeredTo`, not to the caller.
    error ReceivablesNotOfferedTo(address caller, uint256 partId, address offeredTo);
    /// @notice The price must be at least the offer's minimum and at most the part's amount.
    error ReceivablesPriceOutOfRange(uint256 partId, uint256 price, uint256 minPrice, uint256 amount);
    /// @notice The receivable fell due at `dueDate`; the block time is `nowSeconds`.
    error ReceivablesPastDue(uint256 receivableId, uint64 dueDate, uint256 nowSeconds);
    /// @notice Only the receivable's debtor `debtor` may repay it.
    error ReceivablesNotDebtor(address caller, uint256 receivableId, address debtor);
    /// @notice The receivable was repaid already, at `paidAt`.
    error ReceivablesAlreadyPaid(uint256 receivableId, uint64 paidAt);
    /// @notice Only an unpaid leaf part (`Active`, `Offered`, `Financed`) can default; this one is `state`.
    error ReceivablesNotDefaultable(uint256 partId, PartState state);
    /// @notice The part may be marked defaulted only after `defaultableAfter` (due date + grace period).
    error ReceivablesGracePeriodRunning(uint256 partId, uint256 defaultableAfter, uint256 nowSeconds);
    /// @notice Nothing is held in escrow for this part (never escrowed, or released already).
    error ReceivablesNothingEscrowed(uint256 partId);
    /// @notice {pushPayment} is this contract's own isolated step; `caller` may not call it.
    error ReceivablesOnlySelf(address caller);
    /// @notice `recipient`'s balance changed by `received`, not by the `sent` moved to it: the token takes a
    /// fee or rebases, and cannot settle receivables (use a plain ERC-20).
    error ReceivablesTransferMismatch(address recipient, uint256 sent, uint256 received);
    /// @notice A rescue needs a recipient other than the zero address.
    error ReceivablesZeroRescueRecipient();
    /// @notice A rescue moves more than zero.
    error ReceivablesZeroRescueAmount();
    /// @notice Only `free` of `token` is not owed to holders (the escrow is never rescued); `amount` asked.
    error ReceivablesRescueExceedsFree(address token, uint256 amount, uint256 free);
    /// @notice Too little gas left (`gasLeft`) to push a payment with {PUSH_GAS} (`needed`): send more gas.
    error ReceivablesInsufficientGas(uint256 gasLeft, uint256 needed);

    /// @notice The credit registry cannot be the zero address.
    error ReceivablesZeroCreditRegistry();
    /// @notice `factory` has no credit record (from its bound oracle): nothing can be financed on its line.
    error ReceivablesNoCreditRecord(address factory);
    /// @notice The statement is about record `attested` of `factory`; its current record is `current`.
    error ReceivablesStaleCreditRecord(address factory, uint256 attested, uint256 current);
    /// @notice `factory`'s current record `index` expired at `validUntil` (block time `nowSeconds`).
    error ReceivablesCreditRecordExpired(address factory, uint256 index, uint64 validUntil, uint256 nowSeconds);
    /// @notice The credit-line statement could be used until `deadline`; the block time is `nowSeconds`.
    error ReceivablesLineAttestationExpired(uint64 deadline, uint256 nowSeconds);
    /// @notice The statement's total is `attested`; `factory`'s outstanding amount plus the part's is
    /// `expected` (the statement was made for another outstanding amount, or was used already).
    error ReceivablesLineTotalMismatch(address factory, uint256 attested, uint256 expected);
    /// @notice The statement is not signed by `oracle`, `factory`'s oracle, for this factory, bank, part,
    /// record, total and deadline.
    error ReceivablesInvalidLineSignature(address factory, address oracle);

    /// @notice `debtor` confirmed receivable `receivableId` owed to `supplier`, who holds root part `rootPart`.
    event ReceivableConfirmed(
        uint256 indexed receivableId,
        address indexed debtor,
        address indexed supplier,
        uint256 rootPart,
        uint256 faceValue,
        uint64 dueDate,
        bytes32 ref
    );
    /// @notice Receivable `receivableId` is backed by order `orderId` and the lots `lotIds` (their keys).
    event ReceivableBacked(uint256 indexed receivableId, bytes32 indexed orderId, bytes32[] lotIds);
    /// @notice `by` flagged financed receivable `receivableId`: backing lot `lotId` has `fault`; `banks`
    /// financed its parts (each also gets a {FlaggedToBank}).
    event ReceivableFlagged(
        uint256 indexed receivableId, bytes32 indexed lotId, BackingFault fault, address[] banks, address indexed by
    );
    /// @notice `bank` financed a part of receivable `receivableId`, flagged for backing lot `lotId`.
    event FlaggedToBank(uint256 indexed receivableId, address indexed bank, bytes32 indexed lotId);
    /// @notice Part `partId` was split; `children` (in order) now hold its amount.
    event PartSplit(uint256 indexed partId, uint256 indexed receivableId, address indexed holder, uint256[] children);
    /// @notice Part `partId` (a child of `parent`) was created with `amount`, held by `holder`.
    event PartCreated(uint256 indexed partId, uint256 indexed parent, address indexed holder, uint256 amount);
    /// @notice Part `partId` moved from `from` to `to`.
    event PartTransferred(uint256 indexed partId, address indexed from, address indexed to);
    /// @notice The holder offered part `partId` to `bank` for at least `minPrice`.
    event PartOffered(uint256 indexed partId, address indexed holder, address indexed bank, uint256 minPrice);
    /// @notice The holder withdrew its offer of part `partId` to `bank`.
    event OfferWithdrawn(uint256 indexed partId, address indexed holder, address indexed bank);
    /// @notice `bank` financed part `partId`, paying `price` to `seller`; the bank holds it now.
    event PartFinanced(uint256 indexed partId, address indexed seller, address indexed bank, uint256 price);
    /// @notice Part `partId` was paid `amount` by the debtor to its holder.
    event PartPaid(uint256 indexed partId, uint256 indexed receivableId, address indexed holder, uint256 amount);
    /// @notice The debtor repaid receivable `receivableId` in full.
    event ReceivablePaid(uint256 indexed receivableId, address indexed debtor, uint256 faceValue);
    /// @notice Paying part `partId`'s `amount` to `holder` failed; the amount is held in escrow for it.
    event PaymentEscrowed(uint256 indexed partId, address indexed holder, uint256 amount);
    /// @notice Part `partId`'s escrowed `amount` was paid to its holder `holder`.
    event EscrowReleased(uint256 indexed partId, address indexed holder, uint256 amount);
    /// @notice Part `partId`, held by `holder`, was marked defaulted by `by`.
    event PartDefaulted(uint256 indexed partId, address indexed holder, address indexed by, uint256 amount);
    /// @notice The admin `by` returned `amount` of `token`, sent here by mistake, to `to`.
    event TokensRescued(address indexed token, address indexed to, uint256 amount, address indexed by);
    /// @notice The admission gate changed.
    event AdmissionGateSet(address gate);
    /// @notice The credit registry whose records bound the credit lines changed.
    event CreditRegistrySet(address registry);
    /// @notice Financing part `partId` charged `amount` to `factory`'s line, now `outstanding`, under its
    /// record `recordIndex`.
    event LineCharged(
        address indexed factory, uint256 indexed partId, uint256 amount, uint256 outstanding, uint256 recordIndex
    );
    /// @notice Paying financed part `partId` freed `amount` of `factory`'s line, now `outstanding`.
    event LineReleased(address indexed factory, uint256 indexed partId, uint256 amount, uint256 outstanding);

    /**
     * @param admin Receives the default admin role (may replace the admission gate, rescue tokens), handed
     * over in two steps ({ADMIN_TRANSFER_DELAY}); not zero (`AccessControlInvalidDefaultAdmin`).
     * @param gate The admission gate asked before parties confirm, receive, or finance parts; not zero.
     * @param token The ERC-20 every receivable settles in (immutable); not zero.
     * @param orders The purchase orders receivables name (immutable); not zero.
     * @param lots The lot registry of the backing lots (immutable); not zero.
     * @param certifier The quality certifier judging those lots (immutable); its `lotRegistry` is `lots`.
     * @param credit The CreditRegistry whose current valid records bound the sellers' credit lines; not zero
     * (the admin may replace it, {setCreditRegistry}).
     */
    constructor(
        address admin,
        IAdmissionGate gate,
        IERC20 token,
        PurchaseOrders orders,
        LotRegistry lots,
        QualityCertifier certifier,
        CreditRegistry credit
    ) AccessControlDefaultAdminRules(ADMIN_TRANSFER_DELAY, admin) EIP712("supET Receivables", "1") {
        if (address(token) == address(0)) revert ReceivablesZeroToken();
        address certifierLots = address(certifier) == address(0) ? address(0) : address(certifier.lotRegistry());
        if (address(orders) == address(0) || address(lots) == address(0) || certifierLots != address(lots)) {
            revert ReceivablesInvalidEvidenceSources(address(orders), address(lots), certifierLots);
        }
        _token = token;
        _orders = orders;
        _lots = lots;
        _certifier = certifier;
        _setGate(gate);
        _setCreditRegistry(credit);
    }

    // ------------------------------------------------------------------ admin

    /**
     * @notice Replace the admission gate (e.g. a new participant registry).
     * @param gate The new gate; not zero.
     */
    function setAdmissionGate(IAdmissionGate gate) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setGate(gate);
    }

    /**
     * @notice Replace the credit registry (e.g. a redeployed one); the outstanding amounts stay.
     * @param credit The new registry; not zero.
     */
    function setCreditRegistry(CreditRegistry credit) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setCreditRegistry(credit);
    }

    /**
     * @notice Return tokens sent to this contract by mistake; by the admin. Of the settlement token only
     * the balance above the escrowed total may go ({escrowTotal} is owed to holders, never rescued); any
     * other token may go whole.
     * @param token The token to return.
     * @param to The recipient (e.g. whoever sent it by mistake); not zero.
     * @param amount How much; above zero.
     */
    function rescueTokens(IERC20 token, address to, uint256 amount)
        external
        onlyRole(DEFAULT_ADMIN_ROLE)
        nonReentrant
    {
        if (to == address(0)) revert ReceivablesZeroRescueRecipient();
        if (amount == 0) revert ReceivablesZeroRescueAmount();
        if (token == _token) {
            uint256 balance = _token.balanceOf(address(this));
            uint256 free = balance > _escrowTotal ? balance - _escrowTotal : 0;
            if (amount > free) revert ReceivablesRescueExceedsFree(address(token), amount, free);
        }
        emit TokensRescued(address(token), to, amount, msg.sender);
        token.safeTransfer(to, amount);
    }

    // ------------------------------------------------------------------ confirmation

    /**
     * @notice Confirm a receivable owed by the caller (admitted for {CREATE_ACTION}) to `supplier`, for
     * goods of order `orderId` delivered in lots `lotIds` (see "Backing" above for every check).
     * @param supplier The creditor, admitted for {HOLD_ACTION}; neither zero nor the caller; the order's
     * supplier.
     * @param faceValue What is owed, in token units; above zero.
     * @param dueDate When it is due (Unix seconds); after the block time.
     * @param ref The debtor's reference (e.g. `keccak256` of the invoice number); not zero, new.
     * @param orderId The purchase order: the caller's, with `supplier`, accepted, not cancelled.
     * @param lotIds The delivered lots' keys (1 to {MAX_BACKING_LOTS}): each in the caller's custody, the
     * supplier's before, of the order's GTIN, certified, backing no other receivable.
     * @return receivableId The receivable's id (the first is 1).
     */
    function confirm(
        address supplier,
        uint256 faceValue,
        uint64 dueDate,
        bytes32 ref,
        bytes32 orderId,
        bytes32[] calldata lotIds
    ) external returns (uint256 receivableId) {
        _requireAdmitted(msg.sender, CREATE_ACTION);
        if (supplier == address(0) || supplier == msg.sender) revert ReceivablesInvalidSupplier(supplier);
        _requireAdmitted(supplier, HOLD_ACTION);
        if (faceValue == 0) revert ReceivablesZeroFaceValue();
        if (dueDate <= block.timestamp) revert ReceivablesDueDateInPast(dueDate, block.timestamp);
        if (ref == bytes32(0)) revert ReceivablesZeroReference();
        uint256 existing = _byReference[msg.sender][ref];
        if (existing != 0) revert ReceivablesDuplicateReference(msg.sender, ref, existing);
        receivableId = _receivables.length + 1;
        _bindBacking(receivableId, supplier, orderId, lotIds);
        uint256 root = _newPart(receivableId, 0, supplier, faceValue, uint16(MAX_PARTS - 1));
        _receivables.push(
            Receivable({
                id: receivableId,
                debtor: msg.sender,
                supplier: supplier,
                dueDate: dueDate,
                createdAt: uint64(block.timestamp),
                paidAt: 0,
                faceValue: faceValue,
                ref: ref,
                rootPart: root,
                orderId: orderId
            })
        );
        _byReference[msg.sender][ref] = receivableId;
        emit ReceivableConfirmed(receivableId, msg.sender, supplier, root, faceValue, dueDate, ref);
    }

    // ------------------------------------------------------------------ holders

    /**
     * @notice Split an `Active` part into children; by its holder. The part becomes `Split`.
     * @param partId The part.
     * @param amounts The children's amounts: each above zero, summing exactly to the part's amount.
     * @param holders The children's holders, each admitted for {HOLD_ACTION} (the caller may keep some).
     * @return childIds The children's ids, in order.
     */
    function split(uint256 partId, uint256[] calldata amounts, address[] calldata holders)
        external
        returns (uint256[] memory childIds)
    {
        Part storage p = _requireActiveHeld(partId);
        uint256 n = amounts.length;
        if (n < 2 || n > MAX_SPLIT_CHILDREN || n != holders.length) {
            revert ReceivablesInvalidSplit(n, holders.length);
        }
        uint256 sum = 0;
        for (uint256 i = 0; i < n; ++i) {
            if (amounts[i] == 0) revert ReceivablesZeroSplitAmount(i);
            sum += amounts[i];
        }
        if (sum != p.amount) revert ReceivablesSplitSumMismatch(partId, sum, p.amount);
        uint256 receivableId = p.receivableId;
        uint256 quota = p.splitQuota;
        if (n > quota) revert ReceivablesSplitQuotaExceeded(partId, n, quota);
        for (uint256 i = 0; i < n; ++i) {
            if (holders[i] == address(0)) revert ReceivablesInvalidHolder(holders[i]);
            _requireAdmitted(holders[i], HOLD_ACTION);
        }
        p.state = PartState.Split;
        p.splitQuota = 0;
        childIds = _newChildren(receivableId, partId, amounts, holders, quota - n);
        emit PartSplit(partId, receivableId, msg.sender, childIds);
    }

    /**
     * @notice Transfer a whole `Active` part to `to` (admitted for {HOLD_ACTION}); by its holder.
     * @param partId The part.
     * @param to The new holder; neither zero nor the caller.
     */
    function transfer(uint256 partId, address to) external {
        Part storage p = _requireActiveHeld(partId);
        if (to == address(0) || to == msg.sender) revert ReceivablesInvalidHolder(to);
        _requireAdmitted(to, HOLD_ACTION);
        _moveHolding(p, to);
        emit PartTransferred(partId, msg.sender, to);
    }

    /**
     * @notice Offer an `Active` part to `bank` (admitted for {FINANCE_ACTION}) for at least `minPrice`;
     * by its holder, before the due date.
     * @param partId The part.
     * @param bank The bank that may finance it; neither zero nor the caller.
     * @param minPrice The least the holder accepts; above zero, at most the part's amount.
     */
    function offer(uint256 partId, address bank, uint256 minPrice) external {
        Part storage p = _requireActiveHeld(partId);
        _requireNotDue(p.receivableId);
        if (bank == address(0) || bank == msg.sender) revert ReceivablesInvalidBank(bank);
        _requireAdmitted(bank, FINANCE_ACTION);
        if (minPrice == 0 || minPrice > p.amount) revert ReceivablesInvalidMinPrice(partId, minPrice, p.amount);
        p.state = PartState.Offered;
        p.offeredTo = bank;
        p.minPrice = minPrice;
        _offerIndex[partId] = _offers[bank].length;
        _offers[bank].push(partId);
        emit PartOffered(partId, msg.sender, bank, minPrice);
    }

    /**
     * @notice Withdraw the open offer of a part; by its holder. The part is `Active` again.
     * @param partId The part.
     */
    function withdrawOffer(uint256 partId) external {
        Part storage p = _requirePart(partId);
        if (msg.sender != p.holder) revert ReceivablesNotHolder(msg.sender, partId, p.holder);
        if (p.state != PartState.Offered) revert ReceivablesNotOffered(partId, p.state);
        address bank = p.offeredTo;
        _clearOffer(p);
        p.state = PartState.Active;
        emit OfferWithdrawn(partId, msg.sender, bank);
    }

    // ------------------------------------------------------------------ banks

    /**
     * @notice Finance a part offered to the caller (still admitted for {FINANCE_ACTION}) before its due
     * date, while its receivable's backing is sound (every lot certified, none recalled) and within the
     * seller's credit line: `price` of the token moves from the caller to the holder (approve this
     * contract first), the caller becomes the holder, the part is `Financed` for good, and its amount is
     * charged to the seller's line ({outstandingOf}).
     * @param partId The part.
     * @param price What the bank pays; at least the offer's minimum, at most the part's amount.
     * @param line The seller's oracle's statement that the seller's outstanding amount plus the part's
     * is within the limit of its current record (see {LineAttestation}).
     */
    function finance(uint256 partId, uint256 price, LineAttestation calldata line) external nonReentrant {
        Part storage p = _requirePart(partId);
        if (p.state != PartState.Offered) revert ReceivablesNotOffered(partId, p.state);
        if (msg.sender != p.offeredTo) revert ReceivablesNotOfferedTo(msg.sender, partId, p.offeredTo);
        _requireNotDue(p.receivableId);
        if (price < p.minPrice || price > p.amount) {
            revert ReceivablesPriceOutOfRange(partId, price, p.minPrice, p.amount);
        }
        _requireAdmitted(msg.sender, FINANCE_ACTION);
        _requireBackingSound(p.receivableId);
        address seller = p.holder;
        _chargeLine(seller, partId, p.amount, line);
        _clearOffer(p);
        p.state = PartState.Financed;
        p.financedBy = msg.sender;
        p.financedPrice = price;
        _moveHolding(p, msg.sender);
        emit PartFinanced(partId, seller, msg.sender, price);
        _moveExact(msg.sender, seller, price);
    }

    // ------------------------------------------------------------------ settlement

    /**
     * @notice Repay a receivable in full; by its debtor (approve this contract for the face value first).
     * Early, on time or late: the face value moves from the debtor to this contract, and every leaf part
     * (defaulted ones included: late repayment cures them) becomes `Paid` and is paid its amount; a part
     * whose payment fails keeps its amount in escrow ({claimEscrow}) instead of blocking the others. A
     * receivable is repaid once.
     * @param receivableId The receivable.
     */
    function repay(uint256 receivableId) external nonReentrant {
        Receivable storage r = _requireReceivable(receivableId);
        if (msg.sender != r.debtor) revert ReceivablesNotDebtor(msg.sender, receivableId, r.debtor);
        if (r.paidAt != 0) revert ReceivablesAlreadyPaid(receivableId, r.paidAt);
        r.paidAt = uint64(block.timestamp);
        _moveExact(msg.sender, address(this), r.faceValue);
        uint256[] storage ids = _partsOf[receivableId];
        uint256 n = ids.length;
        for (uint256 i = 0; i < n; ++i) {
            Part storage p = _parts[ids[i] - 1];
            if (p.state == PartState.Split) continue;
            if (p.state == PartState.Offered) _clearOffer(p);
            _releaseLine(p);
            p.state = PartState.Paid;
            emit PartPaid(p.id, receivableId, p.holder, p.amount);
            if (!_tryPush(p.holder, p.amount)) {
                _escrow[p.id] = p.amount;
                _escrowTotal += p.amount;
                emit PaymentEscrowed(p.id, p.holder, p.amount);
            }
        }
        emit ReceivablePaid(receivableId, msg.sender, r.faceValue);
    }

    /**
     * @notice Pay a part's escrowed amount to its holder; by anyone (the holder, or a keeper for it), e.g.
     * once the token unfroze the holder. The amount goes only to the part's holder.
     * @param partId The part (`Paid`, with an amount in escrow).
     */
    function claimEscrow(uint256 partId) external nonReentrant {
        Part storage p = _requirePart(partId);
        uint256 amount = _escrow[partId];
        if (amount == 0) revert ReceivablesNothingEscrowed(partId);
        delete _escrow[partId];
        _escrowTotal -= amount;
        emit EscrowReleased(partId, p.holder, amount);
        _moveExact(address(this), p.holder, amount);
    }

    /**
     * @notice One payment push, isolated so that its failure can be caught and escrowed; callable only by
     * this contract itself (from {repay}).
     * @param to The holder paid.
     * @param amount The amount.
     */
    function pushPayment(address to, uint256 amount) external {
        if (msg.sender != address(this)) revert ReceivablesOnlySelf(msg.sender);
        _moveExact(address(this), to, amount);
    }

    /**
     * @notice Mark an unpaid leaf part `Defaulted`, once the block time is past its receivable's due date
     * plus {GRACE_PERIOD}; by anyone. An open offer lapses. The debtor may still repay (late cure).
     * @param partId The part.
     */
    function markDefaulted(uint256 partId) external {
        Part storage p = _requirePart(partId);
        PartState s = p.state;
        if (s != PartState.Active && s != PartState.Offered && s != PartState.Financed) {
            revert ReceivablesNotDefaultable(partId, s);
        }
        uint256 after_ = uint256(_receivables[p.receivableId - 1].dueDate) + GRACE_PERIOD;
        if (block.timestamp <= after_) revert ReceivablesGracePeriodRunning(partId, after_, block.timestamp);
        if (s == PartState.Offered) _clearOffer(p);
        p.state = PartState.Defaulted;
        emit PartDefaulted(partId, p.holder, msg.sender, p.amount);
    }

    /**
     * @notice Flag a receivable whose backing went bad after a bank financed part of it; by anyone. Sets
     * the on-chain flag ({flagOf}) and names the banks holding financed parts ({ReceivableFlagged}, one
     * {FlaggedToBank} each). Once per receivable, while unpaid.
     * @param receivableId The receivable: unpaid, not flagged, a backing lot at fault, a part financed.
     */
    function flagReceivable(uint256 receivableId) external {
        Receivable storage r = _requireReceivable(receivableId);
        uint64 flaggedAt = _flags[receivableId].flaggedAt;
        if (flaggedAt != 0) revert ReceivablesAlreadyFlagged(receivableId, flaggedAt);
        if (r.paidAt != 0) revert ReceivablesAlreadyPaid(receivableId, r.paidAt);
        (BackingFault fault, bytes32 lotId) = backingStatus(receivableId);
        if (fault == BackingFault.None) revert ReceivablesBackingSound(receivableId);
        address[] memory banks = _financingBanks(receivableId);
        if (banks.length == 0) revert ReceivablesNotFinanced(receivableId);
        _flags[receivableId] = Flag({flaggedAt: uint64(block.timestamp), fault: fault, by: msg.sender, lotId: lotId});
        emit ReceivableFlagged(receivableId, lotId, fault, banks, msg.sender);
        for (uint256 i = 0; i < banks.length; ++i) {
            emit FlaggedToBank(receivableId, banks[i], lotId);
        }
    }

    // ------------------------------------------------------------------ views

    /// @notice The order and lots (keys, as confirmed) behind the receivable.
    function backingOf(uint256 receivableId) external view returns (bytes32 orderId, bytes32[] memory lotIds) {
        orderId = _requireReceivable(receivableId).orderId;
        lotIds = _backingLots[receivableId];
    }

    /// @notice The receivable the lot backs; zero when none.
    function receivableBackedBy(bytes32 lotId) external view returns (uint256) {
        return _backedBy[lotId];
    }

    /// @notice The first backing lot at fault now and why (`None` and zero: every lot holds its certificate
    /// and none is recalled).
    function backingStatus(uint256 receivableId) public view returns (BackingFault fault, bytes32 lotId) {
        _requireReceivable(receivableId);
        bytes32[] storage ids = _backingLots[receivableId];
        uint256 n = ids.length;
        for (uint256 i = 0; i < n; ++i) {
            lotId = ids[i];
            if (!_certifier.isCertified(lotId)) return (BackingFault.Rejected, lotId);
            if (_lots.isRecalled(lotId)) return (BackingFault.Recalled, lotId);
        }
        return (BackingFault.None, bytes32(0));
    }

    /// @notice The receivable's flag (all zero while not flagged).
    function flagOf(uint256 receivableId) external view returns (Flag memory) {
        _requireReceivable(receivableId);
        return _flags[receivableId];
    }

    /// @notice The contracts the backing is checked against: orders, lots, and the quality certifier.
    function evidenceSources() external view returns (PurchaseOrders, LotRegistry, QualityCertifier) {
        return (_orders, _lots, _certifier);
    }

    /// @notice The receivable (reverts for an unknown id).
    function receivable(uint256 receivableId) external view returns (Receivable memory) {
        return _requireReceivable(receivableId);
    }

    /// @notice The part (reverts for an unknown id).
    function part(uint256 partId) external view returns (Part memory) {
        return _requirePart(partId);
    }

    /// @notice The receivable's leaf parts (every part not `Split`), in creation order; their amounts sum to
    /// the face value.
    function partsOf(uint256 receivableId) external view returns (uint256[] memory leaves) {
        _requireReceivable(receivableId);
        uint256[] storage ids = _partsOf[receivableId];
        uint256 n = 0;
        for (uint256 i = 0; i < ids.length; ++i) {
            if (_parts[ids[i] - 1].state != PartState.Split) ++n;
        }
        leaves = new uint256[](n);
        n = 0;
        for (uint256 i = 0; i < ids.length; ++i) {
            if (_parts[ids[i] - 1].state != PartState.Split) leaves[n++] = ids[i];
        }
    }

    /// @notice Every part of the receivable (root, split parents and leaves), in creation order.
    function allPartsOf(uint256 receivableId) external view returns (uint256[] memory) {
        _requireReceivable(receivableId);
        return _partsOf[receivableId];
    }

    /// @notice The parts `holder` holds now, in no particular order: includes parts it split (`Split`
    /// parents stay with their splitter) and settled ones (`Paid`, `Defaulted`); filter by state.
    function partsHeldBy(address holder) external view returns (uint256[] memory) {
        return _held[holder];
    }

    /// @notice The parts with an open offer to `bank`, in no particular order.
    function offersTo(address bank) external view returns (uint256[] memory) {
        return _offers[bank];
    }

    /// @notice The receivable a debtor confirmed under reference `ref`; zero when none.
    function receivableOf(address debtor, bytes32 ref) external view returns (uint256) {
        return _byReference[debtor][ref];
    }

    /// @notice How many receivables exist (ids 1 to this).
    function receivableCount() external view returns (uint256) {
        return _receivables.length;
    }

    /// @notice What part `partId` holds in escrow (a failed payment not yet claimed); zero when nothing.
    function escrowOf(uint256 partId) external view returns (uint256) {
        return _escrow[partId];
    }

    /// @notice The sum of every part's escrow: this contract holds at least this much of the token.
    function escrowTotal() external view returns (uint256) {
        return _escrowTotal;
    }

    /// @notice `factory`'s outstanding financed amount: the amounts of the parts it sold to banks, not yet
    /// paid (defaulted ones included).
    function outstandingOf(address factory) external view returns (uint256) {
        return _outstanding[factory];
    }

    /// @notice The factory whose line financing part `partId` charged; zero if none (not financed, or paid).
    function lineOf(uint256 partId) external view returns (address) {
        return _lineOf[partId];
    }

    /// @notice The CreditRegistry whose records bound the credit lines.
    function creditRegistry() external view returns (CreditRegistry) {
        return _credit;
    }

    /// @notice The ERC-20 receivables settle in.
    function token() external view returns (IERC20) {
        return _token;
    }

    /// @notice The admission gate in force.
    function admissionGate() external view returns (IAdmissionGate) {
        return _gate;
    }

    // ------------------------------------------------------------------ internal

    /// @dev Check order `orderId` and lots `lotIds` back a receivable of the caller to `supplier`, and
    /// bind each lot to `receivableId` for good.
    function _bindBacking(uint256 receivableId, address supplier, bytes32 orderId, bytes32[] calldata lotIds)
        private
    {
        uint256 n = lotIds.length;
        if (n == 0 || n > MAX_BACKING_LOTS) revert ReceivablesInvalidBackingCount(n);
        uint64 gtin = _requireOrderOf(orderId, supplier);
        for (uint256 i = 0; i < n; ++i) {
            bytes32 lotId = lotIds[i];
            _requireDelivered(lotId, supplier, gtin);
            uint256 other = _backedBy[lotId];
            if (other != 0) revert ReceivablesLotAlreadyBacking(lotId, other);
            _backedBy[lotId] = receivableId;
        }
        _backingLots[receivableId] = lotIds;
        emit ReceivableBacked(receivableId, orderId, lotIds);
    }

    /// @dev The order's GTIN, or revert unless it exists, is the caller's with `supplier`, stands and was
    /// accepted.
    function _requireOrderOf(bytes32 orderId, address supplier) private view returns (uint64) {
        if (!_orders.exists(orderId)) revert ReceivablesUnknownOrder(orderId);
        PurchaseOrders.Order memory o = _orders.order(orderId);
        if (o.buyer != msg.sender) revert ReceivablesNotOrderBuyer(orderId, msg.sender, o.buyer);
        if (o.supplier != supplier) revert ReceivablesOrderSupplierMismatch(orderId, supplier, o.supplier);
        if (o.cancelledAt != 0) revert ReceivablesOrderCancelled(orderId, o.cancelledAt);
        if (o.acceptedAt == 0) revert ReceivablesOrderNotAccepted(orderId);
        return o.gtin;
    }

    /// @dev Revert unless the lot is in the caller's custody, was `supplier`'s, is of `gtin`, certified and
    /// not recalled.
    function _requireDelivered(bytes32 lotId, address supplier, uint64 gtin) private view {
        if (!_lots.exists(lotId)) revert ReceivablesUnknownLot(lotId);
        LotRegistry.Lot memory l = _lots.lot(lotId);
        if (l.custodian != msg.sender) revert ReceivablesLotNotInCustody(lotId, msg.sender, l.custodian);
        if (l.supplier != supplier && !_lots.hasHeld(lotId, supplier)) {
            revert ReceivablesLotNotFromSupplier(lotId, supplier);
        }
        if (l.gtin != gtin) revert ReceivablesLotGtinMismatch(lotId, l.gtin, gtin);
        if (!_certifier.isCertified(lotId)) revert ReceivablesLotNotCertified(lotId);
        if (_lots.isRecalled(lotId)) revert ReceivablesLotRecalled(lotId);
    }

    /// @dev Revert when a backing lot of the receivable is at fault (no part of it may be financed then).
    function _requireBackingSound(uint256 receivableId) private view {
        (BackingFault fault, bytes32 lotId) = backingStatus(receivableId);
        if (fault == BackingFault.Rejected) revert ReceivablesBackingLotRejected(receivableId, lotId);
        if (fault == BackingFault.Recalled) revert ReceivablesBackingLotRecalled(receivableId, lotId);
    }

    /// @dev The distinct banks that financed a part of the receivable, in part order.
    function _financingBanks(uint256 receivableId) private view returns (address[] memory banks) {
        uint256[] storage ids = _partsOf[receivableId];
        banks = new address[](ids.length);
        uint256 count = 0;
        for (uint256 i = 0; i < ids.length; ++i) {
            address bank = _parts[ids[i] - 1].financedBy;
            if (bank == address(0)) continue;
            bool seen = false;
            for (uint256 j = 0; j < count && !seen; ++j) {
                seen = banks[j] == bank;
            }
            if (!seen) banks[count++] = bank;
        }
        assembly ("memory-safe") {
            mstore(banks, count)
        }
    }

    /// @dev A new `Active` part of `receivableId`, child of `parent` (zero: the root), held by `holder`,
    /// that may have `splitQuota` parts below it.
    function _newPart(uint256 receivableId, uint256 parent, address holder, uint256 amount, uint16 splitQuota)
        private
        returns (uint256 id)
    {
        id = _parts.length + 1;
        _parts.push(
            Part({
                id: id,
                receivableId: receivableId,
                parent: parent,
                holder: holder,
                state: PartState.Active,
                splitQuota: splitQuota,
                offeredTo: address(0),
                financedBy: address(0),
                amount: amount,
                minPrice: 0,
                financedPrice: 0
            })
        );
        _partsOf[receivableId].push(id);
        _heldIndex[id] = _held[holder].length;
        _held[holder].push(id);
        emit PartCreated(id, parent, holder, amount);
    }

    /// @dev The children of split part `parent`, dividing the `rest` of its quota evenly among them (the
    /// first `rest % n` get one more).
    function _newChildren(
        uint256 receivableId,
        uint256 parent,
        uint256[] calldata amounts,
        address[] calldata holders,
        uint256 rest
    ) private returns (uint256[] memory childIds) {
        uint256 n = amounts.length;
        uint256 share = rest / n;
        uint256 extra = rest % n;
        childIds = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            // at most MAX_PARTS - 1: fits uint16
            uint16 quota = uint16(i < extra ? share + 1 : share);
            childIds[i] = _newPart(receivableId, parent, holders[i], amounts[i], quota);
        }
    }

    /// @dev Hand part `p` to `to`, keeping both holders' lists exact.
    function _moveHolding(Part storage p, address to) private {
        _removeFrom(_held[p.holder], _heldIndex, p.id);
        _heldIndex[p.id] = _held[to].length;
        _held[to].push(p.id);
        p.holder = to;
    }

    /// @dev Drop the part's open offer (from its bank's list too).
    function _clearOffer(Part storage p) private {
        _removeFrom(_offers[p.offeredTo], _offerIndex, p.id);
        p.offeredTo = address(0);
        p.minPrice = 0;
    }

    /// @dev Swap-and-pop `id` out of `list`, whose positions `index` tracks.
    function _removeFrom(uint256[] storage list, mapping(uint256 => uint256) storage index, uint256 id) private {
        uint256 i = index[id];
        uint256 last = list[list.length - 1];
        list[i] = last;
        index[last] = i;
        list.pop();
        delete index[id];
    }

    /// @dev Move exactly `amount` from `from` (this contract: `transfer`, else `transferFrom`) to `to`;
    /// revert unless `to`'s balance grew by exactly `amount`.
    function _moveExact(address from, address to, uint256 amount) private {
        uint256 before = _token.balanceOf(to);
        if (from == address(this)) {
            _token.safeTransfer(to, amount);
        } else {
            _token.safeTransferFrom(from, to, amount);
        }
        uint256 balance = _token.balanceOf(to);
        uint256 received = balance > before ? balance - before : 0;
        if (received != amount) revert ReceivablesTransferMismatch(to, amount, received);
    }

    /// @dev Push `amount` to `to` in an isolated call with {PUSH_GAS} gas; whether it went through. Reverts
    /// (rather than escrow) when the caller left too little gas for a fair attempt.
    function _tryPush(address to, uint256 amount) private returns (bool) {
        uint256 needed = PUSH_GAS + PUSH_GAS / 63 + _PUSH_CALL_OVERHEAD;
        uint256 left = gasleft();
        if (left < needed) revert ReceivablesInsufficientGas(left, needed);
        try this.pushPayment{gas: PUSH_GAS}(to, amount) {
            return true;
        } catch {
            return false;
        }
    }

    /// @dev Charge `amount` (part `partId`'s) to `factory`'s line, after checking the oracle's statement
    /// that the new outstanding total is within the limit of the factory's current valid record.
    function _chargeLine(address factory, uint256 partId, uint256 amount, LineAttestation calldata line) private {
        uint256 count = _credit.recordCount(factory);
        if (count == 0) revert ReceivablesNoCreditRecord(factory);
        if (line.recordIndex != count - 1) revert ReceivablesStaleCreditRecord(factory, line.recordIndex, count - 1);
        CreditRegistry.CreditRecord memory record = _credit.recordAt(factory, count - 1);
        if (block.timestamp >= record.validUntil) {
            revert ReceivablesCreditRecordExpired(factory, count - 1, record.validUntil, block.timestamp);
        }
        if (block.timestamp > line.deadline) revert ReceivablesLineAttestationExpired(line.deadline, block.timestamp);
        uint256 total = _outstanding[factory] + amount;
        if (line.total != total) revert ReceivablesLineTotalMismatch(factory, line.total, total);
        bytes32 digest = _hashTypedDataV4(
            keccak256(
                abi.encode(CREDIT_LINE_TYPEHASH, factory, msg.sender, partId, line.recordIndex, total, line.deadline)
            )
        );
        if (!SignatureChecker.isValidSignatureNow(record.oracle, digest, line.signature)) {
            revert ReceivablesInvalidLineSignature(factory, record.oracle);
        }
        _outstanding[factory] = total;
        _lineOf[partId] = factory;
        emit LineCharged(factory, partId, amount, total, line.recordIndex);
    }

    /// @dev Free the line part `p`'s financing charged, if any (the part is being paid).
    function _releaseLine(Part storage p) private {
        address factory = _lineOf[p.id];
        if (factory == address(0)) return;
        delete _lineOf[p.id];
        uint256 left = _outstanding[factory] - p.amount;
        _outstanding[factory] = left;
        emit LineReleased(factory, p.id, p.amount, left);
    }

    /// @dev Set a non-zero credit registry.
    function _setCreditRegistry(CreditRegistry credit) private {
        if (address(credit) == address(0)) revert ReceivablesZeroCreditRegistry();
        _credit = credit;
        emit CreditRegistrySet(address(credit));
    }

    /// @dev Set a non-zero admission gate.
    function _setGate(IAdmissionGate gate) private {
        if (address(gate) == address(0)) revert ReceivablesZeroGate();
        _gate = gate;
        emit AdmissionGateSet(address(gate));
    }

    /// @dev Revert unless the gate admits `party` for `action` now.
    function _requireAdmitted(address party, bytes32 action) private view {
        if (!_gate.isAdmitted(party, action)) revert ReceivablesNotAdmitted(party, action);
    }

    /// @dev Revert once the receivable is due (no offer or financing from its due date on).
    function _requireNotDue(uint256 receivableId) private view {
        uint64 due = _receivables[receivableId - 1].dueDate;
        if (block.timestamp >= due) revert ReceivablesPastDue(receivableId, due, block.timestamp);
    }

    /// @dev The receivable, or revert when there is none.
    function _requireReceivable(uint256 receivableId) private view returns (Receivable storage) {
        if (receivableId == 0 || receivableId > _receivables.length) {
            revert ReceivablesUnknownReceivable(receivableId);
        }
        return _receivables[receivableId - 1];
    }

    /// @dev The part, or revert when there is none.
    function _requirePart(uint256 partId) private view returns (Part storage) {
        if (partId == 0 || partId > _parts.length) revert ReceivablesUnknownPart(partId);
        return _parts[partId - 1];
    }

    /// @dev The part, or revert unless the caller holds it and it is `Active`.
    function _requireActiveHeld(uint256 partId) private view returns (Part storage p) {
        p = _requirePart(partId);
        if (msg.sender != p.holder) revert ReceivablesNotHolder(msg.sender, partId, p.holder);
        if (p.state != PartState.Active) revert ReceivablesPartNotActive(partId, p.state);
    }
}
