"""Ingest and reading queries: ``/v1/readings``."""

from __future__ import annotations

from typing import Annotated, Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from ledger_service.api.deps import Access, ServiceDep
from ledger_service.api.errors import error_response, http_status, refusal, rejection_status
from ledger_service.api.limits import DECODED_BODY
from ledger_service.api.models import (
    SUBMISSION_EXAMPLE,
    BatchOut,
    ErrorEnvelope,
    HistoryOut,
    PendingProofOut,
    ReadingStatusOut,
    ReceiptOut,
)
from ledger_service.api.responses import FastJSONResponse
from ledger_service.ingest.pipeline import ItemResult
from ledger_service.ingest.single import submit_one
from ledger_service.jsonio import BodyDecodeError, loads_strict
from ledger_service.proof_pages import MAX_PROOF_PAGE, device_proofs, lot_proof_page
from ledger_service.proofs import (
    ProofPending,
    ReadingStatus,
    device_history,
    parse_digest,
    proof_bundle_json,
    reading_status,
)

router = APIRouter(prefix="/v1", tags=["readings"])

_SUBMIT_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/SubmissionIn"},
                        {"$ref": "#/components/schemas/BatchIn"},
                    ]
                },
                "examples": {
                    "one": {"summary": "one signed reading", "value": SUBMISSION_EXAMPLE},
                    "batch": {"summary": "a batch", "value": {"readings": [SUBMISSION_EXAMPLE]}},
                },
            }
        },
    }
}


def _item_json(item: ItemResult) -> dict[str, Any]:
    if item.receipt is not None:
        return {"index": item.index, "receipt": item.receipt.to_json_obj()}
    return {"index": item.index, "error": {"code": item.code, "message": item.message}}


@router.post(
    "/readings",
    summary="Submit one signed reading or a batch of up to 10,000",
    description=(
        'Takes one submission `{reading, scheme, signature}` or `{"readings": [...]}`. Each reading is '
        "checked (schema, signature by the enrolled key, low-S, device active at `ts_ms`, clock skew, "
        "sequence) and acknowledged only once committed to the database. A batch answers per item: one bad "
        "reading never blocks the others. An identical resubmission returns the same receipt; the same "
        "`(device_id, seq)` with another digest is equivocation: refused and kept as evidence."
    ),
    openapi_extra=_SUBMIT_SCHEMA,
    responses={
        200: {"description": "A batch's per-item results.", "model": BatchOut},
        201: {"description": "One submission accepted (durably stored).", "model": ReceiptOut},
        400: {"description": "The body is not JSON of either shape.", "model": ErrorEnvelope},
        409: {"description": "Sequence rule or equivocation.", "model": ErrorEnvelope},
        413: {"description": "Too many submissions or too large a body.", "model": ErrorEnvelope},
        422: {"description": "The single submission was refused.", "model": ErrorEnvelope},
        503: {"description": "The database is unavailable; nothing was stored.", "model": ErrorEnvelope},
    },
)
async def submit(request: Request, service: ServiceDep) -> JSONResponse:
    settings = service.settings
    if DECODED_BODY in request.scope:  # capped, timed and strictly decoded by RequestLimitsMiddleware
        payload = request.scope[DECODED_BODY]
    else:
        too_large = f"the body exceeds {settings.max_body_bytes} bytes: split the batch"
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > settings.max_body_bytes:
            return refusal("request.too_large", too_large)
        chunks = bytearray()
        async for chunk in request.stream():  # bounded: a chunked body is refused once too large
            chunks += chunk
            if len(chunks) > settings.max_body_bytes:
                return refusal("request.too_large", too_large)
        try:
            payload = await run_in_threadpool(loads_strict, bytes(chunks))
        except BodyDecodeError as e:
            return error_response(e)
    if isinstance(payload, dict) and set(payload) == {"readings"}:
        items = payload["readings"]
        if not isinstance(items, list):
            return refusal("request.bad_shape", "`readings` must be a list of submissions")
        if len(items) > settings.max_batch_submissions:
            return refusal(
                "request.too_many",
                f"a batch holds at most {settings.max_batch_submissions} "
                f"submissions, got {len(items)}: split it",
            )
        results = await run_in_threadpool(service.pipeline.submit, items, source="http")
        accepted = sum(1 for r in results if r.accepted)
        return FastJSONResponse(
            {
                "accepted": accepted,
                "rejected": len(results) - accepted,
                "results": [_item_json(r) for r in results],
            }
        )
    if not isinstance(payload, dict):
        return refusal("request.bad_shape", 'send one submission object or {"readings": [...]}')
    result = await submit_one(service.pipeline, payload, source="http")  # checked in-process, no thread
    if result.receipt is not None:
        return FastJSONResponse(result.receipt.to_json_obj(), status_code=201)
    assert result.code is not None and result.message is not None
    return refusal(result.code, result.message, status_code=rejection_status(result.code))


DigestPath = Annotated[str, Path(description="0x-hex reading digest", examples=["0x" + "36e6" * 16])]

_READ_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": ErrorEnvelope,
        "description": "`access.anonymous`: sign in as the device's owner (or a lot custodian or named "
        "auditor), or sign the request as the device; or the credentials did not verify (`auth.*`).",
    },
    403: {"model": ErrorEnvelope, "description": "`access.not_owner`: not entitled (docs/access-policy.md)."},
}


