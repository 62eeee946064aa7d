"""Admission status of a party, as the ParticipantRegistry decides it right now (public)."""

from __future__ import annotations

from typing import Annotated, Any

from eth_utils import is_address, to_checksum_address
from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from contracts.participant_ids import PARTY_ROLES, id_name
from contracts.participants import ParticipantRegistryClient
from ledger_service.api.deps import ServiceDep
from ledger_service.api.errors import refusal
from ledger_service.api.models import ErrorEnvelope
from ledger_service.api.responses import FastJSONResponse

router = APIRouter(prefix="/v1", tags=["parties"])


class RoleAdmissionOut(BaseModel):
    role: str
    admitted: bool
    reason: str = Field(
        description="The registry's reason code (`ADMITTED`, `MISSING_CLAIM`, `SUSPENDED`...)."
    )
    explanation: str = Field(description="What holds the party back, and what to do next.")
    topic: str | None = Field(default=None, description="The claim topic concerned, when one is.")
    approvals: int
    needed: int


class AdmissionOut(BaseModel):
    party: str
    suspended: bool
    suspension_reason: str
    roles: list[RoleAdmissionOut]


@router.get(
    "/parties/{address}/admission",
    response_model=AdmissionOut,
    summary="Whether a party is admitted, per role, and if not why",
    description=(
        "Read from the consortium's ParticipantRegistry at the latest block: for every party role, "
        "admitted or the first reason it is not (missing, expired or revoked claim; no quorum; not "
        "applied; suspended). Admission lapses on its own when a claim expires, so this is the live answer."
    ),
    responses={
        404: {"model": ErrorEnvelope, "description": "Not an address, or no ParticipantRegistry deployed."},
        503: {"model": ErrorEnvelope, "description": "The chain is unreachable."},
    },
)
def admission(
    address: Annotated[str, Path(description="The party's Ethereum address.")], service: ServiceDep
) -> Any:
    if not is_address(address):
        return refusal("party.bad_address", f"{address!r} is not an Ethereum address")
    if "ParticipantRegistry" not in service.deployment.contracts:
        return refusal("party.no_registry", "this deployment has no ParticipantRegistry")
    party = to_checksum_address(address)
    registry = ParticipantRegistryClient(service.chain, service.deployment)
    suspension = registry.suspension(party)
    roles = []
    for name, role in PARTY_ROLES.items():
        status = registry.why_not_admitted(party, role)
        roles.append(
            {
                "role": name,
                "admitted": status.admitted,
                "reason": status.reason.name,
                "explanation": status.explain(),
                "topic": id_name(status.topic) if any(status.topic) else None,
                "approvals": status.approvals,
                "needed": status.needed,
            }
        )
    return FastJSONResponse(
        {
            "party": party,
            "suspended": suspension.suspended,
            "suspension_reason": suspension.reason,
            "roles": roles,
        }
    )
