"""Signed requests: a party signs each request itself (``X-Supet-*`` headers) instead of holding a token.

Headers ``X-Supet-Address``, ``X-Supet-Timestamp`` (Unix ms), ``X-Supet-Nonce`` and
``X-Supet-Signature`` (EIP-191 over :func:`canonical_request`). Accepted within the window around
the service's clock and once: the nonce is recorded in ``used_nonces``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Final

from ledger_service.auth._internal import ms, recover
from ledger_service.auth.errors import AuthenticationFailed
from ledger_service.auth.nonces import NonceMixin
from ledger_service.auth.party import AuthenticatedParty, AuthMethod, parse_address

__all__ = ["SIGNED_REQUEST_TAG", "SignedRequestMixin", "canonical_request"]

#: First line of a signed request's canonical string (its version).
SIGNED_REQUEST_TAG: Final = "supET signed request v1"
_NONCE_RE: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


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


class SignedRequestMixin(NonceMixin):
    """The authenticator's check of a signed request."""

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
        ts_ms, window_ms = self._check_fresh(timestamp, nonce)
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
        signer = recover(text, signature, "request")
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

    def _check_fresh(self, timestamp: str, nonce: str) -> tuple[int, int]:
        """The request's time and the window (both ms), if ``timestamp`` is within the window around
        the service's clock and ``nonce`` is well formed; :class:`AuthenticationFailed` otherwise."""
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
        now_ms = ms(self.clock())
        window_ms = int(self.request_window.total_seconds() * 1000)
        if abs(now_ms - ts_ms) > window_ms:
            raise AuthenticationFailed(
                f"X-Supet-Timestamp is {(ts_ms - now_ms) / 1000:+.0f} s from the service's clock (limit "
                f"±{window_ms // 1000} s); sync your clock (NTP) and sign the request again",
                code="auth.expired",
            )
        return ts_ms, window_ms
