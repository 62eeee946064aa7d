// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IAdmissionGate} from "../IAdmissionGate.sol";

/**
 * @title StaticAdmissionGate
 * @notice A test gate: its owner lists which (party, action) pairs are admitted.
 * For tests of contracts that ask an {IAdmissionGate}; the consortium's real gate
 * is the participant registry.
 */
contract StaticAdmissionGate is IAdmissionGate, Ownable {
    mapping(address party => mapping(bytes32 action => bool)) private _admitted;

    /// @notice An admission was set.
    event AdmissionSet(address indexed party, bytes32 indexed action, bool admitted);

    /// @param owner_ The account that may set admissions.
    constructor(address owner_) Ownable(owner_) {}

    /// @notice Admit or refuse `party` for `action`.
    function setAdmitted(address party, bytes32 action, bool admitted) external onlyOwner {
        _admitted[party][action] = admitted;
        emit AdmissionSet(party, action, admitted);
    }

    /// @inheritdoc IAdmissionGate
    function isAdmitted(address party, bytes32 action) external view returns (bool) {
        return _admitted[party][action];
    }
}
