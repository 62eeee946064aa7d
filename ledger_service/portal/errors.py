"""Typed refusals of the web portal; each becomes an HTML page in words (see :mod:`.routes`)."""

from __future__ import annotations

from ledger_service.errors import LedgerError

__all__ = ["BadForm", "CsrfRefused", "NotSignedIn", "PortalError", "PortalRoleRequired"]


class PortalError(LedgerError):
    """Base of the portal's own refusals; the page's status is in the one map (api/errors.py)."""

    code = "portal.error"


class NotSignedIn(PortalError):
    """The page needs a signed-in party and the browser has no valid session (401)."""

    code = "portal.not_signed_in"


class PortalRoleRequired(PortalError):
    """The party is signed in but the ParticipantRegistry does not admit it for the page's role (403)."""

    code = "portal.role_required"


class CsrfRefused(PortalError):
    """A state-changing form arrived without this session's CSRF token (403)."""

    code = "portal.bad_csrf"


class BadForm(PortalError):
    """A form field is missing or malformed (400)."""

    code = "portal.bad_form"
