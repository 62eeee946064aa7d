// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {P256} from "@openzeppelin/contracts/utils/cryptography/P256.sol";
import {DeviceRegistry} from "./DeviceRegistry.sol";

/**
 * @title ReadingAnchor
 * @notice Anchors batches of signed device readings (Reading v1) and verifies any
 * reading against them with the chain alone.
 *
 * The EIP-712 domain (`supET Ledger`, `1`, chain id, this contract) binds every
 * device signature to this deployment. The ledger service groups accepted
 * readings into batches, builds the OpenZeppelin standard Merkle tree of their
 * digests (leaf encoding `bytes32`) and anchors the root here; batches are
 * numbered 1, 2, 3, ... An auditor calls {verifyReading} with a reading, its
 * signature, its batch and its inclusion proof.
 *
 * A reading is bound to its anchoring time: it counts only if its time is no later than its
 * batch's anchoring (block time, with {MAX_CLOCK_SKEW_MS} for the device's clock), and, for a
 * revoked device, only if the batch was anchored before the revocation. A key stolen after a
 * revocation cannot sign back-dated readings that count once anchored later.
 */
contract ReadingAnchor is AccessControlDefaultAdminRules, EIP712 {
    /// @notice The delay of a two-step admin handover (`beginDefaultAdminTransfer`, then the new admin's
    /// `acceptDefaultAdminTransfer` once it has passed); the admin may change it, itself with a delay.
    uint48 public constant ADMIN_TRANSFER_DELAY = 3 days;
    /// @notice Role of the ledger service's anchoring signer.
    bytes32 public constant ANCHOR_ROLE = keccak256("supet.role.anchor");

    /// @notice How far a reading's time may lie after its batch's anchoring (a device clock running
    /// ahead; the ledger service's default `max_future_skew_ms`).
    uint64 public constant MAX_CLOCK_SKEW_MS = 60_000;

    /// @notice The EIP-712 type hash of {Reading}.
    bytes32 public constant READING_TYPEHASH = keccak256(
        "Reading(bytes32 deviceId,uint64 seq,uint64 timestamp,bytes32 lotId,bytes32[] metrics,int256[] values)"
    );

    /// @notice A reading as Reading v1 section 2 defines it (fixed-point values, 6 decimals).
    struct Reading {
        bytes32 deviceId;
        uint64 seq;
        uint64 timestamp;
        bytes32 lotId;
        bytes32[] metrics;
        int256[] values;
    }

    /// @notice An anchored batch: its Merkle root, how many readings it holds, and when it was anchored.
    struct Batch {
        bytes32 root;
        uint64 count;
        uint64 anchoredAt;
    }

    DeviceRegistry private immutable _registry;
    Batch[] private _batches;
    mapping(bytes32 root => uint256 batchId) private _batchOfRoot;

    /// @notice The zero address was given for the device registry.
    error ReadingAnchorZeroRegistry();
    /// @notice A zero root was given.
    error ReadingAnchorZeroRoot();
    /// @notice A batch must hold at least one reading.
    error ReadingAnchorZeroCount();
    /// @notice This root is already anchored, as batch `batchId`.
    error ReadingAnchorRootAlreadyAnchored(bytes32 root, uint256 batchId);
    /// @notice No batch has this id.
    error ReadingAnchorUnknownBatch(uint256 batchId);
    /// @notice The reading's metric names and values differ in length.
    error ReadingAnchorLengthMismatch(uint256 metrics, uint256 values);
    /// @notice The reading is not in the batch (the proof does not lead to its root).
    error ReadingAnchorNotIncluded(bytes32 digest, uint256 batchId);
    /// @notice The device is not enrolled.
    error ReadingAnchorUnknownDevice(bytes32 deviceId);
    /// @notice The device was not active (not yet enrolled, or revoked) at the reading's time.
    error ReadingAnchorDeviceNotActive(bytes32 deviceId, uint64 timestamp);
    /// @notice The reading's time lies after its batch's anchoring (`anchoredAtMs`, block time in ms)
    /// plus {MAX_CLOCK_SKEW_MS}: a batch cannot hold a reading taken after it was anchored.
    error ReadingAnchorReadingAfterAnchoring(bytes32 deviceId, uint64 timestamp, uint64 anchoredAtMs);
    /// @notice The device is revoked at `revokedAtMs` and the reading's batch was anchored at or after
    /// it (`anchoredAtMs`): after a revocation, newly anchored readings of the device do not count,
    /// whatever time they claim.
    error ReadingAnchorAnchoredAfterRevocation(bytes32 deviceId, uint64 anchoredAtMs, uint64 revokedAtMs);
    /// @notice The signature has the wrong length for the device's scheme.
    error ReadingAnchorInvalidSignatureLength(bytes32 deviceId, uint256 length);
    /// @notice The signature is not the device's over the reading's digest (or is malleable).
    error ReadingAnchorBadSignature(bytes32 deviceId, bytes32 digest);

    /// @notice A batch was anchored.
    event BatchAnchored(uint256 indexed batchId, bytes32 indexed root, uint64 count, address indexed by);

    /**
     * @param admin Receives the default admin (handed over in two steps, {ADMIN_TRANSFER_DELAY}) and
     * anchor roles; not zero (`AccessControlInvalidDefaultAdmin`).
     * @param registry The device registry consulted by {verifyReading}; not zero.
     */
    constructor(address admin, DeviceRegistry registry)
        AccessControlDefaultAdminRules(ADMIN_TRANSFER_DELAY, admin)
        EIP712("supET Ledger", "1")
    {
        if (address(registry) == address(0)) revert ReadingAnchorZeroRegistry();
        _registry = registry;
        _grantRole(ANCHOR_ROLE, admin);
    }

    /**
     * @notice Anchor a batch root.
     * @param root The Merkle root of the batch's reading digests.
     * @param count How many readings the batch holds.
     * @return batchId The new batch's number (1, 2, 3, ...).
     */
    function anchorBatch(bytes32 root, uint64 count) external onlyRole(ANCHOR_ROLE) returns (uint256 batchId) {
        if (root == bytes32(0)) revert ReadingAnchorZeroRoot();
        if (count == 0) revert ReadingAnchorZeroCount();
        uint256 existing = _batchOfRoot[root];
        if (existing != 0) revert ReadingAnchorRootAlreadyAnchored(root, existing);
        _batches.push(Batch({root: root, count: count, anchoredAt: uint64(block.timestamp)}));
        batchId = _batches.length;
        _batchOfRoot[root] = batchId;
        emit BatchAnchored(batchId, root, count, msg.sender);
    }

    /// @notice The batch with this id.
    function batch(uint256 batchId) public view returns (Batch memory) {
        if (batchId == 0 || batchId > _batches.length) revert ReadingAnchorUnknownBatch(batchId);
        return _batches[batchId - 1];
    }

    /// @notice How many batches are anchored (the id of the last one).
    function batchCount() external view returns (uint256) {
        return _batches.length;
    }

    /// @notice The batch id that anchored `root`, or 0.
    function batchOfRoot(bytes32 root) external view returns (uint256) {
        return _batchOfRoot[root];
    }

    /// @notice The device registry consulted by {verifyReading}.
    function registry() external view returns (DeviceRegistry) {
        return _registry;
    }

    /// @notice The EIP-712 domain separator of this deployment.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice The EIP-712 digest a device signs for `reading`.
    function digest(Reading calldata reading) public view returns (bytes32) {
        if (reading.metrics.length != reading.values.length) {
            revert ReadingAnchorLengthMismatch(reading.metrics.length, reading.values.length);
        }
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    READING_TYPEHASH,
                    reading.deviceId,
                    reading.seq,
                    reading.timestamp,
                    reading.lotId,
                    keccak256(abi.encodePacked(reading.metrics)),
                    keccak256(abi.encodePacked(reading.values))
                )
            )
        );
    }

    /**
     * @notice Verify a reading with the chain alone: included in batch `batchId`, signed by the
     * device's enrolled key, the device active at the reading's time, the reading no later than
     * its batch's anchoring and, for a revoked device, the batch anchored before the revocation.
     * Reverts naming the first check that fails.
     * @param reading The reading.
     * @param signature P-256: 64 bytes r‖s (low-S); secp256k1: 65 bytes r‖s‖v.
     * @param batchId The batch the reading was anchored in.
     * @param proof The sibling hashes from the reading's leaf to the batch root.
     * @return readingDigest The reading's EIP-712 digest.
     */
    function verifyReading(
        Reading calldata reading,
        bytes calldata signature,
        uint256 batchId,
        bytes32[] calldata proof
    ) external view returns (bytes32 readingDigest) {
        readingDigest = digest(reading);
        Batch memory b = batch(batchId);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(readingDigest))));
        if (!MerkleProof.verifyCalldata(proof, b.root, leaf)) revert ReadingAnchorNotIncluded(readingDigest, batchId);
        _checkSignature(reading.deviceId, reading.timestamp, b.anchoredAt, readingDigest, signature);
    }

    /**
     * @notice Check that `signature` is the device's over `readingDigest` and that the device was
     * active at `timestamp`. Reverts naming what failed.
     * @dev Does not bind the reading to an anchoring time; {checkAnchoredSignature} does.
     */
    function checkDeviceSignature(
        bytes32 deviceId,
        uint64 timestamp,
        bytes32 readingDigest,
        bytes calldata signature
    ) external view {
        _checkSignature(deviceId, timestamp, 0, readingDigest, signature);
    }

    /**
     * @notice {checkDeviceSignature} for a reading anchored in batch `batchId` (its inclusion checked
     * by the caller): also the reading no later than the batch's anchoring, and, for a revoked
     * device, the batch anchored before the revocation. Reverts naming what failed.
     * @return anchoredAtMs The batch's anchoring time in ms.
     */
    function checkAnchoredSignature(
        bytes32 deviceId,
        uint64 timestamp,
        uint256 batchId,
        bytes32 readingDigest,
        bytes calldata signature
    ) external view returns (uint64 anchoredAtMs) {
        uint64 anchoredAt = batch(batchId).anchoredAt;
        _checkSignature(deviceId, timestamp, anchoredAt, readingDigest, signature);
        return anchoredAt * 1000;
    }

    /// @dev `anchoredAt` (block time, seconds) zero: no anchoring check.
    function _checkSignature(
        bytes32 deviceId,
        uint64 timestamp,
        uint64 anchoredAt,
        bytes32 readingDigest,
        bytes calldata signature
    ) private view {
        DeviceRegistry.Device memory d = _registry.device(deviceId);
        if (d.scheme == DeviceRegistry.Scheme.None) revert ReadingAnchorUnknownDevice(deviceId);
        if (timestamp < d.activeFromMs || (d.revokedAtMs != 0 && timestamp >= d.revokedAtMs)) {
            revert ReadingAnchorDeviceNotActive(deviceId, timestamp);
        }
        if (anchoredAt != 0) {
            uint64 anchoredAtMs = anchoredAt * 1000;
            if (timestamp > anchoredAtMs + MAX_CLOCK_SKEW_MS) {
                revert ReadingAnchorReadingAfterAnchoring(deviceId, timestamp, anchoredAtMs);
            }
            if (d.revokedAtMs != 0 && anchoredAtMs >= d.revokedAtMs) {
                revert ReadingAnchorAnchoredAfterRevocation(deviceId, anchoredAtMs, d.revokedAtMs);
            }
        }
        if (d.scheme == DeviceRegistry.Scheme.P256) {
            if (signature.length != 64) revert ReadingAnchorInvalidSignatureLength(deviceId, signature.length);
            bytes32 r = bytes32(signature[0:32]);
            bytes32 s = bytes32(signature[32:64]);
            // OpenZeppelin P256 rejects high-S signatures before using the precompile or the fallback.
            if (!P256.verify(readingDigest, r, s, d.keyX, d.keyY)) revert ReadingAnchorBadSignature(deviceId, readingDigest);
        } else {
            if (signature.length != 65) revert ReadingAnchorInvalidSignatureLength(deviceId, signature.length);
            (address recovered, ECDSA.RecoverError err, ) = ECDSA.tryRecoverCalldata(readingDigest, signature);
            if (err != ECDSA.RecoverError.NoError || recovered != d.signer) {
                revert ReadingAnchorBadSignature(deviceId, readingDigest);
            }
        }
    }
}
