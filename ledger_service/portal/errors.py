"""Typed refusals of the web portal; each becomes an HTML page in words (see :mod:`.routes`)."""

from __future__ import annotations

from ledger_service.errors import LedgerError

__all__ = ["BadForm", "CsrfRefused", "NotSignedIn", "PortalError", "PortalRoleRequired"]


class PortalError(LedgerError):
    """Base of the portal's own refusals; ``http_status`` is the status of the page that explains it."""

    code = "portal.error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message, code=code)
        if http_status is not None:
            self.http_status = http_status


class NotSignedIn(PortalError):
    """The page needs a signed-in party and the browser has no valid session (401)."""

    code = "portal.not_signed_in"
    http_status = 401


class PortalRoleRequired(PortalError):
    """The party is signed in but the ParticipantRegistry does not admit it for the page's role (403)."""

    code = "portal.role_required"
    http_status = 403


class CsrfRefused(PortalError):
    """A state-changing form arrived without this session's CSRF token (403)."""

    code = "portal.bad_csrf"
    http_status = 403


class BadForm(PortalError):
    """A form field is missing or malformed (400)."""

    code = "portal.bad_form"
