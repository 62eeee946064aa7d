"""The live check of a line's operating windows (issue 16.3): stored readings of the key parameters
counted inside and outside the line's current window set, incrementally.

One pass (:meth:`WindowChecker.run_once`) reads the readings stored since the last pass (by reading id,
after the cursor ``windows.checked_through`` in ``meta``), only those of the devices some window set
names, at most ``batch`` at a time. A reading is checked against the newest set of each line naming its
device that was published before the reading was stored (``from_reading_id`` below the reading's id):
for each windowed parameter it carries, ``checked`` goes up by one and, when the value is outside the
window, ``outside`` too, the last breach is noted and the reading is kept as a breach sample (the newest
``samples`` per set and parameter; each is a stored reading whose digest has a proof once its batch is
anchored: ``GET /v1/readings/{digest}/proof``). Nothing is re-read: a pass costs the new readings only.

The tallies, the samples and the cursor move in one transaction, the cursor by compare-and-set: of two
passes over the same readings (two instances on one database) one commits and the other changes
nothing, so each reading is counted once. A pass takes readings received at least ``settle_ms`` ago:
reading ids come from the database's sequence, and with several instances writing, a lower id can
commit a moment after a higher one; the settle time lets it land before the cursor passes it (a group
commit slower than that would be missed by the check; it is not by anything else).

:func:`breach_report` is what the API, the portal and the demo read: the line's current set, its
versions, and per parameter the readings checked, outside, the share, the last breach and the samples.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import and_, bindparam, case, delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from ledger_service.analytics_store.windows import (
    StoredWindowSet,
    current_window_set,
    stored_window_set,
    window_history,
)
from ledger_service.periodic import PeriodicWorker
from ledger_service.store.models import (
    MetaRow,
    ReadingRow,
    WindowBreachRow,
    WindowTallyRow,
    YieldWindowSetRow,
)

__all__ = [
    "CURSOR_KEY",
    "CheckPass",
    "Increment",
    "WindowCheckWorker",
    "WindowChecker",
    "breach_report",
    "factory_breach_reports",
]

log = logging.getLogger(__name__)

#: The ``meta`` key of the last reading id the check has passed.
CURSOR_KEY: Final = "windows.checked_through"

_TALLIES: Any = WindowTallyRow.__table__  # type: ignore[attr-defined]
_BREACHES: Any = WindowBreachRow.__table__  # type: ignore[attr-defined]
_META: Any = MetaRow.__table__  # type: ignore[attr-defined]
_T, _B, _M = _TALLIES.c, _BREACHES.c, _META.c


@dataclass(frozen=True, slots=True)
class Increment:
    """What one pass added for one parameter of one line's window set."""

    factory: str
    line_id: str
    version: int
    parameter: str
    checked: int
    outside: int


@dataclass(frozen=True, slots=True)
class CheckPass:
    """One pass: readings read, parameter values checked and found outside, the cursor after it."""

    readings: int
    checked: int
    outside: int
    through: int
    increments: tuple[Increment, ...] = ()
    #: False when another pass moved the cursor first (this one stored nothing).
    committed: bool = True


@dataclass
class _Tally:
    checked: int = 0
    outside: int = 0
    last_ms: int | None = None
    last_digest: bytes | None = None
    samples: list[dict[str, Any]] = field(default_factory=list)


def _sets_by_device(sets: Iterable[StoredWindowSet]) -> dict[str, list[list[StoredWindowSet]]]:
    """device -> the version lists (oldest first) of the lines naming it."""
    lines: dict[tuple[str, str], list[StoredWindowSet]] = defaultdict(list)
    for s in sets:
        lines[(s.window_set.factory, s.window_set.line_id)].append(s)
    out: dict[str, list[list[StoredWindowSet]]] = defaultdict(list)
    for versions in lines.values():
        versions.sort(key=lambda s: s.version)
        for device in {d for s in versions for d in s.window_set.devices}:
            out[device].append(versions)
    return out


def _applicable(versions: list[StoredWindowSet], reading_id: int, device: str) -> StoredWindowSet | None:
    """The newest version published before the reading was stored, if it names the device."""
    for s in reversed(versions):
        if s.from_reading_id < reading_id:
            return s if device in s.window_set.devices else None
    return None


