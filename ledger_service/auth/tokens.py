"""Sessions: the short-lived bearer token (HS256 JWT) a sign-in earns, its check on every request,
and sign-out (``revoked_tokens``, shared by every instance on the database).

Revocation is checked on every request. Where this process is the only one writing the database (a
SQLite file, held by its instance lock: a second instance is refused), every sign-out passes
:meth:`TokenMixin.revoke` in this process, so a token found not revoked is remembered as such
(:class:`Revocations`, one per database engine, shared by every authenticator on it) until a sign-out
forgets it: no database read per request. A generation counter, bumped by every sign-out, keeps a
check that raced a sign-out from remembering its stale answer. Elsewhere (PostgreSQL: several
instances) each request reads ``revoked_tokens``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Final

import jwt
from sqlalchemy import Connection, Engine, bindparam, delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session

from ledger_service.auth._internal import AuthenticatorFields, iso, ms
from ledger_service.auth.errors import AuthenticationFailed, NotASession
from ledger_service.auth.party import AuthenticatedParty, AuthMethod, PartyAddress, parse_address
from ledger_service.errors import StoreError
from ledger_service.store.models import RevokedTokenRow

__all__ = ["TOKEN_CACHE", "IssuedToken", "Revocations", "TokenMixin", "revocations_of"]

#: Tokens whose signature and claims an authenticator remembers as checked (the oldest forgotten first).
TOKEN_CACHE: Final = 4096

_TOKENS = RevokedTokenRow.__table__  # type: ignore[attr-defined]
#: When a token was signed out (no row: it was not).
_REVOKED_AT = select(_TOKENS.c.revoked_ms).where(_TOKENS.c.jti == bindparam("jti"))


class Revocations:
    """What this process knows of one database's sign-outs: the token ids found not revoked since the
    last sign-out made here (at most :data:`TOKEN_CACHE`, the oldest forgotten first), and a generation
    counter every sign-out bumps. Only trusted while this process is the database's only writer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._clear: dict[str, None] = {}

    def known_clear(self, token_id: str) -> bool:
        """Whether ``token_id`` was found not revoked, with no sign-out of it here since."""
        return token_id in self._clear

    @property
    def generation(self) -> int:
        return self._generation

    def found_clear(self, token_id: str, generation: int) -> None:
        """Remember that ``token_id`` was found not revoked by a check begun at ``generation``; not if a
        sign-out happened since (the check may have read the store before it committed)."""
        with self._lock:
            if generation != self._generation:
                return
            if len(self._clear) >= TOKEN_CACHE:
                self._clear.pop(next(iter(self._clear)))
            self._clear[token_id] = None

    def signed_out(self, token_id: str) -> None:
        """A sign-out of ``token_id`` was recorded: forget it, and void the checks in flight."""
        with self._lock:
            self._generation += 1
            self._clear.pop(token_id, None)


_REVOCATIONS: weakref.WeakKeyDictionary[Engine, Revocations] = weakref.WeakKeyDictionary()
_REVOCATIONS_LOCK = threading.Lock()


