// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRules} from
    "@openzeppelin/contracts/access/extensions/AccessControlDefaultAdminRules.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {P256} from "@openzeppelin/contracts/utils/cryptography/P256.sol";
import {IAdmissionGate} from "./IAdmissionGate.sol";

/**
 * @title DeviceRegistry
 * @notice Which devices may sign supET readings, with which key, and when.
 *
 * The consortium operator registers the manufacturer certificate authorities it
 * trusts: the CA's P-256 public key itself, filed under the keccak-256 of its
 * SubjectPublicKeyInfo (DER), the id the X.509 tooling computes. A party enrolls a
 * device it owns: the device's id hash, its signature scheme and public key (a
 * P-256 point, or the Ethereum address of a secp256k1 key), the fingerprint of
 * its X.509 certificate and the time from which its readings count.
 *
 * Enrollment is not taken on the enroller's word (issue 12, finding 2). The chain checks:
 * - a birth attestation: the trusted CA's key signed, as EIP-712 typed data
 *   `DeviceBirth(deviceId, scheme, keyX, keyY, signer, certFingerprint)`, that this device
 *   was made with this key and certificate ({DeviceRegistryInvalidBirthAttestation}). Its
 *   domain is `{name: "supET Device Birth", version: "1"}`, with no chain id and no
 *   contract: a manufacturer attests a device once, when it certifies it, for every
 *   registry ({BIRTH_DOMAIN_SEPARATOR});
 * - a proof of possession: the device's own key signed `DevicePossession(deviceId, owner)`
 *   for the enrolling owner (the caller), under this registry's EIP-712 domain (name
 *   "supET DeviceRegistry", version "1", chain id, this contract), so it cannot be replayed
 *   for another owner, chain or registry ({DeviceRegistryInvalidPossessionProof});
 * - the activation time: no earlier than the enrollment block's time, less
 *   {MAX_ACTIVATION_SKEW_MS} for the enrolling tool's clock ({DeviceRegistryActiveFromInPast});
 *   zero means the block's time.
 * P-256 signatures are 64 bytes (r || s, low s), checked with OpenZeppelin's `P256` (the
 * RIP-7212 / EIP-7951 precompile where the chain has it, else its Solidity fallback);
 * secp256k1 proofs are 65 bytes (r || s || v), recovered with OpenZeppelin's `ECDSA`.
 *
 * The owner or the operator revokes a device with a time; readings measured at or
 * after that time no longer verify.
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
 * The default admin is an OpenZeppelin `AccessControlDefaultAdminRules` admin (issue 12, finding 12):
 * there is exactly one, never granted, revoked or renounced outright; it is handed over in two steps,
 * `beginDefaultAdminTransfer` and, once {ADMIN_TRANSFER_DELAY} has passed, the successor's
 * `acceptDefaultAdminTransfer`. It grants the operator, enroller and evidence roles and sets the
 * admission gate.
 *
 * Times are Unix milliseconds, as in Reading v1's `ts_ms`.
 */
