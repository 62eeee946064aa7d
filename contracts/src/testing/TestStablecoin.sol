// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/**
 * @title TestStablecoin
 * @notice "supET Test Yuan" (tCNY): a plain ERC-20 with 2 decimals (1 tCNY = 100 fen) that its owner
 * mints at will. It settles receivables in tests and in the demo; it is worth nothing and no
 * production deployment uses it.
 */
contract TestStablecoin is ERC20, Ownable {
    /// @param owner_ The account that may mint.
    constructor(address owner_) ERC20("supET Test Yuan", "tCNY") Ownable(owner_) {}

    /// @notice Two decimals: amounts are in fen (0.01 tCNY).
    function decimals() public pure override returns (uint8) {
        return 2;
    }

    /**
     * @notice Create `amount` fen for `to`; by the owner only.
     * @param to The recipient.
     * @param amount The amount, in fen.
     */
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }
}
