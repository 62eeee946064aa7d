// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {P256} from "@openzeppelin/contracts/utils/cryptography/P256.sol";
import {IAdmissionGate} from "./IAdmissionGate.sol";

/**
 * @title DeviceRegistry
 * @notice Which devices may sign supET readings, with which key, and when.
 *
 * The consortium operator registers the manufacturer certificate authorities it
 * trusts (by the keccak-256 of the CA's SubjectPublicKeyInfo). A party enrolls a
 * device it owns: the device's id hash, its signature scheme and public key (a
 * P-256 point, or the Ethereum address of a secp256k1 key), the fingerprint of
 * its X.509 certificate (chained to a trusted CA, with proof of possession,
 * checked off chain by the enrolling tool and the ledger service) and the time
 * from which its readings count. The owner or the operator revokes a device with
 * a time; readings measured at or after that time no longer verify.
 *
 * Revocation rules. A revocation time only ever moves earlier: a second revocation
 * must name an earlier time than the one in force ({DeviceRegistryRevocationNotEarlier}),
 * so nobody can make a device unrevokable or undo the operator's revocation. The
 * owner's time is capped at now (block time, in ms; {DeviceRegistryRevocationInFuture}),
 * and it may not reach back to evidence already used in a recorded verdict: the
 * quality certifier (holder of {EVIDENCE_ROLE}) pins, per device, the latest reading
 * time a verdict used, and a revocation must come after it
 * ({DeviceRegistryEvidencePinned}). The operator may also schedule a revocation in the
 * future, and only the operator, with a reason ({revokeWithReason}, emitted in
 * {DeviceRevocationRuled}), may reach back before pinned evidence.
 *
 * Times are Unix milliseconds, as in Reading v1's `ts_ms`.
 */