contract DeviceRegistry is AccessControlDefaultAdminRules, EIP712 {
    /// @notice The delay of a two-step admin handover (`beginDefaultAdminTransfer`, then the new admin's
    /// `acceptDefaultAdminTransfer` once it has passed); the admin may change it, itself with a delay.
    uint48 public constant ADMIN_TRANSFER_DELAY = 3 days;
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
    /// @notice How far an activation time may lie before the enrollment block's time (ms): the
    /// enrolling tool's clock against the chain's, the same skew {ReadingAnchor} grants devices.
    uint64 public constant MAX_ACTIVATION_SKEW_MS = 60_000;
    /// @notice EIP-712 type hash of the CA's birth attestation of a device.
    bytes32 public constant DEVICE_BIRTH_TYPEHASH = keccak256(
        "DeviceBirth(bytes32 deviceId,uint8 scheme,bytes32 keyX,bytes32 keyY,address signer,bytes32 certFingerprint)"
    );
    /// @notice EIP-712 type hash of the device's proof of possession for its enrolling owner.
    bytes32 public constant DEVICE_POSSESSION_TYPEHASH = keccak256("DevicePossession(bytes32 deviceId,address owner)");
    /// @notice EIP-712 domain separator of birth attestations: `{name: "supET Device Birth",
    /// version: "1"}`, bound to no chain and no contract (a CA attests a device for every registry).
    bytes32 public constant BIRTH_DOMAIN_SEPARATOR = keccak256(
        abi.encode(
            keccak256("EIP712Domain(string name,string version)"),
            keccak256("supET Device Birth"),
            keccak256("1")
        )
    );
    /// @dev DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point (0x04 || x || y follows).
    bytes private constant _P256_SPKI_PREFIX = hex"3059301306072a8648ce3d020106082a8648ce3d03010703420004";

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

    /// @notice A manufacturer CA's P-256 key as registered, and whether new enrollments may name it.
    struct CAKey {
        bool trusted;
        bytes32 keyX;
        bytes32 keyY;
    }

    /// @notice The latest reading time of a device used as evidence in a recorded verdict.
    struct PinnedEvidence {
        bool pinned;
        uint64 latestMs;
    }

    mapping(bytes32 deviceId => Device) private _devices;
    mapping(bytes32 deviceId => PinnedEvidence) private _pins;
    mapping(bytes32 caKeyHash => CAKey) private _caKeys;
    mapping(bytes32 keyHash => bytes32 deviceId) private _deviceOfKey;
    IAdmissionGate private _gate;

    /// @notice A CA with this key hash is already trusted.
    error DeviceRegistryCAAlreadyTrusted(bytes32 caKeyHash);
    /// @notice No trusted CA has this key hash.
    error DeviceRegistryUntrustedCA(bytes32 caKeyHash);
    /// @notice The CA key is not a valid P-256 public key.
    error DeviceRegistryInvalidCAKey(bytes32 keyX, bytes32 keyY);
    /// @notice The birth attestation is not the signature of CA `caKeyHash` over this device, its
    /// scheme, key and certificate fingerprint (forged, altered, or by another CA).
    error DeviceRegistryInvalidBirthAttestation(bytes32 deviceId, bytes32 caKeyHash);
    /// @notice The proof of possession is not the device key's signature for `owner` under this
    /// registry's domain (another owner, chain or registry, or not by the device's key).
    error DeviceRegistryInvalidPossessionProof(bytes32 deviceId, address owner);
    /// @notice The activation time `activeFromMs` lies before `earliestMs`, the enrollment block's time
    /// less {MAX_ACTIVATION_SKEW_MS}: readings from before the enrollment would count.
    error DeviceRegistryActiveFromInPast(bytes32 deviceId, uint64 earliestMs, uint64 activeFromMs);
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

    /// @notice The operator trusted a manufacturer CA, whose P-256 key is (`keyX`, `keyY`).
    event CATrusted(bytes32 indexed caKeyHash, bytes32 keyX, bytes32 keyY, string label);
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
     * @param admin Receives the default admin (handed over in two steps, {ADMIN_TRANSFER_DELAY}) and
     * operator roles; not zero (`AccessControlInvalidDefaultAdmin`).
     * @param evidence The contract whose recorded verdicts pin evidence (the QualityCertifier, whose
     * address the deployment computes ahead), granted {EVIDENCE_ROLE}; zero: none yet (the admin grants
     * the role later).
     */
    constructor(address admin, address evidence)
        AccessControlDefaultAdminRules(ADMIN_TRANSFER_DELAY, admin)
        EIP712("supET DeviceRegistry", "1")
    {
        _grantRole(OPERATOR_ROLE, admin);
        if (evidence != address(0)) _grantRole(EVIDENCE_ROLE, evidence);
    }

    // ------------------------------------------------------------------ operator

    /**
     * @notice Trust a manufacturer CA: register its P-256 public key, which signs the birth
     * attestations of the devices it certifies. A distrusted CA may be trusted again.
     * @param keyX The CA key's x coordinate.
     * @param keyY The CA key's y coordinate.
     * @param label A human-readable name (e.g. the CA's subject).
     * @return caKeyHash The CA's id: keccak-256 of its SubjectPublicKeyInfo (DER, uncompressed point),
     * as `device_attestation.certificates.ca_key_hash` computes it from the CA certificate.
     */
    function trustCA(
        bytes32 keyX,
        bytes32 keyY,
        string calldata label
    ) external onlyRole(OPERATOR_ROLE) returns (bytes32 caKeyHash) {
        if (!P256.isValidPublicKey(keyX, keyY)) revert DeviceRegistryInvalidCAKey(keyX, keyY);
        caKeyHash = caKeyHashOf(keyX, keyY);
        if (_caKeys[caKeyHash].trusted) revert DeviceRegistryCAAlreadyTrusted(caKeyHash);
        _caKeys[caKeyHash] = CAKey({trusted: true, keyX: keyX, keyY: keyY});
        emit CATrusted(caKeyHash, keyX, keyY, label);
    }

    /**
     * @notice Stop trusting a CA for new enrollments. Devices already enrolled stay enrolled.
     * @param caKeyHash The CA's key hash.
     */
    function distrustCA(bytes32 caKeyHash) external onlyRole(OPERATOR_ROLE) {
        if (!_caKeys[caKeyHash].trusted) revert DeviceRegistryUntrustedCA(caKeyHash);
        _caKeys[caKeyHash].trusted = false;
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
     * @notice Enroll a P-256 device owned by the caller, on the CA's birth attestation and the
     * device's proof of possession.
     * @param deviceId keccak-256 of the device serial (UTF-8).
     * @param keyX The public key's x coordinate.
     * @param keyY The public key's y coordinate.
     * @param certFingerprint SHA-256 of the device certificate (DER).
     * @param caKeyHash The key hash of the trusted CA that issued the certificate.
     * @param activeFromMs Readings measured at or after this time (Unix ms) count; at least the
     * block's time less {MAX_ACTIVATION_SKEW_MS}; zero: the block's time.
     * @param birthSignature The CA's P-256 signature (r || s) of {birthDigest}.
     * @param possessionSignature The device's P-256 signature (r || s) of {possessionDigest} for the caller.
     */
    function enrollP256(
        bytes32 deviceId,
        bytes32 keyX,
        bytes32 keyY,
        bytes32 certFingerprint,
        bytes32 caKeyHash,
        uint64 activeFromMs,
        bytes calldata birthSignature,
        bytes calldata possessionSignature
    ) external {
        _requireAdmitted(msg.sender);
        if (!P256.isValidPublicKey(keyX, keyY)) revert DeviceRegistryInvalidKey(Scheme.P256);
        Device memory d = Device({
            scheme: Scheme.P256,
            owner: msg.sender,
            signer: address(0),
            activeFromMs: activeFromMs,
            revokedAtMs: 0,
            keyX: keyX,
            keyY: keyY,
            certFingerprint: certFingerprint,
            caKeyHash: caKeyHash
        });
        bytes32 keyHash = keccak256(abi.encode(Scheme.P256, keyX, keyY));
        _checkEnrollment(deviceId, d, keyHash);
        _requireBirth(deviceId, d, birthSignature);
        if (!_p256Verifies(possessionDigest(deviceId, msg.sender), possessionSignature, keyX, keyY)) {
            revert DeviceRegistryInvalidPossessionProof(deviceId, msg.sender);
        }
        _enroll(deviceId, d, keyHash);
    }

    /**
     * @notice Enroll a secp256k1 device (gateway) owned by the caller, on the CA's birth attestation
     * and the device's proof of possession.
     * @param deviceId keccak-256 of the device serial (UTF-8).
     * @param signer The Ethereum address of the device's key.
     * @param certFingerprint SHA-256 of the device certificate (DER).
     * @param caKeyHash The key hash of the trusted CA that issued the certificate.
     * @param activeFromMs Readings measured at or after this time (Unix ms) count; at least the
     * block's time less {MAX_ACTIVATION_SKEW_MS}; zero: the block's time.
     * @param birthSignature The CA's P-256 signature (r || s) of {birthDigest}.
     * @param possessionSignature The device's signature (r || s || v) of {possessionDigest} for the caller.
     */
    function enrollSecp256k1(
        bytes32 deviceId,
        address signer,
        bytes32 certFingerprint,
        bytes32 caKeyHash,
        uint64 activeFromMs,
        bytes calldata birthSignature,
        bytes calldata possessionSignature
    ) external {
        _requireAdmitted(msg.sender);
        if (signer == address(0)) revert DeviceRegistryInvalidKey(Scheme.Secp256k1);
        Device memory d = Device({
            scheme: Scheme.Secp256k1,
            owner: msg.sender,
            signer: signer,
            activeFromMs: activeFromMs,
            revokedAtMs: 0,
            keyX: bytes32(0),
            keyY: bytes32(0),
            certFingerprint: certFingerprint,
            caKeyHash: caKeyHash
        });
        bytes32 keyHash = keccak256(abi.encode(Scheme.Secp256k1, signer));
        _checkEnrollment(deviceId, d, keyHash);
        _requireBirth(deviceId, d, birthSignature);
        (address recovered, ECDSA.RecoverError err, ) = ECDSA.tryRecoverCalldata(
            possessionDigest(deviceId, msg.sender),
            possessionSignature
        );
        if (err != ECDSA.RecoverError.NoError || recovered != signer) {
            revert DeviceRegistryInvalidPossessionProof(deviceId, msg.sender);
        }
        _enroll(deviceId, d, keyHash);
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
        return _caKeys[caKeyHash].trusted;
    }

    /// @notice The CA's registered P-256 key and whether it is trusted (all zero: never registered).
    function caKey(bytes32 caKeyHash) external view returns (CAKey memory) {
        return _caKeys[caKeyHash];
    }

    /// @notice The id of a CA key: keccak-256 of its P-256 SubjectPublicKeyInfo (DER, uncompressed point).
    function caKeyHashOf(bytes32 keyX, bytes32 keyY) public pure returns (bytes32) {
        return keccak256(abi.encodePacked(_P256_SPKI_PREFIX, keyX, keyY));
    }

    /**
     * @notice The EIP-712 digest a CA signs to attest a device's birth (domain {BIRTH_DOMAIN_SEPARATOR}).
     * @param deviceId The device id hash.
     * @param scheme The device's signature scheme.
     * @param keyX P-256: the key's x coordinate (secp256k1: zero).
     * @param keyY P-256: the key's y coordinate (secp256k1: zero).
     * @param signer secp256k1: the key's Ethereum address (P-256: zero).
     * @param certFingerprint SHA-256 of the device certificate (DER).
     */
    function birthDigest(
        bytes32 deviceId,
        Scheme scheme,
        bytes32 keyX,
        bytes32 keyY,
        address signer,
        bytes32 certFingerprint
    ) public pure returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(DEVICE_BIRTH_TYPEHASH, deviceId, uint8(scheme), keyX, keyY, signer, certFingerprint)
        );
        return MessageHashUtils.toTypedDataHash(BIRTH_DOMAIN_SEPARATOR, structHash);
    }

    /// @notice The EIP-712 digest a device signs to prove possession of its key for `owner`, under this
    /// registry's domain (name "supET DeviceRegistry", version "1", this chain, this contract).
    function possessionDigest(bytes32 deviceId, address owner) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(DEVICE_POSSESSION_TYPEHASH, deviceId, owner)));
    }

    /// @notice This registry's EIP-712 domain separator (of proofs of possession).
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
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

    /// @dev The cheap refusals, before the costly signature checks; sets a zero activation time to the
    /// block's time. Callers check admission first: the permission check stays apart from validation.
    function _checkEnrollment(bytes32 deviceId, Device memory d, bytes32 keyHash) private view {
        if (deviceId == bytes32(0)) revert DeviceRegistryZeroDeviceId();
        if (d.certFingerprint == bytes32(0)) revert DeviceRegistryZeroFingerprint();
        if (!_caKeys[d.caKeyHash].trusted) revert DeviceRegistryUntrustedCA(d.caKeyHash);
        if (_devices[deviceId].scheme != Scheme.None) revert DeviceRegistryDeviceExists(deviceId);
        bytes32 holder = _deviceOfKey[keyHash];
        if (holder != bytes32(0)) revert DeviceRegistryKeyInUse(keyHash, holder);
        uint64 nowMs = uint64(block.timestamp) * 1000;
        if (d.activeFromMs == 0) {
            d.activeFromMs = nowMs;
        } else {
            uint64 earliest = nowMs > MAX_ACTIVATION_SKEW_MS ? nowMs - MAX_ACTIVATION_SKEW_MS : 0;
            if (d.activeFromMs < earliest) revert DeviceRegistryActiveFromInPast(deviceId, earliest, d.activeFromMs);
        }
    }

    /// @dev Record a device that passed {_checkEnrollment} and its signature checks (internal, not
    /// private: only the test harness `testing/DeviceRegistryHarness.sol` calls it from outside).
    function _enroll(bytes32 deviceId, Device memory d, bytes32 keyHash) internal {
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

    /// @dev The CA `d.caKeyHash` (trusted: {_enroll} checked) signed the birth attestation of `d`.
    function _requireBirth(bytes32 deviceId, Device memory d, bytes calldata signature) private view {
        CAKey storage ca = _caKeys[d.caKeyHash];
        bytes32 digest = birthDigest(deviceId, d.scheme, d.keyX, d.keyY, d.signer, d.certFingerprint);
        if (!_p256Verifies(digest, signature, ca.keyX, ca.keyY)) {
            revert DeviceRegistryInvalidBirthAttestation(deviceId, d.caKeyHash);
        }
    }

    /// @dev A 64-byte P-256 signature (r || s) of `digest` by (`x`, `y`); OpenZeppelin's `P256` refuses
    /// high-s signatures and uses the precompile where there is one.
    function _p256Verifies(
        bytes32 digest,
        bytes calldata signature,
        bytes32 x,
        bytes32 y
    ) private view returns (bool) {
        if (signature.length != 64) return false;
        return P256.verify(digest, bytes32(signature[0:32]), bytes32(signature[32:64]), x, y);
    }

    function _requireAdmitted(address party) private view {
        IAdmissionGate gate = _gate;
        bool admitted = address(gate) == address(0)
            ? hasRole(ENROLLER_ROLE, party)
            : gate.isAdmitted(party, ENROLL_ACTION);
        if (!admitted) revert DeviceRegistryNotAdmitted(party);
    }
}
