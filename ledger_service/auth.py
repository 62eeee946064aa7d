"""Party authentication: a caller proves control of its on-chain address; the chain says what it may do.

Devices are authenticated by the signatures on their readings (see ``ingest``). Every
other write comes from a *party* (a manufacturer, the operator, ...) identified by an
Ethereum address. A party proves control of the address in one of two ways, and both
end in the same :class:`AuthenticatedParty`:

1. **Sign-in** (EIP-4361, "Sign-In with Ethereum"). ``POST /v1/auth/challenge`` returns a
   message naming this service's domain and URI, the chain id, the address, a
   single-use nonce, the issue time and an expiry five minutes later. The party signs it
   with ``personal_sign`` (EIP-191) and trades message and signature at
   ``POST /v1/auth/token`` for a short-lived token (HS256 JWT, 15 minutes). The nonce is
   *stateless* when issued: it carries an HMAC over the address, chain, domain and times,
   so the service knows it issued it without storing anything for unauthenticated
   callers, across restarts and replicas. It is recorded in ``used_nonces`` when
   redeemed, so a replay is refused even after a restart.
2. **A signed request**: headers ``X-Supet-Address``, ``X-Supet-Timestamp`` (Unix ms),
   ``X-Supet-Nonce`` and ``X-Supet-Signature`` (EIP-191 over
   :func:`canonical_request`: service domain, chain id, address, method, path and query,
   SHA-256 of the body, timestamp, nonce). Accepted within ±60 s of the service's
   clock and once: the nonce is recorded in ``used_nonces``.

Tokens carry no roles. :class:`RoleChecker` asks the DeviceRegistry at request time
(``hasRole``, or the admission gate's ``isAdmitted`` for enrollment once a gate is set),
pinned to the latest block and cached for that block only, so a revoked role stops
working with the block that revokes it.

The FastAPI dependencies :func:`current_party` and :func:`require_role` are at the end;
``ledger_service.api.deps`` names them ``CurrentParty`` and ``EnrollerParty``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final, NewType
from urllib.parse import urlsplit

import jwt
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature as EthKeysBadSignature
from eth_utils import is_address, is_checksum_address, keccak, to_checksum_address
from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session

from contracts.chain import Chain
from contracts.deploy import Deployment
from contracts.errors import ContractRevert
from contracts.registry import ENROLLER_ROLE, OPERATOR_ROLE
from ledger_service.config import Settings
from ledger_service.errors import AuthError, StoreError
from ledger_service.store.models import RevokedTokenRow, UsedNonceRow

if TYPE_CHECKING:
    from ledger_service.service import LedgerService

__all__ = [
    "ENROLLER",
    "ENROLL_ACTION",
    "OPERATOR",
    "AuthMethod",
    "AuthenticatedParty",
    "AuthenticationFailed",
    "Authenticator",
    "IssuedToken",
    "LoginChallenge",
    "NotASession",
    "PartyAddress",
    "RoleChecker",
    "RoleRequired",
    "RoleSpec",
    "auth_state",
    "canonical_request",
    "current_party",
    "parse_address",
    "require_role",
    "siwe_message",
    "utcnow",
]

log = logging.getLogger(__name__)

#: A checksummed (EIP-55) Ethereum address of a party.
PartyAddress = NewType("PartyAddress", str)

#: ``DeviceRegistry.ENROLL_ACTION``: what the admission gate is asked before an enrollment.
ENROLL_ACTION: Final = keccak(b"supet.device.enroll")
#: First line of a signed request's canonical string (its version).
SIGNED_REQUEST_TAG: Final = "supET signed request v1"
SIWE_STATEMENT: Final = (
    "Sign in to the supET Ledger with this address. Signing proves you control the address; "
    "it sends no transaction and moves no funds."
)
_NONCE_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_LOGIN_NONCE_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_SIWE_RE: Final = re.compile(
    r"\A(?P<domain>\S+) wants you to sign in with your Ethereum account:\n"
    r"(?P<address>0x[0-9a-fA-F]{40})\n\n"
    r"(?P<statement>[^\n]*)\n\n"
    r"URI: (?P<uri>[^\n]+)\n"
    r"Version: 1\n"
    r"Chain ID: (?P<chain_id>[0-9]{1,20})\n"
    r"Nonce: (?P<nonce>[A-Za-z0-9]{8,128})\n"
    r"Issued At: (?P<issued_at>[^\n]+)\n"
    r"Expiration Time: (?P<expires_at>[^\n]+)\Z"
)
_ZERO_ADDRESS: Final = "0x" + "00" * 20
_GATE_ABI: Final = [
    {
        "type": "function",
        "name": "isAdmitted",
        "stateMutability": "view",
        "inputs": [{"name": "party", "type": "address"}, {"name": "action", "type": "bytes32"}],
        "outputs": [{"name": "", "type": "bool"}],
    }
]


def utcnow() -> dt.datetime:
    """The current time, UTC, timezone-aware."""
    return dt.datetime.now(dt.UTC)


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(value: str, what: str) -> dt.datetime:
    try:
        parsed = dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError as e:
        raise AuthenticationFailed(
            f"the sign-in message's {what} {value!r} is not an RFC 3339 UTC time (YYYY-MM-DDTHH:MM:SSZ); "
            "sign the message exactly as POST /v1/auth/challenge returned it",
            code="auth.bad_message",
        ) from e
    return parsed.replace(tzinfo=dt.UTC)


# ---------------------------------------------------------------------------- errors


class AuthenticationFailed(AuthError):
    """The caller did not prove control of an address (HTTP 401).

    ``code``: ``auth.missing``, ``auth.bad_signature``, ``auth.bad_token``,
    ``auth.bad_message``, ``auth.expired``, ``auth.revoked`` (signed out), ``auth.replayed`` or
    ``auth.ambiguous``.
    """

    code = "auth.failed"
    http_status = 401

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


class NotASession(AuthError):
    """Sign-out was asked with a credential that is not a session (a signed request) (HTTP 400)."""

    code = "auth.not_a_session"
    http_status = 400


class RoleRequired(AuthError):
    """The party proved who it is but the chain does not give it the role (HTTP 403)."""

    code = "auth.role_required"
    http_status = 403

    def __init__(self, message: str, *, role: str, party: str) -> None:
        super().__init__(message)
        self.role = role
        self.party = party


# ---------------------------------------------------------------------------- values


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


@dataclass(frozen=True, kw_only=True, slots=True)
class LoginChallenge:
    """A sign-in message to sign with ``personal_sign``."""

    address: PartyAddress
    domain: str
    chain_id: int
    nonce: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    message: str


@dataclass(frozen=True, kw_only=True, slots=True)
class IssuedToken:
    """A bearer token and what it stands for."""

    token: str
    address: PartyAddress
    token_id: str
    chain_id: int
    expires_at: dt.datetime


def parse_address(value: str, what: str = "address") -> PartyAddress:
    """A checksummed address; :class:`AuthenticationFailed` (``auth.bad_address``) otherwise.

    All-lowercase or all-uppercase hex is accepted; mixed case must be a valid EIP-55 checksum.
    """
    if not isinstance(value, str) or not is_address(value):
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


def siwe_message(
    *,
    domain: str,
    uri: str,
    address: str,
    chain_id: int,
    nonce: str,
    issued_at: dt.datetime,
    expires_at: dt.datetime,
) -> str:
    """The EIP-4361 message this service issues (and the only form it accepts)."""
    return (
        f"{domain} wants you to sign in with your Ethereum account:\n"
        f"{address}\n\n"
        f"{SIWE_STATEMENT}\n\n"
        f"URI: {uri}\n"
        "Version: 1\n"
        f"Chain ID: {chain_id}\n"
        f"Nonce: {nonce}\n"
        f"Issued At: {_iso(issued_at)}\n"
        f"Expiration Time: {_iso(expires_at)}"
    )


def canonical_request(
    *,
    domain: str,
    chain_id: int,
    address: str,
    method: str,
    path: str,
    body: bytes,
    timestamp_ms: int,
    nonce: str,
) -> str:
    """The string a party signs (EIP-191 ``personal_sign``) for a signed request.

    One field per line: ``supET signed request v1``, the service domain, the chain id,
    the checksummed address, the HTTP method (upper case), the path with its query
    string (``/v1/devices?x=1``), the lowercase hex SHA-256 of the body (of the empty
    string when there is none), the timestamp in Unix milliseconds, the nonce.
    """
    return "\n".join(
        [
            SIGNED_REQUEST_TAG,
            domain,
            str(chain_id),
            address,
            method.upper(),
            path,
            hashlib.sha256(body).hexdigest(),
            str(timestamp_ms),
            nonce,
        ]
    )


def _recover(text: str, signature: str, what: str) -> PartyAddress:
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


# ---------------------------------------------------------------------------- authenticator


class Authenticator:
    """Issues sign-in challenges and tokens; checks tokens and signed requests.

    Keys are derived from ``settings.token_secret`` (one for tokens, one for nonces), so
    the two uses never share a key. ``clock`` may be replaced (tests).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        chain_id: int,
        registry_address: str,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        url = urlsplit(settings.public_url)
        self.domain = url.netloc
        self.uri = settings.public_url
        self.chain_id = chain_id
        self.audience = f"supet-ledger:eip155:{chain_id}:{to_checksum_address(registry_address)}"
        self.login_ttl = dt.timedelta(seconds=settings.login_ttl_seconds)
        self.token_ttl = dt.timedelta(seconds=settings.token_ttl_seconds)
        self.request_window = dt.timedelta(seconds=settings.signed_request_window_seconds)
        self.engine = engine
        self.clock = clock
        secret = settings.token_secret_bytes()
        self._token_key = hmac.new(secret, b"supet.auth.token.v1", hashlib.sha256).digest()
        self._nonce_key = hmac.new(secret, b"supet.auth.login-nonce.v1", hashlib.sha256).digest()
        self._last_prune = 0.0
        self._last_revoked_prune = 0.0

    # -------------------------------------------------------------- sign-in

    def issue_login(self, address: str) -> LoginChallenge:
        """A sign-in message for ``address``, valid for ``login_ttl``. Nothing is stored."""
        party = parse_address(address)
        issued = self.clock().replace(microsecond=0)
        expires = issued + self.login_ttl
        rand = secrets.token_hex(16)
        nonce = rand + self._nonce_mac(party, rand, issued, expires)
        return LoginChallenge(
            address=party,
            domain=self.domain,
            chain_id=self.chain_id,
            nonce=nonce,
            issued_at=issued,
            expires_at=expires,
            message=siwe_message(
                domain=self.domain,
                uri=self.uri,
                address=party,
                chain_id=self.chain_id,
                nonce=nonce,
                issued_at=issued,
                expires_at=expires,
            ),
        )

    def redeem_login(self, message: str, signature: str) -> IssuedToken:
        """Check a signed sign-in message and spend its nonce; return a token.

        Checks, in order: the message is one this service issued, unchanged (domain, URI,
        chain, statement, nonce MAC over address and times); it has not expired; the
        signature recovers to its address; the nonce was not used before (recorded now).
        """
        m = _SIWE_RE.match(message)
        if m is None:
            raise AuthenticationFailed(
                "the sign-in message is not in the form POST /v1/auth/challenge returns; "
                "sign that message unchanged",
                code="auth.bad_message",
            )
        if m["domain"] != self.domain or m["uri"] != self.uri:
            raise AuthenticationFailed(
                f"the sign-in message is for {m['domain']} ({m['uri']}), not this service "
                f"({self.domain}); ask this service for a challenge",
                code="auth.bad_message",
            )
        if int(m["chain_id"]) != self.chain_id:
            raise AuthenticationFailed(
                f"the sign-in message is for chain {m['chain_id']}, this service is on chain "
                f"{self.chain_id}; ask this service for a challenge",
                code="auth.bad_message",
            )
        party = parse_address(m["address"], "the sign-in message's address")
        issued = _parse_iso(m["issued_at"], "Issued At")
        expires = _parse_iso(m["expires_at"], "Expiration Time")
        nonce = m["nonce"]
        expected = siwe_message(
            domain=self.domain,
            uri=self.uri,
            address=party,
            chain_id=self.chain_id,
            nonce=nonce,
            issued_at=issued,
            expires_at=expires,
        )
        if (
            message != expected
            or not _LOGIN_NONCE_RE.match(nonce)
            or not hmac.compare_digest(nonce[32:], self._nonce_mac(party, nonce[:32], issued, expires))
        ):
            raise AuthenticationFailed(
                "the sign-in message was not issued by this service or was altered; "
                "ask POST /v1/auth/challenge for a new one and sign it unchanged",
                code="auth.bad_message",
            )
        now = self.clock()
        if now >= expires:
            raise AuthenticationFailed(
                f"the sign-in message expired at {_iso(expires)}; ask for a new challenge and sign it "
                f"within {int(self.login_ttl.total_seconds())} s",
                code="auth.expired",
            )
        signer = _recover(message, signature, "sign-in")
        if signer != party:
            raise AuthenticationFailed(
                f"the sign-in message names {party} but was signed by {signer}; sign with the key of "
                "the address you sign in as",
                code="auth.bad_signature",
            )
        self._consume(f"siwe:{nonce}", party, _ms(expires), "sign-in message")
        token_id = secrets.token_hex(16)
        token_expires = now.replace(microsecond=0) + self.token_ttl
        claims = {
            "iss": self.domain,
            "aud": self.audience,
            "sub": party,
            "chain_id": self.chain_id,
            "jti": token_id,
            "iat": int(now.timestamp()),
            "exp": int(token_expires.timestamp()),
        }
        token = jwt.encode(claims, self._token_key, algorithm="HS256")
        return IssuedToken(
            token=token, address=party, token_id=token_id, chain_id=self.chain_id, expires_at=token_expires
        )

    def verify_token(self, token: str) -> AuthenticatedParty:
        """The party a bearer token stands for; :class:`AuthenticationFailed` otherwise."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._token_key,
                algorithms=["HS256"],
                audience=self.audience,
                issuer=self.domain,
                options={
                    "require": ["exp", "iat", "sub", "jti", "chain_id"],
                    # times are checked below against this authenticator's clock
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.InvalidSignatureError as e:
            raise AuthenticationFailed(
                "the token's signature does not verify: it was not issued by this service or was "
                "altered; sign in again (POST /v1/auth/challenge, then /v1/auth/token)",
                code="auth.bad_signature",
            ) from e
        except jwt.InvalidTokenError as e:
            raise AuthenticationFailed(
                f"the token is not a valid token of this service ({e}); sign in again",
                code="auth.bad_token",
            ) from e
        if claims.get("chain_id") != self.chain_id:
            raise AuthenticationFailed(
                f"the token is for chain {claims.get('chain_id')!r}, not {self.chain_id}; sign in again",
                code="auth.bad_token",
            )
        exp = claims["exp"]
        if not isinstance(exp, int) or not isinstance(claims["sub"], str):
            raise AuthenticationFailed(
                "the token's claims are malformed; sign in again", code="auth.bad_token"
            )
        expires = dt.datetime.fromtimestamp(exp, dt.UTC)
        if self.clock() >= expires:
            raise AuthenticationFailed(
                f"the token expired at {_iso(expires)}; sign in again (tokens last "
                f"{int(self.token_ttl.total_seconds() // 60)} minutes)",
                code="auth.expired",
            )
        party = AuthenticatedParty(
            address=parse_address(claims["sub"], "the token's subject"),
            method=AuthMethod.TOKEN,
            credential_id=str(claims["jti"]),
            expires_at=expires,
        )
        self._refuse_revoked(party.credential_id)
        return party

    def revoke(self, party: AuthenticatedParty) -> None:
        """End the session of ``party``'s token now (sign-out): refused from the next request on.

        The token's id is recorded in ``revoked_tokens`` with the token's own expiry, on every
        instance sharing the database at once. Rows of tokens expired anyway are pruned now and
        then. A signed request is no session (it is single-use already): :class:`NotASession`.
        """
        if party.method is not AuthMethod.TOKEN:
            raise NotASession(
                "only a token's session can be signed out: send `Authorization: Bearer <token>`; a "
                "signed request is single-use already and leaves nothing to end",
            )
        now_ms = _ms(self.clock())
        try:
            with Session(self.engine) as session:
                if time.monotonic() - self._last_revoked_prune > 60:
                    self._last_revoked_prune = time.monotonic()
                    session.exec(delete(RevokedTokenRow).where(RevokedTokenRow.expires_ms < now_ms))  # type: ignore[arg-type]
                if session.get(RevokedTokenRow, party.credential_id) is None:
                    session.add(
                        RevokedTokenRow(
                            jti=party.credential_id,
                            party=party.address,
                            expires_ms=_ms(party.expires_at),
                            revoked_ms=now_ms,
                        )
                    )
                session.commit()
        except IntegrityError:
            return  # signed out by a concurrent request: the token is revoked either way
        except SQLAlchemyError as e:
            raise StoreError(
                f"cannot record the sign-out: {type(e).__name__}; the token still works until it "
                "expires, retry the sign-out"
            ) from e

    # -------------------------------------------------------------- signed requests

    def verify_signed_request(
        self,
        *,
        method: str,
        path: str,
        body: bytes,
        address: str,
        timestamp: str,
        nonce: str,
        signature: str,
    ) -> AuthenticatedParty:
        """Check a signed request and spend its nonce; the party it comes from."""
        party = parse_address(address, "X-Supet-Address")
        if not timestamp.isdigit() or len(timestamp) > 16:
            raise AuthenticationFailed(
                "X-Supet-Timestamp must be the Unix time in milliseconds (digits only)",
                code="auth.bad_message",
            )
        if not _NONCE_RE.match(nonce):
            raise AuthenticationFailed(
                "X-Supet-Nonce must be 16..64 characters of [A-Za-z0-9_-], fresh for every request "
                "(e.g. 32 random hex digits)",
                code="auth.bad_message",
            )
        ts_ms = int(timestamp)
        now_ms = _ms(self.clock())
        window_ms = int(self.request_window.total_seconds() * 1000)
        if abs(now_ms - ts_ms) > window_ms:
            raise AuthenticationFailed(
                f"X-Supet-Timestamp is {(ts_ms - now_ms) / 1000:+.0f} s from the service's clock (limit "
                f"±{window_ms // 1000} s); sync your clock (NTP) and sign the request again",
                code="auth.expired",
            )
        text = canonical_request(
            domain=self.domain,
            chain_id=self.chain_id,
            address=party,
            method=method,
            path=path,
            body=body,
            timestamp_ms=ts_ms,
            nonce=nonce,
        )
        signer = _recover(text, signature, "request")
        if signer != party:
            raise AuthenticationFailed(
                "the request signature does not match X-Supet-Address and the request: sign "
                "canonical_request(domain, chain id, address, METHOD, path?query, sha256(body), "
                f"timestamp, nonce) with the address's key (service domain {self.domain}, chain "
                f"{self.chain_id})",
                code="auth.bad_signature",
            )
        self._consume(f"req:{party}:{nonce}", party, ts_ms + window_ms, "request nonce")
        return AuthenticatedParty(
            address=party,
            method=AuthMethod.SIGNED_REQUEST,
            credential_id=nonce,
            expires_at=dt.datetime.fromtimestamp((ts_ms + window_ms) / 1000, dt.UTC),
        )

    # -------------------------------------------------------------- internals

    def _nonce_mac(self, party: str, rand: str, issued: dt.datetime, expires: dt.datetime) -> str:
        text = f"{self.chain_id}|{self.domain}|{self.uri}|{party}|{rand}|{_ms(issued)}|{_ms(expires)}"
        return hmac.new(self._nonce_key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def _refuse_revoked(self, token_id: str) -> None:
        """:class:`AuthenticationFailed` (``auth.revoked``) if the token was signed out.

        One primary-key lookup per request, not cached: a sign-out takes effect on the very
        next request, on every instance sharing the database. An unreachable database refuses
        the request (:class:`StoreError`, 503) rather than accepting a token it cannot check.
        """
        try:
            with Session(self.engine) as session:
                revoked = session.get(RevokedTokenRow, token_id)
        except SQLAlchemyError as e:
            raise StoreError(
                f"cannot check whether the token was signed out: {type(e).__name__}; retry later"
            ) from e
        if revoked is not None:
            at = dt.datetime.fromtimestamp(revoked.revoked_ms / 1000, dt.UTC)
            raise AuthenticationFailed(
                f"this token was signed out at {_iso(at)}; sign in again "
                "(POST /v1/auth/challenge, then /v1/auth/token)",
                code="auth.revoked",
            )

    def _consume(self, key: str, party: str, expires_ms: int, what: str) -> None:
        """Record ``key`` as used; :class:`AuthenticationFailed` (``auth.replayed``) if it was.

        Rows whose credential has expired anyway are pruned now and then: a replay of one
        is refused by its time check before it gets here.
        """
        now_ms = _ms(self.clock())
        try:
            with Session(self.engine) as session:
                if time.monotonic() - self._last_prune > 60:
                    self._last_prune = time.monotonic()
                    session.exec(delete(UsedNonceRow).where(UsedNonceRow.expires_ms < now_ms))  # type: ignore[arg-type]
                session.add(UsedNonceRow(nonce=key, party=party, expires_ms=expires_ms))
                session.commit()
        except IntegrityError as e:
            raise AuthenticationFailed(
                f"this {what} was already used: each may be used once; ask for a new challenge or "
                "sign the request again with a fresh nonce",
                code="auth.replayed",
            ) from e
        except SQLAlchemyError as e:
            raise StoreError(f"cannot record the {what} as used: {type(e).__name__}; retry later") from e


# ---------------------------------------------------------------------------- roles


@dataclass(frozen=True, kw_only=True, slots=True)
class RoleSpec:
    """A DeviceRegistry role a route may require."""

    name: str
    role_id: bytes
    #: The admission gate's action for this role, if a gate (when set) decides it instead.
    gate_action: bytes | None
    advice: str


ENROLLER: Final = RoleSpec(
    name="enroller",
    role_id=ENROLLER_ROLE,
    gate_action=ENROLL_ACTION,
    advice=(
        "ask the consortium operator to grant ENROLLER_ROLE on the DeviceRegistry "
        "(grantRole(keccak256('supet.role.enroller'), address)) or, when an admission gate is set, to "
        "admit the address for 'supet.device.enroll'"
    ),
)
OPERATOR: Final = RoleSpec(
    name="operator",
    role_id=OPERATOR_ROLE,
    gate_action=None,
    advice="only the consortium operator holds OPERATOR_ROLE; ask its admin to grant it",
)


class RoleChecker:
    """Answers "does this party hold this role?" from the chain, as of the latest block.

    Answers are cached for the block they were read at (and ``max_age`` seconds at most),
    so a role granted or revoked takes effect with the block that does it.
    """

    def __init__(self, *, chain: Chain, deployment: Deployment, max_age: float = 5.0) -> None:
        self.chain = chain
        self.registry = deployment.contract(chain, "DeviceRegistry")
        self.max_age = max_age
        self._cache: dict[tuple[str, str], tuple[int, bytes, float, bool]] = {}
        self._lock = threading.Lock()

    def holds(self, party: str, role: RoleSpec) -> bool:
        """Whether ``party`` holds ``role`` at the latest block (``ChainError`` if unreachable)."""
        head = self.chain.request(lambda: self.chain.w3.eth.get_block("latest"), context="latest block")
        number, block_hash = int(head["number"]), bytes(head["hash"])
        key = (party, role.name)
        with self._lock:
            cached = self._cache.get(key)
        if (
            cached is not None
            and cached[0] == number
            and cached[1] == block_hash
            and time.monotonic() - cached[2] <= self.max_age
        ):
            return cached[3]
        answer = self._ask(party, role, number)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (number, block_hash, time.monotonic(), answer)
        return answer

    def require(self, party: str, role: RoleSpec) -> None:
        """``None`` if ``party`` holds ``role``; :class:`RoleRequired` otherwise."""
        if not self.holds(party, role):
            raise RoleRequired(
                f"{party} does not hold the {role.name} role on the DeviceRegistry "
                f"{self.registry.address} (chain {self.chain.chain_id}): {role.advice}",
                role=role.name,
                party=party,
            )

    def _ask(self, party: str, role: RoleSpec, block: int) -> bool:
        fns = self.registry.functions
        if role.gate_action is not None:
            gate = str(self.chain.call(fns.admissionGate(), block=block))
            if int(gate, 16) != 0:
                contract = self.chain.w3.eth.contract(address=to_checksum_address(gate), abi=_GATE_ABI)
                try:
                    admitted = self.chain.call(
                        contract.functions.isAdmitted(party, role.gate_action), block=block
                    )
                except ContractRevert as e:
                    # the registry asks the same gate and would revert the same way: not admitted
                    log.warning("admission gate %s reverted for %s: %s", gate, party, e)
                    return False
                return bool(admitted)
        return bool(self.chain.call(fns.hasRole(role.role_id, party), block=block))


# ---------------------------------------------------------------------------- FastAPI dependencies


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthState:
    """The authenticator and role checker of one app (built on its first request)."""

    authenticator: Authenticator
    roles: RoleChecker


_STATE_LOCK = threading.Lock()


def auth_state(request: Request) -> AuthState:
    """This app's :class:`AuthState`, built from ``app.state.service`` on first use."""
    app_state = request.app.state
    found: AuthState | None = getattr(app_state, "auth", None)
    if found is not None:
        return found
    with _STATE_LOCK:
        found = getattr(app_state, "auth", None)
        if found is None:
            service: LedgerService = app_state.service
            found = AuthState(
                authenticator=Authenticator(
                    settings=service.settings,
                    engine=service.engine,
                    chain_id=service.chain.chain_id,
                    registry_address=service.deployment.address("DeviceRegistry"),
                ),
                roles=RoleChecker(
                    chain=service.chain,
                    deployment=service.deployment,
                    max_age=service.settings.role_cache_seconds,
                ),
            )
            app_state.auth = found
    return found


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PartyToken",
    description="A token from POST /v1/auth/token (sign-in with the party's Ethereum address).",
)
_SIGNED = "Signed request (instead of a token): "


