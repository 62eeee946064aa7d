"""A lot's timeline for auditors: ``/v1/lots/{lot_id}/history``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from ledger_service.api.deps import IssuerQuery, LotIdPath, ServiceDep
from ledger_service.api.models import ErrorEnvelope
from ledger_service.api.responses import FastJSONResponse
from ledger_service.lots.timeline import MAX_LIMIT, lot_timeline

router = APIRouter(prefix="/v1", tags=["lots"])

_TX = "0x" + "5a" * 32
HISTORY_EXAMPLE: dict[str, Any] = {
    "lot_id": "LOT-2026-0001",
    "lot_key": "0x" + "3c" * 32,
    "lot_id_hash": "0x" + "4d" * 32,
    "issuer": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "on_chain": True,
    "steps": [
        {
            "kind": "opened",
            "time_ms": 1764400000000,
            "actor": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "details": {
                "lot_id": "LOT-2026-0001",
                "gtin": "04006381333931",
                "supplier": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "quantity": "500",
                "unit": "kg",
                "produced_from_ms": 1764300000000,
                "produced_to_ms": 1764390000000,
            },
            "reference": {
                "type": "transaction",
                "tx_hash": _TX,
                "block_number": 12,
                "log_index": 0,
                "contract": "0xa513E6E4b8f2a923D98304ec87F64353C4D5C853",
            },
        },
        {
            "kind": "reading",
            "time_ms": 1764400005000,
            "actor": "SN-P256-0001",
            "details": {
                "device_id": "SN-P256-0001",
                "seq": 7,
                "metrics": {"temp_c": 4.5},
                "received_ms": 1764400005120,
            },
            "reference": {
                "type": "reading",
                "digest": "0x" + "36e6" * 16,
                "status": "anchored",
                "batch_id": 3,
                "proof": {"digest": "0x" + "36e6" * 16, "batch_id": 3, "...": "the proof bundle (section 6)"},
            },
        },
        {
            "kind": "transfer_accepted",
            "time_ms": 1764400060000,
            "actor": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            "details": {
                "from": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "to": "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
            },
            "reference": {
                "type": "transaction",
                "tx_hash": "0x" + "7b" * 32,
                "block_number": 15,
                "log_index": 0,
                "contract": "0xa513E6E4b8f2a923D98304ec87F64353C4D5C853",
            },
        },
    ],
    "next_cursor": "WzE3NjQ0MDAwNjAwMDAsMCwxNSwwLCIiLDBd",
}


class TransactionRef(BaseModel):
    """Where a chain step happened."""

    type: Literal["transaction"]
    tx_hash: str
    block_number: int
    log_index: int
    contract: str = Field(description="The emitting contract (LotRegistry or QualityCertifier).")


class ReadingRef(BaseModel):
    """A reading of the lot: its digest, its status and, once anchored, its proof bundle."""

    type: Literal["reading"]
    digest: str
    status: Literal["pending", "batched", "anchored"]
    batch_id: int | None = Field(description="The chain batch id, once anchored.")
    proof: dict[str, Any] | None = Field(
        description="The proof bundle (Reading v1 section 6), once anchored."
    )


class LotStepOut(BaseModel):
    kind: Literal[
        "opened",
        "split",
        "transfer_proposed",
        "transfer_accepted",
        "transfer_rejected",
        "transfer_cancelled",
        "transformed",
        "reading",
        "certified",
        "rejected",
    ]
    time_ms: int = Field(description="Block time (chain steps) or the reading's ts_ms, Unix ms.")
    actor: str = Field(description="The acting address, or the device id of a reading.")
    details: dict[str, Any]
    reference: TransactionRef | ReadingRef


class LotHistoryOut(BaseModel):
    model_config = {"json_schema_extra": {"examples": [HISTORY_EXAMPLE]}}

    lot_id: str
    lot_key: str | None = Field(
        description="The lot's key on chain, keccak256(abi.encode(issuer, lot_id_hash)); null when no "
        "issuer is known (a lot not on chain, asked for without `issuer`)."
    )
    lot_id_hash: str = Field(description="keccak256(utf8(lot_id)): what the lot's readings carry.")
    issuer: str | None = Field(
        description="Who named the lot on chain: the supplier who opened it, or the custodian who split "
        "it off."
    )
    on_chain: bool = Field(description="Whether the lot was opened (or split off) on chain.")
    steps: list[LotStepOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


@router.get(
    "/lots/{lot_id}/history",
    response_model=LotHistoryOut,
    summary="A lot's timeline: opening, readings with proofs, custody, certification",
    description=(
        "The lot's steps in time order: its opening (or the split that created it), splits, custody "
        "transfers (proposed, accepted, rejected, cancelled) and certification verdicts with the spec "
        "version they were judged against, read from the chain, each with its transaction hash and "
        "block; and its readings, each with its digest, status and, once anchored, its proof bundle. "
        "Paged: pass `next_cursor` back as `cursor`. `supet audit lot` re-verifies all of it against "
        "the chain."
    ),
    responses={
        200: {"content": {"application/json": {"example": HISTORY_EXAMPLE}}},
        400: {"description": "A cursor this endpoint did not issue.", "model": ErrorEnvelope},
        404: {"description": "No such lot (`lot.not_found`).", "model": ErrorEnvelope},
        409: {
            "description": "Several parties have this lot id: pass `issuer` (`lot.ambiguous`).",
            "model": ErrorEnvelope,
        },
        503: {"description": "The chain is unreachable.", "model": ErrorEnvelope},
    },
)
def get_lot_history(
    lot_id: LotIdPath,
    service: ServiceDep,
    cursor: Annotated[
        str | None, Query(max_length=512, description="The `next_cursor` of the previous page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    issuer: IssuerQuery = None,
) -> Any:
    page = lot_timeline(service, lot_id, issuer=issuer, cursor=cursor, limit=limit)
    return FastJSONResponse(page.to_json_obj())
