"""The recall notices a party's lots are under: ``GET /v1/parties/{address}/recalls`` (issue 15)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from ledger_service.api.deps import Access, ServiceDep
from ledger_service.api.errors import refusal
from ledger_service.api.models import ErrorEnvelope
from ledger_service.api.responses import FastJSONResponse
from ledger_service.lots.holder_recalls import MAX_LIMIT
from ledger_service.lots.recall import recalls_of_party

router = APIRouter(prefix="/v1", tags=["lots"])


@router.get(
    "/parties/{address}/recalls",
    summary="The recall notices a party's lots, held now or before, are under (the party itself)",
    description=(
        "Every lot the party produced or accepted into its custody that is recalled, or flagged downstream "
        "of a recall, newest notice first, with each notice: who issued it, on which lot, when, the hash "
        "of its reason and, when the service keeps it, its text. From the service's mirror of the chain, "
        "brought up to date first when the chain answers (`mirrored_block` says how far it went); the "
        "service flags a notice's downstream lots on chain within `SUPET_RECALL_INTERVAL_SECONDS`. "
        "Readable by the party itself only."
    ),
    responses={
        400: {
            "description": "A cursor this list did not give out (`recall.bad_cursor`).",
            "model": ErrorEnvelope,
        },
        401: {"description": "Not signed in (`access.anonymous`).", "model": ErrorEnvelope},
        403: {"description": "Not that party (`access.not_owner`).", "model": ErrorEnvelope},
        404: {"description": "Not an address (`party.bad_address`).", "model": ErrorEnvelope},
        422: {
            "description": "`limit` beyond its maximum (`request.page_too_large`).",
            "model": ErrorEnvelope,
        },
        503: {"description": "The database is unreachable.", "model": ErrorEnvelope},
    },
)
def party_recalls(
    address: Annotated[str, Path(description="The party's Ethereum address.")],
    service: ServiceDep,
    access: Access,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Affected lots per page.")] = 100,
    cursor: Annotated[
        str | None, Query(max_length=100, description="The previous page's `next_cursor`.")
    ] = None,
) -> Any:
    owner = access.resource.owner
    if owner is None:
        return refusal("party.bad_address", f"{address!r} is not an Ethereum address")
    return FastJSONResponse(recalls_of_party(service, owner, limit=limit, cursor=cursor))