contract DeviceRegistry is AccessControl {
    /// @notice Role of the consortium operator: trusts CAs, may revoke any device.
    bytes32 public constant OPERATOR_ROLE = keccak256("supet.role.operator");
    /// @notice Role of parties allowed to enroll devices while no admission gate is set.
    bytes32 public constant ENROLLER_ROLE = keccak256("supet.role.enroller");
    /// @notice The action asked of the admission gate for an enrollment.
    bytes32 public constant ENROLL_ACTION = keccak256("supet.device.enroll");
    /// @notice Role of the contracts that record verdicts (the quality certifier): pins used evidence.
    bytes32 public constant EVIDENCE_ROLE = keccak256("supet.role.evidence");
    /// @notice The longest reason the operator may give for a ruled revocation, in bytes.
    uint256 public constant MAX_REASON_BYTES = 1024;

    /// @notice Signature schemes of Reading v1.
    enum Scheme {
        None,
        P256,
        Secp256k1
    }

    /// @notice A device as enrolled.
    struct Device {
        Scheme scheme;
        address owner;
        address signer;
        uint64 activeFromMs;
        uint64 revokedAtMs;
        bytes32 keyX;
        bytes32 keyY;
        bytes32 certFingerprint;
        bytes32 caKeyHash;
    }

    /// @notice The latest reading time of a device used as evidence in a recorded verdict.
    struct PinnedEvidence {
        bool pinned;
        uint64 latestMs;
    }

    mapping(bytes32 deviceId => Device) private _devices;
    mapping(bytes32 deviceId => PinnedEvidence) private _pins;
    mapping(bytes32 caKeyHash => bool) private _trustedCAs;
    mapping(bytes32 keyHash => bytes32 deviceId) private _deviceOfKey;
    IAdmissionGate private _gate;

    /// @notice A CA with this key hash is already trusted.
    error DeviceRegistryCAAlreadyTrusted(bytes32 caKeyHash);
    /// @notice No trusted CA has this key hash.
    error DeviceRegistryUntrustedCA(bytes32 caKeyHash);
    /// @notice A CA key hash of zero was given.
    error DeviceRegistryZeroCAKeyHash();
    /// @notice The zero address was given as the admin: nobody could ever govern the registry.
    error DeviceRegistryZeroAdmin();
    /// @notice The caller is not admitted to enroll devices.
    error DeviceRegistryNotAdmitted(address party);
    /// @notice A device id of zero was given (it is the registry's "no device" marker).
    error DeviceRegistryZeroDeviceId();
    /// @notice A device with this id is already enrolled.
    error DeviceRegistryDeviceExists(bytes32 deviceId);
    /// @notice No device with this id is enrolled.
    error DeviceRegistryUnknownDevice(bytes32 deviceId);
    /// @notice The key is not a valid key of the scheme (off-curve point, zero address, unknown scheme).
    error DeviceRegistryInvalidKey(Scheme scheme);
    /// @notice The key is already enrolled for another device.
    error DeviceRegistryKeyInUse(bytes32 keyHash, bytes32 deviceId);
    /// @notice The certificate fingerprint is zero.
    error DeviceRegistryZeroFingerprint();
    /// @notice Only the device's owner or the operator may do this.
    error DeviceRegistryNotOwnerOrOperator(address caller, bytes32 deviceId);
    /// @notice A revocation may only move earlier: the device is already revoked from `currentMs`,
    /// which `requestedMs` does not precede.
    error DeviceRegistryRevocationNotEarlier(bytes32 deviceId, uint64 currentMs, uint64 requestedMs);
    /// @notice An owner may not revoke in the future: `requestedMs` is after now, `nowMs` (block time).
    error DeviceRegistryRevocationInFuture(bytes32 deviceId, uint64 nowMs, uint64 requestedMs);
    /// @notice A reading of the device measured at `pinnedMs` was used in a recorded verdict: a
    /// revocation at `requestedMs` would make it stop verifying. Only the operator may rule so, with a
    /// reason ({revokeWithReason}).
    error DeviceRegistryEvidencePinned(bytes32 deviceId, uint64 pinnedMs, uint64 requestedMs);
    /// @notice A ruled revocation needs a reason of 1 to {MAX_REASON_BYTES} bytes; this one has `length`.
    error DeviceRegistryInvalidReason(uint256 length);
    /// @notice The device ids and the reading times to pin differ in length.
    error DeviceRegistryPinLengthMismatch(uint256 deviceIds, uint256 times);
    /// @notice A revocation time earlier than the device's activation.
    error DeviceRegistryRevocationBeforeActivation(bytes32 deviceId, uint64 activeFromMs, uint64 revokedAtMs);

    /// @notice The operator trusted a manufacturer CA.
    event CATrusted(bytes32 indexed caKeyHash, string label);
    /// @notice The operator withdrew trust in a manufacturer CA (enrolled devices stay).
    event CADistrusted(bytes32 indexed caKeyHash);
    /// @notice A device was enrolled.
    event DeviceEnrolled(
        bytes32 indexed deviceId,
        address indexed owner,
        Scheme scheme,
        bytes32 keyX,
        bytes32 keyY,
        address signer,
        bytes32 certFingerprint,
        bytes32 caKeyHash,
        uint64 activeFromMs
    );
    /// @notice A device was revoked from `revokedAtMs` on (emitted again each time the time moves earlier).
    event DeviceRevoked(bytes32 indexed deviceId, address indexed by, uint64 revokedAtMs);
    /// @notice The operator revoked a device from `revokedAtMs` on, for `reason`; `pinnedMs` is the latest
    /// reading time used in a verdict then (`pinned` false: none), so a ruling before it is visible.
    event DeviceRevocationRuled(
        bytes32 indexed deviceId,
        address indexed by,
        uint64 revokedAtMs,
        bool pinned,
        uint64 pinnedMs,
        string reason
    );
    /// @notice A verdict used a reading of the device measured at `latestMs` (the latest so far).
    event EvidencePinned(bytes32 indexed deviceId, uint64 latestMs, address indexed by);
    /// @notice The admission gate changed (zero: roles only).
    event AdmissionGateSet(address gate);

    /**
     * @param admin Receives the default admin and operator roles.
     */
    constructor(address admin) {
        if (admin == address(0)) revert DeviceRegistryZeroAdmin();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(OPERATOR_ROLE, admin);
    }

    // ------------------------------------------------------------------ operator

    /**
     * @notice Trust a manufacturer CA.
     * @param caKeyHash keccak-256 of the CA certificate's SubjectPublicKeyInfo (DER).
     * @param label A human-readable name (e.g. the CA's subject).
     */
    function trustCA(bytes32 caKeyHash, string calldata label) external onlyRole(OPERATOR_ROLE) {
        if (caKeyHash == bytes32(0)) revert DeviceRegistryZeroCAKeyHash();
        if (_trustedCAs[caKeyHash]) revert DeviceRegistryCAAlreadyTrusted(caKeyHash);
        _trustedCAs[caKeyHash] = true;
        emit CATrusted(caKeyHash, label);
    }

    /**
     * @notice Stop trusting a CA for new enrollments. Devices already enrolled stay enrolled.
     * @param caKeyHash The CA's key hash.
     */
    function distrustCA(bytes32 caKeyHash) external onlyRole(OPERATOR_ROLE) {
        if (!_trustedCAs[caKeyHash]) revert DeviceRegistryUntrustedCA(caKeyHash);
        _trustedCAs[caKeyHash] = false;
        emit CADistrusted(caKeyHash);
    }

    /**
     * @notice Set the admission gate asked before each enrollment (zero address: roles only).
     * @param gate The gate contract.
     */
    function setAdmissionGate(IAdmissionGate gate) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _gate = gate;
        emit AdmissionGateSet(address(gate));
    }

    // ------------------------------------------------------------------ parties

    /**
     * @notice Enroll a P-256 device owned by the caller.
     * @param deviceId keccak-256 of the device serial (UTF-8).
     * @param keyX The public key's x coordinate.
     * @param keyY The public key's y coordinate.
     * @param certFingerprint SHA-256 of the device certificate (DER).
     * @param caKeyHash The key hash of the trusted CA that issued the certificate.
     * @param activeFromMs Readings measured at or after this time (Unix ms) count.
     */
    function enrollP256(
        bytes32 deviceId,
        bytes32 keyX,
        bytes32 keyY,
        bytes32 certFingerprint,
        bytes32 caKeyHash,
        uint64 activeFromMs
    ) external {
        _requireAdmitted(msg.sender);
        if (!P256.isValidPublicKey(keyX, keyY)) revert DeviceRegistryInvalidKey(Scheme.P256);
        _enroll(
            deviceId,
            Device({
                scheme: Scheme.P256,
                owner: msg.sender,
                signer: address(0),
                activeFromMs: activeFromMs,
                revokedAtMs: 0,
                keyX: keyX,
                keyY: keyY,
                certFingerprint: certFingerprint,
                caKeyHash: caKeyHash
            }),
            keccak256(abi.encode(Scheme.P256, keyX, keyY))
        );
    }

    /**
     * @notice Enroll a secp256k1 device (gateway) owned by the caller.
     * @param deviceId keccak-256 of the device serial (UTF-8).
     * @param signer The Ethereum address of the device's key.
     * @param certFingerprint SHA-256 of the device certificate (DER).
     * @param caKeyHash The key hash of the trusted CA that issued the certificate.
     * @param activeFromMs Readings measured at or after this time (Unix ms) count.
     */
    function enrollSecp256k1(
        bytes32 deviceId,
        address signer,
        bytes32 certFingerprint,
        bytes32 caKeyHash,
        uint64 activeFromMs
    ) external {
        _requireAdmitted(msg.sender);
        if (signer == address(0)) revert DeviceRegistryInvalidKey(Scheme.Secp256k1);
        _enroll(
            deviceId,
            Device({
                scheme: Scheme.Secp256k1,
                owner: msg.sender,
                signer: signer,
                activeFromMs: activeFromMs,
                revokedAtMs: 0,
                keyX: bytes32(0),
                keyY: bytes32(0),
                certFingerprint: certFingerprint,
                caKeyHash: caKeyHash
            }),
            keccak256(abi.encode(Scheme.Secp256k1, signer))
        );
    }

    /**
     * @notice Revoke a device: its readings measured at or after `revokedAtMs` no longer verify.
     * @dev The owner or the operator may revoke; a time of zero means now (block time, in ms). A
     * revocation only moves earlier: when the device is already revoked, `revokedAtMs` must precede the
     * time in force. Never before the device's activation. The owner's time is at most now; the operator
     * may schedule one in the future. Neither may reach back to evidence used in a recorded verdict
     * (at or before the pinned reading time): only {revokeWithReason} may.
     * @param deviceId The device id hash.
     * @param revokedAtMs The revocation time (Unix ms), or 0 for now.
     */
    function revoke(bytes32 deviceId, uint64 revokedAtMs) external {
        Device storage d = _devices[deviceId];
        if (d.scheme == Scheme.None) revert DeviceRegistryUnknownDevice(deviceId);
        bool operator = hasRole(OPERATOR_ROLE, msg.sender);
        if (msg.sender != d.owner && !operator) revert DeviceRegistryNotOwnerOrOperator(msg.sender, deviceId);
        uint64 nowMs = uint64(block.timestamp) * 1000;
        uint64 at = revokedAtMs == 0 ? nowMs : revokedAtMs;
        if (!operator && at > nowMs) revert DeviceRegistryRevocationInFuture(deviceId, nowMs, at);
        _revoke(d, deviceId, at, false);
    }

    /**
     * @notice The operator's ruling: revoke a device from `revokedAtMs`, which may reach back before
     * evidence already used in a verdict (that evidence then stops verifying), giving the reason.
     * @dev Otherwise as {revoke}: the time only moves earlier, never before activation; zero means now.
     * @param deviceId The device id hash.
     * @param revokedAtMs The revocation time (Unix ms), or 0 for now.
     * @param reason Why (1 to {MAX_REASON_BYTES} bytes), e.g. the incident report's reference.
     */
    function revokeWithReason(
        bytes32 deviceId,
        uint64 revokedAtMs,
        string calldata reason
    ) external onlyRole(OPERATOR_ROLE) {
        Device storage d = _devices[deviceId];
        if (d.scheme == Scheme.None) revert DeviceRegistryUnknownDevice(deviceId);
        uint256 length = bytes(reason).length;
        if (length == 0 || length > MAX_REASON_BYTES) revert DeviceRegistryInvalidReason(length);
        uint64 at = revokedAtMs == 0 ? uint64(block.timestamp) * 1000 : revokedAtMs;
        _revoke(d, deviceId, at, true);
        PinnedEvidence memory pin = _pins[deviceId];
        emit DeviceRevocationRuled(deviceId, msg.sender, at, pin.pinned, pin.latestMs, reason);
    }

    // ------------------------------------------------------------------ verdicts

    /**
     * @notice Pin evidence used in a recorded verdict: for each device, the latest reading time the
     * verdict used. A revocation at or before a device's pinned time needs the operator's ruling.
     * @dev By a holder of {EVIDENCE_ROLE} (the quality certifier). Pins only rise; unknown devices revert.
     * @param deviceIds The devices.
     * @param latestMs For each device, the latest reading time (Unix ms) the verdict used.
     */
    function pinEvidence(bytes32[] calldata deviceIds, uint64[] calldata latestMs) external onlyRole(EVIDENCE_ROLE) {
        if (deviceIds.length != latestMs.length) {
            revert DeviceRegistryPinLengthMismatch(deviceIds.length, latestMs.length);
        }
        for (uint256 i = 0; i < deviceIds.length; ++i) {
            bytes32 deviceId = deviceIds[i];
            if (_devices[deviceId].scheme == Scheme.None) revert DeviceRegistryUnknownDevice(deviceId);
            PinnedEvidence storage pin = _pins[deviceId];
            uint64 t = latestMs[i];
            if (pin.pinned && t <= pin.latestMs) continue;
            pin.pinned = true;
            pin.latestMs = t;
            emit EvidencePinned(deviceId, t, msg.sender);
        }
    }

    // ------------------------------------------------------------------ views

    /// @notice Whether a CA key hash is trusted for new enrollments.
    function isTrustedCA(bytes32 caKeyHash) external view returns (bool) {
        return _trustedCAs[caKeyHash];
    }

    /// @notice The enrolled device (scheme None when unknown).
    function device(bytes32 deviceId) external view returns (Device memory) {
        return _devices[deviceId];
    }

    /// @notice The device's owner (zero when unknown).
    function ownerOf(bytes32 deviceId) external view returns (address) {
        return _devices[deviceId].owner;
    }

    /// @notice The latest reading time of the device used in a recorded verdict (`pinned` false: none).
    function pinnedEvidence(bytes32 deviceId) external view returns (PinnedEvidence memory) {
        return _pins[deviceId];
    }

    /// @notice Whether the device was enrolled and not revoked at `tsMs` (Unix ms).
    function isActiveAt(bytes32 deviceId, uint64 tsMs) public view returns (bool) {
        Device storage d = _devices[deviceId];
        return d.scheme != Scheme.None && tsMs >= d.activeFromMs && (d.revokedAtMs == 0 || tsMs < d.revokedAtMs);
    }

    /// @notice The admission gate in force (zero: roles only).
    function admissionGate() external view returns (IAdmissionGate) {
        return _gate;
    }

    // ------------------------------------------------------------------ internal

    /// @dev Callers check admission first: the permission check stays apart from validation.
    function _enroll(bytes32 deviceId, Device memory d, bytes32 keyHash) private {
        if (deviceId == bytes32(0)) revert DeviceRegistryZeroDeviceId();
        if (d.certFingerprint == bytes32(0)) revert DeviceRegistryZeroFingerprint();
        if (!_trustedCAs[d.caKeyHash]) revert DeviceRegistryUntrustedCA(d.caKeyHash);
        if (_devices[deviceId].scheme != Scheme.None) revert DeviceRegistryDeviceExists(deviceId);
        bytes32 holder = _deviceOfKey[keyHash];
        if (holder != bytes32(0)) revert DeviceRegistryKeyInUse(keyHash, holder);
        _devices[deviceId] = d;
        _deviceOfKey[keyHash] = deviceId;
        emit DeviceEnrolled(
            deviceId, d.owner, d.scheme, d.keyX, d.keyY, d.signer, d.certFingerprint, d.caKeyHash, d.activeFromMs
        );
    }

    /// @dev Apply a revocation at `at` (the caller checked who may, and the owner's cap at now).
    function _revoke(Device storage d, bytes32 deviceId, uint64 at, bool ruling) private {
        if (at < d.activeFromMs) revert DeviceRegistryRevocationBeforeActivation(deviceId, d.activeFromMs, at);
        uint64 current = d.revokedAtMs;
        if (current != 0 && at >= current) revert DeviceRegistryRevocationNotEarlier(deviceId, current, at);
        if (!ruling) {
            PinnedEvidence memory pin = _pins[deviceId];
            if (pin.pinned && at <= pin.latestMs) revert DeviceRegistryEvidencePinned(deviceId, pin.latestMs, at);
        }
        d.revokedAtMs = at;
        emit DeviceRevoked(deviceId, msg.sender, at);
    }

    function _requireAdmitted(address party) private view {
        IAdmissionGate gate = _gate;
        bool admitted = address(gate) == address(0)
            ? hasRole(ENROLLER_ROLE, party)
            : gate.isAdmitted(party, ENROLL_ACTION);
        if (!admitted) revert DeviceRegistryNotAdmitted(party);
    }
}
