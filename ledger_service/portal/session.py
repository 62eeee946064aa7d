"""Browser sessions of the portal: the sign-in token in a cookie, CSRF tokens, roles from the chain.

The session *is* the API's bearer token (:meth:`Authenticator.redeem_login`): it lives in the
``supet_session`` cookie, ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
page sends it) and ``Secure`` when the service's public URL is https. It expires with the token
(15 minutes by default); the party signs in again then.

CSRF: every visitor has a random ``supet_csrf`` cookie (HttpOnly, SameSite=Strict, rotated at
sign-in and sign-out). Forms carry ``HMAC(key, cookie | token id)``: bound to the browser and to
the session, so a token from another session or browser is refused, and a page of another site
can neither read nor forge it. Every POST of the portal checks it (:func:`check_csrf`).

Roles are never in the session: :func:`party_roles` asks the ParticipantRegistry at each request,
as the API does, so a suspension or a lapsed claim takes effect at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

from fastapi import Request, Response

from contracts.participant_ids import party_role
from contracts.participants import ParticipantRegistryClient
from ledger_service.auth import AuthenticatedParty, AuthenticationFailed, auth_state
from ledger_service.portal.errors import BadForm, CsrfRefused, NotSignedIn, PortalRoleRequired
from ledger_service.service import LedgerService

__all__ = [
    "CSRF_COOKIE",
    "PORTAL_ROLES",
    "SESSION_COOKIE",
    "Visitor",
    "check_csrf",
    "clear_session",
    "csrf_token",
    "ensure_csrf_cookie",
    "party_roles",
    "read_form",
    "require_party",
    "require_portal_role",
    "set_session",
    "visitor",
]

SESSION_COOKIE: Final = "supet_session"
CSRF_COOKIE: Final = "supet_csrf"
#: The party roles the portal's pages are for, as named in the ParticipantRegistry.
PORTAL_ROLES: Final = ("supplier", "bank", "insurer", "auditor")
_MAX_FORM: Final = 16_384


@dataclass(frozen=True, kw_only=True, slots=True)
class Visitor:
    """Who is looking at a page: a signed-in party (with its roles now) or nobody, and the CSRF token."""

    party: AuthenticatedParty | None
    roles: frozenset[str]
    csrf: str

    @property
    def address(self) -> str | None:
        return self.party.address if self.party is not None else None


def _csrf_key(request: Request) -> bytes:
    service: LedgerService = request.app.state.service
    secret = service.settings.token_secret_bytes()
    return hmac.new(secret, b"supet.portal.csrf.v1", hashlib.sha256).digest()


def _secure(request: Request) -> bool:
    service: LedgerService = request.app.state.service
    return service.settings.public_url.startswith("https://")


def csrf_token(request: Request, browser: str, party: AuthenticatedParty | None) -> str:
    """The CSRF token of this browser (its ``supet_csrf`` cookie) and session (the token id)."""
    bound = f"{browser}|{party.credential_id if party else ''}".encode()
    return hmac.new(_csrf_key(request), bound, hashlib.sha256).hexdigest()


def ensure_csrf_cookie(request: Request, response: Response, value: str) -> None:
    """Set the browser's CSRF cookie when it was missing (or is being rotated)."""
    if request.cookies.get(CSRF_COOKIE) != value:
        response.set_cookie(
            CSRF_COOKIE, value, httponly=True, samesite="strict", secure=_secure(request), path="/portal"
        )


def _browser(request: Request) -> str:
    value = request.cookies.get(CSRF_COOKIE, "")
    if len(value) != 32 or not all(c in "0123456789abcdef" for c in value):
        value = secrets.token_hex(16)
        request.state.new_csrf_cookie = value
    return value


def session_party(request: Request) -> AuthenticatedParty | None:
    """The party of the session cookie; None without one or when it expired or is invalid."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    try:
        return auth_state(request).authenticator.verify_token(token)
    except AuthenticationFailed:
        return None


def party_roles(service: LedgerService, address: str) -> frozenset[str]:
    """The portal roles the ParticipantRegistry admits ``address`` for, at the latest block."""
    if "ParticipantRegistry" not in service.deployment.contracts:
        return frozenset()
    registry = ParticipantRegistryClient(service.chain, service.deployment)
    return frozenset(r for r in PORTAL_ROLES if registry.is_admitted_as(address, party_role(r)))


def visitor(request: Request) -> Visitor:
    """The visitor of this request (signed in or not), with the CSRF token for its forms."""
    party = session_party(request)
    service: LedgerService = request.app.state.service
    roles = party_roles(service, party.address) if party is not None else frozenset()
    return Visitor(party=party, roles=roles, csrf=csrf_token(request, _browser(request), party))


def require_party(v: Visitor) -> AuthenticatedParty:
    """The signed-in party; :class:`NotSignedIn` otherwise."""
    if v.party is None:
        raise NotSignedIn("this page is for signed-in parties: sign in with your address first")
    return v.party


def require_portal_role(v: Visitor, *roles: str) -> AuthenticatedParty:
    """The signed-in party if the chain admits it for one of ``roles``; :class:`PortalRoleRequired` if not."""
    party = require_party(v)
    if not v.roles.intersection(roles):
        raise PortalRoleRequired(
            f"{party.address} is not admitted as {' or '.join(roles)} in the consortium's "
            "ParticipantRegistry; GET /v1/parties/<address>/admission says what is missing "
            "(a claim, approvals, a suspension)",
        )
    return party


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (first value of each field)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise BadForm(f"send the form as application/x-www-form-urlencoded, not {ctype or 'nothing'}")
    body = await request.body()
    if len(body) > _MAX_FORM:
        raise BadForm(f"the form is larger than {_MAX_FORM} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as e:
        raise BadForm("the form is not valid UTF-8 url-encoded data") from e
    out: dict[str, str] = {}
    for k, val in pairs:
        out.setdefault(k, val)
    return out


def check_csrf(request: Request, v: Visitor, form: dict[str, str]) -> None:
    """``None`` if the form carries this browser's and session's CSRF token; :class:`CsrfRefused` if not."""
    sent = form.get("csrf", "")
    if getattr(request.state, "new_csrf_cookie", None) is not None or not hmac.compare_digest(sent, v.csrf):
        raise CsrfRefused(
            "the form's security token does not match this browser's session (it is old, from another "
            "tab's earlier session, or the form came from another site); reload the page and try again"
        )


def set_session(request: Request, response: Response, token: str, max_age: int) -> None:
    """Keep ``token`` in the session cookie and rotate the CSRF cookie."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/portal",
    )
    ensure_csrf_cookie(request, response, secrets.token_hex(16))


def clear_session(request: Request, response: Response) -> None:
    """Forget the session and rotate the CSRF cookie."""
    response.delete_cookie(SESSION_COOKIE, path="/portal", httponly=True, samesite="strict")
    ensure_csrf_cookie(request, response, secrets.token_hex(16))
