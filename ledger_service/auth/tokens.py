"""Sessions: the short-lived bearer token (HS256 JWT) a sign-in earns, its check on every request,
and sign-out (``revoked_tokens``, shared by every instance on the database)."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

import jwt
from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session

from ledger_service.auth._internal import AuthenticatorFields, iso, ms
from ledger_service.auth.errors import AuthenticationFailed, NotASession
from ledger_service.auth.party import AuthenticatedParty, AuthMethod, PartyAddress, parse_address
from ledger_service.errors import StoreError
from ledger_service.store.models import RevokedTokenRow

__all__ = ["TOKEN_CACHE", "IssuedToken", "TokenMixin"]

#: Tokens whose signature and claims an authenticator remembers as checked (the oldest forgotten first).
TOKEN_CACHE: Final = 4096

_TOKENS = RevokedTokenRow.__table__  # type: ignore[attr-defined]
#: When a token was signed out (no row: it was not).
_REVOKED_AT = select(_TOKENS.c.revoked_ms).where(_TOKENS.c.jti == bindparam("jti"))


@dataclass(frozen=True, kw_only=True, slots=True)
class IssuedToken:
    """A bearer token and what it stands for."""

    token: str
    address: PartyAddress
    token_id: str
    chain_id: int
    expires_at: dt.datetime


class TokenMixin(AuthenticatorFields):
    """The authenticator's tokens: issued at sign-in, checked, revoked at sign-out."""

    def _issue_token(self, party: PartyAddress, now: dt.datetime) -> IssuedToken:
        """A token for ``party``, valid ``token_ttl`` from ``now``."""
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
        """The party a bearer token stands for; :class:`AuthenticationFailed` otherwise.

        A token's signature and claims are checked once and remembered (:data:`TOKEN_CACHE` tokens at
        most: they cannot change); its expiry and its revocation are checked on every request.
        """
        with self._token_lock:
            party = self._token_cache.get(token)
        if party is None:
            party = self._decoded(token)
            with self._token_lock:
                if len(self._token_cache) >= TOKEN_CACHE:
                    self._token_cache.pop(next(iter(self._token_cache)))
                self._token_cache[token] = party
        if self.clock() >= party.expires_at:
            raise AuthenticationFailed(
                f"the token expired at {iso(party.expires_at)}; sign in again (tokens last "
                f"{int(self.token_ttl.total_seconds() // 60)} minutes)",
                code="auth.expired",
            )
        self._refuse_revoked(party.credential_id)
        return party

    def _decoded(self, token: str) -> AuthenticatedParty:
        """The party of a token whose signature and claims check out (not its expiry, nor revocation)."""
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
        return AuthenticatedParty(
            address=parse_address(claims["sub"], "the token's subject"),
            method=AuthMethod.TOKEN,
            credential_id=str(claims["jti"]),
            expires_at=dt.datetime.fromtimestamp(exp, dt.UTC),
        )

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
        now_ms = ms(self.clock())
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
                            expires_ms=ms(party.expires_at),
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

    def _refuse_revoked(self, token_id: str) -> None:
        """:class:`AuthenticationFailed` (``auth.revoked``) if the token was signed out.

        One primary-key lookup per request, not cached: a sign-out takes effect on the very
        next request, on every instance sharing the database. An unreachable database refuses
        the request (:class:`StoreError`, 503) rather than accepting a token it cannot check.
        """
        try:
            with self.engine.connect() as conn:  # a core query: every read pays it (issue 14)
                revoked_ms = conn.execute(_REVOKED_AT, {"jti": token_id}).scalar()
        except SQLAlchemyError as e:
            raise StoreError(
                f"cannot check whether the token was signed out: {type(e).__name__}; retry later"
            ) from e
        if revoked_ms is not None:
            at = dt.datetime.fromtimestamp(int(revoked_ms) / 1000, dt.UTC)
            raise AuthenticationFailed(
                f"this token was signed out at {iso(at)}; sign in again "
                "(POST /v1/auth/challenge, then /v1/auth/token)",
                code="auth.revoked",
            )
