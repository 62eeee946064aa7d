// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IAdmissionGate} from "./IAdmissionGate.sol";
import {DeviceRegistry} from "./DeviceRegistry.sol";
import {Gtin} from "./Gtin.sol";
import {LotRegistry} from "./LotRegistry.sol";
import {ReadingAnchor} from "./ReadingAnchor.sol";

/**
 * @title QualityCertifier
 * @notice Quality specs per product, and lot certification against them from anchored, signed readings.
 *
 * Specs. The buying core enterprise (admitted for {SPEC_ACTION}) sets a product's spec: metrics, each
 * with bounds `[min, max]` in Reading v1 fixed point (value x 10^6) and a `required` flag, and a minimum
 * number of samples. Specs are versioned per GTIN (1, 2, 3, ...). Only the product's spec owner sets
 * them, and the admin assigns the owner ({setSpecOwner}): nobody owns a product's quality bar by being
 * first, so a supplier cannot set its own product's bar nor squat a competitor's GTIN.
 *
 * Certification. Anyone may call {certifyLot} with a lot's QC readings grouped by anchored batch, each
 * batch with the devices' signatures and one OpenZeppelin multiproof. Every reading must carry the lot's
 * id, appear once, be in its batch (the multiproof leads to the anchored root), be signed by its
 * device's enrolled key while the device was active, and come from a device that may speak for the
 * lot: one owned by the lot's supplier or by a party that has held it (its full custody chain, see
 * `LotRegistry.hasHeld`), or one the product's spec owner names ({setNamedDevice}). Otherwise the call
 * reverts and nothing changes: a competitor's device cannot fail another party's lot.
 *
 * Evidence. A reading counts only if it is no later than its batch's anchoring and, for a revoked
 * device, its batch was anchored before the revocation (`ReadingAnchor.checkAnchoredSignature`). A
 * recorded verdict pins, in the DeviceRegistry, each device's latest time it used, the later of a
 * reading's time and its batch's anchoring (`DeviceRegistry.pinEvidence`; this contract holds its
 * `EVIDENCE_ROLE`): the device's owner can then no longer revoke it back to before that evidence, so a
 * verdict's readings keep verifying unless the operator rules otherwise with a reason.
 *
 * Genuine readings are then judged against the product's latest spec version:
 *
 * - every value of a spec metric (required or not) must lie in `[min, max]`; the first one outside, in
 *   submission order, rejects the lot (`BelowMin` / `AboveMax`, naming the metric, value, bound and the
 *   reading's digest as evidence);
 * - otherwise every required metric needs at least `minSamples` readings carrying it; the first one
 *   short, in the spec's metric order, rejects the lot (`MissingMetric` when no reading carries it,
 *   `TooFewSamples` otherwise; `value` is the count, `bound` the minimum);
 * - otherwise the lot is certified. Metrics outside the spec are ignored.
 *
 * Verdicts. Every verdict is an event (the append-only history); {certificate} holds the lot's
 * standing, which changes only as follows:
 *
 * - a bound violation (`BelowMin`, `AboveMax`) always stands: genuine evidence outweighs any
 *   earlier certificate;
 * - a certification replaces any standing except a bound violation under the same spec version (a
 *   lot shown out of spec can only be certified again under a newer spec), and a newer version reopens
 *   such a lot only if it bounds the violated metric and its bounds accept the recorded failing value
 *   ({QualityCertifierViolationStillFails}): republishing the same bounds, or dropping the metric,
 *   launders nothing;
 * - a lack of evidence (`MissingMetric`, `TooFewSamples`) is recorded only while the lot has no
 *   certificate and no bound violation: submitting a subset of a certified lot's readings cannot undo
 *   its certificate.
 *
 * A submission that would not change the standing reverts with {QualityCertifierVerdictStands}.
 *
 * Within a batch, readings go in the order of the multiproof's leaves (`getMultiProof`'s order:
 * descending tree index, i.e. ascending leaf hash); batches in any order.
 */
