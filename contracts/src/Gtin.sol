// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/**
 * @title Gtin
 * @notice GS1 GTIN-14 product numbers: parse the 14-digit text a person types, verify its check digit.
 *
 * A GTIN-14 is 13 data digits and a check digit. From the left, the data digits weigh 3, 1, 3, 1, ...
 * (the rightmost data digit always weighs 3); the check digit brings the weighted sum up to a multiple
 * of ten. GTIN-8, -12 and -13 numbers become GTIN-14 by padding zeros on the left, which keeps their
 * check digit. On chain a GTIN is the number the 14 digits spell (below 10^14, so it fits a uint64).
 */
library Gtin {
    /// @notice GTIN-14 numbers are below this bound (14 decimal digits).
    uint64 internal constant LIMIT = 1e14;

    /// @notice A GTIN-14 has exactly 14 digits; this text has `length` bytes.
    error GtinInvalidLength(uint256 length);
    /// @notice The byte at `index` (0-based) of the GTIN text is not an ASCII digit.
    error GtinInvalidCharacter(uint256 index, bytes1 character);
    /// @notice The last digit of `gtin` is `found`; its first 13 digits call for `expected`.
    error GtinInvalidCheckDigit(uint64 gtin, uint8 expected, uint8 found);

    /**
     * @notice The GTIN that `text` spells, after checking its form and its check digit.
     * @param text Exactly 14 ASCII digits, e.g. "05012345678900".
     * @return gtin The number the digits spell.
     */
    function parse(string calldata text) internal pure returns (uint64 gtin) {
        bytes calldata b = bytes(text);
        if (b.length != 14) revert GtinInvalidLength(b.length);
        for (uint256 i = 0; i < 14; ++i) {
            bytes1 c = b[i];
            if (c < "0" || c > "9") revert GtinInvalidCharacter(i, c);
            gtin = gtin * 10 + uint8(c) - 48;
        }
        check(gtin);
    }

    /**
     * @notice Revert unless `gtin` is below 10^14 and its last digit is the check digit of the others.
     * @param gtin A GTIN-14 as a number.
     */
    function check(uint64 gtin) internal pure {
        if (gtin >= LIMIT) revert GtinInvalidLength(_digits(gtin));
        uint8 expected = checkDigit(gtin / 10);
        uint8 found = uint8(gtin % 10);
        if (expected != found) revert GtinInvalidCheckDigit(gtin, expected, found);
    }

    /**
     * @notice The check digit of 13 data digits (GS1 mod-10: weights 3, 1, 3, ... from the right).
     * @param data The first 13 digits as a number (below 10^13).
     * @return The digit that completes them.
     */
    function checkDigit(uint64 data) internal pure returns (uint8) {
        uint256 sum = 0;
        uint256 weight = 3;
        for (uint256 i = 0; i < 13; ++i) {
            sum += (data % 10) * weight;
            data /= 10;
            weight = 4 - weight; // 3, 1, 3, 1, ...
        }
        return uint8((10 - (sum % 10)) % 10);
    }

    /// @dev How many decimal digits `value` has (for the length error of a too-large number).
    function _digits(uint64 value) private pure returns (uint256 n) {
        do {
            ++n;
            value /= 10;
        } while (value != 0);
    }
}
