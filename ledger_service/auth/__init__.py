"""Party authentication: a caller proves control of its on-chain address; the chain says what it may do.

Devices are authenticated by the signatures on their readings (see ``ingest``). Every
other write comes from a *party* (a manufacturer, the operator, ...) identified by an
Ethereum address. A party proves control of the address in one of two ways, and both
end in the same :class:`AuthenticatedParty`:

1. **Sign-in** (EIP-4361, "Sign-In with Ethereum", :mod:`.siwe`). ``POST /v1/auth/challenge``
   returns a message naming this service's domain and URI, the chain id, the address, a
   single-use nonce, the issue time and an expiry five minutes later. The party signs it
   with ``personal_sign`` (EIP-191) and trades message and signature at
   ``POST /v1/auth/token`` for a short-lived token (HS256 JWT, 15 minutes, :mod:`.tokens`). The
   nonce is *stateless* when issued: it carries an HMAC over the address, chain, domain and times,
   so the service knows it issued it without storing anything for unauthenticated
   callers, across restarts and replicas. It is recorded in ``used_nonces`` when
   redeemed (:mod:`.nonces`), so a replay is refused even after a restart.
2. **A signed request** (:mod:`.signed_requests`): headers ``X-Supet-Address``,
   ``X-Supet-Timestamp`` (Unix ms), ``X-Supet-Nonce`` and ``X-Supet-Signature`` (EIP-191 over
   :func:`canonical_request`: service domain, chain id, address, method, path and query,
   SHA-256 of the body, timestamp, nonce). Accepted within ±60 s of the service's
   clock and once: the nonce is recorded in ``used_nonces``.

Tokens carry no roles. :class:`RoleChecker` (:mod:`.roles`) asks the DeviceRegistry at request
time (``hasRole``, or the admission gate's ``isAdmitted`` for enrollment once a gate is set),
pinned to the latest block and cached for that block only, so a revoked role stops
working with the block that revokes it.

The FastAPI dependencies :func:`current_party` and :func:`require_role` are in :mod:`.deps`;
``ledger_service.api.deps`` names them ``CurrentParty`` and ``EnrollerParty``.
"""

from __future__ import annotations

from ledger_service.auth.authenticator import Authenticator
from ledger_service.auth.deps import AuthState, auth_state, current_party, require_role
from ledger_service.auth.errors import AuthenticationFailed, NotASession, RoleRequired
from ledger_service.auth.party import AuthenticatedParty, AuthMethod, PartyAddress, parse_address, utcnow
from ledger_service.auth.roles import ENROLL_ACTION, ENROLLER, OPERATOR, RoleChecker, RoleSpec
from ledger_service.auth.signed_requests import SIGNED_REQUEST_TAG, canonical_request
from ledger_service.auth.siwe import SIWE_STATEMENT, LoginChallenge, siwe_message
from ledger_service.auth.tokens import IssuedToken

__all__ = [
    "ENROLLER",
    "ENROLL_ACTION",
    "OPERATOR",
    "SIGNED_REQUEST_TAG",
    "SIWE_STATEMENT",
    "AuthMethod",
    "AuthState",
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
