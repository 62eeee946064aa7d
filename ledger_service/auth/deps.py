"""The FastAPI dependencies: the calling party (:func:`current_party`) and a role it must hold
(:func:`require_role`); ``ledger_service.api.deps`` names them ``CurrentParty`` and ``EnrollerParty``.

:func:`credentials_of` reads a request's credentials once (a bearer token, a party's signed request
or a device's signed request) and keeps what they prove on the request: the access guard
(:mod:`ledger_service.access.guard`) and :func:`current_party` share it, so a signed request's nonce
is spent once however many of them ask."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from device_attestation.request_signing import DEVICE_HEADER
from ledger_service.auth.authenticator import Authenticator
from ledger_service.auth.device_requests import AuthenticatedDevice
from ledger_service.auth.errors import AuthenticationFailed
from ledger_service.auth.party import AuthenticatedParty
from ledger_service.auth.roles import RoleChecker, RoleSpec

if TYPE_CHECKING:
    from ledger_service.service import LedgerService

__all__ = [
    "AuthState",
    "Credentials",
    "Presented",
    "auth_state",
    "credentials_of",
    "current_party",
    "presented",
    "remember",
    "remembered",
    "require_role",
    "verify_presented",
]


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
                    reading_anchor=service.deployment.contracts.get("ReadingAnchor"),
                    sole_writer=_sole_writer(service),
                ),
                roles=RoleChecker(
                    chain=service.chain,
                    deployment=service.deployment,
                    max_age=service.settings.role_cache_seconds,
                ),
            )
            app_state.auth = found
    return found


def _sole_writer(service: LedgerService) -> Callable[[], bool] | None:
    """Whether the service is the only one writing its database, while it holds its SQLite file's
    instance lock (a second instance is refused); None on PostgreSQL and in-memory SQLite."""
    lock = service.instance_lock
    return None if lock is None else lambda: lock.held


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PartyToken",
    description="A token from POST /v1/auth/token (sign-in with the party's Ethereum address).",
)
_SIGNED = "Signed request (instead of a token): "
_SIGNED_HEADERS = ("X-Supet-Address", "X-Supet-Timestamp", "X-Supet-Nonce", "X-Supet-Signature")


#: What a request's credentials prove: a party, a device, or nothing (no credentials sent).
Credentials = AuthenticatedParty | AuthenticatedDevice | None
_PROVEN = "supet_credentials"


@dataclass(frozen=True, slots=True)
class Presented:
    """The credentials a request presents, read but not verified (:func:`verify_presented` checks them)."""

    method: str
    #: The path with its query string, as a signed request signs it.
    path: str
    body: bytes
    bearer: str | None
    #: ``X-Supet-Address`` (or the device id of ``X-Supet-Device``), timestamp, nonce, signature.
    signed: tuple[str | None, str | None, str | None, str | None]
    device: bool

    @property
    def empty(self) -> bool:
        return self.bearer is None and not any(v is not None for v in self.signed)


async def presented(request: Request) -> Presented:
    """The request's credentials, read (the body too, when a signed request covers it); one kind only:
    :class:`AuthenticationFailed` ``auth.ambiguous`` otherwise."""
    headers = request.headers
    scheme, _, token = headers.get("authorization", "").partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    address, timestamp, nonce, signature = (headers.get(h) for h in _SIGNED_HEADERS)
    device = headers.get(DEVICE_HEADER)
    kinds = (bearer is not None) + (address is not None) + (device is not None)
    if kinds > 1 or (bearer is not None and any(v is not None for v in (timestamp, nonce, signature))):
        raise AuthenticationFailed(
            "send one credential: a bearer token, or the X-Supet-* headers of a party's (X-Supet-Address) "
            "or a device's (X-Supet-Device) signed request",
            code="auth.ambiguous",
        )
    signed = (device if device is not None else address, timestamp, nonce, signature)
    body = await request.body() if any(v is not None for v in signed) else b""
    query = request.url.query
    path = request.url.path + (f"?{query}" if query else "")
    return Presented(request.method, path, body, bearer, signed, device is not None)


def verify_presented(state: AuthState, service: LedgerService, p: Presented) -> Credentials:
    """Who ``p`` proves the request comes from (blocking: the database, the registry's mirror).

    ``Authorization: Bearer`` (a sign-in token) or ``X-Supet-Address`` with the other ``X-Supet-*``
    headers (a party's signed request): an :class:`AuthenticatedParty`. ``X-Supet-Device`` with the
    other ``X-Supet-*`` headers: an :class:`AuthenticatedDevice`. None: no credentials at all.
    :class:`AuthenticationFailed` (401) for credentials that do not verify.
    """
    if p.bearer is not None:
        return state.authenticator.verify_token(p.bearer)
    if p.empty:
        return None
    who, timestamp, nonce, signature = p.signed
    if who is None or timestamp is None or nonce is None or signature is None:
        names = ((DEVICE_HEADER,) if p.device else _SIGNED_HEADERS[:1]) + _SIGNED_HEADERS[1:]
        missing = [name for name, v in zip(names, p.signed, strict=True) if v is None]
        kind = "device-signed request" if p.device else "signed request"
        raise AuthenticationFailed(
            f"a {kind} needs all four X-Supet-* headers; missing {', '.join(missing)}", code="auth.missing"
        )
    if p.device:
        return state.authenticator.verify_device_request(
            method=p.method,
            path=p.path,
            body=p.body,
            device_id=who,
            timestamp=timestamp,
            nonce=nonce,
            signature=signature,
            device=service.registry.lookup(who),
        )
    return state.authenticator.verify_signed_request(
        method=p.method,
        path=p.path,
        body=p.body,
        address=who,
        timestamp=timestamp,
        nonce=nonce,
        signature=signature,
    )


def remembered(request: Request) -> tuple[bool, Credentials]:
    """Whether this request's credentials were verified already, and what they proved."""
    if _PROVEN in request.scope:
        return True, request.scope[_PROVEN]
    return False, None


def remember(request: Request, found: Credentials) -> None:
    """Keep what the request's credentials proved: they are verified (a nonce spent) once."""
    request.scope[_PROVEN] = found


async def credentials_of(request: Request) -> Credentials:
    """Who the request's credentials prove it comes from (:func:`verify_presented`), verified once per
    request; :class:`AuthenticationFailed` (401) for bad, missing or ambiguous ones."""
    known, found = remembered(request)
    if known:
        return found
    p = await presented(request)
    if not p.empty:
        service: LedgerService = request.app.state.service
        # verifying asks the database (revoked tokens, spent nonces): not on the event loop
        found = await run_in_threadpool(verify_presented, auth_state(request), service, p)
    remember(request, found)
    return found


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
    """The calling party: a bearer token, or a signed request; 401 otherwise (the header parameters
    document the credentials; :func:`credentials_of` reads them)."""
    found = await credentials_of(request)
    if isinstance(found, AuthenticatedParty):
        return found
    if isinstance(found, AuthenticatedDevice):
        raise AuthenticationFailed(
            f"device {found.device_id!r} signed this request, but this endpoint needs a party: sign in "
            "with the owning party's key instead",
            code="auth.party_required",
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
