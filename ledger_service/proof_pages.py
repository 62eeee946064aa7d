"""Paged bulk proof reads (issue 17.3): a device's or a lot's anchored readings' proof bundles, a page
at a time in anchoring order, with a cursor to go on and one to resume from later. A page is one
query; each bundle is built as the single proof builds it (:mod:`ledger_service.proofs`), sharing its
kept bytes, and the page's JSON is their bytes joined."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import and_, func, or_
from sqlmodel import Session, col, select

from ledger_service.errors import LedgerError
from ledger_service.jsonio import dumps_exact, loads_exact
from ledger_service.lots.timeline import lot_devices, resolve_lot
from ledger_service.proofs import PROOF_COLUMNS, BundleMaker, ProofRow, proof_json
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import BatchRow, ReadingRow
from ledger_service.store.queries import anchored_readings

_READINGS = ReadingRow.__table__  # type: ignore[attr-defined]
_BATCHES = BatchRow.__table__  # type: ignore[attr-defined]


#: The most proof bundles one page of a bulk read holds.
MAX_PROOF_PAGE: Final = 1000


@dataclass(frozen=True)
class ProofPage:
    """One page of a bulk proof read: the anchored readings' bundles, serialized (each as the single
    proof serves it), in anchoring order; the cursor of the next page (None: nothing more is anchored
    now); and the cursor to resume from later, which serves what is anchored after this read (late
    readings included)."""

    bundles: list[bytes]
    next_cursor: str | None
    resume_cursor: str | None

    @property
    def proofs(self) -> list[dict[str, Any]]:
        """The bundles, decoded."""
        return [loads_exact(b) for b in self.bundles]

    def to_json(self, head: dict[str, Any]) -> bytes:
        """The page as the API serves it: ``head``'s members, then ``proofs`` (the bundles' bytes as
        they are, joined: nothing is serialized again) and the cursors."""
        cursors = dumps_exact({"next_cursor": self.next_cursor, "resume_cursor": self.resume_cursor})
        return b"".join((dumps_exact(head)[:-1], b',"proofs":[', b",".join(self.bundles), b"],", cursors[1:]))


@dataclass(frozen=True, order=True)
class PageKey:
    """A place in anchoring order: the reading's store batch, then its store id."""

    batch: int
    reading: int

    def __str__(self) -> str:
        return f"{self.batch}-{self.reading}"


_CURSOR = re.compile(r"^([0-9]{1,18})-([0-9]{1,18})$")


def parse_cursor(cursor: str | None) -> PageKey | None:
    """A bulk read's cursor (``<batch>-<reading>``, as it issued; none: from the start)."""
    if cursor is None or cursor == "":
        return None
    m = _CURSOR.match(cursor) if cursor.isascii() else None
    if m is None:
        raise InvalidProofCursor(
            f"cursor {cursor[:40]!r} was not issued by this endpoint: pass the `next_cursor` (or "
            "`resume_cursor`) of an earlier page, or none for the first page"
        )
    return PageKey(int(m.group(1)), int(m.group(2)))


class InvalidProofCursor(LedgerError):
    """A bulk read's cursor that it did not issue."""

    code = "request.bad_cursor"

    def __init__(self, message: str) -> None:
        super().__init__(message, code=self.code)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PROOF_PAGE:
        raise LedgerError(f"limit must be 1..{MAX_PROOF_PAGE}, got {limit}", code="request.invalid")


#: Beyond any store batch id (an upper bound when every batch is anchored).
_NO_BATCH: Final = 2**62


def _page(service: LedgerService, where: list[Any], after: PageKey | None, limit: int) -> ProofPage:
    """The bundles of the anchored readings matching ``where``, in anchoring order after ``after``, at
    most ``limit``: one query (the readings' proof columns with their batch's), each bundle from its
    row (kept bytes, or built once: :func:`proof_json`).

    Pages stop before the first store batch that is not anchored yet: a batch id is given when the
    batch is closed, so everything a later read may find (a batch still on its way, a late reading
    batched tomorrow) lies beyond it, and a resumed read misses nothing."""
    batch_col, id_col = _READINGS.c.batch_id, _READINGS.c.id
    first_unanchored = (
        select(func.min(_BATCHES.c.id)).where(_BATCHES.c.status != BatchStatus.ANCHORED).scalar_subquery()
    )
    conditions = [*where, batch_col.is_not(None), batch_col < func.coalesce(first_unanchored, _NO_BATCH)]
    if after is not None:
        conditions.append(
            or_(batch_col > after.batch, and_(batch_col == after.batch, id_col > after.reading))
        )
    query = (
        anchored_readings(*PROOF_COLUMNS, id_col)
        .where(*conditions)
        .order_by(batch_col, id_col)
        .limit(limit + 1)
    )
    with service.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")  # one statement: no BEGIN, no ROLLBACK
        rows = conn.execute(query).all()
    more = len(rows) > limit
    rows = rows[:limit]
    maker = BundleMaker(service)
    n = len(PROOF_COLUMNS)
    bundles = [proof_json(service, ProofRow._make(r[:n]), maker) for r in rows]
    last = PageKey(int(rows[-1].batch_id), int(rows[-1].id)) if rows else after
    return ProofPage(
        bundles,
        str(last) if more and last is not None else None,
        str(last) if last is not None else None,
    )


def device_proofs(service: LedgerService, device_id: str, *, cursor: str | None, limit: int) -> ProofPage:
    """A page of the proof bundles of a device's anchored readings, in anchoring order (the order of its
    store batches, then of arrival; by seq within a batch unless late readings filled gaps). Readings
    not anchored yet are not listed, and nothing anchored after them: a read resumed from the page's
    ``resume_cursor`` serves them once anchored, late readings included."""
    _check_limit(limit)
    after = parse_cursor(cursor)
    return _page(service, [col(ReadingRow.device_id) == device_id], after, limit)


def lot_proofs(
    service: LedgerService, lot_id: str, devices: list[str] | None, *, cursor: str | None, limit: int
) -> ProofPage:
    """A page of the proof bundles of a lot's anchored readings (those naming ``lot_id``, of
    ``devices`` when given: the devices that may speak for it), in anchoring order as
    :func:`device_proofs`."""
    _check_limit(limit)
    after = parse_cursor(cursor)
    where = [col(ReadingRow.lot_id) == lot_id]
    if devices is not None:
        where.append(col(ReadingRow.device_id).in_(devices))
    return _page(service, where, after, limit)


def lot_proof_page(
    service: LedgerService, lot_id: str, *, issuer: str | None, cursor: str | None, limit: int
) -> ProofPage:
    """A page of the proof bundles of a lot's anchored readings, chosen as the lot's timeline chooses
    them (:mod:`ledger_service.lots.timeline`): for a lot on chain, of the devices that may speak for
    it; for a lot id no lot on chain has, every reading naming it (of ``issuer``'s devices when
    ``issuer`` is given)."""
    _check_limit(limit)
    key = resolve_lot(service.chain, service.deployment, lot_id, issuer)
    devices: list[str] | None = None
    if key is not None:
        devices = lot_devices(service, lot_id, key)
    elif issuer is not None:
        with Session(service.engine) as s:
            named = s.exec(
                select(col(ReadingRow.device_id)).where(col(ReadingRow.lot_id) == lot_id).distinct()
            )
            ids = [r[0] if isinstance(r, tuple) else r for r in named]
        devices = [
            d for d in ids if (found := service.registry.lookup(d)) is not None and _same(found.owner, issuer)
        ]
    return lot_proofs(service, lot_id, devices, cursor=cursor, limit=limit)


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()