def _load_sets(engine: Engine) -> list[StoredWindowSet]:
    with Session(engine) as s:
        return [stored_window_set(r) for r in s.exec(orm_select(YieldWindowSetRow)).all()]


class WindowChecker:
    """The incremental check (module docstring). ``on_checked`` is told each committed pass's increments
    (the service's metrics)."""

    def __init__(
        self,
        engine: Engine,
        *,
        settle_ms: int = 5_000,
        batch: int = 5_000,
        samples: int = 20,
        clock: Callable[[], float] = time.time,
        on_checked: Callable[[tuple[Increment, ...]], None] | None = None,
    ) -> None:
        if batch < 1 or samples < 1 or settle_ms < 0:
            raise ValueError("batch and samples must be positive, settle_ms not negative")
        self.engine = engine
        self.settle_ms = settle_ms
        self.batch = batch
        self.samples = samples
        self.clock = clock
        self.on_checked = on_checked

    def run_once(self, *, max_batches: int = 100) -> CheckPass:
        """Check every reading stored (and settled) since the last pass, ``batch`` at a time; the sum."""
        total = CheckPass(readings=0, checked=0, outside=0, through=self._cursor() or 0)
        for _ in range(max_batches):
            step = self._pass()
            if step is None:
                break
            total = CheckPass(
                readings=total.readings + step.readings,
                checked=total.checked + step.checked,
                outside=total.outside + step.outside,
                through=step.through,
                increments=total.increments + step.increments,
                committed=total.committed and step.committed,
            )
            if not step.committed or step.readings < self.batch:
                break
        return total

    # ------------------------------------------------------------------ one batch

    def _cursor(self) -> int | None:
        with self.engine.connect() as c:
            value = c.execute(select(_M.value).where(_M.key == CURSOR_KEY)).scalar_one_or_none()
        return None if value is None else int(value)

    def _settled_max_id(self) -> int | None:
        cutoff = int(self.clock() * 1000) - self.settle_ms
        with self.engine.connect() as c:
            return c.execute(
                select(func.max(col(ReadingRow.id))).where(col(ReadingRow.received_ms) <= cutoff)
            ).scalar_one_or_none()

    def _pass(self) -> CheckPass | None:
        """One batch; None when there is nothing new."""
        sets = _load_sets(self.engine)
        if not sets:
            return None  # nothing to check against (and nothing written: the cursor starts with a set)
        old = self._cursor()
        hi = self._settled_max_id()
        start = old if old is not None else min(s.from_reading_id for s in sets)
        if hi is None or hi <= start:
            if old is None and hi is not None:
                self._advance(None, start, {})  # the cursor's first position: nothing to check below it
            return None
        by_device = _sets_by_device(sets)
        rows: list[Any] = []
        if by_device:
            with self.engine.connect() as c:
                rows = list(
                    c.execute(
                        select(
                            col(ReadingRow.id),
                            col(ReadingRow.digest),
                            col(ReadingRow.device_id),
                            col(ReadingRow.ts_ms),
                            col(ReadingRow.reading_json),
                        )
                        .where(
                            col(ReadingRow.id) > start,
                            col(ReadingRow.id) <= hi,
                            col(ReadingRow.device_id).in_(list(by_device)),
                        )
                        .order_by(col(ReadingRow.id))
                        .limit(self.batch)
                    )
                )
        if len(rows) == self.batch:
            hi = int(rows[-1].id)
        tallies, owners = self._tally(rows, by_device)
        committed = self._advance(old, hi, tallies)
        increments = tuple(
            Increment(
                owners[set_id].window_set.factory,
                owners[set_id].window_set.line_id,
                owners[set_id].version,
                name,
                t.checked,
                t.outside,
            )
            for (set_id, name), t in sorted(tallies.items())
        )
        done = CheckPass(
            readings=len(rows),
            checked=sum(t.checked for t in tallies.values()),
            outside=sum(t.outside for t in tallies.values()),
            through=hi,
            increments=increments if committed else (),
            committed=committed,
        )
        if committed and increments and self.on_checked is not None:
            self.on_checked(increments)
        return done

    def _tally(
        self, rows: list[Any], by_device: dict[str, list[list[StoredWindowSet]]]
    ) -> tuple[dict[tuple[int, str], _Tally], dict[int, StoredWindowSet]]:
        tallies: dict[tuple[int, str], _Tally] = defaultdict(_Tally)
        owners: dict[int, StoredWindowSet] = {}
        for row in rows:
            metrics = json.loads(row.reading_json).get("metrics", {})
            for versions in by_device.get(row.device_id, ()):
                ws = _applicable(versions, int(row.id), row.device_id)
                if ws is None:
                    continue
                for check in ws.window_set.check(metrics):
                    owners[ws.id] = ws
                    t = tallies[(ws.id, check.name)]
                    t.checked += 1
                    if check.outside:
                        t.outside += 1
                        ts = int(row.ts_ms)
                        if t.last_ms is None or ts >= t.last_ms:
                            t.last_ms, t.last_digest = ts, bytes(row.digest)
                        t.samples.append(
                            {
                                "set_id": ws.id,
                                "parameter": check.name,
                                "reading_id": int(row.id),
                                "digest": bytes(row.digest),
                                "device_id": row.device_id,
                                "ts_ms": ts,
                                "value": check.value,
                            }
                        )
                        del t.samples[: -self.samples]
        return tallies, owners

    def _advance(
        self,
        old: int | None,
        hi: int,
        tallies: dict[tuple[int, str], _Tally],
    ) -> bool:
        """Move the cursor from ``old`` to ``hi`` and add the tallies, in one transaction; False (nothing
        stored) when the cursor is no longer at ``old``."""
        try:
            with self.engine.begin() as c:
                if old is None:
                    c.execute(insert(_META).values(key=CURSOR_KEY, value=str(hi)))
                else:
                    moved = c.execute(
                        update(_META)
                        .where(and_(_M.key == CURSOR_KEY, _M.value == str(old)))
                        .values(value=str(hi))
                    )
                    if moved.rowcount != 1:
                        raise _Lost
                self._store(c, tallies)
        except (_Lost, IntegrityError):
            log.info("window check: another pass checked these readings first")
            return False
        return True

    def _store(self, c: Any, tallies: dict[tuple[int, str], _Tally]) -> None:
        for (set_id, name), t in tallies.items():
            newer = (_T.last_breach_ms.is_(None)) | (_T.last_breach_ms <= bindparam("ts"))
            values: dict[str, Any] = {"checked": _T.checked + t.checked, "outside": _T.outside + t.outside}
            params: dict[str, Any] = {}
            if t.last_ms is not None:
                values["last_breach_ms"] = case((newer, bindparam("ts")), else_=_T.last_breach_ms)
                values["last_breach_digest"] = case((newer, bindparam("dg")), else_=_T.last_breach_digest)
                params = {"ts": t.last_ms, "dg": t.last_digest}
            c.execute(
                update(_TALLIES).where(and_(_T.set_id == set_id, _T.parameter == name)).values(**values),
                params,
            )
            if t.samples:
                c.execute(insert(_BREACHES), t.samples)
                keep = (
                    select(_B.id)
                    .where(and_(_B.set_id == set_id, _B.parameter == name))
                    .order_by(_B.reading_id.desc())
                    .limit(self.samples)
                )
                c.execute(
                    delete(_BREACHES).where(
                        and_(_B.set_id == set_id, _B.parameter == name, _B.id.not_in(keep.scalar_subquery()))
                    )
                )


