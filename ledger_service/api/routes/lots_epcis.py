"""A lot's history as a GS1 EPCIS 2.0 document, paged: ``/v1/lots/{lot_id}/epcis``."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from ledger_service.api.deps import IssuerQuery, LotIdPath, ServiceDep
from ledger_service.api.responses import FastJSONResponse
from ledger_service.lots.epcis import DEFAULT_EPCIS_PAGE, MAX_EPCIS_PAGE, lot_epcis_page
from ledger_service.lots.epcis_hash import EPCIS_CONTEXT, SUPET_NS

router = APIRouter(prefix="/v1", tags=["lots"])

EPCIS_MEDIA_TYPE = "application/ld+json"

EPCIS_EXAMPLE: dict[str, Any] = {
    "@context": [EPCIS_CONTEXT, {"supet": SUPET_NS}],
    "type": "EPCISDocument",
    "schemaVersion": "2.0",
    "creationDate": "2026-11-29T15:00:00.000Z",
    "epcisBody": {
        "eventList": [
            {
                "eventID": "ni:///sha-256;" + "4f" * 32 + "?ver=CBV2.0",
                "type": "ObjectEvent",
                "eventTime": "2026-11-29T07:06:40.000Z",
                "eventTimeZoneOffset": "+00:00",
                "quantityList": [
                    {
                        "epcClass": "https://id.gs1.org/01/04006381333931/10/LOT-2026-0001",
                        "quantity": 500,
                        "uom": "KGM",
                    }
                ],
                "action": "ADD",
                "bizStep": "commissioning",
                "disposition": "active",
                "sourceList": [
                    {
                        "type": "owning_party",
                        "source": "did:pkh:eip155:31337:0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    }
                ],
                "ilmd": {
                    "supet:producedFrom": "2026-11-28T03:20:00.000Z",
                    "supet:producedTo": "2026-11-29T04:20:00.000Z",
                },
                "supet:lotId": "LOT-2026-0001",
                "supet:unit": "kg",
                "supet:chain": {
                    "supet:chainId": 31337,
                    "supet:contract": "0xa513E6E4b8f2a923D98304ec87F64353C4D5C853",
                    "supet:txHash": "0x" + "5a" * 32,
                    "supet:blockNumber": 12,
                    "supet:logIndex": 0,
                },
            }
        ]
    },
}


#: Errors are plain JSON (the error envelope), not JSON-LD: named explicitly, since FastAPI would
#: otherwise document a ``model`` response under the route's media type.
_ERROR_CONTENT: dict[str, Any] = {
    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}
}


class EpcisResponse(FastJSONResponse):
    """An EPCIS 2.0 JSON-LD document."""

    media_type = EPCIS_MEDIA_TYPE


def next_link(path: str, cursor: str | None, limit: int, issuer: str | None = None) -> dict[str, str]:
    """The ``Link: <...>; rel="next"`` header (RFC 8288) of a page with a next page, else none."""
    if cursor is None:
        return {}
    query = {"cursor": cursor, "limit": limit} | ({"issuer": issuer} if issuer else {})
    return {"Link": f'<{path}?{urlencode(query)}>; rel="next"'}


@router.get(
    "/lots/{lot_id}/epcis",
    response_class=EpcisResponse,
    summary="A lot's history as GS1 EPCIS 2.0 documents (JSON-LD), paged",
    description=(
        "The lot's history as EPCIS 2.0 `EPCISDocument`s in JSON-LD, at most `limit` events a page "
        f"(default {DEFAULT_EPCIS_PAGE}, at most {MAX_EPCIS_PAGE}); each page is a whole, valid "
        "document, and a page with a next one answers `Link: </v1/lots/{lot_id}/epcis?cursor=..&limit="
        '..>; rel="next"` (the same cursor as `/v1/lots/{lot_id}/history`). Events: its opening '
        "(ObjectEvent ADD, `commissioning`) or the split that created it (TransformationEvent), its "
        "splits (TransformationEvent), custody transfers (ObjectEvent `shipping` / `receiving` / "
        "`void_shipping`), certification verdicts (ObjectEvent `inspecting`, `conformant` / "
        "`non_conformant`) and its readings (ObjectEvent `inspecting` with a sensor element). One event "
        "per step of `/v1/lots/{lot_id}/history`, in its order; each event's `eventID` is its GS1 "
        "event hash, and `supet:chain` names the chain, contract, transaction, block and log of the "
        "step (for an anchored reading: its anchoring transaction). The lot is identified by its GS1 "
        "Digital Link (GTIN + lot), parties by `did:pkh` of their address. Pages are cached until the "
        "lot changes (a new step, reading or anchoring)."
    ),
    responses={
        200: {
            "description": "One page of the EPCIS 2.0 document.",
            "content": {EPCIS_MEDIA_TYPE: {"schema": {"type": "object"}, "example": EPCIS_EXAMPLE}},
        },
        400: {
            "description": "A cursor this endpoint did not issue (`lot.bad_cursor`).",
            "content": _ERROR_CONTENT,
        },
        409: {
            "description": "Several parties have this lot id: pass `issuer` (`lot.ambiguous`).",
            "content": _ERROR_CONTENT,
        },
        404: {
            "description": "No such lot on chain (`lot.not_found`): never opened nor split off.",
            "content": _ERROR_CONTENT,
        },
        503: {"description": "The chain is unreachable.", "content": _ERROR_CONTENT},
    },
)
async def get_lot_epcis(
    lot_id: LotIdPath,
    service: ServiceDep,
    cursor: Annotated[
        str | None, Query(max_length=512, description="The cursor of the `Link` rel=next of a page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EPCIS_PAGE)] = DEFAULT_EPCIS_PAGE,
    issuer: IssuerQuery = None,
) -> Response:
    page = await run_in_threadpool(lot_epcis_page, service, lot_id, issuer=issuer, cursor=cursor, limit=limit)
    path = f"/v1/lots/{quote(lot_id, safe='')}/epcis"
    return Response(
        page.body, media_type=EPCIS_MEDIA_TYPE, headers=next_link(path, page.next_cursor, limit, issuer)
    )