def revocations_of(engine: Engine) -> Revocations:
    """The :class:`Revocations` of ``engine``'s database in this process (one per engine)."""
    with _REVOCATIONS_LOCK:
        found = _REVOCATIONS.get(engine)
        if found is None:
            found = _REVOCATIONS[engine] = Revocations()
        return found


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

    def verify_token(self, token: str, *, conn: Connection | None = None) -> AuthenticatedParty:
        """The party a bearer token stands for; :class:`AuthenticationFailed` otherwise.

        A token's signature and claims are checked once and remembered (:data:`TOKEN_CACHE` tokens at
        most: they cannot change); its expiry and its revocation are checked on every request (the
        latter from memory where this process is the database's only writer: see the module).
        ``conn``: a connection of this authenticator's engine to read ``revoked_tokens`` on (a caller
        that reads more on it saves a checkout); none: one from the engine's pool.
        """
        party = self.token_party(token)
        sole = self.sole_writer is not None and self.sole_writer()
        revocations = self._revocations
        if sole and revocations.known_clear(party.credential_id):
            return party
        generation = revocations.generation
        self._refuse_revoked(party.credential_id, conn)
        if sole:
            revocations.found_clear(party.credential_id, generation)
        return party

    def token_party(self, token: str) -> AuthenticatedParty:
        """The party of a token whose signature and claims check out and which has not expired
        (:class:`AuthenticationFailed` otherwise); its revocation is not looked at: the caller checks it
        (:meth:`verify_token`, or :meth:`refuse_revoked_at` on what it read of ``revoked_tokens``)."""
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
        return party

    @property
    def revocation_generation(self) -> int:
        """The sign-outs' counter, to pass to :meth:`settle_revocation` (taken before the read)."""
        return self._revocations.generation

    def settle_revocation(self, party: AuthenticatedParty, revoked_ms: int | None, generation: int) -> None:
        """End a token's check (:meth:`token_party`'s, then ``revoked_tokens`` read by the caller, at
        ``generation``, in a statement of its own): :class:`AuthenticationFailed` when ``revoked_ms``
        says it was signed out; otherwise, where this process is the database's only writer, the token
        is remembered as not revoked, as :meth:`verify_token` remembers it."""
        self.refuse_revoked_at(revoked_ms)
        if self.sole_writer is not None and self.sole_writer():
            self._revocations.found_clear(party.credential_id, generation)

    def known_token(self, token: str) -> AuthenticatedParty | None:
        """The party of a token :meth:`verify_token` would accept, answered from memory alone (no
        database read, nothing blocks); None when that cannot be told without reading the store or
        checking the signature (a token not seen yet, expired, or whose revocation is not known: only
        where this process is the database's only writer is it known), for :meth:`verify_token` to
        answer."""
        with self._token_lock:
            party = self._token_cache.get(token)
        if (
            party is None
            or self.clock() >= party.expires_at
            or self.sole_writer is None
            or not self.sole_writer()
            or not self._revocations.known_clear(party.credential_id)
        ):
            return None
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
            # signed out by a concurrent request: the token is revoked either way
            self._revocations.signed_out(party.credential_id)
            return
        except SQLAlchemyError as e:
            self._revocations.signed_out(party.credential_id)  # it may have committed: check the store
            raise StoreError(
                f"cannot record the sign-out: {type(e).__name__}; the token still works until it "
                "expires, retry the sign-out"
            ) from e
        self._revocations.signed_out(party.credential_id)

    def _refuse_revoked(self, token_id: str, conn: Connection | None = None) -> None:
        """:class:`AuthenticationFailed` (``auth.revoked``) if the token was signed out.

        One primary-key lookup: a sign-out takes effect on the very next request, on every instance
        sharing the database (:meth:`verify_token` skips it for a token known not revoked only where
        this process is the only instance). An unreachable database refuses
        the request (:class:`StoreError`, 503) rather than accepting a token it cannot check.
        """
        try:
            if conn is not None:
                revoked_ms = conn.execute(_REVOKED_AT, {"jti": token_id}).scalar()
            else:
                with self.engine.connect() as pooled:  # a core query: every read pays it (issue 14)
                    revoked_ms = pooled.execute(_REVOKED_AT, {"jti": token_id}).scalar()
        except SQLAlchemyError as e:
            raise StoreError(
                f"cannot check whether the token was signed out: {type(e).__name__}; retry later"
            ) from e
        self.refuse_revoked_at(revoked_ms)

    @staticmethod
    def refuse_revoked_at(revoked_ms: int | None) -> None:
        """:class:`AuthenticationFailed` (``auth.revoked``) when ``revoked_ms``, what ``revoked_tokens``
        holds of a token (its ``revoked_ms``, read on this request), says it was signed out."""
        if revoked_ms is not None:
            at = dt.datetime.fromtimestamp(int(revoked_ms) / 1000, dt.UTC)
            raise AuthenticationFailed(
                f"this token was signed out at {iso(at)}; sign in again "
                "(POST /v1/auth/challenge, then /v1/auth/token)",
                code="auth.revoked",
            )
