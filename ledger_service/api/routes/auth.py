"""Party sign-in: ``/v1/auth``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ledger_service.api.deps import CurrentParty
from ledger_service.api.models import ErrorEnvelope
from ledger_service.auth import (
    ENROLLER,
    OPERATOR,
    AuthenticationFailed,
    AuthMethod,
    auth_state,
    parse_address,
)

router = APIRouter(
    prefix="/v1/auth",
    tags=["auth"],
    responses={400: {"description": "The body is not valid JSON (or not UTF-8).", "model": ErrorEnvelope}},
)

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "Not authenticated: `auth.missing`, `auth.bad_signature`, `auth.bad_token`, "
        "`auth.bad_message`, `auth.expired`, `auth.revoked` (signed out), `auth.replayed`, "
        "`auth.ambiguous`.",
        "model": ErrorEnvelope,
    },
    503: {"description": "The chain or the database cannot be reached.", "model": ErrorEnvelope},
}
ROLE_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    403: {
        "description": "`auth.role_required`: the chain does not give the party the role (now).",
        "model": ErrorEnvelope,
    },
}


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LoginChallengeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}]},
    )

    address: str = Field(description="The party's address (EIP-55 checksum, or all lower case).")

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            return parse_address(value)
        except AuthenticationFailed as e:
            raise ValueError(e.message) from e


class LoginChallengeOut(BaseModel):
    address: str
    domain: str = Field(description="This service's domain, as in signed requests' canonical string.")
    chain_id: int
    nonce: str = Field(description="Single use; bound to the address and the times below.")
    issued_at: str
    expires_at: str = Field(description="Redeem the signed message at POST /v1/auth/token before this.")
    message: str = Field(description="The EIP-4361 message to sign, unchanged, with personal_sign (EIP-191).")


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(max_length=4096, description="The message from POST /v1/auth/challenge.")
    signature: str = Field(
        pattern=r"^0x[0-9a-fA-F]{130}$", description="The 65-byte personal_sign signature, 0x-hex."
    )


class TokenOut(BaseModel):
    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    token_type: str = "Bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    expires_at: str
    address: str
    chain_id: int


class PartyOut(BaseModel):
    address: str
    method: AuthMethod = Field(description="How the party proved control of the address.")
    expires_at: str = Field(description="When the credential used stops being accepted.")
    roles: dict[str, bool] = Field(description="The DeviceRegistry roles the chain gives it now.")


@router.post(
    "/challenge",
    response_model=LoginChallengeOut,
    summary="Start signing in: a message to sign with the party's key",
    description=(
        "Returns an EIP-4361 (Sign-In with Ethereum) message naming this service's domain and URI, the "
        "chain id, the address, a single-use nonce, the issue time and an expiry five minutes later. "
        "Sign it unchanged with `personal_sign` (EIP-191) and send it to `POST /v1/auth/token`. Nothing is "
        "stored until then: the nonce carries the service's MAC."
    ),
    responses={422: {"description": "Not an Ethereum address.", "model": ErrorEnvelope}},
)
def login_challenge(body: LoginChallengeIn, request: Request) -> Any:
    challenge = auth_state(request).authenticator.issue_login(body.address)
    return {
        "address": challenge.address,
        "domain": challenge.domain,
        "chain_id": challenge.chain_id,
        "nonce": challenge.nonce,
        "issued_at": _iso(challenge.issued_at),
        "expires_at": _iso(challenge.expires_at),
        "message": challenge.message,
    }


@router.post(
    "/token",
    response_model=TokenOut,
    summary="Finish signing in: a short-lived token for the signed message",
    description=(
        "Checks that the message is one this service issued, unchanged and unexpired, for this chain; "
        "that the signature recovers to its address; and spends its nonce (recorded in the database, so a "
        "replay is refused even after a restart). Returns a bearer token (15 minutes). The token says who "
        "the party is, never what it may do: roles are read from the chain at each request."
    ),
    responses=AUTH_ERRORS,
)
async def token(body: TokenIn, request: Request) -> Any:
    issued = await run_in_threadpool(
        auth_state(request).authenticator.redeem_login, body.message, body.signature
    )
    now = auth_state(request).authenticator.clock()
    return {
        "access_token": issued.token,
        "token_type": "Bearer",
        "expires_in": max(0, int((issued.expires_at - now).total_seconds())),
        "expires_at": _iso(issued.expires_at),
        "address": issued.address,
        "chain_id": issued.chain_id,
    }


@router.get(
    "/me",
    response_model=PartyOut,
    summary="Who the credential stands for, and the roles the chain gives it now",
    responses=AUTH_ERRORS,
)
def me(party: CurrentParty, request: Request) -> Any:
    roles = auth_state(request).roles
    return {
        "address": party.address,
        "method": party.method,
        "expires_at": _iso(party.expires_at),
        "roles": {spec.name: roles.holds(party.address, spec) for spec in (ENROLLER, OPERATOR)},
    }


@router.post(
    "/logout",
    status_code=204,
    response_class=Response,
    summary="Sign out: the bearer token stops working now, not when it expires",
    description=(
        "Records the presented token's id as revoked (in the database, so on every instance at once). "
        "From the next request on, the token is refused with 401 `auth.revoked` on the API and in the "
        "portal. Other sessions of the same party are not affected. Only a bearer token is a session: a "
        "signed request is answered 400 `auth.not_a_session`."
    ),
    responses={
        **AUTH_ERRORS,
        400: {"description": "`auth.not_a_session`: not a bearer token.", "model": ErrorEnvelope},
    },
)
async def logout(party: CurrentParty, request: Request) -> Response:
    await run_in_threadpool(auth_state(request).authenticator.revoke, party)
    return Response(status_code=204)
