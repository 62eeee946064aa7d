"""A lot's recall standing as the chain says now (issue 15): shown in its timeline (``GET
/v1/lots/{lot_id}/history``) and on the portal's lot page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.lot_recall import LotRecallClient
from ledger_service.store.models import RecallNoticeRow

__all__ = ["RecallStanding", "recall_standing"]


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


@dataclass(frozen=True, kw_only=True)
class RecallStanding:
    """A lot's recall standing on chain: the notice it is recalled or flagged under (None: not recalled)."""

    notice_id: int | None
    root: str | None = None
    by: str | None = None
    at: int | None = None
    reason_hash: str | None = None
    reason: str | None = None

    @property
    def recalled(self) -> bool:
        return self.notice_id is not None

    def text(self) -> str | None:
        """What the portal's lot page says of it (None: not recalled)."""
        if self.notice_id is None:
            return None
        root = "this lot" if self.root is None else f"lot {self.root}"
        why = f": {self.reason}" if self.reason else f" (reason hash {self.reason_hash})"
        return f"Recalled under notice {self.notice_id}, issued on {root} by {self.by}{why}"

    def to_json_obj(self) -> dict[str, Any]:
        if self.notice_id is None:
            return {"recalled": False, "notice": None}
        return {
            "recalled": True,
            "notice": {
                "notice_id": self.notice_id,
                "root": self.root,
                "by": self.by,
                "at": self.at,
                "reason_hash": self.reason_hash,
                "reason": self.reason,
            },
        }


def recall_standing(engine: Engine, chain: Chain, deployment: Deployment, key: bytes) -> RecallStanding:
    """Lot ``key``'s recall notice, read from the chain (the reason's text from the store, when kept)."""
    recalls = LotRecallClient.from_deployment(chain, deployment)
    notice_id = recalls.notice_of(key)
    if notice_id == 0:
        return RecallStanding(notice_id=None)
    notice = recalls.notice(notice_id)
    with Session(engine) as s:
        row = s.get(RecallNoticeRow, notice_id)
        reason = row.reason if row is not None else None
    return RecallStanding(
        notice_id=notice_id,
        root=_hex(notice.root),
        by=notice.by,
        at=notice.at,
        reason_hash=_hex(notice.reason_hash),
        reason=reason,
    )
