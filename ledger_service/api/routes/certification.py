"""A lot's certification package, paged: ``/v1/lots/{lot_id}/certification-package``."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ledger_service.api.deps import IssuerQuery, LotIdPath, ServiceDep
from ledger_service.api.models import ErrorEnvelope
from ledger_service.api.routes.lots_epcis import next_link
from ledger_service.lots.certification import (
    DEFAULT_PACKAGE_PAGE,
    MAX_PACKAGE_PAGE,
    certification_package_page,
)

router = APIRouter(prefix="/v1", tags=["lots"])

PACKAGE_EXAMPLE: dict[str, Any] = {
    "format": "supet.certification-package.v1",
    "lot_id": "LOT-2026-0001",
    "batches": [
        {
            "batch_id": 3,
            "readings": [
                {
                    "device_id": "0x" + "53" * 32,
                    "seq": 7,
                    "timestamp": 1764400005000,
                    "lot_id": "0x" + "3c" * 32,
                    "metrics": ["0x" + "74656d705f63".ljust(64, "0")],
                    "values": ["4500000"],
                }
            ],
            "signatures": ["0x" + "ab" * 65],
            "proof": ["0x" + "9e" * 32],
            "proof_flags": [False],
        }
    ],
    "next_cursor": None,
}


class PackageReadingOut(BaseModel):
    """A reading as the contract's ``Reading`` struct (Reading v1 section 4)."""

    device_id: str = Field(description="bytes32 device id, 0x-hex.")
    seq: int
    timestamp: int = Field(description="The reading's ts_ms.")
    lot_id: str = Field(description="keccak256(utf8(lot_id)), 0x-hex.")
    metrics: list[str] = Field(description="The metric names, bytes32 0x-hex, sorted.")
    values: list[str] = Field(description="The values, fixed point (10^6) integers as decimal text.")


class PackageBatchOut(BaseModel):
    """The lot's readings in one anchored batch, with their multiproof against its root."""

    batch_id: int = Field(description="The chain batch id (ReadingAnchor).")
    readings: list[PackageReadingOut] = Field(description="In the multiproof's leaf order.")
    signatures: list[str] = Field(description="Each reading's signature, 0x-hex, in the same order.")
    proof: list[str] = Field(description="The multiproof's sibling hashes, 0x-hex.")
    proof_flags: list[bool]


class CertificationPackageOut(BaseModel):
    model_config = {"json_schema_extra": {"examples": [PACKAGE_EXAMPLE]}}

    format: Literal["supet.certification-package.v1"]
    lot_id: str
    batches: list[PackageBatchOut] = Field(description="One per anchored batch, by ascending batch id.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page (more batches); null on the last page."
    )


@router.get(
    "/lots/{lot_id}/certification-package",
    response_model=CertificationPackageOut,
    summary="A lot's certification package: its anchored readings with one multiproof per batch",
    description=(
        "Everything `QualityCertifier.certifyLot` needs to certify the lot from its QC readings: every "
        "anchored reading of the lot, grouped by chain batch, each batch with the readings (as the "
        "contract's `Reading` struct, in the multiproof's leaf order), their signatures and one "
        "multiproof against the anchored root. Only the ledger holds the batches' trees, so only it "
        "can build the proofs; the package proves itself on chain, nothing in it needs to be trusted. "
        "Pending (not yet anchored) readings are left out. Paged by whole batches: a page adds "
        f"batches while it holds fewer than `limit` readings (default {DEFAULT_PACKAGE_PAGE}, at most "
        f"{MAX_PACKAGE_PAGE}; a single larger batch is a page of its own); `next_cursor` (and the "
        '`Link` rel="next" header) leads to the next page; `certifyLot` takes the `batches` of every '
        "page, concatenated. Save it to a file and submit it with `supet lot certify LOT --package "
        "FILE` (format `supet.certification-package.v1`). Pages are cached until the lot changes."
    ),
    responses={
        200: {"content": {"application/json": {"example": PACKAGE_EXAMPLE}}},
        400: {
            "description": "A cursor this endpoint did not issue (`lot.bad_cursor`).",
            "model": ErrorEnvelope,
        },
        409: {
            "description": "Several parties have this lot id: pass `issuer` (`lot.ambiguous`).",
            "model": ErrorEnvelope,
        },
        404: {
            "description": "No such lot on chain (`lot.not_found`), or it has no anchored reading yet "
            "(`lot.no_anchored_readings`).",
            "model": ErrorEnvelope,
        },
        503: {"description": "The chain is unreachable.", "model": ErrorEnvelope},
    },
)
async def get_certification_package(
    lot_id: LotIdPath,
    service: ServiceDep,
    cursor: Annotated[
        str | None, Query(max_length=32, description="The `next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PACKAGE_PAGE)] = DEFAULT_PACKAGE_PAGE,
    issuer: IssuerQuery = None,
) -> Response:
    page = await run_in_threadpool(
        certification_package_page, service, lot_id, issuer=issuer, cursor=cursor, limit=limit
    )
    path = f"/v1/lots/{quote(lot_id, safe='')}/certification-package"
    return Response(
        page.body, media_type="application/json", headers=next_link(path, page.next_cursor, limit, issuer)
    )
