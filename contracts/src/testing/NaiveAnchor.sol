// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title NaiveAnchor
 * @notice The design ReadingAnchor is measured against: every reading's digest written
 * in its own transaction. For benchmarks only.
 */
contract NaiveAnchor {
    mapping(bytes32 digest => uint64 anchoredAt) private _anchored;

    /// @notice The digest was anchored before.
    error NaiveAnchorAlreadyAnchored(bytes32 digest);

    /// @notice A digest was anchored.
    event DigestAnchored(bytes32 indexed digest);

    /// @notice Anchor one reading digest.
    function anchor(bytes32 digest) external {
        if (_anchored[digest] != 0) revert NaiveAnchorAlreadyAnchored(digest);
        _anchored[digest] = uint64(block.timestamp);
        emit DigestAnchored(digest);
    }

    /// @notice When a digest was anchored (0: never).
    function anchoredAt(bytes32 digest) external view returns (uint64) {
        return _anchored[digest];
    }
}