contract QualityCertifier is AccessControlDefaultAdminRules {
    /// @notice The delay of a two-step admin handover (`beginDefaultAdminTransfer`, then the new admin's
    /// `acceptDefaultAdminTransfer` once it has passed); the admin may change it, itself with a delay.
    uint48 public constant ADMIN_TRANSFER_DELAY = 3 days;
    /// @notice The action asked of the admission gate before a party sets a spec.
    bytes32 public constant SPEC_ACTION = keccak256("supet.spec.set");
    /// @notice The most metrics a spec may hold (as a reading).
    uint256 public constant MAX_METRICS = 32;
    /// @notice The EIP-712 type hash of a reading (ReadingAnchor's `READING_TYPEHASH`).
    bytes32 private constant _READING_TYPEHASH = keccak256(
        "Reading(bytes32 deviceId,uint64 seq,uint64 timestamp,bytes32 lotId,bytes32[] metrics,int256[] values)"
    );

    /// @notice A lot's standing.
    enum Status {
        None,
        Certified,
        Rejected
    }

    /// @notice Why a lot was rejected (`None` for a certificate).
    enum Reason {
        None,
        BelowMin,
        AboveMax,
        MissingMetric,
        TooFewSamples
    }

    /// @notice One metric of a spec: its name (Reading v1: ASCII right-padded), bounds and whether required.
    struct Metric {
        bytes32 name;
        int256 min;
        int256 max;
        bool required;
    }

    /// @notice A spec version.
    struct Spec {
        Metric[] metrics;
        uint32 minSamples;
        address setBy;
        uint64 setAt;
    }

    /// @notice A lot's QC readings from one anchored batch, with their signatures and a multiproof.
    struct BatchReadings {
        uint256 batchId;
        ReadingAnchor.Reading[] readings;
        bytes[] signatures;
        bytes32[] proof;
        bool[] proofFlags;
    }

    /// @notice A lot's standing verdict (all zero while none).
    struct Certificate {
        Status status;
        Reason reason;
        uint32 specVersion;
        uint32 samples;
        uint64 decidedAt;
        address submitter;
        bytes32 metric;
        int256 value;
        int256 bound;
        bytes32 evidence;
    }

    /// @dev The packed part of a {Certificate} (two slots).
    struct _Standing {
        Status status;
        Reason reason;
        uint32 specVersion;
        uint32 samples;
        uint64 decidedAt;
        address submitter;
    }

    /// @dev What a rejection names (written only for rejections).
    struct _Finding {
        bytes32 metric;
        int256 value;
        int256 bound;
        bytes32 evidence;
    }

    ReadingAnchor private immutable _anchor;
    LotRegistry private immutable _lots;
    DeviceRegistry private immutable _registry;
    IAdmissionGate private _gate;
    mapping(uint64 gtin => Spec[]) private _specs;
    mapping(uint64 gtin => address) private _specOwners;
    mapping(bytes32 lotId => _Standing) private _standings;
    mapping(bytes32 lotId => _Finding) private _findings;
    mapping(uint64 gtin => mapping(bytes32 deviceId => bool)) private _namedDevices;
    /// @dev Numbers the {certifyLot} calls of a transaction, so each has its own set of seen digests.
    uint256 private transient _epoch;

    /// @notice The admission gate does not admit `party` for `action`.
    error QualityCertifierNotAdmitted(address party, bytes32 action);
    /// @notice A zero address was given for the gate, the anchor or the lot registry.
    error QualityCertifierZeroAddress();
    /// @notice Only `owner` may set new versions of this product's spec or name its devices (zero: the
    /// admin has assigned nobody; ask it to {setSpecOwner}).
    error QualityCertifierNotSpecOwner(uint64 gtin, address owner, address caller);
    /// @notice A spec needs 1 to {MAX_METRICS} metrics; `count` were given.
    error QualityCertifierInvalidMetricCount(uint256 count);
    /// @notice Metric names must be non-zero and strictly ascending (sorted, no repeats); not so at `index`.
    error QualityCertifierMetricsNotSorted(uint256 index, bytes32 name);
    /// @notice The metric's bounds are inverted.
    error QualityCertifierInvalidBounds(bytes32 name, int256 min, int256 max);
    /// @notice A spec needs at least one required metric.
    error QualityCertifierNoRequiredMetric();
    /// @notice A spec needs a minimum of at least one sample.
    error QualityCertifierZeroMinSamples();
    /// @notice The product has no spec (version `version` when given).
    error QualityCertifierUnknownSpec(uint64 gtin, uint32 version);
    /// @notice A certification needs at least one batch, and every batch at least one reading.
    error QualityCertifierNoReadings(bytes32 lotId, uint256 batchId);
    /// @notice The batch has `readings` readings but `signatures` signatures.
    error QualityCertifierSignatureCount(uint256 batchId, uint256 readings, uint256 signatures);
    /// @notice Reading `index` of batch `batchId` names lot id hash `readingLotId`, not the lot's, `lotId`
    /// (`keccak256(bytes(lotId))`, as readings carry it).
    error QualityCertifierWrongLot(uint256 batchId, uint256 index, bytes32 readingLotId, bytes32 lotId);
    /// @notice Device `deviceId`, owned by `owner`, may not speak for lot `lotId` (the key): `owner` is
    /// neither the lot's supplier nor a party that has held it, and the product's spec owner does not
    /// name the device.
    error QualityCertifierForeignDevice(bytes32 lotId, bytes32 deviceId, address owner);
    /// @notice A reading's metric names and values differ in length.
    error QualityCertifierLengthMismatch(uint256 batchId, uint256 index, uint256 metrics, uint256 values);
    /// @notice The reading with this digest was submitted twice.
    error QualityCertifierDuplicateReading(bytes32 digest);
    /// @notice The multiproof is malformed: it needs `leaves + proof == flags + 1`, and as many proof
    /// nodes as false flags (`falseFlags`).
    error QualityCertifierMalformedProof(
        uint256 batchId,
        uint256 leaves,
        uint256 proof,
        uint256 flags,
        uint256 falseFlags
    );
    /// @notice The readings are not in batch `batchId`: the multiproof does not lead to its `root`.
    error QualityCertifierNotIncluded(uint256 batchId, bytes32 root);
    /// @notice The lot's standing verdict cannot be changed by this submission (see the contract's notes).
    error QualityCertifierVerdictStands(bytes32 lotId, Status status, Reason reason, uint32 specVersion);
    /// @notice The lot's recorded bound violation (`metric` at `value`, found under spec `recordedVersion`)
    /// still fails under spec `version`, or `version` no longer bounds `metric`: a new spec version
    /// reopens a rejected lot only if its bounds for the violated metric accept the recorded value.
    error QualityCertifierViolationStillFails(
        bytes32 lotId,
        bytes32 metric,
        int256 value,
        uint32 recordedVersion,
        uint32 version
    );

    /// @notice Version `version` of the product's spec was set.
    event SpecSet(uint64 indexed gtin, uint32 indexed version, address indexed by, uint32 minSamples, Metric[] metrics);
    /// @notice `owner` now sets the product's spec versions.
    event SpecOwnerSet(uint64 indexed gtin, address indexed owner);
    /// @notice The lot was certified against spec `specVersion` from `samples` readings submitted by `by`.
    event LotCertified(bytes32 indexed lotId, uint64 indexed gtin, uint32 specVersion, uint32 samples, address indexed by);
    /// @notice The lot was rejected against spec `specVersion`: `metric` has `value` beyond `bound`.
    /// @dev For `MissingMetric`/`TooFewSamples`, `value` is the metric's sample count, `bound` the minimum
    /// and `evidence` zero; otherwise `evidence` is the digest of the offending reading.
    event LotRejected(
        bytes32 indexed lotId,
        uint64 indexed gtin,
        uint32 specVersion,
        bytes32 metric,
        int256 value,
        int256 bound,
        Reason reason,
        bytes32 evidence,
        uint32 samples,
        address indexed by
    );
    /// @notice The product's spec owner named (`named`) or un-named a device whose readings count for
    /// every lot of the product, whoever owns it (a lab's, an inspector's).
    event SpecDeviceNamed(uint64 indexed gtin, bytes32 indexed deviceId, bool named, address indexed by);
    /// @notice The admission gate changed.
    event AdmissionGateSet(address gate);

    /**
     * @param admin Receives the default admin role (replaces the gate, assigns spec ownership), handed over
     * in two steps ({ADMIN_TRANSFER_DELAY}); not zero (`AccessControlInvalidDefaultAdmin`).
     * @param gate The admission gate asked before a spec is set.
     * @param anchor The reading anchor whose batches, domain and device checks certification relies on.
     * @param lots The lot registry.
     */
    constructor(address admin, IAdmissionGate gate, ReadingAnchor anchor, LotRegistry lots)
        AccessControlDefaultAdminRules(ADMIN_TRANSFER_DELAY, admin)
    {
        if (address(anchor) == address(0) || address(lots) == address(0)) revert QualityCertifierZeroAddress();
        _anchor = anchor;
        _lots = lots;
        _registry = anchor.registry();
        _setGate(gate);
    }

    // ------------------------------------------------------------------ admin

    /**
     * @notice Replace the admission gate.
     * @param gate The new gate; not zero.
     */
    function setAdmissionGate(IAdmissionGate gate) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setGate(gate);
    }

    /**
     * @notice Assign who sets a product's spec versions and names its devices (the buyer whose quality
     * bar it is), or reassign it (a key rotation, a change of buyer). Earlier versions and verdicts stay.
     * @param gtin The product.
     * @param newOwner The new owner; zero leaves the product without one (nobody sets its spec).
     */
    function setSpecOwner(uint64 gtin, address newOwner) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Gtin.check(gtin);
        _specOwners[gtin] = newOwner;
        emit SpecOwnerSet(gtin, newOwner);
    }

    // ------------------------------------------------------------------ specs

    /**
     * @notice Set a new version of a product's spec; by the product's spec owner, assigned by the admin
     * ({setSpecOwner}), while admitted for {SPEC_ACTION}.
     * @dev For lots already judged, a new version changes only what later submissions are judged against:
     * a certificate stays until a submission under the new version is recorded (a violation always is);
     * a lot rejected for a lack of evidence may be certified under it; a lot rejected for a bound violation
     * reopens only if the new version bounds that metric and accepts the recorded value. No version
     * rewrites a recorded verdict or its event.
     * @param gtin The product's GTIN-14: 14 ASCII digits, check digit included.
     * @param metrics The metrics, names strictly ascending; each with `min <= max`; at least one required.
     * @param minSamples How many readings must carry each required metric; at least 1.
     * @return version The new version (1 for the first spec of the product).
     */
    function setSpec(
        string calldata gtin,
        Metric[] calldata metrics,
        uint32 minSamples
    ) external returns (uint32 version) {
        _requireAdmitted(msg.sender, SPEC_ACTION);
        uint64 product = Gtin.parse(gtin);
        address assigned = _specOwners[product];
        if (assigned != msg.sender) revert QualityCertifierNotSpecOwner(product, assigned, msg.sender);
        _checkSpec(metrics, minSamples);
        Spec storage s = _specs[product].push();
        for (uint256 i = 0; i < metrics.length; ++i) {
            s.metrics.push(metrics[i]);
        }
        s.minSamples = minSamples;
        s.setBy = msg.sender;
        s.setAt = uint64(block.timestamp);
        version = SafeCast.toUint32(_specs[product].length);
        emit SpecSet(product, version, msg.sender, minSamples, metrics);
    }

    /**
     * @notice Name a device (or withdraw its name) whose readings count for every lot of the product,
     * whoever owns it: an inspector's or a lab's; by the product's spec owner, admitted for {SPEC_ACTION}.
     * @param gtin The product's GTIN-14: 14 ASCII digits, check digit included.
     * @param deviceId The device id hash (`keccak256` of its serial).
     * @param named Whether its readings count.
     */
    function setNamedDevice(string calldata gtin, bytes32 deviceId, bool named) external {
        _requireAdmitted(msg.sender, SPEC_ACTION);
        uint64 product = Gtin.parse(gtin);
        address assigned = _specOwners[product];
        if (assigned != msg.sender) revert QualityCertifierNotSpecOwner(product, assigned, msg.sender);
        _namedDevices[product][deviceId] = named;
        emit SpecDeviceNamed(product, deviceId, named, msg.sender);
    }

    // ------------------------------------------------------------------ certification

    /**
     * @notice Judge a lot from its QC readings against its product's latest spec, and record the verdict.
     * @dev Reverts, changing nothing, on forged or unproven input: an unknown lot or batch, no spec, a
     * reading of another lot, a reading given twice, a multiproof that does not lead to the batch root, a
     * signature that is not the device's, or a device not active at the reading's time (the anchor's
     * `ReadingAnchorUnknownDevice`, `ReadingAnchorDeviceNotActive`, `ReadingAnchorInvalidSignatureLength`,
     * `ReadingAnchorBadSignature`), or a device that may not speak for the lot
     * ({QualityCertifierForeignDevice}). Also reverts when the verdict cannot change the lot's standing
     * ({QualityCertifierVerdictStands}, {QualityCertifierViolationStillFails}).
     * A recorded verdict pins each device's latest reading time it used (`DeviceRegistry.pinEvidence`).
     * Call it with `eth_call` to preview a verdict.
     * @param lotId The lot's key (`LotRegistry.lotKey`: scoped to its issuer); its readings carry
     * `keccak256(bytes(lotId text))`.
     * @param batches The readings grouped by anchored batch, each in its multiproof's leaf order.
     * @return status `Certified` or `Rejected`.
     */
    function certifyLot(bytes32 lotId, BatchReadings[] calldata batches) external returns (Status status) {
        uint64 gtin = _lots.gtinOf(lotId);
        uint32 version = SafeCast.toUint32(_specs[gtin].length);
        if (version == 0) revert QualityCertifierUnknownSpec(gtin, 0);
        if (batches.length == 0) revert QualityCertifierNoReadings(lotId, 0);
        Spec storage current = _specs[gtin][version - 1];
        Metric[] memory metrics = current.metrics;

        uint256 total = 0;
        for (uint256 b = 0; b < batches.length; ++b) {
            total += batches[b].readings.length;
        }
        _Judgement memory j = _Judgement({
            domain: _anchor.domainSeparator(),
            epoch: ++_epoch,
            counts: new uint256[](metrics.length),
            samples: 0,
            reason: Reason.None,
            finding: _Finding(0, 0, 0, 0),
            lotId: lotId,
            lotIdHash: _lots.lotIdHashOf(lotId),
            gtin: gtin,
            devices: new bytes32[](total),
            latestMs: new uint64[](total),
            deviceCount: 0,
            anchoredAtMs: 0
        });
        for (uint256 b = 0; b < batches.length; ++b) {
            _judgeBatch(batches[b], metrics, j);
        }
        uint32 samples = SafeCast.toUint32(j.samples);
        if (j.reason == Reason.None) _findMissing(metrics, current.minSamples, j);
        if (j.reason == Reason.None) _checkReopen(lotId, version, metrics);
        status = _record(lotId, gtin, version, samples, j.reason, j.finding);
        _pinEvidence(j);
    }

    // ------------------------------------------------------------------ views

    /// @notice Version `version` (1-based) of the product's spec.
    function spec(uint64 gtin, uint32 version) external view returns (Spec memory) {
        Spec[] storage versions = _specs[gtin];
        if (version == 0 || version > versions.length) revert QualityCertifierUnknownSpec(gtin, version);
        return versions[version - 1];
    }

    /// @notice The product's latest spec version (0: none yet).
    function latestSpecVersion(uint64 gtin) external view returns (uint32) {
        return uint32(_specs[gtin].length);
    }

    /// @notice Who sets the product's spec versions (zero: nobody yet).
    function specOwner(uint64 gtin) external view returns (address) {
        return _specOwners[gtin];
    }

    /// @notice The lot's standing verdict (status `None` while it has none).
    function certificate(bytes32 lotId) external view returns (Certificate memory c) {
        _Standing memory s = _standings[lotId];
        _Finding memory f = _findings[lotId];
        c = Certificate({
            status: s.status,
            reason: s.reason,
            specVersion: s.specVersion,
            samples: s.samples,
            decidedAt: s.decidedAt,
            submitter: s.submitter,
            metric: f.metric,
            value: f.value,
            bound: f.bound,
            evidence: f.evidence
        });
    }

    /// @notice Whether the lot's standing is a certificate.
    function isCertified(bytes32 lotId) external view returns (bool) {
        return _standings[lotId].status == Status.Certified;
    }

    /// @notice Whether the product's spec owner names the device (its readings count for every lot of it).
    function isNamedDevice(uint64 gtin, bytes32 deviceId) external view returns (bool) {
        return _namedDevices[gtin][deviceId];
    }

    /// @notice The reading anchor certification relies on.
    function anchor() external view returns (ReadingAnchor) {
        return _anchor;
    }

    /// @notice The lot registry.
    function lotRegistry() external view returns (LotRegistry) {
        return _lots;
    }

    /// @notice The admission gate in force.
    function admissionGate() external view returns (IAdmissionGate) {
        return _gate;
    }

    // ------------------------------------------------------------------ internal

    /// @dev The running state of one {certifyLot} call.
    struct _Judgement {
        bytes32 domain;
        uint256 epoch;
        uint256[] counts;
        uint256 samples;
        Reason reason;
        _Finding finding;
        bytes32 lotId;
        bytes32 lotIdHash;
        uint64 gtin;
        bytes32[] devices; // the distinct devices seen so far, each admitted for the lot
        uint64[] latestMs; // per device, its latest reading (or anchoring) time in this submission
        uint256 deviceCount;
        uint64 anchoredAtMs; // the anchoring time of the batch being judged
    }

    /// @dev Check one batch's readings (lot, duplicates, multiproof, signatures), then judge them.
    function _judgeBatch(BatchReadings calldata batch, Metric[] memory metrics, _Judgement memory j) private {
        uint256 batchId = batch.batchId;
        uint256 n = batch.readings.length;
        if (n == 0) revert QualityCertifierNoReadings(j.lotId, batchId);
        if (batch.signatures.length != n) revert QualityCertifierSignatureCount(batchId, n, batch.signatures.length);
        _checkProofShape(batch, n);
        ReadingAnchor.Batch memory anchored = _anchor.batch(batchId);
        bytes32 root = anchored.root;
        j.anchoredAtMs = anchored.anchoredAt * 1000;

        // Identity and inclusion first (cheap), signatures after (dear).
        bytes32[] memory digests = new bytes32[](n);
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            ReadingAnchor.Reading calldata r = batch.readings[i];
            if (r.lotId != j.lotIdHash) revert QualityCertifierWrongLot(batchId, i, r.lotId, j.lotIdHash);
            if (r.metrics.length != r.values.length) {
                revert QualityCertifierLengthMismatch(batchId, i, r.metrics.length, r.values.length);
            }
            bytes32 d = _digest(j.domain, r);
            _markSeen(j.epoch, d);
            digests[i] = d;
            leaves[i] = keccak256(bytes.concat(keccak256(abi.encode(d))));
        }
        if (!MerkleProof.multiProofVerifyCalldata(batch.proof, batch.proofFlags, root, leaves)) {
            revert QualityCertifierNotIncluded(batchId, root);
        }
        for (uint256 i = 0; i < n; ++i) {
            _checkReading(batch, i, digests[i], metrics, j);
        }
        j.samples += n;
    }

    /// @dev Admit reading `i`'s device, check its signature, activity and anchoring time, then judge it.
    function _checkReading(
        BatchReadings calldata batch,
        uint256 i,
        bytes32 readingDigest,
        Metric[] memory metrics,
        _Judgement memory j
    ) private {
        ReadingAnchor.Reading calldata r = batch.readings[i];
        uint64 anchoredAtMs = j.anchoredAtMs;
        // pin the later of the reading's time and its anchoring: the owner cannot then revoke the
        // device back before either (the anchor refuses readings anchored after a revocation)
        _admitDevice(r.deviceId, r.timestamp > anchoredAtMs ? r.timestamp : anchoredAtMs, j);
        _anchor.checkAnchoredSignature(r.deviceId, r.timestamp, batch.batchId, readingDigest, batch.signatures[i]);
        _judgeReading(r, readingDigest, metrics, j);
    }

    /// @dev Note the reading's device and time; a device seen for the first time must be owned by the lot's
    /// supplier or a party that has held the lot, or be named by the spec owner. An unknown device (no
    /// owner) is left to the anchor's signature check, which refuses it.
    function _admitDevice(bytes32 deviceId, uint64 timestamp, _Judgement memory j) private view {
        uint256 count = j.deviceCount;
        for (uint256 k = 0; k < count; ++k) {
            if (j.devices[k] != deviceId) continue;
            if (timestamp > j.latestMs[k]) j.latestMs[k] = timestamp;
            return;
        }
        address deviceOwner = _registry.ownerOf(deviceId);
        if (deviceOwner != address(0) && !_namedDevices[j.gtin][deviceId] && !_lots.hasHeld(j.lotId, deviceOwner)) {
            revert QualityCertifierForeignDevice(j.lotId, deviceId, deviceOwner);
        }
        j.devices[count] = deviceId;
        j.latestMs[count] = timestamp;
        j.deviceCount = count + 1;
    }

    /// @dev Pin, in the DeviceRegistry, each device's latest reading time the recorded verdict used.
    function _pinEvidence(_Judgement memory j) private {
        uint256 count = j.deviceCount;
        bytes32[] memory devices = j.devices;
        uint64[] memory latestMs = j.latestMs;
        assembly ("memory-safe") {
            // trim both arrays to the devices seen (their allocations only shrink)
            mstore(devices, count)
            mstore(latestMs, count)
        }
        _registry.pinEvidence(devices, latestMs);
    }

    /// @dev Refuse a multiproof whose shape `MerkleProof.processMultiProof` would not accept. With
    /// `leaves + proof == flags + 1` and one proof node per false flag, the processing never runs short
    /// of nodes nor leaves any unused, so a failed proof always ends in {QualityCertifierNotIncluded}.
    function _checkProofShape(BatchReadings calldata batch, uint256 leaves) private pure {
        bool[] calldata flags = batch.proofFlags;
        uint256 falseFlags = 0;
        for (uint256 i = 0; i < flags.length; ++i) {
            if (!flags[i]) ++falseFlags;
        }
        if (leaves + batch.proof.length != flags.length + 1 || falseFlags != batch.proof.length) {
            revert QualityCertifierMalformedProof(batch.batchId, leaves, batch.proof.length, flags.length, falseFlags);
        }
    }

    /// @dev Check each value of a spec metric against its bounds (the first failure is kept) and count
    /// one sample per spec metric the reading carries.
    function _judgeReading(
        ReadingAnchor.Reading calldata r,
        bytes32 readingDigest,
        Metric[] memory metrics,
        _Judgement memory j
    ) private pure {
        uint256 counted = 0; // bit k: metric k already counted for this reading
        for (uint256 i = 0; i < r.metrics.length; ++i) {
            bytes32 name = r.metrics[i];
            for (uint256 k = 0; k < metrics.length; ++k) {
                if (metrics[k].name != name) continue;
                int256 value = r.values[i];
                if (j.reason == Reason.None) {
                    if (value < metrics[k].min) {
                        j.reason = Reason.BelowMin;
                        j.finding = _Finding(name, value, metrics[k].min, readingDigest);
                    } else if (value > metrics[k].max) {
                        j.reason = Reason.AboveMax;
                        j.finding = _Finding(name, value, metrics[k].max, readingDigest);
                    }
                }
                if (counted & (1 << k) == 0) {
                    counted |= 1 << k;
                    ++j.counts[k];
                }
                break;
            }
        }
    }

    /// @dev The first required metric, in spec order, with fewer than `minSamples` samples.
    function _findMissing(Metric[] memory metrics, uint32 minSamples, _Judgement memory j) private pure {
        for (uint256 k = 0; k < metrics.length; ++k) {
            if (!metrics[k].required) continue;
            uint256 count = j.counts[k];
            if (count >= minSamples) continue;
            j.reason = count == 0 ? Reason.MissingMetric : Reason.TooFewSamples;
            j.finding = _Finding(metrics[k].name, int256(count), int256(uint256(minSamples)), bytes32(0));
            return;
        }
    }

    /// @dev Before a certification: a bound violation on record under an older spec version reopens only
    /// if spec `version` bounds its metric and accepts its recorded value (the reading was verified when
    /// it was recorded, so its value is evidence). The same version's case is {_record}'s.
    function _checkReopen(bytes32 lotId, uint32 version, Metric[] memory metrics) private view {
        _Standing storage s = _standings[lotId];
        if (s.status != Status.Rejected || !_isViolation(s.reason) || s.specVersion == version) return;
        _Finding storage f = _findings[lotId];
        bytes32 name = f.metric;
        int256 value = f.value;
        for (uint256 k = 0; k < metrics.length; ++k) {
            if (metrics[k].name != name) continue;
            if (value >= metrics[k].min && value <= metrics[k].max) return;
            break;
        }
        revert QualityCertifierViolationStillFails(lotId, name, value, s.specVersion, version);
    }

    /// @dev Apply the standing rules (see the contract's notes), store the verdict and emit it.
    function _record(
        bytes32 lotId,
        uint64 gtin,
        uint32 version,
        uint32 samples,
        Reason reason,
        _Finding memory f
    ) private returns (Status) {
        _Standing storage s = _standings[lotId];
        Status previous = s.status;
        bool violationOnRecord = previous == Status.Rejected && _isViolation(s.reason);
        if (reason == Reason.None) {
            if (violationOnRecord && s.specVersion == version) {
                revert QualityCertifierVerdictStands(lotId, previous, s.reason, s.specVersion);
            }
        } else if (!_isViolation(reason) && (previous == Status.Certified || violationOnRecord)) {
            revert QualityCertifierVerdictStands(lotId, previous, s.reason, s.specVersion);
        }

        Status status = reason == Reason.None ? Status.Certified : Status.Rejected;
        _standings[lotId] = _Standing({
            status: status,
            reason: reason,
            specVersion: version,
            samples: samples,
            decidedAt: uint64(block.timestamp),
            submitter: msg.sender
        });
        if (status == Status.Certified) {
            if (previous == Status.Rejected) delete _findings[lotId];
            emit LotCertified(lotId, gtin, version, samples, msg.sender);
        } else {
            _findings[lotId] = f;
            _emitRejected(lotId, gtin, version, samples, reason, f);
        }
        return status;
    }

    /// @dev Emit {LotRejected} (apart, for the stack).
    function _emitRejected(
        bytes32 lotId,
        uint64 gtin,
        uint32 version,
        uint32 samples,
        Reason reason,
        _Finding memory f
    ) private {
        emit LotRejected(lotId, gtin, version, f.metric, f.value, f.bound, reason, f.evidence, samples, msg.sender);
    }

    /// @dev Revert naming the first problem of a spec.
    function _checkSpec(Metric[] calldata metrics, uint32 minSamples) private pure {
        uint256 n = metrics.length;
        if (n == 0 || n > MAX_METRICS) revert QualityCertifierInvalidMetricCount(n);
        if (minSamples == 0) revert QualityCertifierZeroMinSamples();
        bytes32 previous = bytes32(0);
        bool anyRequired = false;
        for (uint256 i = 0; i < n; ++i) {
            Metric calldata m = metrics[i];
            if (m.name <= previous) revert QualityCertifierMetricsNotSorted(i, m.name);
            if (m.min > m.max) revert QualityCertifierInvalidBounds(m.name, m.min, m.max);
            anyRequired = anyRequired || m.required;
            previous = m.name;
        }
        if (!anyRequired) revert QualityCertifierNoRequiredMetric();
    }

    /// @dev The reading's EIP-712 digest under the anchor's domain (what `ReadingAnchor.digest` returns),
    /// computed here: cheaper than a call per reading.
    function _digest(bytes32 domain, ReadingAnchor.Reading calldata r) private pure returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                _READING_TYPEHASH,
                r.deviceId,
                r.seq,
                r.timestamp,
                r.lotId,
                keccak256(abi.encodePacked(r.metrics)),
                keccak256(abi.encodePacked(r.values))
            )
        );
        return MessageHashUtils.toTypedDataHash(domain, structHash);
    }

    /// @dev Remember `d` for this call (transient storage, keyed by the call's epoch); revert if seen.
    function _markSeen(uint256 epoch, bytes32 d) private {
        bool seen;
        assembly ("memory-safe") {
            mstore(0x00, epoch)
            mstore(0x20, d)
            let slot := keccak256(0x00, 0x40)
            seen := tload(slot)
            tstore(slot, 1)
        }
        if (seen) revert QualityCertifierDuplicateReading(d);
    }

    /// @dev Whether a reason is a bound violation (genuine evidence against the lot).
    function _isViolation(Reason reason) private pure returns (bool) {
        return reason == Reason.BelowMin || reason == Reason.AboveMax;
    }

    /// @dev Set a non-zero admission gate.
    function _setGate(IAdmissionGate gate) private {
        if (address(gate) == address(0)) revert QualityCertifierZeroAddress();
        _gate = gate;
        emit AdmissionGateSet(address(gate));
    }

    /// @dev Revert unless the gate admits `party` for `action` now.
    function _requireAdmitted(address party, bytes32 action) private view {
        if (!_gate.isAdmitted(party, action)) revert QualityCertifierNotAdmitted(party, action);
    }
}
