"""Sharing a lot's evidence (issue 14): auditors named by its holder, lots disclosed by their holder or
buyer, and the list of disclosed lots. The rules are :mod:`ledger_service.access.lot_sharing`'s."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from ledger_service.access import lot_sharing
from ledger_service.api.deps import CurrentParty, LotIdPath, ServiceDep
from ledger_service.api.models import ErrorEnvelope

router = APIRouter(prefix="/v1", tags=["lots"])

_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
MAX_DISCLOSURES_PAGE = 200

_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorEnvelope, "description": "The body is not valid JSON (or not UTF-8)."},
    401: {"model": ErrorEnvelope, "description": "No party signed in."},
    403: {"model": ErrorEnvelope, "description": "`access.not_holder`: not the lot's holder (or buyer)."},
    404: {"model": ErrorEnvelope, "description": "`lot.not_found`: no such lot on chain."},
    409: {"model": ErrorEnvelope, "description": "`lot.ambiguous`: pass `issuer`."},
    503: {"model": ErrorEnvelope, "description": "The chain or the database is unreachable."},
}


class AuditorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auditor: str = Field(pattern=_ADDRESS, description="The auditor's address.")
    issuer: str | None = Field(
        default=None, pattern=_ADDRESS, description="The lot's issuer, when several parties use its id."
    )


class DisclosureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    issuer: str | None = Field(
        default=None, pattern=_ADDRESS, description="The lot's issuer, when several parties use its id."
    )


@router.post(
    "/lots/{lot_id}/auditors",
    summary="Name an auditor who may read this lot's evidence (the lot's holder)",
    description=(
        "The lot's holder (its custodian on chain now) names an auditor: from then on the auditor may read "
        "the lot's timeline, its QC readings with their proof bundles, its EPCIS export and its "
        "certification package, signed in with its own key. Stored by the service; naming the same "
        "auditor again answers the standing naming."
    ),
    responses=_REFUSALS,
)
async def name_auditor(lot_id: LotIdPath, body: AuditorIn, party: CurrentParty, service: ServiceDep) -> Any:
    return await run_in_threadpool(
        lot_sharing.name_auditor, service, party.address, lot_id, body.auditor, issuer=body.issuer
    )


@router.post(
    "/lots/{lot_id}/auditors/withdraw",
    summary="Withdraw an auditor's access to this lot (the holder, or the party that named it)",
    responses=_REFUSALS,
)
async def withdraw_auditor(
    lot_id: LotIdPath, body: AuditorIn, party: CurrentParty, service: ServiceDep
) -> Any:
    return await run_in_threadpool(
        lot_sharing.withdraw_auditor, service, party.address, lot_id, body.auditor, issuer=body.issuer
    )


@router.post(
    "/lots/{lot_id}/disclosure",
    summary="Disclose this lot's evidence to anyone (the lot's holder or a buyer)",
    description=(
        "The lot's holder, or a party that accepted it in a transfer, discloses the lot's evidence: its "
        "timeline, QC readings with their proof bundles, EPCIS export and certification package become "
        "readable without signing in, and the public lot page shows it. A disclosure is not withdrawn "
        "(what was public may have been copied); disclosing again answers the first disclosure."
    ),
    responses=_REFUSALS,
)
async def disclose(lot_id: LotIdPath, body: DisclosureIn, party: CurrentParty, service: ServiceDep) -> Any:
    return await run_in_threadpool(lot_sharing.disclose, service, party.address, lot_id, issuer=body.issuer)


@router.get(
    "/disclosures",
    summary="The lots whose evidence their holders disclosed (public), paged",
    description="In the order they were disclosed; pass `next_after_id` back as `after_id`.",
)
async def disclosures(
    service: ServiceDep,
    after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_DISCLOSURES_PAGE)] = 50,
) -> Any:
    return await run_in_threadpool(lot_sharing.disclosed_lots, service, after_id=after_id, limit=limit)
