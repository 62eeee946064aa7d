// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title IAdmissionGate
 * @notice The question every supET contract asks before a party writes: is this
 * address admitted, right now, to perform this action? The consortium's
 * participant registry (rule-based admission) answers it; until one is wired in,
 * contracts fall back to plain roles.
 */
interface IAdmissionGate {
    /**
     * @notice Whether `party` may perform `action` at this block.
     * @param party The acting address.
     * @param action An action identifier, e.g. `keccak256("supet.device.enroll")`.
     * @return True while the party is admitted for the action.
     */
    function isAdmitted(address party, bytes32 action) external view returns (bool);
}
