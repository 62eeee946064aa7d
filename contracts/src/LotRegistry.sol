// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IAdmissionGate} from "./IAdmissionGate.sol";
import {Gtin} from "./Gtin.sol";

/**
 * @title LotRegistry
 * @notice Product lots and their chain of custody.
 *
 * A supplier admitted by the consortium's admission gate opens a lot: its id (the text devices put in
 * Reading v1's `lot_id`), the product's GTIN-14 (check digit verified), a quantity and its unit, and
 * the production window. The supplier is the lot's first custodian.
 *
 * Keys. Lot ids are scoped to the party that names them, the lot's issuer: the supplier who opens a
 * lot, or the custodian who splits a child off. A lot's key is
 * `keccak256(abi.encode(issuer, keccak256(bytes(lotId))))` ({lotKey}); `keccak256(bytes(lotId))` is
 * Reading v1's `lotId` ({lotIdHashOf}). So no party can take another's lot id first: two parties may
 * each have a lot "LOT-1", under different keys. {LotNamed} indexes every key by its id hash and
 * issuer, so a client holding only the text finds the lot(s) of that name.
 *
 * Splitting: the custodian may split part or all of a lot into child lots for partial shipments. The
 * children inherit product, unit, production window and supplier, link to the parent, and start in the
 * splitter's custody. Quantities are conserved: a lot's `quantity` never changes, its `remaining` is
 * what has been neither split off nor consumed, and `remaining + consumed + sum(children's quantity) ==
 * quantity` always holds. A lot whose remaining quantity reaches zero by a split is `Split`, by a
 * transformation `Consumed`: either way it can no longer move, split or be consumed.
 *
 * Custody moves only when both sides act: the custodian proposes a transfer to a party admitted to
 * hold lots; that party accepts (custody moves) or rejects; the proposer may cancel while it is
 * pending. A lot has at most one pending transfer and cannot be split meanwhile. Every step is an
 * event; {custodyChain} returns the lot's custodians in order with the block time each took over (a
 * child's starts with the splitter), and {fullCustodyChain} adds its ancestors' history before it.
 *
 * Transformation (lineage): a party admitted for {OPEN_ACTION} that holds every input lot consumes part
 * or all of each and opens one or more output lots from them, in one step recorded as a transformation
 * with a sequential id ({transform}). The outputs are lots like any opened one (the transformer is their
 * supplier and first custodian, a {LotOpened} is emitted for each); an input keeps its `remaining` minus
 * what was consumed and stays open (traceable, movable, splittable) until nothing remains, when it becomes
 * `Consumed`. For every lot `remaining + consumed + sum(children's quantity) == quantity` always holds.
 * The lineage is stored both ways: {inputsOf} an output lot, {outputsOf} an input lot, and the whole
 * record by id ({transformation}).
 *
 * Recall: the lot's producer (its supplier), or a party admitted for {RECALL_ACTION} (the consortium maps
 * it to its certifying roles), records a recall notice on a lot ({recall}) with the hash of its reason (the
 * text stays off chain: every consortium member reads the chain). The lots downstream of it are then
 * flagged in batches by anyone ({flagDownstream}): each must be a direct child, a split-off child or a
 * transformation output, of a lot already flagged, the edge checked on chain, so a flag can never be set
 * on a lot the recalled one did not lead to, and no single call walks an unbounded graph. {isRecalled}
 * answers for the root and every flagged lot; {recallNoticeOf} names the notice.
 *
 * Times of the production window are Unix milliseconds, as readings' `ts_ms`; custody times are
 * block times (seconds).
 */
