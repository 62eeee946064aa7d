"""The recall notices a party is concerned by (issue 15): those its lots, held now or before, are under.

A holder learns of a recall from the store's mirror (:mod:`ledger_service.lots.mirror`): every lot the
party produced or accepted into its custody (``lot_holders``) that is recalled or flagged downstream of a
recall (``lot_mirror.recall_notice``), with the notice (who issued it, on which lot, when, the reason's hash
and, when the service keeps it, its text). The recall worker flags a notice's downstream within one
``SUPET_RECALL_INTERVAL_SECONDS``, so a lot appears here once it is flagged on chain and mirrored.

Served to the party itself only (``GET /v1/parties/{address}/recalls``, ``Data.PARTY_RECALLS`` in the
access policy; the portal's ``/portal/recalls``): it names the party's lots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Engine, text

from ledger_service.errors import LedgerError

__all__ = ["MAX_LIMIT", "AffectedLot", "InvalidRecallCursor", "PartyRecalls", "party_recalls"]

#: The most affected lots one page holds.
MAX_LIMIT: Final = 500


class InvalidRecallCursor(LedgerError):
    """A cursor that no page of this list gave out."""

    code = "recall.bad_cursor"


@dataclass(frozen=True, kw_only=True, slots=True)
class AffectedLot:
    """A lot of the party under recall notice ``notice_id``: ``held_now`` when the party holds it today;
    ``root`` when the notice was issued on this very lot (else it was flagged downstream of it)."""

    notice_id: int
    lot_key: str
    lot_id: str
    holder: str
    held_now: bool
    root: bool

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "notice_id": self.notice_id,
            "lot_key": self.lot_key,
            "lot_id": self.lot_id,
            "holder": self.holder,
            "held_now": self.held_now,
            "recalled_here": self.root,
        }


@dataclass(frozen=True, kw_only=True)
class PartyRecalls:
    """One page of a party's affected lots, newest notice first, and the notices they are under."""

    party: str
    lots: list[AffectedLot]
    notices: dict[int, dict[str, Any]]
    next_cursor: str | None

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "lots": [lot.to_json_obj() for lot in self.lots],
            "notices": [self.notices[n] for n in sorted(self.notices, reverse=True)],
            "next_cursor": self.next_cursor,
        }


def _parse_cursor(cursor: str) -> tuple[int, str]:
    notice, _, key = cursor.partition(":")
    if not notice.isdigit() or len(key) != 66 or not key.startswith("0x"):
        raise InvalidRecallCursor(
            f"cursor {cursor[:80]!r} is not one this list gave out: start again without one",
        )
    return int(notice), key.lower()


_LOTS: Final = (
    "SELECT l.recall_notice, l.key, l.lot_id, l.custodian, n.root_key "
    "FROM lot_holders h JOIN lot_mirror l ON l.key = h.lot_key "
    "JOIN recall_notices n ON n.notice_id = l.recall_notice "
    "WHERE h.party = :party {after} ORDER BY l.recall_notice DESC, l.key LIMIT :n"
)
_AFTER: Final = "AND (l.recall_notice < :an OR (l.recall_notice = :an AND l.key > :ak))"
_NOTICE: Final = (
    "SELECT n.notice_id, n.root_key, r.lot_id, n.by, n.at, n.reason_hash, n.reason, n.flagged, "
    "n.block_number FROM recall_notices n LEFT JOIN lot_mirror r ON r.key = n.root_key "
    "WHERE n.notice_id = :n"
)


def party_recalls(engine: Engine, party: str, *, limit: int = 100, cursor: str | None = None) -> PartyRecalls:
    """The lots ``party`` (checksummed) holds or held that are under a recall notice, ``limit`` a page
    (newest notice first, then by lot key), from the store; ``cursor``: the previous page's
    ``next_cursor``. :class:`InvalidRecallCursor` for a cursor this list did not give out."""
    if not 1 <= limit <= MAX_LIMIT:
        raise LedgerError(f"limit must be 1..{MAX_LIMIT}, got {limit}", code="request.invalid")
    params: dict[str, Any] = {"party": party, "n": limit + 1}
    after = ""
    if cursor:
        params["an"], params["ak"] = _parse_cursor(cursor)
        after = _AFTER
    with engine.connect() as conn:
        rows = conn.execute(text(_LOTS.format(after=after)), params).all()
        more = len(rows) > limit
        rows = rows[:limit]
        lots = [
            AffectedLot(
                notice_id=int(r[0]),
                lot_key=r[1],
                lot_id=r[2],
                holder=r[3],
                held_now=r[3] == party,
                root=r[1] == r[4],
            )
            for r in rows
        ]
        notices: dict[int, dict[str, Any]] = {}
        for notice_id in sorted({lot.notice_id for lot in lots}):
            n = conn.execute(text(_NOTICE), {"n": notice_id}).one()
            notices[notice_id] = {
                "notice_id": int(n[0]),
                "root": n[1],
                "root_lot_id": n[2],
                "by": n[3],
                "at": int(n[4]),
                "reason_hash": n[5],
                "reason": n[6],
                "flagged": int(n[7]),
                "block_number": int(n[8]),
            }
    last = lots[-1] if lots else None
    next_cursor = f"{last.notice_id}:{last.lot_key}" if more and last is not None else None
    return PartyRecalls(party=party, lots=lots, notices=notices, next_cursor=next_cursor)
