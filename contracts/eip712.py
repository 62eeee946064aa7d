"""The EIP-712 domain type every typed structure the contracts check is signed under (claims, credit-line
statements): name, version, chain id and verifying contract."""

from __future__ import annotations

__all__ = ["EIP712_DOMAIN_TYPE"]

#: The ``EIP712Domain`` entry of a typed-data ``types`` table.
EIP712_DOMAIN_TYPE: list[dict[str, str]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
