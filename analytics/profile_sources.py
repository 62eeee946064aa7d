"""The factory profile's per-source machinery: the kWh meters, inspection cameras and stock counters.

Pure computation, no I/O. For each source a day's readings as columns (:class:`MeterColumns`,
:class:`CameraColumns`, :class:`StockColumns`) and its reduction to a per-device day
(:class:`MeterDay`, :class:`CameraDay`, :class:`StockDay`) by :func:`meter_days`,
:func:`camera_days` and :func:`stock_days`, which :func:`analytics.profile.summarize_day` calls;
the machines' own columns and the day summary are in :mod:`analytics.profile`. Definitions:
``docs/analytics-profile.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from analytics.profile_base import (
    METRIC_KWH,
    Factory,
    FloatArray,
    IntArray,
    ProfileError,
    check_day,
    day_start_ms,
    float_array,
    int_array,
)

__all__ = [
    "CameraColumns",
    "CameraDay",
    "MachineSlots",
    "MeterColumns",
    "MeterDay",
    "StockColumns",
    "StockDay",
    "camera_days",
    "meter_days",
    "stock_days",
]

#: The machines' surviving readings of a day as parallel arrays: device, slot, production interval?,
#: units made, good units (what :func:`meter_days` matches a meter's intervals against).
MachineSlots = tuple[IntArray, IntArray, npt.NDArray[np.bool_], FloatArray, FloatArray]


@dataclass(frozen=True, slots=True)
class MeterColumns:
    """One day's kWh meter readings: ``meter`` indexes :attr:`Factory.meters`; ``kwh`` is the
    energy drawn over the reading's interval ``[ts_ms, ts_ms + interval_s)``."""

    meter: IntArray
    ts_ms: IntArray
    kwh: FloatArray

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    @classmethod
    def empty(cls) -> MeterColumns:
        return cls(int_array(), int_array(), float_array())


@dataclass(frozen=True, slots=True)
class CameraColumns:
    """One day's inspection-camera readings: ``camera`` indexes :attr:`Factory.cameras`; units
    ``inspected`` since the camera's previous reading and of them ``defects`` rejected first time;
    ``lot`` indexes ``lot_ids`` (-1: the reading names no lot)."""

    camera: IntArray
    ts_ms: IntArray
    inspected: FloatArray
    defects: FloatArray
    lot: IntArray
    lot_ids: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    @classmethod
    def empty(cls) -> CameraColumns:
        return cls(int_array(), int_array(), float_array(), float_array(), int_array())


@dataclass(frozen=True, slots=True)
class StockColumns:
    """One day's stock counts: ``counter`` indexes :attr:`Factory.stock_counters`; raw material (in
    units of output it makes) and finished goods on hand at ``ts_ms`` (NaN: not counted)."""

    counter: IntArray
    ts_ms: IntArray
    raw: FloatArray
    finished: FloatArray

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    @classmethod
    def empty(cls) -> StockColumns:
        return cls(int_array(), int_array(), float_array(), float_array())


@dataclass(frozen=True, slots=True)
class MeterDay:
    """One kWh meter's day. ``matched_*``: over the intervals in which both the meter and its
    machine reported and the machine ran or reported units (production intervals), the meter's kWh
    and the machine's units made (good + rework + defect) and good units."""

    meter_id: str
    machine_id: str
    kwh: float
    readings: int
    expected: int
    matched_kwh: float
    matched_units: float
    matched_good: float


@dataclass(frozen=True, slots=True)
class CameraDay:
    """One camera's day: units inspected and rejected, readings, and per lot ``(inspected, defects)``."""

    camera_id: str
    inspected: float
    defects: float
    readings: int
    lots: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class StockDay:
    """One stock counter's day: counts received and the day's last count (None: no count that day;
    ``raw`` / ``finished`` None when that count did not include them)."""

    counter_id: str
    counts: int
    last_ms: int | None
    raw: float | None
    finished: float | None


def meter_days(
    factory: Factory,
    day: date,
    cols: MeterColumns | None,
    machine_slots: MachineSlots,
) -> tuple[MeterDay, ...]:
    """Per meter its kWh, and over its production intervals its machine's units (``machine_slots``:
    the machines' surviving readings as device, slot, production?, units made, good units)."""
    cols = cols if cols is not None else MeterColumns.empty()
    if not factory.meters:
        if len(cols):
            raise ProfileError("meter readings for a factory with no meter", code="profile.unknown_device")
        return ()
    n_m, n, slots = len(factory.meters), len(cols), factory.slots_per_day
    dev, sl, prod, made, good = machine_slots
    n_dev = len(factory.device_ids)
    production = np.zeros((n_dev, slots), dtype=bool)  # dense device x slot: only with meters
    units_at = np.zeros((n_dev, slots))
    good_at = np.zeros((n_dev, slots))
    production[dev, sl] = prod
    units_at[dev, sl] = made
    good_at[dev, sl] = good
    start = day_start_ms(day)
    if cols.meter.shape != (n,) or cols.kwh.shape != (n,):
        raise ProfileError("meter columns differ in length", code="profile.columns")
    check_day(cols.ts_ms, cols.meter, n_m, start, day, "meter")
    if n and (~np.isfinite(cols.kwh) | (cols.kwh < 0)).any():
        raise ProfileError(f"{METRIC_KWH!r} must be a finite non-negative kWh", code="profile.negative")
    slot = (cols.ts_ms - start) // (factory.interval_s * 1000)
    _, first = np.unique(cols.meter * slots + slot, return_index=True)
    meter, sl, kwh = cols.meter[first], slot[first], cols.kwh[first]
    pos = {d: i for i, d in enumerate(factory.device_ids)}
    machine = np.asarray([pos[m] for _, m in factory.meters], dtype=np.int64)[meter]
    matched = production[machine, sl]
    total = np.bincount(meter, weights=kwh, minlength=n_m)
    count = np.bincount(meter, minlength=n_m)
    m_kwh = np.bincount(meter[matched], weights=kwh[matched], minlength=n_m)
    m_units = np.bincount(meter[matched], weights=units_at[machine, sl][matched], minlength=n_m)
    m_good = np.bincount(meter[matched], weights=good_at[machine, sl][matched], minlength=n_m)
    return tuple(
        MeterDay(
            meter_id=mid,
            machine_id=mach,
            kwh=float(total[i]),
            readings=int(count[i]),
            expected=slots,
            matched_kwh=float(m_kwh[i]),
            matched_units=float(m_units[i]),
            matched_good=float(m_good[i]),
        )
        for i, (mid, mach) in enumerate(factory.meters)
    )


