"""A lot's trace: ``GET /v1/lots/{lot_id}/trace?direction=upstream|downstream`` (issue 15)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ledger_service.api.deps import IssuerQuery, LotIdPath, ServiceDep
from ledger_service.api.models import ErrorEnvelope
from ledger_service.api.responses import FastJSONResponse
from ledger_service.lots.recall import lot_trace
from ledger_service.lots.trace import Direction

router = APIRouter(prefix="/v1", tags=["lots"])


@router.get(
    "/lots/{lot_id}/trace",
    summary="A lot's lineage one way: every lot upstream (producers, verdicts) or downstream (holders)",
    description=(
        "Computed from the service's mirror of the chain, brought up to date first. `downstream`: every "
        "lot split off the lot or made from it, transitively, each with its present holder. `upstream`: "
        "every lot it was split off or made from, each with its producer and quality verdicts. Lots come "
        "breadth-first from the root (`depth`), with the edges between them (`split` or `transform`) and "
        "any recall notice they are under. `supet trace LOT --verify` re-checks it against the chain. "
        "Readable by the lot's issuer, custodians and named auditors."
    ),
    responses={
        401: {"description": "Not signed in (`access.anonymous`).", "model": ErrorEnvelope},
        403: {"description": "Not entitled (`access.not_custodian`).", "model": ErrorEnvelope},
        404: {"description": "No such lot on chain (`lot.not_found`).", "model": ErrorEnvelope},
        409: {"description": "Several parties have this lot id: pass `issuer`.", "model": ErrorEnvelope},
        422: {"description": "More lots than one answer holds (`trace.too_large`).", "model": ErrorEnvelope},
        503: {"description": "The chain or the store is unreachable.", "model": ErrorEnvelope},
    },
)
def get_lot_trace(
    lot_id: LotIdPath,
    service: ServiceDep,
    direction: Annotated[Direction, Query(description="`upstream` or `downstream`.")],
    issuer: IssuerQuery = None,
) -> Any:
    return FastJSONResponse(lot_trace(service, lot_id, direction, issuer=issuer).to_json_obj())