def _status(access: Access) -> ReadingStatus | None:
    return access.preload if isinstance(access.preload, ReadingStatus) else None


@router.get(
    "/readings/{digest}",
    response_model=ReadingStatusOut,
    summary="A stored reading and its status (its owner, the device, a lot's custodians and auditors)",
    description="The reading as signed, its receipt's status and batch. Only for whom docs/access-policy.md "
    "names: the device's owner (signed in), the device (a device-signed request), the custodians and named "
    "auditors of a lot it is evidence of; anyone once that lot is disclosed.",
    responses={404: {"model": ErrorEnvelope}, **_READ_REFUSALS},
)
async def get_reading(digest: DigestPath, service: ServiceDep, access: Access) -> Any:
    st = _status(access)  # the access guard read it to decide: no second look in the store
    if st is None:
        st = await run_in_threadpool(reading_status, service, parse_digest(digest))
    return st.to_json_obj()


@router.get(
    "/readings/{digest}/proof",
    summary="The proof bundle of an anchored reading",
    description="The spec's proof bundle (section 6). 404 with `status` and `expected_batch` while pending. "
    "It reveals this reading and its path to the batch root, never the batch's other readings. For the same "
    "callers as the reading.",
    responses={200: {"description": "The proof bundle."}, 404: {"model": PendingProofOut}, **_READ_REFUSALS},
)
def get_proof(digest: DigestPath, service: ServiceDep, access: Access) -> Any:
    try:
        body = proof_bundle_json(service, parse_digest(digest), status=_status(access))
        return Response(body, media_type=FastJSONResponse.media_type)
    except ProofPending as e:
        return refusal(
            e.code, e.message, status_code=http_status(e), status=e.status, expected_batch=e.expected_batch
        )


@router.get(
    "/devices/{device_id}/readings",
    response_model=HistoryOut,
    summary="A device's readings, by seq (its owner, or the device itself), paged",
    responses={404: {"model": ErrorEnvelope}, **_READ_REFUSALS},
)
def get_history(
    device_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")],
    service: ServiceDep,
    after_seq: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Return readings with seq above this.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    page, cursor = device_history(service, device_id, after_seq=after_seq, limit=limit)
    return {"device_id": device_id, "readings": [p.to_json_obj() for p in page], "next_after_seq": cursor}


class ProofPageOut(BaseModel):
    """A page of proof bundles (a device's: ``device_id``; a lot's: ``lot_id``)."""

    device_id: str | None = None
    lot_id: str | None = None
    proofs: list[dict[str, Any]] = Field(description="Proof bundles (reading-v1.md section 6).")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null when nothing more is anchored now."
    )
    resume_cursor: str | None = Field(
        description="Pass as `cursor` later to read what has been anchored since (late readings included); "
        "null when nothing was served and no cursor given."
    )


_BULK = (
    "Each item is the spec's proof bundle (section 6), exactly as `GET /v1/readings/{digest}/proof` serves "
    "it, in anchoring order (store batch, then arrival). Readings not anchored yet are not listed, and "
    "nothing anchored after the first batch still on its way: a read resumed later from the last page's "
    "`resume_cursor` serves them, late store-and-forward readings included, so an auditor following a "
    "device misses none. Paged: pass `next_cursor` as `cursor` until it is null; at most 1,000 bundles "
    "a page."
)
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=40, description="The `next_cursor` (or `resume_cursor`) of an earlier page; none: first."
    ),
]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_PROOF_PAGE)]


@router.get(
    "/devices/{device_id}/proofs",
    response_model=ProofPageOut,
    summary="The proof bundles of a device's anchored readings, by seq (its owner, or the device), paged",
    description=_BULK,
    responses={400: {"model": ErrorEnvelope}, 404: {"model": ErrorEnvelope}, **_READ_REFUSALS},
)
def get_device_proofs(
    device_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")],
    service: ServiceDep,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> Any:
    page = device_proofs(service, device_id, cursor=cursor, limit=limit)
    return Response(page.to_json({"device_id": device_id}), media_type=FastJSONResponse.media_type)


@router.get(
    "/lots/{lot_id}/proofs",
    response_model=ProofPageOut,
    summary="The proof bundles of a lot's anchored readings (its issuer, custodians, named auditors), paged",
    description=_BULK + " The readings are those of the lot's timeline (`GET /v1/lots/{lot_id}/history`): of "
    "the devices that may speak for the lot on chain; name its `issuer` when several parties use the id.",
    responses={400: {"model": ErrorEnvelope}, 404: {"model": ErrorEnvelope}, **_READ_REFUSALS},
)
def get_lot_proofs(
    lot_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")],
    service: ServiceDep,
    issuer: Annotated[str | None, Query(max_length=42, description="The lot's issuer (an address).")] = None,
    cursor: CursorQuery = None,
    limit: LimitQuery = 100,
) -> Any:
    page = lot_proof_page(
        service, lot_id, issuer=to_checksum_address(issuer) if issuer else None, cursor=cursor, limit=limit
    )
    return Response(page.to_json({"lot_id": lot_id}), media_type=FastJSONResponse.media_type)
