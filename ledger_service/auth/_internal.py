"""Helpers shared inside ``ledger_service.auth``: times, signature recovery, the authenticator's fields."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature as EthKeysBadSignature
from sqlalchemy import Engine

if TYPE_CHECKING:
    from ledger_service.auth.tokens import Revocations

from ledger_service.auth.errors import AuthenticationFailed
from ledger_service.auth.party import AuthenticatedParty as PartyToken
from ledger_service.auth.party import PartyAddress


def ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: str, what: str) -> dt.datetime:
    try:
        parsed = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError as e:
        raise AuthenticationFailed(
            f"the sign-in message's {what} {value!r} is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ); "
            "sign the message exactly as POST /v1/auth/challenge returned it",
            code="auth.bad_message",
        ) from e
    return parsed.replace(tzinfo=dt.UTC)


def recover(text: str, signature: str, what: str) -> PartyAddress:
    try:
        raw = bytes.fromhex(signature.removeprefix("0x"))
    except ValueError as e:
        raise AuthenticationFailed(
            f"the {what} signature is not hex; send the 65-byte personal_sign signature as 0x-hex",
            code="auth.bad_signature",
        ) from e
    if len(raw) != 65:
        raise AuthenticationFailed(
            f"the {what} signature has {len(raw)} bytes; personal_sign gives 65 (r, s, v)",
            code="auth.bad_signature",
        )
    try:
        return PartyAddress(Account.recover_message(encode_defunct(text=text), signature=raw))
    except (ValueError, EthKeysBadSignature) as e:
        raise AuthenticationFailed(
            f"the {what} signature cannot be recovered ({e}); sign with personal_sign (EIP-191)",
            code="auth.bad_signature",
        ) from e


class AuthenticatorFields:
    """The state :class:`~ledger_service.auth.authenticator.Authenticator` sets up, which each of its
    parts (sign-in, signed requests, tokens, nonces) reads."""

    domain: str
    uri: str
    chain_id: int
    audience: str
    login_ttl: dt.timedelta
    token_ttl: dt.timedelta
    request_window: dt.timedelta
    engine: Engine
    clock: Callable[[], dt.datetime]
    _token_key: bytes
    _nonce_key: bytes
    _last_prune: float
    _last_revoked_prune: float
    #: Tokens whose signature and claims were checked, and their party (tokens.TOKEN_CACHE at most).
    _token_cache: dict[str, PartyToken]
    _token_lock: threading.Lock
    #: Whether this process is now the only one writing the database (a SQLite file's instance lock
    #: held); None: never assumed. Sign-outs are then all seen here (tokens.Revocations).
    sole_writer: Callable[[], bool] | None
    #: This process's knowledge of the database's sign-outs (shared by the authenticators on the engine).
    _revocations: Revocations