def _dedup_exact(index: IntArray, ts_ms: IntArray) -> IntArray:
    """Indices of the first reading per (device, ts_ms), in input order."""
    if not ts_ms.shape[0]:
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort((np.arange(ts_ms.shape[0]), ts_ms, index))
    keep = np.ones(order.shape[0], dtype=bool)
    keep[1:] = (index[order][1:] != index[order][:-1]) | (ts_ms[order][1:] != ts_ms[order][:-1])
    return np.sort(order[keep])


def camera_days(factory: Factory, day: date, cols: CameraColumns | None) -> tuple[CameraDay, ...]:
    """Per camera its units inspected and rejected, in total and per lot (a camera's second reading
    at the same ``ts_ms`` is ignored)."""
    cols = cols if cols is not None else CameraColumns.empty()
    n_c, n = len(factory.cameras), len(cols)
    if any(a.shape != (n,) for a in (cols.camera, cols.inspected, cols.defects, cols.lot)):
        raise ProfileError("camera columns differ in length", code="profile.columns")
    check_day(cols.ts_ms, cols.camera, n_c, day_start_ms(day), day, "camera")
    if n and (
        (cols.inspected < 0).any()
        or (cols.defects < 0).any()
        or (cols.defects > cols.inspected).any()
        or not np.isfinite(cols.inspected).all()
        or not np.isfinite(cols.defects).all()
    ):
        raise ProfileError(
            "a camera reading's counts must be finite, non-negative and defects <= inspected",
            code="profile.camera_counts",
        )
    keep = _dedup_exact(cols.camera, cols.ts_ms)
    cam, insp, dfc, lot = cols.camera[keep], cols.inspected[keep], cols.defects[keep], cols.lot[keep]
    inspected = np.bincount(cam, weights=insp, minlength=n_c)
    defects = np.bincount(cam, weights=dfc, minlength=n_c)
    count = np.bincount(cam, minlength=n_c)
    per_lot: dict[int, dict[str, list[float]]] = {}
    named = lot >= 0
    for c, lt, a, b in zip(
        cam[named].tolist(), lot[named].tolist(), insp[named].tolist(), dfc[named].tolist(), strict=True
    ):
        acc = per_lot.setdefault(c, {}).setdefault(cols.lot_ids[lt], [0.0, 0.0])
        acc[0] += a
        acc[1] += b
    return tuple(
        CameraDay(
            camera_id=cid,
            inspected=float(inspected[i]),
            defects=float(defects[i]),
            readings=int(count[i]),
            lots=tuple((lot_id, v[0], v[1]) for lot_id, v in sorted(per_lot.get(i, {}).items())),
        )
        for i, cid in enumerate(factory.cameras)
    )


def stock_days(factory: Factory, day: date, cols: StockColumns | None) -> tuple[StockDay, ...]:
    """Per stock counter its counts received and the day's last count (a counter's second reading at
    the same ``ts_ms`` is ignored)."""
    cols = cols if cols is not None else StockColumns.empty()
    n_k, n = len(factory.stock_counters), len(cols)
    if any(a.shape != (n,) for a in (cols.counter, cols.raw, cols.finished)):
        raise ProfileError("stock columns differ in length", code="profile.columns")
    check_day(cols.ts_ms, cols.counter, n_k, day_start_ms(day), day, "stock count")
    for a in (cols.raw, cols.finished):
        if n and ((a < 0) | np.isinf(a)).any():
            raise ProfileError("a stock count must be finite and non-negative", code="profile.negative")
    keep = _dedup_exact(cols.counter, cols.ts_ms)
    out = []
    for i, cid in enumerate(factory.stock_counters):
        mine = keep[cols.counter[keep] == i]
        if not mine.shape[0]:
            out.append(StockDay(counter_id=cid, counts=0, last_ms=None, raw=None, finished=None))
            continue
        last = mine[np.argmax(cols.ts_ms[mine])]  # the first of the latest (argmax: first maximum)
        raw, fin = float(cols.raw[last]), float(cols.finished[last])
        out.append(
            StockDay(
                counter_id=cid,
                counts=int(mine.shape[0]),
                last_ms=int(cols.ts_ms[last]),
                raw=raw if math.isfinite(raw) else None,
                finished=fin if math.isfinite(fin) else None,
            )
        )
    return tuple(out)