async def current_party(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    x_supet_address: Annotated[str | None, Header(description=_SIGNED + "the party's address.")] = None,
    x_supet_timestamp: Annotated[str | None, Header(description=_SIGNED + "Unix time in ms.")] = None,
    x_supet_nonce: Annotated[
        str | None, Header(description=_SIGNED + "16..64 chars [A-Za-z0-9_-], never reused.")
    ] = None,
    x_supet_signature: Annotated[
        str | None, Header(description=_SIGNED + "0x-hex personal_sign of the canonical request.")
    ] = None,
) -> AuthenticatedParty:
    """The calling party: a bearer token, or a signed request; 401 otherwise."""
    state = auth_state(request)
    signed = (x_supet_address, x_supet_timestamp, x_supet_nonce, x_supet_signature)
    if bearer is not None and any(v is not None for v in signed):
        raise AuthenticationFailed(
            "send a bearer token or the X-Supet-* signature headers, not both", code="auth.ambiguous"
        )
    if bearer is not None:
        # verifying asks the database (revoked tokens): not on the event loop
        return await run_in_threadpool(state.authenticator.verify_token, bearer.credentials)
    if any(v is not None for v in signed):
        address, timestamp, nonce, signature = signed
        if address is None or timestamp is None or nonce is None or signature is None:
            missing = [
                name
                for name, v in zip(
                    ("X-Supet-Address", "X-Supet-Timestamp", "X-Supet-Nonce", "X-Supet-Signature"),
                    signed,
                    strict=True,
                )
                if v is None
            ]
            raise AuthenticationFailed(
                f"a signed request needs all four X-Supet-* headers; missing {', '.join(missing)}",
                code="auth.missing",
            )
        body = await request.body()
        query = request.url.query
        path = request.url.path + (f"?{query}" if query else "")
        return await run_in_threadpool(
            state.authenticator.verify_signed_request,
            method=request.method,
            path=path,
            body=body,
            address=address,
            timestamp=timestamp,
            nonce=nonce,
            signature=signature,
        )
    raise AuthenticationFailed(
        "this endpoint needs a party: send `Authorization: Bearer <token>` (sign in at "
        "POST /v1/auth/challenge and /v1/auth/token) or sign the request (X-Supet-* headers)",
        code="auth.missing",
    )


def require_role(role: RoleSpec) -> Callable[..., AuthenticatedParty]:
    """A dependency: the calling party, if the chain says it holds ``role`` now; 403 otherwise."""

    def dependency(
        request: Request, party: Annotated[AuthenticatedParty, Depends(current_party)]
    ) -> AuthenticatedParty:
        # a ChainError propagates (503): no role is assumed while the chain is unreachable
        auth_state(request).roles.require(party.address, role)
        return party

    dependency.__name__ = f"require_{role.name}"
    return dependency
