"""Who is calling: a party's address, how it proved control of it, and the clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import NewType

from eth_utils import is_address, is_checksum_address, to_checksum_address

from ledger_service.auth.errors import AuthenticationFailed

__all__ = ["AuthMethod", "AuthenticatedParty", "PartyAddress", "parse_address", "utcnow"]

#: A checksummed (EIP-55) Ethereum address of a party.
PartyAddress = NewType("PartyAddress", str)


def utcnow() -> dt.datetime:
    """The current time, UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


class AuthMethod(StrEnum):
    TOKEN = "token"
    SIGNED_REQUEST = "signed_request"


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthenticatedParty:
    """Who is calling, and how it proved it. Roles are not here: ask :class:`RoleChecker`."""

    address: PartyAddress
    method: AuthMethod
    #: The token's ``jti`` or the signed request's nonce.
    credential_id: str
    #: When the credential stops being accepted.
    expires_at: dt.datetime


def parse_address(value: str, what: str = "address") -> PartyAddress:
    """A checksummed address; :class:`AuthenticationFailed` (``auth.bad_address``) otherwise.

    All-lowercase or all-uppercase hex is accepted; mixed case must be a valid EIP-55 checksum.
    """
    if not isinstance(value, str):
        raise AuthenticationFailed(
            f"{what} {value!r} is not an Ethereum address (0x and 40 hex digits)", code="auth.bad_address"
        )
    return _checksummed(value, what)


@lru_cache(maxsize=4096)  # the checksum is a keccak, and every signed-in request asks for one
def _checksummed(value: str, what: str) -> PartyAddress:
    if not is_address(value):
        raise AuthenticationFailed(
            f"{what} {value!r} is not an Ethereum address (0x and 40 hex digits)", code="auth.bad_address"
        )
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise AuthenticationFailed(
            f"{what} {value} has an invalid EIP-55 checksum. After looking up the address from the "
            "original source, try again.",
            code="auth.bad_address",
        )
    return PartyAddress(to_checksum_address(value))
