// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/**
 * @title FreezableToken
 * @notice A test ERC-20 (2 decimals) whose owner mints and may freeze any address, like a regulated
 * stablecoin's blacklist: a frozen address can neither send nor receive. Tests use it to show that one
 * frozen holder does not block the others' repayment. Worth nothing; no deployment uses it.
 */
contract FreezableToken is ERC20, Ownable {
    /// @notice Whether an address is frozen.
    mapping(address account => bool) public frozen;

    /// @notice `account` is frozen: it can neither send nor receive the token.
    error FreezableTokenFrozen(address account);

    /// @notice The owner froze (`isFrozen`) or unfroze `account`.
    event Frozen(address indexed account, bool isFrozen);

    /// @param owner_ The account that may mint and freeze.
    constructor(address owner_) ERC20("Freezable Test Yuan", "fCNY") Ownable(owner_) {}

    /// @notice Two decimals, like tCNY.
    function decimals() public pure override returns (uint8) {
        return 2;
    }

    /// @notice Create `amount` for `to`; by the owner only.
    function mint(address to, uint256 amount) external onlyOwner {
        _mint(to, amount);
    }

    /// @notice Freeze or unfreeze `account`; by the owner only.
    function setFrozen(address account, bool isFrozen) external onlyOwner {
        frozen[account] = isFrozen;
        emit Frozen(account, isFrozen);
    }

    /// @dev Refuse any movement from or to a frozen address.
    function _update(address from, address to, uint256 value) internal override {
        if (frozen[from]) revert FreezableTokenFrozen(from);
        if (frozen[to]) revert FreezableTokenFrozen(to);
        super._update(from, to, value);
    }
}
