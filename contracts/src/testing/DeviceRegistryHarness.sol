// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DeviceRegistry} from "../DeviceRegistry.sol";

/**
 * @title DeviceRegistryHarness
 * @notice TEST ONLY. A {DeviceRegistry} that can also record a device without the CA's birth
 * attestation, the device's proof of possession or the activation-time rule, for tests whose
 * devices cannot sign (the Reading v1 vectors publish public keys only, with readings dated
 * 2025-11). Never deployed by `supet deploy`: tests deploy it in place of the DeviceRegistry
 * (`deploy_suite(device_registry="DeviceRegistryHarness")`). Every other function is the
 * production registry's, unchanged.
 */
contract DeviceRegistryHarness is DeviceRegistry {
    /// @param admin Receives the default admin (two-step handover) and operator roles; not zero.
    /// @param evidence Granted {EVIDENCE_ROLE} (the QualityCertifier); zero: none yet.
    constructor(address admin, address evidence) DeviceRegistry(admin, evidence) {}

    /**
     * @notice TEST ONLY: record a device owned by the caller, active from `activeFromMs` (taken
     * as is, zero included), with no attestation, proof or admission checked.
     * @param deviceId keccak-256 of the device serial (UTF-8).
     * @param scheme P256 (`keyX`, `keyY`) or Secp256k1 (`signer`).
     * @param keyX P-256: the key's x coordinate.
     * @param keyY P-256: the key's y coordinate.
     * @param signer secp256k1: the key's Ethereum address.
     * @param certFingerprint The certificate fingerprint to record.
     * @param caKeyHash The CA key hash to record.
     * @param activeFromMs Readings measured at or after this time (Unix ms) count.
     */
    function enrollWithoutAttestationForTest(
        bytes32 deviceId,
        Scheme scheme,
        bytes32 keyX,
        bytes32 keyY,
        address signer,
        bytes32 certFingerprint,
        bytes32 caKeyHash,
        uint64 activeFromMs
    ) external {
        Device memory d = Device({
            scheme: scheme,
            owner: msg.sender,
            signer: signer,
            activeFromMs: activeFromMs,
            revokedAtMs: 0,
            keyX: keyX,
            keyY: keyY,
            certFingerprint: certFingerprint,
            caKeyHash: caKeyHash
        });
        bytes32 keyHash = scheme == Scheme.P256
            ? keccak256(abi.encode(Scheme.P256, keyX, keyY))
            : keccak256(abi.encode(Scheme.Secp256k1, signer));
        _enroll(deviceId, d, keyHash);
    }
}
