"""A line's operating-window sets: made from a yield result, versioned, committed, read back (issue 16.3).

:func:`publish_window_set` takes a published yield result (by its commitment) and makes the line's next
window set (:class:`analytics.yield_windows.WindowSet`): version 1 for the line's first, then one more,
each naming the commitment of the set it supersedes. The set is committed like every analytics result
(:func:`analytics.commitment.commit`): model ``supet.yield-windows``, its parameters (factory, line,
version, the yield result and the superseded set), and one input, the yield result's commitment (which
is itself committed to the anchored readings it was computed from). It is stored twice in one
transaction: in ``analytics_results`` (kind ``windows``, subject the line, so ``supet analytics list``
shows it) and in ``yield_window_sets`` with its version (unique per factory and line: of two publishers
of the same version one fails with :class:`WindowSetConflict` and nothing of it is stored). The same
yield result published again is not a new version: the current set is answered.

:func:`recompute_window_set` re-derives a stored set: the yield result from the chain and the store
(:func:`ledger_service.analytics_store.publish.recompute`), the set from that result, and every part of
the set's commitment, naming what differs.

:func:`current_window_set` and :func:`window_history` read them back; the live check
(:mod:`ledger_service.analytics_store.window_check`) applies the newest version of each line.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Final

from eth_utils import keccak
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from analytics.commitment import (
    Commitment,
    CommitmentMismatch,
    ModelId,
    canonical_json,
    commit,
    verify_commitment,
)
from analytics.yield_windows import (
    WINDOWS_MODEL,
    WINDOWS_MODEL_VERSION,
    WindowSet,
    window_set_from_result,
)
from ledger_service.analytics_store.publish import Published, load_published, recompute
from ledger_service.analytics_store.source import LedgerSource, SourceError
from ledger_service.errors import NotFound
from ledger_service.store.models import (
    AnalyticsResultRow,
    ReadingRow,
    WindowTallyRow,
    YieldWindowSetRow,
)

__all__ = [
    "WINDOWS_KIND",
    "WINDOWS_MODEL_ID",
    "NoWindowSet",
    "StoredWindowSet",
    "WindowSetConflict",
    "current_window_set",
    "publish_window_set",
    "recompute_window_set",
    "stored_window_set",
    "window_history",
    "window_params",
]

#: The kind of a window set in ``analytics_results``.
WINDOWS_KIND: Final = "windows"
WINDOWS_MODEL_ID: Final = ModelId(name=WINDOWS_MODEL, version=WINDOWS_MODEL_VERSION)


class NoWindowSet(NotFound):
    """The line has no window set published (404)."""

    code = "windows.not_found"


class WindowSetConflict(SourceError):
    """Another publisher took this version of the line's window set first; publish again."""

    code = "windows.conflict"


@dataclass(frozen=True, slots=True)
class StoredWindowSet:
    """A stored window set: its row id, commitment, the reading id it applies after, when published."""

    id: int
    window_set: WindowSet
    commitment: str
    from_reading_id: int
    created_ms: int

    @property
    def version(self) -> int:
        return self.window_set.version


def window_params(ws: WindowSet) -> dict[str, Any]:
    """The parameters a window set is committed with."""
    return {
        "kind": WINDOWS_KIND,
        "factory": ws.factory,
        "line_id": ws.line_id,
        "version": ws.version,
        "yield_commitment": ws.yield_commitment,
        "supersedes": ws.supersedes,
    }


def _commit(ws: WindowSet) -> Commitment:
    return commit(ws.to_json_obj(), [ws.yield_commitment], WINDOWS_MODEL_ID, window_params(ws))


def stored_window_set(row: YieldWindowSetRow) -> StoredWindowSet:
    """A ``yield_window_sets`` row as a :class:`StoredWindowSet`."""
    assert row.id is not None
    return StoredWindowSet(
        id=row.id,
        window_set=WindowSet.from_json_obj(json.loads(row.set_json)),
        commitment=row.commitment,
        from_reading_id=row.from_reading_id,
        created_ms=row.created_ms,
    )


def _latest_row(s: Session, factory: str, line_id: str) -> YieldWindowSetRow | None:
    q = (
        select(YieldWindowSetRow)
        .where(col(YieldWindowSetRow.factory) == factory, col(YieldWindowSetRow.line_id) == line_id)
        .order_by(col(YieldWindowSetRow.version).desc())
        .limit(1)
    )
    return s.exec(q).first()


def _yield_result(engine: Engine, yield_commitment: str) -> Published:
    pub = load_published(engine, yield_commitment)
    if pub.kind != "yield":
        raise SourceError(
            f"{pub.commitment.commitment} is a {pub.kind} result, not a yield model: windows come from one",
            code="windows.not_a_yield_result",
        )
    return pub


