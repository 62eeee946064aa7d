"""What lot holders chose to share, as the store keeps it: auditors named for a lot, lots disclosed.

A lot is keyed by its on-chain key as 0x-hex (``lot_key``). These functions only read and write
rows; who may name an auditor or disclose a lot is :mod:`ledger_service.access.lot_sharing`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from ledger_service.errors import StoreError
from ledger_service.store.models import LotAuditorRow, LotDisclosureRow

__all__ = [
    "LotGrants",
    "add_auditor",
    "add_disclosure",
    "disclosed_page",
    "grants_of",
    "named_by",
    "withdraw_auditor",
]


@dataclass(frozen=True, slots=True)
class LotGrants:
    """The auditors currently named for a lot, and whether it was disclosed."""

    auditors: frozenset[str]
    disclosed: bool


def _now_ms() -> int:
    return int(time.time() * 1000)


def grants_of(engine: Engine, lot_keys: list[str]) -> dict[str, LotGrants]:
    """The grants of each lot in ``lot_keys`` (0x-hex keys), in one query per table."""
    if not lot_keys:
        return {}
    try:
        with Session(engine) as s:
            auditors = s.exec(
                select(LotAuditorRow.lot_key, LotAuditorRow.auditor).where(
                    col(LotAuditorRow.lot_key).in_(lot_keys), col(LotAuditorRow.withdrawn_ms).is_(None)
                )
            ).all()
            disclosed = set(
                s.exec(
                    select(LotDisclosureRow.lot_key).where(col(LotDisclosureRow.lot_key).in_(lot_keys))
                ).all()
            )
    except SQLAlchemyError as e:
        raise StoreError(f"cannot read the lot's grants ({type(e).__name__}); retry later") from e
    named: dict[str, set[str]] = {}
    for key, auditor in auditors:
        named.setdefault(key, set()).add(auditor)
    return {k: LotGrants(frozenset(named.get(k, ())), k in disclosed) for k in lot_keys}


def add_auditor(engine: Engine, *, lot_key: str, lot_id: str, auditor: str, named_by: str) -> LotAuditorRow:
    """Name ``auditor`` for the lot (a no-op answering the standing row when it is named already)."""
    with Session(engine) as s:
        standing = s.exec(
            select(LotAuditorRow).where(
                LotAuditorRow.lot_key == lot_key,
                LotAuditorRow.auditor == auditor,
                col(LotAuditorRow.withdrawn_ms).is_(None),
            )
        ).first()
        if standing is not None:
            return standing
        row = LotAuditorRow(
            lot_key=lot_key, lot_id=lot_id, auditor=auditor, named_by=named_by, named_ms=_now_ms()
        )
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def named_by(engine: Engine, *, lot_key: str, auditor: str) -> set[str]:
    """The parties whose naming of ``auditor`` for the lot stands."""
    with Session(engine) as s:
        return set(
            s.exec(
                select(LotAuditorRow.named_by).where(
                    LotAuditorRow.lot_key == lot_key,
                    LotAuditorRow.auditor == auditor,
                    col(LotAuditorRow.withdrawn_ms).is_(None),
                )
            ).all()
        )


def withdraw_auditor(engine: Engine, *, lot_key: str, auditor: str) -> int:
    """Withdraw the standing naming of ``auditor`` for the lot; how many rows it ended (0 or 1)."""
    with Session(engine) as s:
        result: Any = s.exec(
            update(LotAuditorRow)
            .where(
                col(LotAuditorRow.lot_key) == lot_key,
                col(LotAuditorRow.auditor) == auditor,
                col(LotAuditorRow.withdrawn_ms).is_(None),
            )
            .values(withdrawn_ms=_now_ms())
        )
        s.commit()
        return int(result.rowcount or 0)


def add_disclosure(
    engine: Engine, *, lot_key: str, lot_id: str, issuer: str, disclosed_by: str
) -> LotDisclosureRow:
    """Record that the lot's evidence is disclosed (the first disclosure stands; later ones answer it)."""
    with Session(engine) as s:
        found = s.exec(select(LotDisclosureRow).where(LotDisclosureRow.lot_key == lot_key)).first()
        if found is not None:
            return found
        row = LotDisclosureRow(
            lot_key=lot_key, lot_id=lot_id, issuer=issuer, disclosed_by=disclosed_by, disclosed_ms=_now_ms()
        )
        s.add(row)
        try:
            s.commit()
        except IntegrityError:  # disclosed at the same moment by another request: that one stands
            s.rollback()
            return s.exec(select(LotDisclosureRow).where(LotDisclosureRow.lot_key == lot_key)).one()
        s.refresh(row)
        return row


def disclosed_page(engine: Engine, *, after_id: int, limit: int) -> tuple[list[LotDisclosureRow], int | None]:
    """Disclosed lots in the order they were disclosed, after ``after_id``; and the next cursor."""
    with Session(engine) as s:
        rows = list(
            s.exec(
                select(LotDisclosureRow)
                .where(col(LotDisclosureRow.id) > after_id)
                .order_by(col(LotDisclosureRow.id))
                .limit(limit + 1)
            ).all()
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (int(rows[-1].id or 0) if more and rows else None)
