// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/**
 * @title FeeOnTransferToken
 * @notice A test ERC-20 (2 decimals) that burns {FEE_BPS} of every transfer between accounts, so the
 * recipient gets less than was sent. Tests use it to show that the Receivables refuse such a token
 * instead of booking a part as paid or financed in full. Worth nothing; no deployment uses it.
 */
contract FeeOnTransferToken is ERC20, Ownable {
    /// @notice The fee burnt from each transfer, in basis points (1 %).
    uint256 public constant FEE_BPS = 100;

    /// @param owner_ The account that may mint.
    constructor(address owner_) ERC20("Fee Test Yuan", "xCNY") Ownable(owner_) {}

    /// @notice Two decimals, like tCNY.
    function decimals() public pure override returns (uint8) {
        return 2;
    }

    /// @notice Create `amount` for `to`; by the owner only (no fee).
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    /// @dev Burn the fee out of every transfer between two accounts (mints and burns pay none).
    function _update(address from, address to, uint256 value) internal override {
        if (from == address(0) || to == address(0)) {
            super._update(from, to, value);
            return;
        }
        uint256 fee = (value * FEE_BPS) / 10_000;
        super._update(from, address(0), fee);
        super._update(from, to, value - fee);
    }
}
