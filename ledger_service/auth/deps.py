"""The FastAPI dependencies: the calling party (:func:`current_party`) and a role it must hold
(:func:`require_role`); ``ledger_service.api.deps`` names them ``CurrentParty`` and ``EnrollerParty``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ledger_service.auth.authenticator import Authenticator
from ledger_service.auth.errors import AuthenticationFailed
from ledger_service.auth.party import AuthenticatedParty
from ledger_service.auth.roles import RoleChecker, RoleSpec

if TYPE_CHECKING:
    from ledger_service.service import LedgerService

__all__ = ["AuthState", "auth_state", "current_party", "require_role"]


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
                ),
                roles=RoleChecker(
                    chain=service.chain,
                    deployment=service.deployment,
                    max_age=service.settings.role_cache_seconds,
                ),
            )
            app_state.auth = found
    return found


_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PartyToken",
    description="A token from POST /v1/auth/token (sign-in with the party's Ethereum address).",
)
_SIGNED = "Signed request (instead of a token): "
_SIGNED_HEADERS = ("X-Supet-Address", "X-Supet-Timestamp", "X-Supet-Nonce", "X-Supet-Signature")


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
    """The calling party: a bearer token, or a signed request; 401 otherwise."""
    state = auth_state(request)
    signed = (x_supet_address, x_supet_timestamp, x_supet_nonce, x_supet_signature)
    if bearer is not None and any(v is not None for v in signed):
        raise AuthenticationFailed(
            "send a bearer token or the X-Supet-* signature headers, not both", code="auth.ambiguous"
        )
    if bearer is not None:
        # verifying asks the database (revoked tokens): not on the event loop
        return await run_in_threadpool(state.authenticator.verify_token, bearer.credentials)
    if any(v is not None for v in signed):
        return await _signed_party(request, state, signed)
    raise AuthenticationFailed(
        "this endpoint needs a party: send `Authorization: Bearer <token>` (sign in at "
        "POST /v1/auth/challenge and /v1/auth/token) or sign the request (X-Supet-* headers)",
        code="auth.missing",
    )


async def _signed_party(
    request: Request, state: AuthState, signed: tuple[str | None, str | None, str | None, str | None]
) -> AuthenticatedParty:
    """The party of a signed request, all four ``X-Supet-*`` headers given; 401 otherwise."""
    address, timestamp, nonce, signature = signed
    if address is None or timestamp is None or nonce is None or signature is None:
        missing = [name for name, v in zip(_SIGNED_HEADERS, signed, strict=True) if v is None]
        raise AuthenticationFailed(
            f"a signed request needs all four X-Supet-* headers; missing {', '.join(missing)}",
            code="auth.missing",
        )
    body = await request.body()
    query = request.url.query
    path = request.url.path + (f"?{query}" if query else "")
    return await run_in_threadpool(
        state.authenticator.verify_signed_request,
        method=request.method,
        path=path,
        body=body,
        address=address,
        timestamp=timestamp,
        nonce=nonce,
        signature=signature,
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
