// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {IAdmissionGate} from "./IAdmissionGate.sol";

/**
 * @title CreditRegistry
 * @notice Factories' credit records, the factories' consent to banks reading them, and the anchored
 * log of every bank query.
 *
 * Records are commitments (issue 14: the chain carries no secret). Every consortium member runs a node
 * and reads every slot, log and calldata byte of this contract, so a record's figures (grade, PD, limit,
 * currency, reasons) never reach it. The analytics oracle (a party admitted for {PUBLISH_ACTION})
 * publishes `recordCommitment`: the EIP-712 struct hash of the canonical record with a fresh 256-bit
 * salt (docs/credit-commitments.md defines the encoding; the salt makes it impossible to try every
 * grade, PD and limit against it). In clear it keeps only what is no figure: how long the record is
 * valid, the model version, the oracle, and the keccak commitment of the analytics result it was
 * computed from. A new record supersedes the previous one; every record stays readable ({recordAt}).
 * A record is valid while the block time is before its `validUntil`.
 *
 * Envelopes. The record itself, with its salt, reaches each bank with a standing consent encrypted to
 * that bank's secp256k1 account key (ECIES; the bank registers its public key once,
 * {registerEnvelopeKey}, and the contract checks that the key is the caller's own). The oracle hands the
 * envelopes in with the record ({publishRecord}) or later, to a bank consented since
 * ({deliverEnvelopes}). An envelope is addressed by consent id, never by bank: each is emitted as a
 * {CreditEnvelope} log indexed by factory, consent id and record, and a bank finds its own by the
 * consent ids it holds the openings of (or by trying its key on each). The contract checks that the
 * consent id is one of the factory's and stands now; it cannot check which bank it names, nor that the
 * bank registered a key: the oracle, which holds the consent's opening, checks both off chain before it
 * seals (and seals to the key of the bank the opening names). Once a factory revokes, no new envelope is
 * accepted under that consent id. Revocation cannot take back envelopes already delivered (they stay in
 * the chain's logs, readable by the bank's key), nor what the bank learnt from them.
 *
 * One oracle per factory. Each factory is bound to one oracle ({oracleOf}): the first admitted oracle
 * to publish for a factory is bound to it, and from then on only that oracle publishes the factory's
 * records (another gets {CreditRegistryNotFactoryOracle}): a second oracle cannot downgrade a factory
 * or make its record lapse. The admin may rebind a factory to another admitted oracle
 * ({setFactoryOracle}), e.g. after a squatting oracle bound a factory first. Histories are kept per
 * oracle: {recordCount}, {recordAt}, {currentRecord} and {isCurrentValid} read the bound oracle's,
 * and {recordCountBy} / {recordAtBy} let a reader choose any oracle's.
 *
 * Consent, as salted commitments (issue 14: the chain does not publish who banks with whom). A consent
 * is keyed by its consent id, `keccak256(abi.encode(factory, bank, salt))` with a fresh 256-bit salt
 * ({consentIdOf}; docs/credit-commitments.md). The bank's address never reaches the chain: not in
 * calldata, storage nor logs. A factory (admitted for {CONSENT_ACTION}) grants a consent id
 * ({grantConsent}) until `expiresAt` (exclusive) and may revoke it at any time ({revokeConsent}); granting
 * the same id again replaces the expiry (and lifts a revocation). A consent id belongs to the factory
 * that granted it first. {consentStands} holds while the consent is granted, not revoked and not expired.
 * Revoking needs no admission: a suspended factory can still withdraw its consent.
 *
 * What the contract cannot check with the bank hidden: that the id opens to a bank at all, and that the
 * bank is admitted for {QUERY_ACTION}. Those checks happen where the bank is known, against the opening
 * (factory, bank, salt): the service when it prepares a grant, the oracle before it seals an envelope
 * under a consent id, and the service at every read of a bank (it asks the admission gate then). A
 * member's node shows only that a factory has N consent ids and when each was granted, renewed and
 * revoked, not to whom.
 *
 * Access log. The service logs every bank query off chain and anchors the log in batches, like
 * readings: a Merkle root, the number of entries, and the window (Unix ms) they cover. Batches are
 * numbered from 1 and a root is anchored only once. Anchoring needs {ACCESS_LOG_ANCHOR_ROLE}.
 */
