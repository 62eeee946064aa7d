"""Public request and response models of the API (never the table models)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

READING_EXAMPLE: dict[str, Any] = {
    "device_id": "SN-P256-0001",
    "seq": 1,
    "ts_ms": 1764400000000,
    "lot_id": "LOT-2026-0001",
    "metrics": {"temp_c": 23.5, "good_units": 120},
}
SUBMISSION_EXAMPLE: dict[str, Any] = {
    "reading": READING_EXAMPLE,
    "scheme": "p256",
    "signature": "0x" + "ab" * 64,
}


class ReadingIn(BaseModel):
    """A reading as a device sends it (Reading v1, section 1)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [READING_EXAMPLE]})

    device_id: str = Field(min_length=1, max_length=64, description="The device serial as enrolled.")
    seq: int = Field(ge=1, description="Strictly increasing per device; never reused.")
    ts_ms: int = Field(ge=0, description="Unix time in milliseconds (UTC) of the measurement.")
    lot_id: str | None = Field(default=None, max_length=64, description="The product lot, if any.")
    metrics: dict[str, float] = Field(
        min_length=1, max_length=32, description="name ([a-z0-9_], 1..32 bytes) to a JSON number"
    )


class SubmissionIn(BaseModel):
    """A signed reading (Reading v1, section 4)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SUBMISSION_EXAMPLE]})

    reading: ReadingIn
    scheme: str = Field(description="`p256` (64-byte r‖s, low-S) or `secp256k1` (65-byte r‖s‖v).")
    signature: str = Field(
        pattern=r"^0x[0-9a-fA-F]*$", description="0x-hex signature over the EIP-712 digest."
    )


class BatchIn(BaseModel):
    """Up to 10,000 submissions in one request."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"readings": [SUBMISSION_EXAMPLE]}]}
    )

    readings: list[SubmissionIn] = Field(max_length=10_000)


class ErrorOut(BaseModel):
    code: str = Field(description="A stable machine-readable code, e.g. `signature.high_s`.")
    message: str = Field(description="What is wrong and what to do about it.")


class ErrorEnvelope(BaseModel):
    error: ErrorOut


class ReceiptOut(BaseModel):
    """The receipt of an accepted (or identically resubmitted) reading."""

    digest: str = Field(description="0x-hex EIP-712 digest of the reading.")
    device_id: str
    seq: int
    status: str = Field(description="`accepted`: durably stored, to be anchored.")
    gap: list[int] | None = Field(
        default=None, description="[first, last] sequence numbers the device skipped before this one."
    )


class ItemOut(BaseModel):
    """One submission's outcome in a batch: a receipt or an error."""

    index: int
    receipt: ReceiptOut | None = None
    error: ErrorOut | None = None


class BatchOut(BaseModel):
    accepted: int
    rejected: int
    results: list[ItemOut]


class DeploymentOut(BaseModel):
    """What devices and auditors need to build the EIP-712 domain and find the contracts."""

    chain_id: int
    contracts: dict[str, str]
    block: int
    domain: dict[str, Any]


class ReadingStatusOut(BaseModel):
    digest: str
    reading: dict[str, Any]
    scheme: str
    signature: str
    status: str = Field(
        description="`pending` (not yet in a batch), `batched` (being anchored) or `anchored`."
    )
    batch_id: int | None = Field(default=None, description="The on-chain batch number once anchored.")
    received_ms: int


class PendingProofOut(BaseModel):
    """No proof (yet): the reading is pending or batched (``status`` set), or unknown (no ``status``)."""

    error: ErrorOut
    status: str | None = Field(default=None, description="`pending` or `batched` when the reading is stored.")
    expected_batch: int | None = Field(
        default=None,
        description="The local batch the reading is in, once closed (its chain number comes later).",
    )


class HistoryOut(BaseModel):
    device_id: str
    readings: list[ReadingStatusOut]
    next_after_seq: int | None = Field(description="Pass as `after_seq` for the next page; null at the end.")
