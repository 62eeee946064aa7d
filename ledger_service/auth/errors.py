"""The errors of party authentication: not proven (401), not a session (400), role missing (403).

Their HTTP statuses are named in the one map, :mod:`ledger_service.api.errors`."""

from __future__ import annotations

from ledger_service.errors import AuthError

__all__ = ["AuthenticationFailed", "NotASession", "RoleRequired"]


class AuthenticationFailed(AuthError):
    """The caller did not prove control of an address (HTTP 401).

    ``code``: ``auth.missing``, ``auth.bad_signature``, ``auth.bad_token``,
    ``auth.bad_message``, ``auth.expired``, ``auth.revoked`` (signed out), ``auth.replayed`` or
    ``auth.ambiguous``.
    """

    code = "auth.failed"

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


class NotASession(AuthError):
    """Sign-out was asked with a credential that is not a session (a signed request) (HTTP 400)."""

    code = "auth.not_a_session"


class RoleRequired(AuthError):
    """The party proved who it is but the chain does not give it the role (HTTP 403)."""

    code = "auth.role_required"

    def __init__(self, message: str, *, role: str, party: str) -> None:
        super().__init__(message)
        self.role = role
        self.party = party