contract CreditRegistry is AccessControlDefaultAdminRules {
    /// @notice The delay of a two-step admin handover (`beginDefaultAdminTransfer`, then the new admin's
    /// `acceptDefaultAdminTransfer` once it has passed); the admin may change it, itself with a delay.
    uint48 public constant ADMIN_TRANSFER_DELAY = 3 days;
    /// @notice The action asked of the admission gate before a party publishes a credit record.
    bytes32 public constant PUBLISH_ACTION = keccak256("supet.credit.publish");
    /// @notice The action asked of the admission gate before a factory grants consent.
    bytes32 public constant CONSENT_ACTION = keccak256("supet.consent.grant");
    /// @notice The action a bank must be admitted for to read a factory's records. The contract does not
    /// ask it (the bank is hidden behind the consent id): the service and the oracle ask the gate where the
    /// consent's opening names the bank.
    bytes32 public constant QUERY_ACTION = keccak256("supet.credit.query");
    /// @notice The role that anchors batches of the bank-query access log.
    bytes32 public constant ACCESS_LOG_ANCHOR_ROLE = keccak256("supet.role.access-log-anchor");
    /// @notice The largest envelope (ciphertext bytes) {publishRecord} and {deliverEnvelopes} accept.
    uint256 public constant MAX_ENVELOPE_BYTES = 4096;
    /// @notice The length of an uncompressed secp256k1 public key without its 0x04 prefix.
    uint256 public constant ENVELOPE_KEY_BYTES = 64;

    /**
     * @notice A credit record as the chain holds it: the commitment to the record and what is no figure.
     * `recordCommitment` is the salted hash of the whole record (docs/credit-commitments.md);
     * `analyticsCommitment` the commitment of the analytics result behind it; `validUntil` and
     * `publishedAt` are Unix seconds; `oracle` is who published it.
     */
    struct CreditRecord {
        bytes32 recordCommitment;
        bytes32 modelVersion;
        bytes32 analyticsCommitment;
        address oracle;
        uint64 validUntil;
        uint64 publishedAt;
    }

    /// @notice A record (with its salt) encrypted to the registered key of the bank behind `consentId`
    /// (ECIES, see the docs); the bank itself is not named.
    struct Envelope {
        bytes32 consentId;
        bytes ciphertext;
    }

    /// @notice A consent as the chain holds it: the factory that granted it and its times (Unix seconds;
    /// `revokedAt` zero unless revoked since the last grant); the bank is behind the consent id.
    struct Consent {
        address factory;
        uint64 grantedAt;
        uint64 expiresAt;
        uint64 revokedAt;
    }

    /// @notice One anchored batch of the access log: its Merkle root, entry count and window (Unix ms).
    struct AccessLogBatch {
        bytes32 root;
        uint32 count;
        uint64 fromMs;
        uint64 toMs;
        uint64 anchoredAt;
        address anchoredBy;
    }

    mapping(address factory => mapping(address oracle => CreditRecord[])) private _records;
    mapping(address factory => address oracle) private _oracleOf;
    mapping(bytes32 consentId => Consent) private _consents;
    mapping(address factory => bytes32[]) private _consentIdsOf;
    AccessLogBatch[] private _batches;
    mapping(bytes32 root => uint256 index) private _batchOf;
    IAdmissionGate private _gate;
    mapping(address account => bytes publicKey) private _envelopeKeys;

    /// @notice The admission gate does not admit `party` for `action`.
    error CreditRegistryNotAdmitted(address party, bytes32 action);
    /// @notice The admission gate cannot be the zero address.
    error CreditRegistryZeroGate();
    /// @notice A record names the zero address as its factory.
    error CreditRegistryZeroFactory();
    /// @notice A record needs its commitment (the salted hash of the record).
    error CreditRegistryZeroRecordCommitment();
    /// @notice A record's `validUntil` must be after the block time `nowSeconds`.
    error CreditRegistryValidityInPast(uint64 validUntil, uint256 nowSeconds);
    /// @notice A record needs a model version.
    error CreditRegistryZeroModelVersion();
    /// @notice A record needs the commitment of the analytics result it was computed from.
    error CreditRegistryZeroAnalyticsCommitment();
    /// @notice The factory has no credit record (from its bound oracle).
    error CreditRegistryNoRecord(address factory);
    /// @notice `factory` is bound to oracle `oracle`; `caller` may not publish its records.
    error CreditRegistryNotFactoryOracle(address factory, address caller, address oracle);
    /// @notice A factory cannot be bound to the zero address as its oracle.
    error CreditRegistryZeroOracle();
    /// @notice The factory has `count` records; there is none at `index`.
    error CreditRegistryNoRecordAt(address factory, uint256 index, uint256 count);
    /// @notice A consent id cannot be zero.
    error CreditRegistryZeroConsentId();
    /// @notice Consent id `consentId` belongs to `owner`, another factory than `caller`.
    error CreditRegistryConsentIdTaken(bytes32 consentId, address owner, address caller);
    /// @notice A consent's `expiresAt` must be after the block time `nowSeconds`.
    error CreditRegistryExpiryInPast(uint64 expiresAt, uint256 nowSeconds);
    /// @notice `factory` has no standing consent `consentId` (not its own, never granted, revoked, or expired).
    error CreditRegistryNoStandingConsent(address factory, bytes32 consentId);
    /// @notice An access-log root cannot be zero.
    error CreditRegistryZeroRoot();
    /// @notice This access-log root was anchored already, as batch `index`.
    error CreditRegistryRootAnchored(bytes32 root, uint256 index);
    /// @notice An access-log batch holds at least one entry.
    error CreditRegistryZeroCount();
    /// @notice An access-log window ends before it starts.
    error CreditRegistryInvalidWindow(uint64 fromMs, uint64 toMs);
    /// @notice An envelope may go only under a consent id of `factory` that stands now (granted by
    /// `factory`, not revoked, not expired).
    error CreditRegistryEnvelopeWithoutConsent(address factory, bytes32 consentId);
    /// @notice An envelope's ciphertext is 1 to {MAX_ENVELOPE_BYTES} bytes; the one under `consentId` is `size`.
    error CreditRegistryEnvelopeSize(bytes32 consentId, uint256 size);
    /// @notice Only the oracle that published `factory`'s record (its bound oracle `oracle`) delivers its envelopes.
    error CreditRegistryNotRecordOracle(address factory, address caller, address oracle);
    /// @notice An envelope key is the caller's own 64-byte uncompressed secp256k1 public key (no 0x04 prefix).
    error CreditRegistryInvalidEnvelopeKey(address account, uint256 length);
    /// @notice There are `count` access-log batches, numbered 1 to `count`; there is no batch `index`.
    error CreditRegistryUnknownBatch(uint256 index, uint256 count);

    /// @notice `oracle` published record `index` (0-based) of `factory`, superseding the previous one.
    event CreditRecordPublished(
        address indexed factory,
        uint256 index,
        bytes32 recordCommitment,
        uint64 validUntil,
        bytes32 modelVersion,
        bytes32 analyticsCommitment,
        address indexed oracle
    );
    /// @notice Record `index` of `factory` (from `oracle`), encrypted to the key of the bank behind
    /// `consentId` (the bank is not named).
    event CreditEnvelope(
        address indexed factory, bytes32 indexed consentId, uint256 indexed index, address oracle, bytes ciphertext
    );
    /// @notice `account` registered `publicKey` (64 bytes) for the envelopes encrypted to it.
    event EnvelopeKeyRegistered(address indexed account, bytes publicKey);
    /// @notice `factory` is bound to `oracle` (was `previous`; zero on the first binding), by `by`.
    event FactoryOracleSet(address indexed factory, address indexed previous, address indexed oracle, address by);
    /// @notice `factory` granted (or renewed) consent `consentId` until `expiresAt` (Unix seconds).
    event ConsentGranted(address indexed factory, bytes32 indexed consentId, uint64 expiresAt);
    /// @notice `factory` revoked its consent `consentId`.
    event ConsentRevoked(address indexed factory, bytes32 indexed consentId);
    /// @notice Access-log batch `index` was anchored: `count` entries from `fromMs` to `toMs` (Unix ms).
    event AccessLogAnchored(uint256 indexed index, bytes32 root, uint32 count, uint64 fromMs, uint64 toMs);
    /// @notice The admission gate changed.
    event AdmissionGateSet(address gate);

    /**
     * @param admin Receives the default admin role (replaces the gate, grants the anchoring role), handed
     * over in two steps ({ADMIN_TRANSFER_DELAY}); not zero (`AccessControlInvalidDefaultAdmin`).
     * @param gate The admission gate asked before records are published and consents granted; not zero.
     * @param accessLogAnchor Receives {ACCESS_LOG_ANCHOR_ROLE} (none when zero).
     */
    constructor(address admin, IAdmissionGate gate, address accessLogAnchor)
        AccessControlDefaultAdminRules(ADMIN_TRANSFER_DELAY, admin)
    {
        if (accessLogAnchor != address(0)) _grantRole(ACCESS_LOG_ANCHOR_ROLE, accessLogAnchor);
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

    /**
     * @notice Bind `factory` to `oracle` (admitted for {PUBLISH_ACTION}); by the admin. The factory's
     * current record is then `oracle`'s latest; the previous oracle's history stays readable
     * ({recordAtBy}).
     * @param factory The factory; not zero.
     * @param oracle The oracle that alone publishes the factory's records from now on; not zero.
     */
    function setFactoryOracle(address factory, address oracle) external onlyRole(DEFAULT_ADMIN_ROLE) {
        if (factory == address(0)) revert CreditRegistryZeroFactory();
        if (oracle == address(0)) revert CreditRegistryZeroOracle();
        _requireAdmitted(oracle, PUBLISH_ACTION);
        _bind(factory, oracle);
    }

    // ------------------------------------------------------------------ records

    /**
     * @notice Publish `factory`'s credit record, superseding its previous one, and deliver its envelopes;
     * by a party admitted for {PUBLISH_ACTION} (the analytics oracle) that is the factory's bound oracle,
     * or binds it now when the factory has none.
     * @param factory The rated factory; not zero.
     * @param recordCommitment The salted hash of the record (docs/credit-commitments.md); not zero.
     * @param validUntil Unix seconds the record is valid until (exclusive); after the block time.
     * @param modelVersion The model that computed the record; not zero.
     * @param analyticsCommitment The keccak commitment of the analytics result behind the record; not zero.
     * @param envelopes The record encrypted to the bank behind each standing consent id of `factory`
     * (see {deliverEnvelopes} for the checks); may be empty.
     * @return index The record's index in the factory's history from this oracle (0-based).
     */
    function publishRecord(
        address factory,
        bytes32 recordCommitment,
        uint64 validUntil,
        bytes32 modelVersion,
        bytes32 analyticsCommitment,
        Envelope[] calldata envelopes
    ) external returns (uint256 index) {
        _requireAdmitted(msg.sender, PUBLISH_ACTION);
        if (factory == address(0)) revert CreditRegistryZeroFactory();
        if (recordCommitment == bytes32(0)) revert CreditRegistryZeroRecordCommitment();
        if (validUntil <= block.timestamp) revert CreditRegistryValidityInPast(validUntil, block.timestamp);
        if (modelVersion == bytes32(0)) revert CreditRegistryZeroModelVersion();
        if (analyticsCommitment == bytes32(0)) revert CreditRegistryZeroAnalyticsCommitment();
        address bound = _oracleOf[factory];
        if (bound == address(0)) {
            _bind(factory, msg.sender);
        } else if (bound != msg.sender) {
            revert CreditRegistryNotFactoryOracle(factory, msg.sender, bound);
        }
        index = _publish(
            factory,
            CreditRecord({
                recordCommitment: recordCommitment,
                modelVersion: modelVersion,
                analyticsCommitment: analyticsCommitment,
                oracle: msg.sender,
                validUntil: validUntil,
                publishedAt: uint64(block.timestamp)
            })
        );
        _deliver(factory, index, envelopes);
    }

    /**
     * @notice Deliver envelopes of record `index` of `factory` (from its bound oracle), e.g. to a bank the
     * factory consented to after the record was published; by that oracle. Each envelope names a consent
     * id of `factory` that stands now ({consentStands}), and its ciphertext is 1 to {MAX_ENVELOPE_BYTES}
     * bytes. The contract sees neither the bank nor the ciphertext's content: the oracle checks the
     * consent's opening (that it opens the id, that the bank it names is admitted for {QUERY_ACTION} and
     * registered a key) before it seals, and the bank checks what it opens against `recordCommitment`.
     * @param factory The factory.
     * @param index The record, in the bound oracle's history of `factory`.
     * @param envelopes One per consent id.
     */
    function deliverEnvelopes(address factory, uint256 index, Envelope[] calldata envelopes) external {
        address bound = _oracleOf[factory];
        if (bound != msg.sender) revert CreditRegistryNotRecordOracle(factory, msg.sender, bound);
        uint256 count = _records[factory][bound].length;
        if (index >= count) revert CreditRegistryNoRecordAt(factory, index, count);
        _deliver(factory, index, envelopes);
    }

    /**
     * @notice Register the caller's own secp256k1 public key, to which envelopes are encrypted; replaces
     * an earlier one (envelopes already delivered stay encrypted to the key of their time).
     * @param publicKey The 64-byte uncompressed public key (x || y, no 0x04 prefix) of the caller's account:
     * its keccak256 must give the caller's address.
     */
    function registerEnvelopeKey(bytes calldata publicKey) external {
        if (publicKey.length != ENVELOPE_KEY_BYTES || address(uint160(uint256(keccak256(publicKey)))) != msg.sender)
        {
            revert CreditRegistryInvalidEnvelopeKey(msg.sender, publicKey.length);
        }
        _envelopeKeys[msg.sender] = publicKey;
        emit EnvelopeKeyRegistered(msg.sender, publicKey);
    }

    /// @notice The envelope key `account` registered (empty when none).
    function envelopeKeyOf(address account) external view returns (bytes memory) {
        return _envelopeKeys[account];
    }

    /// @notice The oracle `factory` is bound to; zero before its first record.
    function oracleOf(address factory) external view returns (address) {
        return _oracleOf[factory];
    }

    /// @notice How many records `factory` has had from its bound oracle.
    function recordCount(address factory) external view returns (uint256) {
        return _records[factory][_oracleOf[factory]].length;
    }

    /// @notice Record `index` (0-based, oldest first) of `factory` from its bound oracle.
    function recordAt(address factory, uint256 index) external view returns (CreditRecord memory) {
        return _recordAt(factory, _oracleOf[factory], index);
    }

    /// @notice How many records `oracle` published for `factory` (bound now or before).
    function recordCountBy(address factory, address oracle) external view returns (uint256) {
        return _records[factory][oracle].length;
    }

    /// @notice Record `index` (0-based, oldest first) `oracle` published for `factory`: the reader chooses.
    function recordAtBy(address factory, address oracle, uint256 index) external view returns (CreditRecord memory) {
        return _recordAt(factory, oracle, index);
    }

    /// @notice `factory`'s latest record from its bound oracle, valid or not (reverts when there is none).
    function currentRecord(address factory) external view returns (CreditRecord memory) {
        CreditRecord[] storage history = _records[factory][_oracleOf[factory]];
        if (history.length == 0) revert CreditRegistryNoRecord(factory);
        return history[history.length - 1];
    }

    /// @notice Whether `factory` has a record from its bound oracle and the latest is still valid (block
    /// time before `validUntil`).
    function isCurrentValid(address factory) external view returns (bool) {
        CreditRecord[] storage history = _records[factory][_oracleOf[factory]];
        return history.length != 0 && block.timestamp < history[history.length - 1].validUntil;
    }

    // ------------------------------------------------------------------ consent

    /**
     * @notice Grant (or renew) consent `consentId` until `expiresAt`; by the factory (admitted for
     * {CONSENT_ACTION}). The id commits to the bank with a fresh salt ({consentIdOf}); the bank is not
     * checked here (it is hidden): the service checks the opening and the bank's admission where the bank
     * is known. Granting an id again (by its factory) replaces the expiry and lifts a revocation.
     * @param consentId `keccak256(abi.encode(factory, bank, salt))`; not zero, not another factory's.
     * @param expiresAt Unix seconds the consent lapses at; after the block time.
     */
    function grantConsent(bytes32 consentId, uint64 expiresAt) external {
        _requireAdmitted(msg.sender, CONSENT_ACTION);
        if (consentId == bytes32(0)) revert CreditRegistryZeroConsentId();
        address owner = _consents[consentId].factory;
        if (owner != address(0) && owner != msg.sender) {
            revert CreditRegistryConsentIdTaken(consentId, owner, msg.sender);
        }
        if (expiresAt <= block.timestamp) revert CreditRegistryExpiryInPast(expiresAt, block.timestamp);
        _grant(msg.sender, consentId, expiresAt);
    }

    /**
     * @notice Revoke the caller's standing consent `consentId`; by the factory that granted it, at will
     * (no admission asked).
     * @param consentId The consent id.
     */
    function revokeConsent(bytes32 consentId) external {
        Consent storage c = _consents[consentId];
        if (c.factory != msg.sender || !_standing(c)) revert CreditRegistryNoStandingConsent(msg.sender, consentId);
        c.revokedAt = uint64(block.timestamp);
        emit ConsentRevoked(msg.sender, consentId);
    }

    /**
     * @notice Whether consent `consentId` stands now: granted, not revoked, not expired. It says nothing
     * of the bank (hidden) nor of the bank's admission: check the opening and ask the gate off chain.
     */
    function consentStands(bytes32 consentId) external view returns (bool) {
        return _standing(_consents[consentId]);
    }

    /// @notice The consent as recorded (all zero if never granted); it filters nothing, see {consentStands}.
    function consentOf(bytes32 consentId) external view returns (Consent memory) {
        return _consents[consentId];
    }

    /// @notice Every consent id `factory` ever granted, in first-grant order (lapsed ones included).
    function consentIdsOf(address factory) external view returns (bytes32[] memory) {
        return _consentIdsOf[factory];
    }

    /**
     * @notice The consent id of `factory`'s consent to `bank` with `salt`: `keccak256(abi.encode(factory,
     * bank, salt))`. A pure helper for parties that hold the opening (an `eth_call` leaves no trace on
     * chain); never send the bank or the salt in a transaction.
     */
    function consentIdOf(address factory, address bank, bytes32 salt) external pure returns (bytes32) {
        return keccak256(abi.encode(factory, bank, salt));
    }

    // ------------------------------------------------------------------ access log

    /**
     * @notice Anchor a batch of the bank-query access log; by {ACCESS_LOG_ANCHOR_ROLE}.
     * @param root The batch's Merkle root; not zero, never anchored before.
     * @param count How many log entries the batch holds; above zero.
     * @param fromMs The first entry's time (Unix ms).
     * @param toMs The last entry's time (Unix ms), not before `fromMs`.
     * @return index The batch's number (the first is 1).
     */
    function anchorAccessLog(bytes32 root, uint32 count, uint64 fromMs, uint64 toMs)
        external
        onlyRole(ACCESS_LOG_ANCHOR_ROLE)
        returns (uint256 index)
    {
        if (root == bytes32(0)) revert CreditRegistryZeroRoot();
        uint256 existing = _batchOf[root];
        if (existing != 0) revert CreditRegistryRootAnchored(root, existing);
        if (count == 0) revert CreditRegistryZeroCount();
        if (toMs < fromMs) revert CreditRegistryInvalidWindow(fromMs, toMs);
        _batches.push(
            AccessLogBatch({
                root: root,
                count: count,
                fromMs: fromMs,
                toMs: toMs,
                anchoredAt: uint64(block.timestamp),
                anchoredBy: msg.sender
            })
        );
        index = _batches.length;
        _batchOf[root] = index;
        emit AccessLogAnchored(index, root, count, fromMs, toMs);
    }

    /// @notice Access-log batch `index` (1 to {accessLogBatchCount}).
    function accessLogBatch(uint256 index) external view returns (AccessLogBatch memory) {
        uint256 n = _batches.length;
        if (index == 0 || index > n) revert CreditRegistryUnknownBatch(index, n);
        return _batches[index - 1];
    }

    /// @notice How many access-log batches are anchored.
    function accessLogBatchCount() external view returns (uint256) {
        return _batches.length;
    }

    /// @notice The number of the batch that anchored `root`; zero when none did.
    function accessLogBatchOf(bytes32 root) external view returns (uint256) {
        return _batchOf[root];
    }

    /// @notice The admission gate in force.
    function admissionGate() external view returns (IAdmissionGate) {
        return _gate;
    }

    // ------------------------------------------------------------------ internal

    /// @dev Bind `factory` to `oracle`.
    function _bind(address factory, address oracle) private {
        address previous = _oracleOf[factory];
        _oracleOf[factory] = oracle;
        emit FactoryOracleSet(factory, previous, oracle, msg.sender);
    }

    /// @dev Record `index` of `oracle`'s history of `factory`, or revert.
    function _recordAt(address factory, address oracle, uint256 index) private view returns (CreditRecord memory) {
        CreditRecord[] storage history = _records[factory][oracle];
        if (index >= history.length) revert CreditRegistryNoRecordAt(factory, index, history.length);
        return history[index];
    }

    /// @dev Append a checked record to its oracle's history of `factory`.
    function _publish(address factory, CreditRecord memory r) private returns (uint256 index) {
        CreditRecord[] storage history = _records[factory][r.oracle];
        index = history.length;
        history.push(r);
        emit CreditRecordPublished(
            factory, index, r.recordCommitment, r.validUntil, r.modelVersion, r.analyticsCommitment, r.oracle
        );
    }

    /// @dev Emit each envelope of record `index` of `factory` after checking that its consent id is one of
    /// `factory`'s and stands (the bank behind it and its key are checked off chain, by the oracle).
    function _deliver(address factory, uint256 index, Envelope[] calldata envelopes) private {
        for (uint256 i = 0; i < envelopes.length; ++i) {
            bytes32 consentId = envelopes[i].consentId;
            uint256 size = envelopes[i].ciphertext.length;
            Consent storage c = _consents[consentId];
            if (c.factory != factory || !_standing(c)) {
                revert CreditRegistryEnvelopeWithoutConsent(factory, consentId);
            }
            if (size == 0 || size > MAX_ENVELOPE_BYTES) revert CreditRegistryEnvelopeSize(consentId, size);
            emit CreditEnvelope(factory, consentId, index, msg.sender, envelopes[i].ciphertext);
        }
    }

    /// @dev Record `factory`'s consent `consentId` until `expiresAt`, listing the id on its first grant.
    function _grant(address factory, bytes32 consentId, uint64 expiresAt) private {
        Consent storage c = _consents[consentId];
        if (c.grantedAt == 0) {
            c.factory = factory;
            _consentIdsOf[factory].push(consentId);
        }
        c.grantedAt = uint64(block.timestamp);
        c.expiresAt = expiresAt;
        c.revokedAt = 0;
        emit ConsentGranted(factory, consentId, expiresAt);
    }

    /// @dev Granted, not revoked since, and not expired.
    function _standing(Consent storage c) private view returns (bool) {
        return c.grantedAt != 0 && c.revokedAt == 0 && block.timestamp < c.expiresAt;
    }

    /// @dev Set a non-zero admission gate.
    function _setGate(IAdmissionGate gate) private {
        if (address(gate) == address(0)) revert CreditRegistryZeroGate();
        _gate = gate;
        emit AdmissionGateSet(address(gate));
    }

    /// @dev Revert unless the gate admits `party` for `action` now.
    function _requireAdmitted(address party, bytes32 action) private view {
        if (!_gate.isAdmitted(party, action)) revert CreditRegistryNotAdmitted(party, action);
    }
}
