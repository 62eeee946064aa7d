"""Sign-in with Ethereum (EIP-4361): the challenge this service issues and its redemption for a token.

The nonce is *stateless* when issued: it carries an HMAC over the address, chain, domain and
times, so the service knows it issued it without storing anything for unauthenticated callers,
across restarts and replicas. It is recorded in ``used_nonces`` when redeemed.
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

from ledger_service.auth._internal import iso, ms, parse_iso, recover
from ledger_service.auth.errors import AuthenticationFailed
from ledger_service.auth.nonces import NonceMixin
from ledger_service.auth.party import PartyAddress, parse_address
from ledger_service.auth.tokens import IssuedToken, TokenMixin

__all__ = ["SIWE_STATEMENT", "LoginChallenge", "SignInMixin", "siwe_message"]

SIWE_STATEMENT: Final = (
    "Sign in to the supET Ledger with this address. Signing proves you control the address; "
    "it sends no transaction and moves no funds."
)
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
        f"Issued At: {iso(issued_at)}\n"
        f"Expiration Time: {iso(expires_at)}"
    )


class SignInMixin(NonceMixin, TokenMixin):
    """The authenticator's sign-in: issue a challenge, redeem it signed for a token."""

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
        party, nonce, expires = self._issued_message(message)
        now = self.clock()
        if now >= expires:
            raise AuthenticationFailed(
                f"the sign-in message expired at {iso(expires)}; ask for a new challenge and sign it "
                f"within {int(self.login_ttl.total_seconds())} s",
                code="auth.expired",
            )
        signer = recover(message, signature, "sign-in")
        if signer != party:
            raise AuthenticationFailed(
                f"the sign-in message names {party} but was signed by {signer}; sign with the key of "
                "the address you sign in as",
                code="auth.bad_signature",
            )
        self._consume(f"siwe:{nonce}", party, ms(expires), "sign-in message")
        return self._issue_token(party, now)

    def _issued_message(self, message: str) -> tuple[PartyAddress, str, dt.datetime]:
        """The party, nonce and expiry of ``message`` if this service issued it, unchanged;
        :class:`AuthenticationFailed` (``auth.bad_message``) otherwise."""
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
        issued = parse_iso(m["issued_at"], "Issued At")
        expires = parse_iso(m["expires_at"], "Expiration Time")
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
        return party, nonce, expires