def publish_window_set(
    engine: Engine, yield_commitment: str, *, now_ms: int | None = None
) -> tuple[StoredWindowSet, bool]:
    """Make the line's next window set from a published yield result; (the set, whether it is new).

    @raise SourceError        no published result has that commitment, or it is not a yield result
    @raise WindowSetError     the result recommends no usable window
    @raise WindowSetConflict  another publisher stored this version first (nothing stored; publish again)
    """
    pub = _yield_result(engine, yield_commitment)
    params = pub.params
    factory, line_id = str(params["factory"]), str(params["line_id"])
    key = pub.commitment.commitment
    with Session(engine) as s:
        prev = _latest_row(s, factory, line_id)
        if prev is not None and prev.yield_commitment == key:
            return stored_window_set(prev), False
        ws = window_set_from_result(
            pub.result,
            factory=factory,
            line_id=line_id,
            devices=tuple(params["stations"]),
            version=1 if prev is None else prev.version + 1,
            supersedes=None if prev is None else prev.commitment,
            yield_commitment=key,
        )
        c = _commit(ws)
        created = int(time.time() * 1000) if now_ms is None else now_ms
        result_json = canonical_json(ws.to_json_obj()).decode()
        through = s.exec(select(func.max(col(ReadingRow.id)))).one()
        row = YieldWindowSetRow(
            factory=factory,
            line_id=line_id,
            version=ws.version,
            commitment=c.commitment,
            yield_commitment=key,
            set_json=result_json,
            from_reading_id=int(through or 0),
            created_ms=created,
        )
        s.add(row)
        s.merge(
            AnalyticsResultRow(
                commitment=c.commitment,
                kind=WINDOWS_KIND,
                subject=line_id,
                params_json=canonical_json(window_params(ws)).decode(),
                commitment_json=canonical_json(c.to_json_obj()).decode(),
                result_json=result_json,
                created_ms=created,
            )
        )
        try:
            s.flush()
            assert row.id is not None
            for w in ws.windows:
                s.add(WindowTallyRow(set_id=row.id, parameter=w.name, checked=0, outside=0))
            s.commit()
        except IntegrityError as e:
            s.rollback()
            raise WindowSetConflict(
                f"version {ws.version} of line {line_id}'s window set was published by another writer "
                "meanwhile: publish again",
            ) from e
        s.refresh(row)
        return stored_window_set(row), True


def current_window_set(engine: Engine, factory: str, line_id: str) -> StoredWindowSet:
    """The newest window set of the line. @raise NoWindowSet when it has none."""
    with Session(engine) as s:
        row = _latest_row(s, factory, line_id)
    if row is None:
        raise NoWindowSet(
            f"line {line_id!r} of {factory} has no operating windows published: publish its yield model, "
            "then its window set (supet analytics windows)"
        )
    return stored_window_set(row)


def window_history(engine: Engine, factory: str, line_id: str) -> list[StoredWindowSet]:
    """Every window set of the line, newest first (empty when none)."""
    q = (
        select(YieldWindowSetRow)
        .where(col(YieldWindowSetRow.factory) == factory, col(YieldWindowSetRow.line_id) == line_id)
        .order_by(col(YieldWindowSetRow.version).desc())
    )
    with Session(engine) as s:
        return [stored_window_set(r) for r in s.exec(q).all()]


def recompute_window_set(engine: Engine, source: LedgerSource, commitment: str) -> Published:
    """Re-derive a stored window set from its yield result, recomputed from the chain and the store.

    @raise InputMismatch, CommitmentMismatch  as :func:`~ledger_service.analytics_store.publish.recompute`
           for the yield result; :class:`CommitmentMismatch` naming the window set's differing parts
    """

    pub = load_published(engine, commitment)
    if pub.kind != WINDOWS_KIND:
        raise SourceError(f"{commitment} is a {pub.kind} result, not a window set", code="windows.kind")
    if "0x" + keccak(canonical_json(pub.result)).hex() != pub.commitment.result_hash:
        # the copy served to readers was edited: said before the (long) recomputation of the yield result
        raise CommitmentMismatch(["stored_result"])
    stored = WindowSet.from_json_obj(pub.result)
    yield_pub = recompute(engine, source, stored.yield_commitment)
    again = window_set_from_result(
        yield_pub.result,
        factory=str(yield_pub.params["factory"]),
        line_id=str(yield_pub.params["line_id"]),
        devices=tuple(yield_pub.params["stations"]),
        version=int(pub.params["version"]),
        supersedes=pub.params["supersedes"],
        yield_commitment=yield_pub.commitment.commitment,
    )
    verify_commitment(
        pub.commitment, again.to_json_obj(), [again.yield_commitment], WINDOWS_MODEL_ID, pub.params
    )
    with Session(engine) as s:
        row = s.exec(
            select(YieldWindowSetRow).where(col(YieldWindowSetRow.commitment) == pub.commitment.commitment)
        ).first()
    if row is not None and json.loads(row.set_json) != pub.result:
        raise CommitmentMismatch(["stored_window_set"])
    return pub
