"""A line's operating-window breaches: ``GET /v1/factories/{address}/lines/{line}/window-breaches``
(issue 16.3). The report is :func:`ledger_service.analytics_store.window_check.breach_report`'s."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ledger_service.access.policy import CallerKind
from ledger_service.analytics_store.window_check import breach_report
from ledger_service.api.deps import Access, ServiceDep
from ledger_service.api.errors import refusal
from ledger_service.api.models import ErrorEnvelope
from ledger_service.api.responses import FastJSONResponse
from ledger_service.credit_desk.desk import desk_of

router = APIRouter(prefix="/v1", tags=["analytics"])

#: The most breach samples a parameter's answer lists.
MAX_SAMPLES = 20


@router.get(
    "/factories/{address}/lines/{line}/window-breaches",
    summary="A line's readings outside its operating windows (the factory, or a bank it consents to)",
    description=(
        "The line's current operating-window set (version, commitment, the yield result it comes from, the "
        "versions before it) and, per windowed parameter, the readings checked against its window since the "
        "set was published, how many were outside, their share, the last breach and the newest breaching "
        "readings (digest, device, time, value, and the path of each one's proof bundle). Counted by the "
        "service's live window check every `SUPET_WINDOW_CHECK_INTERVAL_SECONDS` from the readings stored "
        "since its last pass (`checked_through_reading`). Readable by the factory itself and by a bank while "
        "the factory's consent to it stands (logged in the factory's access log like its profile)."
    ),
    responses={
        401: {"description": "Not signed in (`access.anonymous`).", "model": ErrorEnvelope},
        403: {
            "description": "Neither the factory nor a bank it consents to (`finance.not_a_bank`, "
            "`finance.no_consent`, `finance.consent_expired`).",
            "model": ErrorEnvelope,
        },
        404: {
            "description": "Not an address (`party.bad_address`), or the line has no window set "
            "(`windows.not_found`).",
            "model": ErrorEnvelope,
        },
        503: {
            "description": "The database (or, for a bank, the chain) is unreachable.",
            "model": ErrorEnvelope,
        },
    },
)
def window_breaches(
    address: Annotated[str, Path(description="The factory's Ethereum address.")],
    line: Annotated[str, Path(max_length=128, description="The line's id (as its yield model names it).")],
    service: ServiceDep,
    access: Access,
    samples: Annotated[
        int, Query(ge=0, le=MAX_SAMPLES, description="Breaching readings listed per parameter.")
    ] = 10,
) -> Any:
    factory = access.resource.owner
    if factory is None:
        return refusal("party.bad_address", f"{address!r} is not an Ethereum address")
    caller = access.caller
    if caller.kind is CallerKind.PARTY and caller.party != factory:
        desk_of(service).gate(str(caller.party), factory, "window_breaches")  # logged, as a profile read
    return FastJSONResponse(breach_report(service.engine, factory, line, samples=samples))