class _Lost(Exception):
    """The cursor moved under this pass (internal)."""


class WindowCheckWorker(PeriodicWorker):
    """Runs :meth:`WindowChecker.run_once` every ``interval`` seconds (a background thread of the service)."""

    def __init__(self, checker: WindowChecker, interval: float) -> None:
        super().__init__(interval, name="supet-window-check", what="window check")
        self.checker = checker
        self.last_pass: CheckPass | None = None

    def run_once(self) -> CheckPass | None:
        """One pass now; None when it failed (logged, retried at the next interval)."""
        try:
            done = self.checker.run_once()
        except Exception as e:  # the database down: the pass is retried at the next interval
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("window check failed, retried in %.0f s: %s", self.interval, e)
            return None
        self.passes += 1
        self.last_pass, self.last_error = done, None
        if done.outside:
            log.info(
                "window check: %d readings, %d values checked, %d outside their window",
                done.readings,
                done.checked,
                done.outside,
                extra={"event": "windows.breaches", "outside": done.outside},
            )
        return done


# ---------------------------------------------------------------------------- the report


def _hex(b: bytes | None) -> str | None:
    return None if b is None else "0x" + bytes(b).hex()


def _report(
    engine: Engine, current: StoredWindowSet, history: list[StoredWindowSet], samples: int
) -> dict[str, Any]:
    ws = current.window_set
    with Session(engine) as s:
        tallies = {
            t.parameter: t
            for t in s.exec(orm_select(WindowTallyRow).where(col(WindowTallyRow.set_id) == current.id)).all()
        }
        breaches = s.exec(
            orm_select(WindowBreachRow)
            .where(col(WindowBreachRow.set_id) == current.id)
            .order_by(col(WindowBreachRow.reading_id).desc())
        ).all()
        cursor = s.get(MetaRow, CURSOR_KEY)
    by_param: dict[str, list[WindowBreachRow]] = defaultdict(list)
    for b in breaches:
        if len(by_param[b.parameter]) < samples:
            by_param[b.parameter].append(b)
    params = []
    for w in ws.windows:
        t = tallies.get(w.name)
        checked, outside = (t.checked, t.outside) if t is not None else (0, 0)
        params.append(
            {
                "name": w.name,
                "low": w.low,
                "high": w.high,
                "expected_gain": w.expected_gain,
                "checked": checked,
                "outside": outside,
                "share_outside": outside / checked if checked else None,
                "last_breach_ms": t.last_breach_ms if t is not None else None,
                "last_breach_digest": _hex(t.last_breach_digest) if t is not None else None,
                "sample": [
                    {
                        "digest": _hex(b.digest),
                        "device_id": b.device_id,
                        "ts_ms": b.ts_ms,
                        "value": b.value,
                        "proof": f"/v1/readings/{_hex(b.digest)}/proof",
                    }
                    for b in by_param.get(w.name, [])
                ],
            }
        )
    return {
        "factory": ws.factory,
        "line_id": ws.line_id,
        "window_set": {
            "version": ws.version,
            "commitment": current.commitment,
            "supersedes": ws.supersedes,
            "yield_commitment": ws.yield_commitment,
            "published_ms": current.created_ms,
            "devices": list(ws.devices),
            "observed_yield": ws.observed_yield,
            "predicted_yield_in_windows": ws.predicted_yield_in_windows,
            "expected_gain": ws.expected_gain,
            "model_gain": ws.model_gain,
        },
        "versions": [
            {"version": h.version, "commitment": h.commitment, "published_ms": h.created_ms} for h in history
        ],
        "checked_through_reading": int(cursor.value) if cursor is not None else None,
        "checked": sum(p["checked"] for p in params),
        "outside": sum(p["outside"] for p in params),
        "parameters": params,
    }


def breach_report(engine: Engine, factory: str, line_id: str, *, samples: int = 10) -> dict[str, Any]:
    """The line's window breaches under its current window set (module docstring), as JSON.

    @raise NoWindowSet when the line has no window set
    """
    current = current_window_set(engine, factory, line_id)
    return _report(engine, current, window_history(engine, factory, line_id), samples)


def factory_breach_reports(engine: Engine, factory: str, *, samples: int = 3) -> list[dict[str, Any]]:
    """The breach report of every line of ``factory`` that has a window set, by line id."""
    with Session(engine) as s:
        lines = s.exec(
            orm_select(YieldWindowSetRow.line_id).where(col(YieldWindowSetRow.factory) == factory).distinct()
        ).all()
    return [breach_report(engine, factory, line, samples=samples) for line in sorted(lines)]
