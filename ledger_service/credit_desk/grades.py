"""A factory's grade history with the reason for each change (issue 15), for its consented banks.

Each of the factory's records on chain, oldest first, with its grade (from the opening this ledger
keeps, checked against the record's commitment on chain), the grade before it and why it changed: the
re-rating job's reason and the features that moved (table ``credit_ratings``) for the records it
published, "published by the oracle" for the others. The chain holds none of this in clear: only each
record's commitment. :func:`bank_grades` is gated and logged like every bank read
(:meth:`FinanceDesk.gate`, action ``grades``).
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Session, col, select

from ledger_service.credit_desk.desk import FinanceDesk, desk_of
from ledger_service.credit_desk.queries import address
from ledger_service.credit_desk.rerating import PUBLISHED
from ledger_service.store.models import CreditRatingRow

__all__ = ["bank_grades", "grade_history"]


def grade_history(desk: FinanceDesk, factory: str) -> list[dict[str, Any]]:
    """``factory``'s records, oldest first, each with its grade, the grade before and the reason (call
    only after the gate: the grades are the factory's figures)."""
    _, now_s = desk.head()
    with Session(desk.engine) as s:
        rows = s.exec(
            select(CreditRatingRow).where(
                col(CreditRatingRow.factory) == factory, col(CreditRatingRow.status) == PUBLISHED
            )
        ).all()
    rated = {r.record_commitment: r for r in rows}
    out: list[dict[str, Any]] = []
    previous: str | None = None
    for record in desk.history(factory):
        served = desk.served(record, now_s=now_s)
        row = rated.get(served["record_commitment"])
        if row is not None:
            changes = json.loads(row.changes_json)
            reason, moves, source = row.reason, changes.get("moves", []), "rerating"
        else:
            reason = (
                "first rating, published by the oracle" if previous is None else "published by the oracle"
            )
            moves, source = [], "oracle"
        grade = served["grade"]
        out.append(
            {
                "index": record.index,
                "record_commitment": served["record_commitment"],
                "published_at": record.published_at,
                "valid_until": record.valid_until,
                "valid": served.get("valid"),
                "opened": served["opened"],
                "grade": grade,
                "previous_grade": previous,
                "changed": previous is not None and grade != previous,
                "pd": served["pd"],
                "limit_minor": served["limit_minor"],
                "currency": served["currency"],
                "reason": reason,
                "moves": moves,
                "source": source,
            }
        )
        previous = grade
    return out


def bank_grades(service: Any, party: str, factory_address: str) -> dict[str, Any]:
    """A consenting factory's grade history with the reasons (gated and logged: action ``grades``)."""
    desk = desk_of(service)
    factory = address(factory_address)
    desk.gate(party, factory, "grades")
    history = grade_history(desk, factory)
    return {"factory": factory, "current": history[-1] if history else None, "grades": history}