contract LotRegistry is AccessControlDefaultAdminRules {
    /// @notice The delay of a two-step admin handover (`beginDefaultAdminTransfer`, then the new admin's
    /// `acceptDefaultAdminTransfer` once it has passed); the admin may change it, itself with a delay.
    uint48 public constant ADMIN_TRANSFER_DELAY = 3 days;
    /// @notice The action asked of the admission gate before a party opens a lot.
    bytes32 public constant OPEN_ACTION = keccak256("supet.lot.open");
    /// @notice The action asked of the admission gate for a party to receive custody of a lot.
    bytes32 public constant TRANSFER_ACTION = keccak256("supet.lot.transfer");
    /// @notice The longest lot id, in bytes (Reading v1 allows 64 characters, up to 4 bytes each).
    uint256 public constant MAX_LOT_ID_BYTES = 256;
    /// @notice The most children one split may create (bounds the gas of a split).
    uint256 public constant MAX_SPLIT_CHILDREN = 64;
    /// @notice The most input lots one transformation may consume (bounds its gas).
    uint256 public constant MAX_TRANSFORM_INPUTS = 32;
    /// @notice The most output lots one transformation may open (bounds its gas).
    uint256 public constant MAX_TRANSFORM_OUTPUTS = 16;
    /// @notice The action asked of the admission gate for a party other than the lot's producer to recall it.
    bytes32 public constant RECALL_ACTION = keccak256("supet.lot.recall");
    /// @notice The most lots one {flagDownstream} call may flag (bounds its gas).
    uint256 public constant MAX_FLAG_BATCH = 128;

    /// @notice The life of a lot: `Split` and `Consumed` both mean nothing remains, by a split or by a
    /// transformation (whichever took the last of it).
    enum Status {
        None,
        Active,
        Split,
        Consumed
    }

    /**
     * @notice A lot as recorded. `quantity` is fixed at opening (or splitting); `remaining` is what has
     * been neither split off nor consumed by a transformation; `consumed` is what transformations took
     * (`remaining + consumed + sum(children's quantity) == quantity`). A child has `parent` set and
     * `parentCustodyCount`, the length of the parent's custody chain when it was split off (the part of
     * the parent's history that is also the child's). `producedBy` is the transformation that opened the
     * lot (0: opened by {openLot} or split off).
     */
    struct Lot {
        string lotId;
        uint64 gtin;
        uint64 producedFromMs;
        uint64 producedToMs;
        uint64 openedAt;
        bytes32 unit;
        uint256 quantity;
        uint256 remaining;
        address supplier;
        Status status;
        uint64 parentCustodyCount;
        address custodian;
        bytes32 parent;
        uint256 consumed;
        uint256 producedBy;
    }

    /// @notice One link of a custody chain: who held the lot from which block time on.
    struct CustodyEntry {
        address custodian;
        uint64 since;
    }

    /// @notice One link of a lot's full custody chain, naming the lot (an ancestor, or the lot) it is from.
    struct CustodyLink {
        bytes32 lotId;
        address custodian;
        uint64 since;
    }

    /// @notice A pending custody transfer (all zero when none).
    struct Transfer {
        address from;
        address to;
        uint64 proposedAt;
    }

    /// @notice One input of a transformation: `quantity` of lot `lotId` (its key), in `unit`, which must be
    /// the lot's own unit.
    struct TransformInput {
        bytes32 lotId;
        uint256 quantity;
        bytes32 unit;
    }

    /// @notice One output lot of a transformation, as {openLot} takes it.
    struct TransformOutput {
        string lotId;
        string gtin;
        uint256 quantity;
        bytes32 unit;
        uint64 producedFromMs;
        uint64 producedToMs;
    }

    /// @notice A recorded transformation: `by` consumed `consumed[i]` of lot `inputs[i]` and opened
    /// `outputs` at block time `at`.
    struct Transformation {
        address by;
        uint64 at;
        bytes32[] inputs;
        uint256[] consumed;
        bytes32[] outputs;
    }

    /**
     * @notice A recall notice: `by` recalled lot `root` at block time `at` for the reason whose hash is
     * `reasonHash`; `flagged` lots downstream of it have been flagged under it so far.
     */
    struct RecallNotice {
        bytes32 root;
        address by;
        uint64 at;
        bytes32 reasonHash;
        uint256 flagged;
    }

    mapping(bytes32 lotId => Lot) private _lots;
    mapping(bytes32 lotId => CustodyEntry[]) private _custody;
    mapping(bytes32 lotId => bytes32[]) private _children;
    mapping(bytes32 lotId => Transfer) private _pending;
    IAdmissionGate private _gate;
    mapping(uint256 transformationId => Transformation) private _transformations;
    mapping(bytes32 lotId => uint256[]) private _consumedBy;
    uint256 private _transformationCount;
    mapping(uint256 noticeId => RecallNotice) private _notices;
    mapping(bytes32 lotId => uint256 noticeId) private _recallOf;
    uint256 private _noticeCount;

    /// @notice The admission gate does not admit `party` for `action`.
    error LotRegistryNotAdmitted(address party, bytes32 action);
    /// @notice The admission gate cannot be the zero address.
    error LotRegistryZeroGate();
    /// @notice A lot id must have 1 to {MAX_LOT_ID_BYTES} bytes; this one has `length`.
    error LotRegistryInvalidLotId(uint256 length);
    /// @notice The caller already has a lot with this id (its key is `lotId`).
    error LotRegistryLotExists(bytes32 lotId);
    /// @notice No lot has this id.
    error LotRegistryUnknownLot(bytes32 lotId);
    /// @notice A lot's (or a child's) quantity must be above zero.
    error LotRegistryZeroQuantity();
    /// @notice A lot needs a unit (e.g. "kg", "pcs").
    error LotRegistryZeroUnit();
    /// @notice The production window ends before it starts.
    error LotRegistryInvalidWindow(uint64 producedFromMs, uint64 producedToMs);
    /// @notice Only the lot's custodian may do this.
    error LotRegistryNotCustodian(address caller, bytes32 lotId, address custodian);
    /// @notice The lot has been split entirely: nothing remains to move or split.
    error LotRegistryLotFullySplit(bytes32 lotId);
    /// @notice A split names `children` child ids and `quantities` quantities, or none, or too many.
    error LotRegistryInvalidSplit(uint256 children, uint256 quantities);
    /// @notice The children's quantities add up to more than the lot's remaining quantity.
    error LotRegistrySplitExceedsRemaining(bytes32 lotId, uint256 requested, uint256 remaining);
    /// @notice The lot already has a pending transfer, to `to`.
    error LotRegistryTransferPending(bytes32 lotId, address to);
    /// @notice The lot has no pending transfer.
    error LotRegistryNoPendingTransfer(bytes32 lotId);
    /// @notice A transfer to the zero address or to the custodian itself.
    error LotRegistryInvalidRecipient(address to);
    /// @notice Only the proposed recipient `expected` may accept or reject the pending transfer.
    error LotRegistryNotRecipient(address caller, bytes32 lotId, address expected);
    /// @notice The lot has `count` custody entries; there is none at `index`.
    error LotRegistryNoCustodyEntry(bytes32 lotId, uint256 index, uint256 count);
    /// @notice Only the proposer `expected` may cancel the pending transfer.
    error LotRegistryNotProposer(address caller, bytes32 lotId, address expected);
    /// @notice Transformations consumed the whole lot: nothing remains to move, split or consume.
    error LotRegistryLotConsumed(bytes32 lotId);
    /// @notice A transformation needs 1 to {MAX_TRANSFORM_INPUTS} inputs and 1 to {MAX_TRANSFORM_OUTPUTS}
    /// outputs; this one has `inputs` and `outputs`.
    error LotRegistryInvalidTransformation(uint256 inputs, uint256 outputs);
    /// @notice The transformation names input lot `lotId` twice.
    error LotRegistryDuplicateInput(bytes32 lotId);
    /// @notice The transformation consumes `requested` of lot `lotId`, which has only `remaining` left.
    error LotRegistryConsumptionExceedsRemaining(bytes32 lotId, uint256 requested, uint256 remaining);
    /// @notice The input's quantity is declared in `declared`, but lot `lotId` is counted in `unit`.
    error LotRegistryUnitMismatch(bytes32 lotId, bytes32 declared, bytes32 unit);
    /// @notice No transformation has this id.
    error LotRegistryUnknownTransformation(uint256 transformationId);
    /// @notice A recall needs the hash of its reason (not zero).
    error LotRegistryZeroReason();
    /// @notice Only the lot's producer `producer`, or a party admitted for {RECALL_ACTION}, may recall it.
    error LotRegistryNotRecaller(address caller, bytes32 lotId, address producer);
    /// @notice The lot is already recalled, or flagged, under notice `noticeId`.
    error LotRegistryAlreadyRecalled(bytes32 lotId, uint256 noticeId);
    /// @notice No recall notice has this id.
    error LotRegistryUnknownNotice(uint256 noticeId);
    /// @notice A flagging batch names 1 to {MAX_FLAG_BATCH} lots; this one names `count`.
    error LotRegistryInvalidFlagBatch(uint256 count);
    /// @notice Lot `lotId` is neither split off nor made from a recalled or flagged lot: no recall reaches it.
    error LotRegistryNotDownstream(uint256 noticeId, bytes32 lotId);

    /// @notice A lot was opened by `supplier`, its first custodian.
    event LotOpened(
        bytes32 indexed lotId,
        uint64 indexed gtin,
        address indexed supplier,
        string lotIdText,
        uint256 quantity,
        bytes32 unit,
        uint64 producedFromMs,
        uint64 producedToMs
    );
    /// @notice Child lot `childId` of `quantity` was split off `parentId`, which keeps `parentRemaining`.
    event LotSplit(
        bytes32 indexed parentId,
        bytes32 indexed childId,
        address indexed custodian,
        string childLotIdText,
        uint256 quantity,
        uint256 parentRemaining
    );
    /// @notice `by` consumed `quantity` of lot `lotId` in transformation `transformationId`; the lot keeps
    /// `remaining`.
    event LotConsumed(
        bytes32 indexed lotId,
        uint256 indexed transformationId,
        address indexed by,
        uint256 quantity,
        uint256 remaining
    );
    /// @notice Lot `lotId` (opened just before, {LotOpened}) is an output of transformation `transformationId`.
    event LotProduced(bytes32 indexed lotId, uint256 indexed transformationId);
    /// @notice `by` recorded transformation `transformationId`: it consumed `consumed[i]` of each lot
    /// `inputs[i]` and opened the lots `outputs` (emitted after every {LotConsumed} and {LotProduced} of it).
    event LotTransformed(
        uint256 indexed transformationId,
        address indexed by,
        bytes32[] inputs,
        uint256[] consumed,
        bytes32[] outputs
    );
    /// @notice `issuer` named lot `lotId` (the key) with the id whose hash is `lotIdHash` (Reading v1's `lotId`).
    event LotNamed(bytes32 indexed lotIdHash, address indexed issuer, bytes32 indexed lotId);
    /// @notice The custodian `from` proposed to hand the lot to `to`.
    event TransferProposed(bytes32 indexed lotId, address indexed from, address indexed to);
    /// @notice `to` accepted the lot from `from`: `to` is the custodian now.
    event TransferAccepted(bytes32 indexed lotId, address indexed from, address indexed to);
    /// @notice `to` rejected the transfer proposed by `from`, who keeps the lot.
    event TransferRejected(bytes32 indexed lotId, address indexed from, address indexed to);
    /// @notice `from` cancelled its pending transfer to `to`.
    event TransferCancelled(bytes32 indexed lotId, address indexed from, address indexed to);
    /// @notice The admission gate changed.
    event AdmissionGateSet(address gate);
    /// @notice `by` recalled lot `lotId` under notice `noticeId`, for the reason whose hash is `reasonHash`.
    event RecallIssued(uint256 indexed noticeId, bytes32 indexed lotId, address indexed by, bytes32 reasonHash);
    /// @notice Lot `lotId`, downstream of notice `noticeId`'s recalled lot, was flagged under it.
    event LotFlagged(uint256 indexed noticeId, bytes32 indexed lotId);

    /**
     * @param admin Receives the default admin role (may replace the admission gate), handed over in two
     * steps ({ADMIN_TRANSFER_DELAY}); not zero (`AccessControlInvalidDefaultAdmin`).
     * @param gate The admission gate asked before lots are opened or received.
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

    // ------------------------------------------------------------------ lots

    /**
     * @notice Open a lot; the caller (admitted for {OPEN_ACTION}) is its supplier and first custodian.
     * @param lotId The lot's id as devices write it in readings' `lot_id` (1 to 256 bytes of UTF-8).
     * @param gtin The product's GTIN-14: 14 ASCII digits, check digit included.
     * @param quantity How much the lot holds, in `unit`; above zero.
     * @param unit The unit, ASCII right-padded with zeros (e.g. "kg", "pcs"); not zero.
     * @param producedFromMs Start of the production window (Unix ms).
     * @param producedToMs End of the production window (Unix ms), not before its start.
     * @return key The lot's key, `keccak256(abi.encode(msg.sender, keccak256(bytes(lotId))))` ({lotKey}).
     */
    function openLot(
        string calldata lotId,
        string calldata gtin,
        uint256 quantity,
        bytes32 unit,
        uint64 producedFromMs,
        uint64 producedToMs
    ) external returns (bytes32 key) {
        _requireAdmitted(msg.sender, OPEN_ACTION);
        return _open(lotId, gtin, quantity, unit, producedFromMs, producedToMs);
    }

    /**
     * @notice Split child lots off a lot, by its custodian, while no transfer is pending.
     * @dev The parent keeps what the children do not take; at zero it becomes `Split`. Children inherit
     * product, unit, production window and supplier, and start in the caller's custody.
     * @param lotId The parent lot's key.
     * @param childIds The children's ids (1 to 256 bytes each; keyed under the caller, who names them).
     * @param quantities The children's quantities (each above zero; together at most the remaining).
     * @return keys The children's keys, in order.
     */
    function splitLot(
        bytes32 lotId,
        string[] calldata childIds,
        uint256[] calldata quantities
    ) external returns (bytes32[] memory keys) {
        Lot storage parent = _requireLot(lotId);
        _requireCustodian(parent, lotId);
        _requireNotSpent(parent, lotId);
        Transfer storage pending = _pending[lotId];
        if (pending.to != address(0)) revert LotRegistryTransferPending(lotId, pending.to);
        uint256 n = childIds.length;
        if (n == 0 || n != quantities.length || n > MAX_SPLIT_CHILDREN) {
            revert LotRegistryInvalidSplit(n, quantities.length);
        }
        uint256 total = 0;
        for (uint256 i = 0; i < n; ++i) {
            if (quantities[i] == 0) revert LotRegistryZeroQuantity();
            total += quantities[i];
        }
        uint256 remaining = parent.remaining;
        if (total > remaining) revert LotRegistrySplitExceedsRemaining(lotId, total, remaining);

        keys = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            remaining -= quantities[i];
            keys[i] = _splitOff(parent, lotId, childIds[i], quantities[i], remaining);
        }
    }

    // ------------------------------------------------------------------ transformation

    /**
     * @notice Record a transformation: consume part or all of lots the caller holds and open new lots
     * made from them, as one step with one id.
     * @dev The caller must be admitted for {OPEN_ACTION} (it opens lots) and be the custodian of every
     * input. An input must still have something left (not `Split` or `Consumed`) and no pending transfer
     * (it is promised to the recipient); each input's declared unit must be the lot's own, and its
     * quantity above zero and at most its `remaining`. No lot may be named twice. The quality verdict
     * (the QualityCertifier's) is not asked: consuming a rejected lot is recorded like any other, and the
     * lineage carries it downstream to whoever traces or recalls. Outputs are checked as {openLot} checks
     * a lot (id new under the caller, GTIN-14 check digit, quantity, unit, window). An input left at zero
     * becomes `Consumed`; one with a remainder stays `Active`, in the caller's custody.
     * @param inputs 1 to {MAX_TRANSFORM_INPUTS} (lot key, quantity consumed, unit of that quantity).
     * @param outputs 1 to {MAX_TRANSFORM_OUTPUTS} lots to open, keyed under the caller.
     * @return transformationId The transformation's id (1, 2, ...).
     * @return keys The output lots' keys, in order.
     */
    function transform(
        TransformInput[] calldata inputs,
        TransformOutput[] calldata outputs
    ) external returns (uint256 transformationId, bytes32[] memory keys) {
        _requireAdmitted(msg.sender, OPEN_ACTION);
        uint256 nIn = inputs.length;
        uint256 nOut = outputs.length;
        if (nIn == 0 || nOut == 0 || nIn > MAX_TRANSFORM_INPUTS || nOut > MAX_TRANSFORM_OUTPUTS) {
            revert LotRegistryInvalidTransformation(nIn, nOut);
        }
        transformationId = ++_transformationCount;
        Transformation storage t = _transformations[transformationId];
        t.by = msg.sender;
        t.at = uint64(block.timestamp);
        for (uint256 i = 0; i < nIn; ++i) {
            TransformInput calldata input = inputs[i];
            for (uint256 j = 0; j < i; ++j) {
                if (inputs[j].lotId == input.lotId) revert LotRegistryDuplicateInput(input.lotId);
            }
            _consume(input, transformationId);
            t.inputs.push(input.lotId);
            t.consumed.push(input.quantity);
        }
        keys = new bytes32[](nOut);
        for (uint256 i = 0; i < nOut; ++i) {
            TransformOutput calldata o = outputs[i];
            bytes32 key = _open(o.lotId, o.gtin, o.quantity, o.unit, o.producedFromMs, o.producedToMs);
            _lots[key].producedBy = transformationId;
            t.outputs.push(key);
            keys[i] = key;
            emit LotProduced(key, transformationId);
        }
        emit LotTransformed(transformationId, msg.sender, t.inputs, t.consumed, keys);
    }

    // ------------------------------------------------------------------ recall

    /**
     * @notice Recall a lot: record a notice on it, by its producer (the supplier; for a transformation
     * output, the transformer) or a party admitted for {RECALL_ACTION}. Any lot may be recalled, whatever
     * its status: a consumed input is the usual case. The lots downstream are flagged by {flagDownstream}.
     * @param lotId The lot's key; not already recalled or flagged.
     * @param reasonHash The hash of the reason (its text stays off chain); not zero.
     * @return noticeId The notice's id (1, 2, ...).
     */
    function recall(bytes32 lotId, bytes32 reasonHash) external returns (uint256 noticeId) {
        Lot storage l = _requireLot(lotId);
        if (reasonHash == bytes32(0)) revert LotRegistryZeroReason();
        if (msg.sender != l.supplier && !_gate.isAdmitted(msg.sender, RECALL_ACTION)) {
            revert LotRegistryNotRecaller(msg.sender, lotId, l.supplier);
        }
        uint256 existing = _recallOf[lotId];
        if (existing != 0) revert LotRegistryAlreadyRecalled(lotId, existing);
        noticeId = ++_noticeCount;
        _notices[noticeId] = RecallNotice({
            root: lotId,
            by: msg.sender,
            at: uint64(block.timestamp),
            reasonHash: reasonHash,
            flagged: 0
        });
        _recallOf[lotId] = noticeId;
        emit RecallIssued(noticeId, lotId, msg.sender, reasonHash);
    }

    /**
     * @notice Flag lots downstream of a recall, in batches; anyone may call. Each lot must be a direct
     * child of a recalled or flagged lot (of this notice or another): split off it ({children}), or an
     * output of a transformation that consumed it ({inputsOf}); lots earlier in the batch count. A lot
     * already recalled or flagged is skipped, so overlapping batches (a diamond in the graph, two callers)
     * do not fail.
     * @param noticeId The notice the lots are flagged under.
     * @param lots 1 to {MAX_FLAG_BATCH} lot keys, parents before their children.
     * @return flagged How many of them this call flagged (the rest were already).
     */
    function flagDownstream(uint256 noticeId, bytes32[] calldata lots) external returns (uint256 flagged) {
        RecallNotice storage notice = _notices[noticeId];
        if (notice.by == address(0)) revert LotRegistryUnknownNotice(noticeId);
        uint256 n = lots.length;
        if (n == 0 || n > MAX_FLAG_BATCH) revert LotRegistryInvalidFlagBatch(n);
        for (uint256 i = 0; i < n; ++i) {
            bytes32 lotId = lots[i];
            Lot storage l = _requireLot(lotId);
            if (_recallOf[lotId] != 0) continue;
            if (!_hasFlaggedSource(l)) revert LotRegistryNotDownstream(noticeId, lotId);
            _recallOf[lotId] = noticeId;
            ++flagged;
            emit LotFlagged(noticeId, lotId);
        }
        notice.flagged += flagged;
    }

    // ------------------------------------------------------------------ custody

    /**
     * @notice Propose to hand the lot to `to`, a party admitted for {TRANSFER_ACTION}; by the custodian.
     * @param lotId The lot's key.
     * @param to The proposed next custodian.
     */
    function proposeTransfer(bytes32 lotId, address to) external {
        Lot storage l = _requireLot(lotId);
        _requireCustodian(l, lotId);
        _requireNotSpent(l, lotId);
        Transfer storage pending = _pending[lotId];
        if (pending.to != address(0)) revert LotRegistryTransferPending(lotId, pending.to);
        if (to == address(0) || to == msg.sender) revert LotRegistryInvalidRecipient(to);
        _requireAdmitted(to, TRANSFER_ACTION);
        _pending[lotId] = Transfer({from: msg.sender, to: to, proposedAt: uint64(block.timestamp)});
        emit TransferProposed(lotId, msg.sender, to);
    }

    /**
     * @notice Accept the pending transfer: the caller (the proposed recipient, still admitted for
     * {TRANSFER_ACTION}) becomes the custodian.
     * @param lotId The lot's key.
     */
    function acceptTransfer(bytes32 lotId) external {
        Transfer memory t = _requireRecipient(lotId);
        _requireAdmitted(msg.sender, TRANSFER_ACTION);
        delete _pending[lotId];
        _lots[lotId].custodian = msg.sender;
        _custody[lotId].push(CustodyEntry({custodian: msg.sender, since: uint64(block.timestamp)}));
        emit TransferAccepted(lotId, t.from, msg.sender);
    }

    /**
     * @notice Reject the pending transfer; by the proposed recipient. The custodian keeps the lot.
     * @param lotId The lot's key.
     */
    function rejectTransfer(bytes32 lotId) external {
        Transfer memory t = _requireRecipient(lotId);
        delete _pending[lotId];
        emit TransferRejected(lotId, t.from, msg.sender);
    }

    /**
     * @notice Withdraw the pending transfer; by its proposer (the custodian).
     * @param lotId The lot's key.
     */
    function cancelTransfer(bytes32 lotId) external {
        _requireLot(lotId);
        Transfer memory t = _pending[lotId];
        if (t.to == address(0)) revert LotRegistryNoPendingTransfer(lotId);
        if (msg.sender != t.from) revert LotRegistryNotProposer(msg.sender, lotId, t.from);
        delete _pending[lotId];
        emit TransferCancelled(lotId, msg.sender, t.to);
    }

    // ------------------------------------------------------------------ views

    /// @notice The key of the lot `issuer` names `lotId`: `keccak256(abi.encode(issuer, keccak256(bytes(lotId))))`.
    function lotKey(address issuer, string calldata lotId) external pure returns (bytes32) {
        return _lotKey(issuer, keccak256(bytes(lotId)));
    }

    /// @notice The lot's id hash, `keccak256(bytes(lotId))`: what its readings carry as `lotId`.
    function lotIdHashOf(bytes32 lotId) external view returns (bytes32) {
        return keccak256(bytes(_requireLot(lotId).lotId));
    }

    /// @notice Who named the lot (the supplier who opened it, or the custodian who split it off).
    function issuerOf(bytes32 lotId) external view returns (address) {
        _requireLot(lotId);
        return _custody[lotId][0].custodian;
    }

    /**
     * @notice Whether `party` is the lot's supplier or has held it: a custodian in its full custody
     * chain ({fullCustodyChain}: its own, and each ancestor's up to the split that led here).
     */
    function hasHeld(bytes32 lotId, address party) external view returns (bool) {
        if (party == _requireLot(lotId).supplier) return true;
        bytes32 id = lotId;
        uint256 take = type(uint256).max;
        while (true) {
            CustodyEntry[] storage entries = _custody[id];
            uint256 n = entries.length;
            if (take < n) n = take;
            for (uint256 i = 0; i < n; ++i) {
                if (entries[i].custodian == party) return true;
            }
            Lot storage l = _lots[id];
            if (l.parent == bytes32(0)) return false;
            take = l.parentCustodyCount;
            id = l.parent;
        }
    }

    /// @notice The GTIN that 14-digit `text` spells; reverts as {openLot} would on a malformed GTIN.
    function parseGtin(string calldata text) external pure returns (uint64) {
        return Gtin.parse(text);
    }

    /// @notice Whether a lot with this key exists.
    function exists(bytes32 lotId) external view returns (bool) {
        return _lots[lotId].status != Status.None;
    }

    /// @notice The lot (reverts for an unknown lot).
    function lot(bytes32 lotId) external view returns (Lot memory) {
        return _requireLot(lotId);
    }

    /// @notice The lot's product (reverts for an unknown lot).
    function gtinOf(bytes32 lotId) external view returns (uint64) {
        return _requireLot(lotId).gtin;
    }

    /// @notice The lot's current custodian (reverts for an unknown lot).
    function custodianOf(bytes32 lotId) external view returns (address) {
        return _requireLot(lotId).custodian;
    }

    /// @notice The lot's pending transfer, all zero when none (reverts for an unknown lot).
    function pendingTransfer(bytes32 lotId) external view returns (Transfer memory) {
        _requireLot(lotId);
        return _pending[lotId];
    }

    /// @notice The lot's custodians in order, each with the block time it took over.
    function custodyChain(bytes32 lotId) external view returns (CustodyEntry[] memory) {
        _requireLot(lotId);
        return _custody[lotId];
    }

    /**
     * @notice The lot's custody since its original lot was opened: each ancestor's chain up to the split
     * that led here, then the lot's own. A child's first custodian, who split it off and held the parent
     * then, carries on the parent's last link and is not repeated.
     */
    function fullCustodyChain(bytes32 lotId) external view returns (CustodyLink[] memory links) {
        _requireLot(lotId);
        uint256 total = 0;
        bytes32 id = lotId;
        uint256 take = type(uint256).max;
        while (true) {
            Lot storage l = _lots[id];
            uint256 n = _custody[id].length;
            if (take < n) n = take;
            if (l.parent == bytes32(0)) {
                total += n;
                break;
            }
            total += n - 1;
            take = l.parentCustodyCount;
            id = l.parent;
        }
        links = new CustodyLink[](total);
        id = lotId;
        take = type(uint256).max;
        while (true) {
            Lot storage l = _lots[id];
            CustodyEntry[] storage entries = _custody[id];
            uint256 n = entries.length;
            if (take < n) n = take;
            uint256 first = l.parent == bytes32(0) ? 0 : 1;
            for (uint256 i = n; i > first; --i) {
                CustodyEntry storage e = entries[i - 1];
                links[--total] = CustodyLink({lotId: id, custodian: e.custodian, since: e.since});
            }
            if (first == 0) break;
            take = l.parentCustodyCount;
            id = l.parent;
        }
    }

    /// @notice How many custodians the lot has had.
    function custodyCount(bytes32 lotId) external view returns (uint256) {
        _requireLot(lotId);
        return _custody[lotId].length;
    }

    /// @notice The `index`-th custodian of the lot (0: the first).
    function custodyEntry(bytes32 lotId, uint256 index) external view returns (CustodyEntry memory) {
        _requireLot(lotId);
        CustodyEntry[] storage chain = _custody[lotId];
        if (index >= chain.length) revert LotRegistryNoCustodyEntry(lotId, index, chain.length);
        return chain[index];
    }

    /// @notice The keys of the lots split off this lot, in order.
    function children(bytes32 lotId) external view returns (bytes32[] memory) {
        _requireLot(lotId);
        return _children[lotId];
    }

    /// @notice How many transformations have been recorded (their ids are 1 to this).
    function transformationCount() external view returns (uint256) {
        return _transformationCount;
    }

    /// @notice The transformation with this id (reverts for an unknown id).
    function transformation(uint256 transformationId) external view returns (Transformation memory) {
        return _requireTransformation(transformationId);
    }

    /**
     * @notice What the lot was made from: the inputs of the transformation that opened it and the
     * quantity of each consumed (both empty for a lot opened by {openLot} or split off).
     * @param lotId An output lot's key.
     */
    function inputsOf(bytes32 lotId) external view returns (bytes32[] memory lots, uint256[] memory consumed) {
        uint256 id = _requireLot(lotId).producedBy;
        if (id == 0) return (lots, consumed);
        Transformation storage t = _transformations[id];
        return (t.inputs, t.consumed);
    }

    /**
     * @notice What was made from the lot: the outputs of every transformation that consumed it, in order
     * (empty when none did). Its split-off children are {children}.
     * @param lotId An input lot's key.
     */
    function outputsOf(bytes32 lotId) external view returns (bytes32[] memory lots) {
        _requireLot(lotId);
        uint256[] storage ids = _consumedBy[lotId];
        uint256 total = 0;
        for (uint256 i = 0; i < ids.length; ++i) {
            total += _transformations[ids[i]].outputs.length;
        }
        lots = new bytes32[](total);
        uint256 k = 0;
        for (uint256 i = 0; i < ids.length; ++i) {
            bytes32[] storage outs = _transformations[ids[i]].outputs;
            for (uint256 j = 0; j < outs.length; ++j) {
                lots[k++] = outs[j];
            }
        }
    }

    /// @notice The ids of the transformations that consumed the lot, in order.
    function consumedBy(bytes32 lotId) external view returns (uint256[] memory) {
        _requireLot(lotId);
        return _consumedBy[lotId];
    }

    /// @notice Whether the lot is recalled or flagged downstream of a recall (false for an unknown key).
    function isRecalled(bytes32 lotId) external view returns (bool) {
        return _recallOf[lotId] != 0;
    }

    /// @notice The notice the lot is recalled or flagged under (0: none; unknown keys too).
    function recallNoticeOf(bytes32 lotId) external view returns (uint256) {
        return _recallOf[lotId];
    }

    /// @notice The recall notice with this id (reverts for an unknown id).
    function recallNotice(uint256 noticeId) external view returns (RecallNotice memory) {
        RecallNotice storage notice = _notices[noticeId];
        if (notice.by == address(0)) revert LotRegistryUnknownNotice(noticeId);
        return notice;
    }

    /// @notice How many recall notices have been recorded (their ids are 1 to this).
    function recallNoticeCount() external view returns (uint256) {
        return _noticeCount;
    }

    /// @notice The admission gate in force.
    function admissionGate() external view returns (IAdmissionGate) {
        return _gate;
    }

    // ------------------------------------------------------------------ internal

    /// @dev A lot's key: its id hash scoped to its issuer.
    function _lotKey(address issuer, bytes32 lotIdHash) private pure returns (bytes32) {
        return keccak256(abi.encode(issuer, lotIdHash));
    }

    /// @dev Open a lot named, supplied and held by the caller, after {openLot}'s checks (not admission).
    function _open(
        string calldata lotId,
        string calldata gtin,
        uint256 quantity,
        bytes32 unit,
        uint64 producedFromMs,
        uint64 producedToMs
    ) private returns (bytes32 key) {
        uint64 product = Gtin.parse(gtin);
        if (quantity == 0) revert LotRegistryZeroQuantity();
        if (unit == bytes32(0)) revert LotRegistryZeroUnit();
        if (producedToMs < producedFromMs) revert LotRegistryInvalidWindow(producedFromMs, producedToMs);
        Lot storage l;
        (key, l) = _create(lotId, quantity);
        l.gtin = product;
        l.producedFromMs = producedFromMs;
        l.producedToMs = producedToMs;
        l.unit = unit;
        l.supplier = msg.sender;
        emit LotOpened(key, product, msg.sender, lotId, quantity, unit, producedFromMs, producedToMs);
    }

    /// @dev Consume `input.quantity` of the input lot, held by the caller, in transformation `id`.
    function _consume(TransformInput calldata input, uint256 id) private {
        bytes32 lotId = input.lotId;
        Lot storage l = _requireLot(lotId);
        _requireCustodian(l, lotId);
        _requireNotSpent(l, lotId);
        Transfer storage pending = _pending[lotId];
        if (pending.to != address(0)) revert LotRegistryTransferPending(lotId, pending.to);
        if (input.unit != l.unit) revert LotRegistryUnitMismatch(lotId, input.unit, l.unit);
        uint256 quantity = input.quantity;
        if (quantity == 0) revert LotRegistryZeroQuantity();
        uint256 remaining = l.remaining;
        if (quantity > remaining) revert LotRegistryConsumptionExceedsRemaining(lotId, quantity, remaining);
        remaining -= quantity;
        l.remaining = remaining;
        l.consumed += quantity;
        if (remaining == 0) l.status = Status.Consumed;
        _consumedBy[lotId].push(id);
        emit LotConsumed(lotId, id, msg.sender, quantity, remaining);
    }

    /// @dev A new active lot named and held by the caller; the caller fills in product, window, unit,
    /// supplier, parent.
    function _create(string calldata lotId, uint256 quantity) private returns (bytes32 key, Lot storage l) {
        uint256 length = bytes(lotId).length;
        if (length == 0 || length > MAX_LOT_ID_BYTES) revert LotRegistryInvalidLotId(length);
        bytes32 idHash = keccak256(bytes(lotId));
        key = _lotKey(msg.sender, idHash);
        l = _lots[key];
        if (l.status != Status.None) revert LotRegistryLotExists(key);
        emit LotNamed(idHash, msg.sender, key);
        l.lotId = lotId;
        l.openedAt = uint64(block.timestamp);
        l.quantity = quantity;
        l.remaining = quantity;
        l.status = Status.Active;
        l.custodian = msg.sender;
        _custody[key].push(CustodyEntry({custodian: msg.sender, since: uint64(block.timestamp)}));
    }

    /// @dev Take `quantity` off `parent` (leaving `remaining`) into a new child lot `childId`.
    function _splitOff(
        Lot storage parent,
        bytes32 parentId,
        string calldata childId,
        uint256 quantity,
        uint256 remaining
    ) private returns (bytes32 child) {
        parent.remaining = remaining;
        if (remaining == 0) parent.status = Status.Split;
        Lot storage c;
        (child, c) = _create(childId, quantity);
        c.gtin = parent.gtin;
        c.producedFromMs = parent.producedFromMs;
        c.producedToMs = parent.producedToMs;
        c.unit = parent.unit;
        c.supplier = parent.supplier;
        c.parentCustodyCount = uint64(_custody[parentId].length);
        c.parent = parentId;
        _children[parentId].push(child);
        emit LotSplit(parentId, child, msg.sender, childId, quantity, remaining);
    }

    /// @dev Whether the lot's split parent, or an input of the transformation that opened it, is recalled
    /// or flagged.
    function _hasFlaggedSource(Lot storage l) private view returns (bool) {
        if (l.parent != bytes32(0)) return _recallOf[l.parent] != 0;
        uint256 id = l.producedBy;
        if (id == 0) return false;
        bytes32[] storage inputs = _transformations[id].inputs;
        for (uint256 i = 0; i < inputs.length; ++i) {
            if (_recallOf[inputs[i]] != 0) return true;
        }
        return false;
    }

    /// @dev Set a non-zero admission gate.
    function _setGate(IAdmissionGate gate) private {
        if (address(gate) == address(0)) revert LotRegistryZeroGate();
        _gate = gate;
        emit AdmissionGateSet(address(gate));
    }

    /// @dev Revert unless the gate admits `party` for `action` now.
    function _requireAdmitted(address party, bytes32 action) private view {
        if (!_gate.isAdmitted(party, action)) revert LotRegistryNotAdmitted(party, action);
    }

    /// @dev The lot, or revert when there is none.
    function _requireLot(bytes32 lotId) private view returns (Lot storage l) {
        l = _lots[lotId];
        if (l.status == Status.None) revert LotRegistryUnknownLot(lotId);
    }

    /// @dev Revert when nothing of the lot remains (entirely split, or consumed).
    function _requireNotSpent(Lot storage l, bytes32 lotId) private view {
        if (l.status == Status.Split) revert LotRegistryLotFullySplit(lotId);
        if (l.status == Status.Consumed) revert LotRegistryLotConsumed(lotId);
    }

    /// @dev The transformation, or revert when there is none.
    function _requireTransformation(uint256 id) private view returns (Transformation storage t) {
        t = _transformations[id];
        if (t.by == address(0)) revert LotRegistryUnknownTransformation(id);
    }

    /// @dev Revert unless the caller holds the lot.
    function _requireCustodian(Lot storage l, bytes32 lotId) private view {
        if (msg.sender != l.custodian) revert LotRegistryNotCustodian(msg.sender, lotId, l.custodian);
    }

    /// @dev The lot's pending transfer, or revert unless there is one to the caller.
    function _requireRecipient(bytes32 lotId) private view returns (Transfer memory t) {
        _requireLot(lotId);
        t = _pending[lotId];
        if (t.to == address(0)) revert LotRegistryNoPendingTransfer(lotId);
        if (msg.sender != t.to) revert LotRegistryNotRecipient(msg.sender, lotId, t.to);
    }
}
