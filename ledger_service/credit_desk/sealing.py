"""Sealed credit records on the service's side (issue 14): openings kept off chain, envelopes made.

The chain holds a record's commitment only. The service keeps each record it publishes with its salt
(a :class:`~contracts.credit_record.CreditOpening`, table ``credit_openings``) and serves it, opened, to
a bank with a standing consent, so the bank checks it against the commitment. It also seals the
opening for each standing consent whose bank is admitted and registered an envelope key
(:func:`seal_for_consented`: the consents' openings name the banks, the chain knows only their ids),
and the oracle delivers those envelopes on chain with the record, addressed by consent id.

:func:`record_json` is a record as the API serves it: the chain's clear fields always, the figures
only from an opening that opens the on-chain commitment.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from eth_utils import to_checksum_address
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from analytics.commitment import Commitment
from contracts.credit import CreditRecord, CreditRegistryClient, Envelope, model_version
from contracts.credit_bank import seal_for_bank
from contracts.credit_consent import ConsentOpening
from contracts.credit_envelope import EnvelopeError
from contracts.credit_record import (
    PPM,
    CreditOpening,
    CreditRecordMismatch,
    InvalidOpening,
    check_opening,
    new_salt,
)
from finance.assessment import CreditAssessment
from ledger_service.store.models import CreditOpeningRow

__all__ = [
    "MINOR_UNITS",
    "load_opening",
    "opening_of",
    "record_json",
    "seal_for_consented",
    "served_opening",
    "set_index",
    "store_opening",
]

#: On-chain limits are in minor units: the assessment's limit (whole currency units) times this.
MINOR_UNITS: Final = 100


def opening_of(
    assessment: CreditAssessment,
    commitment: Commitment,
    *,
    factory: str,
    oracle: str,
    valid_until: int,
    salt: bytes | None = None,
) -> CreditOpening:
    """The record of ``assessment`` with a salt (fresh unless given): PD in ppm (at least 1), limit in
    minor units, the reasons' words followed by the caveats ("Low confidence: thin evidence: ...")."""
    return CreditOpening(
        factory=to_checksum_address(factory),
        oracle=to_checksum_address(oracle),
        grade=assessment.grade_rank,
        pd_ppm=max(1, min(PPM, round(assessment.pd * PPM))),
        limit=int(assessment.limit) * MINOR_UNITS,
        currency=assessment.currency,
        # the reasons, then what the evidence could not show (thin or unknown: scored as average)
        reasons=tuple(r.text for r in assessment.reasons)
        + tuple(f"Low confidence: {c}" for c in assessment.caveats),
        valid_until=valid_until,
        model_version=model_version(assessment.model_version[:32]),
        analytics_commitment=bytes.fromhex(commitment.commitment.removeprefix("0x")),
        salt=new_salt() if salt is None else salt,
    )


def seal_for_consented(
    credit: CreditRegistryClient,
    opening: CreditOpening,
    consents: Sequence[ConsentOpening],
    *,
    admitted: Callable[[str], bool],
) -> tuple[list[Envelope], list[str], dict[str, str]]:
    """Envelopes of ``opening`` under each of ``consents`` (the factory's standing consents, opened)
    whose bank is ``admitted`` for ``supet.credit.query`` and registered a key: the check the contract
    cannot make with the bank hidden. The envelopes, the banks sealed for (in order), and the banks
    skipped, with why."""
    envelopes: list[Envelope] = []
    sealed_for: list[str] = []
    skipped: dict[str, str] = {}
    for consent in consents:
        if consent.bank in sealed_for:
            continue  # one envelope per bank and record, whatever the number of its consent ids
        if not admitted(consent.bank):
            skipped[consent.bank] = f"{consent.bank} is not admitted for supet.credit.query"
            continue
        try:
            envelopes.append(seal_for_bank(credit, opening, consent))
        except EnvelopeError as e:
            skipped[consent.bank] = e.message
            continue
        sealed_for.append(consent.bank)
    return envelopes, sealed_for, skipped


def store_opening(engine: Engine, opening: CreditOpening) -> None:
    """Keep ``opening`` (with its salt) by its record commitment."""
    row = CreditOpeningRow(
        record_commitment="0x" + opening.commitment().hex(),
        factory=to_checksum_address(opening.factory),
        oracle=to_checksum_address(opening.oracle or opening.factory),
        record_index=opening.index,
        analytics_commitment="0x" + opening.analytics_commitment.hex(),
        opening_json=opening.to_bytes().decode(),
        created_ms=int(time.time() * 1000),
    )
    with Session(engine) as s:
        s.merge(row)
        s.commit()


def set_index(engine: Engine, record_commitment: bytes, index: int) -> None:
    """Note the on-chain index of a stored opening once its record is mined."""
    with Session(engine) as s:
        row = s.get(CreditOpeningRow, "0x" + record_commitment.hex())
        if row is not None and row.record_index != index:
            row.record_index = index
            s.add(row)
            s.commit()


def load_opening(engine: Engine, record_commitment: bytes) -> CreditOpening | None:
    """The stored opening of the record with this commitment, or None."""
    with Session(engine) as s:
        row = s.exec(
            select(CreditOpeningRow).where(
                col(CreditOpeningRow.record_commitment) == "0x" + record_commitment.hex()
            )
        ).first()
    if row is None:
        return None
    opening = CreditOpening.from_json_obj(json.loads(row.opening_json))
    return opening if row.record_index is None else opening.located(oracle=row.oracle, index=row.record_index)


def served_opening(engine: Engine, record: CreditRecord) -> tuple[CreditOpening | None, str | None]:
    """The stored opening of ``record`` if it opens the on-chain commitment; else None and why."""
    try:
        opening = load_opening(engine, record.record_commitment)
    except InvalidOpening as e:
        return None, f"{e.code}: {e.message}"
    if opening is None:
        return None, "this ledger holds no opening of the record (published elsewhere)"
    opening = opening.located(oracle=record.oracle, index=record.index)
    try:
        check_opening(opening, record)
    except CreditRecordMismatch as e:  # the store was altered: serve nothing rather than a false record
        return None, f"{e.code}: {e.message}"
    return opening, None


def record_json(
    r: CreditRecord, opening: CreditOpening | None = None, *, now_s: int | None = None, why: str | None = None
) -> dict[str, Any]:
    """A credit record as the API serves it: the chain's fields; the figures (grade ``S1``..``S10``,
    PD, limit in minor units, reasons) and the opening with its salt only when ``opening`` is given."""
    out: dict[str, Any] = {
        "index": r.index,
        "record_commitment": "0x" + r.record_commitment.hex(),
        "valid_until": r.valid_until,
        "published_at": r.published_at,
        "oracle": r.oracle,
        "model_version": r.model_version_text,
        "commitment": "0x" + r.analytics_commitment.hex(),
        "analytics_commitment": "0x" + r.analytics_commitment.hex(),
        "opened": opening is not None,
        "grade": None,
        "grade_rank": None,
        "pd_ppm": None,
        "pd": None,
        "limit_minor": None,
        "currency": None,
        "reasons": None,
        "opening": None,
    }
    if opening is not None:
        out |= {
            "grade": opening.grade_name,
            "grade_rank": opening.grade,
            "pd_ppm": opening.pd_ppm,
            "pd": opening.pd,
            "limit_minor": opening.limit,
            "currency": opening.currency,
            "reasons": list(opening.reasons),
            "opening": opening.to_json_obj(),
        }
    elif why is not None:
        out["not_opened"] = why
    if now_s is not None:
        out["valid"] = now_s < r.valid_until
    return out
