"""Factory profile: its inputs and the per-day step (day summaries).

Pure computation, no I/O. Definitions: ``docs/analytics-profile.md`` (kept in step with this file).
The factory, the metric names and :class:`~analytics.profile_base.ProfileError` are in
:mod:`analytics.profile_base`; the kWh meters', cameras' and stock counters' columns and day parts
in :mod:`analytics.profile_sources`.

The work is split in two so a month is incremental:

1. :func:`summarize_day` (here) turns one factory-day of readings (columns of numpy arrays, see
   :class:`ReadingColumns` for the machines and :class:`~analytics.profile_sources.MeterColumns`,
   :class:`~analytics.profile_sources.CameraColumns`, :class:`~analytics.profile_sources.StockColumns`
   for the kWh meters, the inspection cameras and the stock counters; or Reading v1 JSON objects
   via :func:`day_inputs_from_readings`) into a :class:`DaySummary`: per machine, seconds running /
   planned down / unplanned stop, units good / rework / defect, ideal units, stop events, readings
   received vs expected; per meter its kWh and the kWh and units of the intervals it shares with
   its machine; per camera units inspected and rejected (per lot); per stock counter its day's last
   count. It is plain data (:meth:`DaySummary.to_json_obj`) and is computed once per day.
2. :func:`analytics.period_profile.build_profile` combines the period's day summaries with the
   orders and deliveries into capacity, OEE, first-pass yield, inventory, OTIF, trend, coverage,
   energy per good unit and its consistency with output, measured stock and days of cover, order
   backlog and its coverage by capacity, the equipment register and camera-measured yield. It
   never looks at a reading, so adding a day costs one :func:`summarize_day` plus a cheap
   combination (:class:`analytics.period_profile.ProfileAccumulator`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import date
from typing import Any

import numpy as np

from analytics.profile_base import (
    METRIC_CAM_DEFECTS,
    METRIC_CAM_INSPECTED,
    METRIC_COMMISSIONED,
    METRIC_DEFECT,
    METRIC_FINISHED,
    METRIC_GOOD,
    METRIC_IDEAL_RATE,
    METRIC_KWH,
    METRIC_RAW,
    METRIC_REWORK,
    METRIC_STATE,
    STATE_OFF,
    STATE_RUNNING,
    STATE_UNPLANNED,
    Factory,
    FloatArray,
    IntArray,
    ProfileError,
    check_day,
    day_start_ms,
    float_array,
    int_array,
)
from analytics.profile_sources import (
    CameraColumns,
    CameraDay,
    MeterColumns,
    MeterDay,
    StockColumns,
    StockDay,
    camera_days,
    meter_days,
    stock_days,
)

__all__ = [
    "DEVICE_DAY_FIELDS",
    "NO_STATE",
    "DayInputs",
    "DaySummary",
    "Delivery",
    "DeviceDay",
    "Order",
    "ReadingColumns",
    "columns_from_readings",
    "day_inputs_from_readings",
    "empty_day",
    "summarize_day",
    "summarize_inputs",
]

# --- inputs -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Order:
    """A buyer's order: ``quantity`` units due by the end (UTC) of ``due``, placed at ``placed_ms``
    (Unix ms; None when unknown: the order then counts as placed before any period)."""

    order_id: str
    buyer: str
    quantity: float
    due: date
    placed_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """Units delivered against an order at ``delivered_ms`` (Unix ms, UTC)."""

    order_id: str
    quantity: float
    delivered_ms: int


@dataclass(frozen=True, slots=True)
class ReadingColumns:
    """One day's readings as parallel arrays (one entry per reading).

    ``device`` indexes :attr:`Factory.device_ids`. Missing counts are 0; a missing ideal rate
    is NaN (an error on a running reading).
    """

    device: IntArray
    ts_ms: IntArray
    state: IntArray
    good: FloatArray
    rework: FloatArray
    defect: FloatArray
    ideal_rate_uph: FloatArray
    #: the machine's ``commissioned_day`` per reading (NaN when absent); None: absent from all
    commissioned_day: FloatArray | None = None

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])


def columns_from_readings(readings: Iterable[Mapping[str, Any]], factory: Factory) -> ReadingColumns:
    """Reading v1 JSON objects (``device_id``, ``ts_ms``, ``metrics``) as :class:`ReadingColumns`."""
    index = {d: i for i, d in enumerate(factory.device_ids)}
    dev: list[int] = []
    ts: list[int] = []
    state: list[int] = []
    good: list[float] = []
    rework: list[float] = []
    defect: list[float] = []
    rate: list[float] = []
    commissioned: list[float] = []
    for r in readings:
        try:
            device_id = r["device_id"]
            m = r["metrics"]
            t = r["ts_ms"]
        except (KeyError, TypeError) as e:
            raise ProfileError(f"reading lacks device_id / ts_ms / metrics: {e}") from None
        i = index.get(device_id)
        if i is None:
            raise ProfileError(
                f"reading from device {device_id!r}, not one of factory {factory.factory_id!r}",
                code="profile.unknown_device",
            )
        if METRIC_STATE not in m:
            raise ProfileError(
                f"reading {device_id}@{t} has no {METRIC_STATE!r} metric", code="profile.no_state"
            )
        dev.append(i)
        ts.append(int(t))
        st = m[METRIC_STATE]
        if st not in (STATE_OFF, STATE_RUNNING, STATE_UNPLANNED):
            raise ProfileError(
                f"reading {device_id}@{t}: state {st!r} is not 0 (off), 1 (running) or 2 (unplanned stop)",
                code="profile.state",
            )
        state.append(int(st))
        good.append(float(m.get(METRIC_GOOD, 0)))
        rework.append(float(m.get(METRIC_REWORK, 0)))
        defect.append(float(m.get(METRIC_DEFECT, 0)))
        rate.append(float(m.get(METRIC_IDEAL_RATE, math.nan)))
        commissioned.append(float(m.get(METRIC_COMMISSIONED, math.nan)))
    return ReadingColumns(
        device=np.asarray(dev, dtype=np.int64),
        ts_ms=np.asarray(ts, dtype=np.int64),
        state=np.asarray(state, dtype=np.int64),
        good=np.asarray(good, dtype=np.float64),
        rework=np.asarray(rework, dtype=np.float64),
        defect=np.asarray(defect, dtype=np.float64),
        ideal_rate_uph=np.asarray(rate, dtype=np.float64),
        commissioned_day=np.asarray(commissioned, dtype=np.float64),
    )


@dataclass(frozen=True, slots=True)
class DayInputs:
    """One day's readings of every role of a factory's devices."""

    machines: ReadingColumns
    meters: MeterColumns
    cameras: CameraColumns
    stock: StockColumns


def _metric(r: Mapping[str, Any], name: str, what: str) -> float:
    m = r["metrics"]
    if name not in m:
        raise ProfileError(
            f"{what} reading {r['device_id']}@{r['ts_ms']} has no {name!r} metric",
            code="profile.metric_missing",
        )
    return float(m[name])


def day_inputs_from_readings(readings: Iterable[Mapping[str, Any]], factory: Factory) -> DayInputs:
    """Reading v1 JSON objects of any of the factory's devices, routed by the device's role.

    @raise ProfileError a device that is none of the factory's, a machine reading without a state, a
           meter reading without ``energy_kwh``, a camera reading without ``cam_inspected`` and
           ``cam_defects``, a stock count with neither ``raw_material_units`` nor ``finished_goods_units``
    """
    meter_ix = {d: i for i, d in enumerate(factory.meter_ids)}
    camera_ix = {d: i for i, d in enumerate(factory.cameras)}
    stock_ix = {d: i for i, d in enumerate(factory.stock_counters)}
    machines: list[Mapping[str, Any]] = []
    mt: tuple[list[int], list[int], list[float]] = ([], [], [])
    cam: tuple[list[int], list[int], list[float], list[float], list[int]] = ([], [], [], [], [])
    lots: dict[str, int] = {}
    st: tuple[list[int], list[int], list[float], list[float]] = ([], [], [], [])
    for r in readings:
        try:
            device_id, ts, m = r["device_id"], int(r["ts_ms"]), r["metrics"]
        except (KeyError, TypeError) as e:
            raise ProfileError(f"reading lacks device_id / ts_ms / metrics: {e}") from None
        if (i := meter_ix.get(device_id)) is not None:
            mt[0].append(i)
            mt[1].append(ts)
            mt[2].append(_metric(r, METRIC_KWH, "meter"))
        elif (i := camera_ix.get(device_id)) is not None:
            cam[0].append(i)
            cam[1].append(ts)
            cam[2].append(_metric(r, METRIC_CAM_INSPECTED, "camera"))
            cam[3].append(_metric(r, METRIC_CAM_DEFECTS, "camera"))
            lot = r.get("lot_id")
            cam[4].append(-1 if lot is None else lots.setdefault(str(lot), len(lots)))
        elif (i := stock_ix.get(device_id)) is not None:
            if METRIC_RAW not in m and METRIC_FINISHED not in m:
                raise ProfileError(
                    f"stock count {device_id}@{ts} has neither {METRIC_RAW!r} nor {METRIC_FINISHED!r}",
                    code="profile.metric_missing",
                )
            st[0].append(i)
            st[1].append(ts)
            st[2].append(float(m.get(METRIC_RAW, math.nan)))
            st[3].append(float(m.get(METRIC_FINISHED, math.nan)))
        else:
            machines.append(r)  # a machine's, or refused there as an unknown device
    return DayInputs(
        machines=columns_from_readings(machines, factory),
        meters=MeterColumns(int_array(mt[0]), int_array(mt[1]), float_array(mt[2])),
        cameras=CameraColumns(
            int_array(cam[0]),
            int_array(cam[1]),
            float_array(cam[2]),
            float_array(cam[3]),
            int_array(cam[4]),
            tuple(lots),
        ),
        stock=StockColumns(int_array(st[0]), int_array(st[1]), float_array(st[2]), float_array(st[3])),
    )


# --- the day summary --------------------------------------------------------------

#: ``first_state`` / ``last_state`` of a device that did not report that day.
NO_STATE = -1


@dataclass(frozen=True, slots=True)
class DeviceDay:
    """One machine's day: seconds per state, units, ideal units, readings received / expected, and
    its state events: unplanned stops that started (a reading in state 2 whose previous reading that
    day was not; the day's first reading in state 2 counts, the period joins it to the day before),
    its first and last reported state, the time of its last reading and its nameplate commissioning
    day (None when not reported)."""

    device_id: str
    running_s: float
    planned_down_s: float
    unplanned_s: float
    good_units: float
    rework_units: float
    defect_units: float
    ideal_units: float
    readings: int
    expected: int
    stop_starts: int = 0
    first_state: int = NO_STATE
    last_state: int = NO_STATE
    last_ms: int | None = None
    commissioned_day: float | None = None


#: The per-device fields of a :class:`DeviceDay` (all but ``device_id``), in declaration order.
DEVICE_DAY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(DeviceDay) if f.name != "device_id")


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


@dataclass(frozen=True, slots=True)
class DaySummary:
    """A factory-day reduced to per-device totals; plain data, computed once per day."""

    factory_id: str
    day: date
    interval_s: int
    devices: tuple[DeviceDay, ...]
    meters: tuple[MeterDay, ...] = ()
    cameras: tuple[CameraDay, ...] = ()
    stock: tuple[StockDay, ...] = ()

    def total(self, name: str) -> float:
        """The sum over devices of the :class:`DeviceDay` field ``name``."""
        return float(sum(getattr(d, name) for d in self.devices))

    @property
    def sellable_units(self) -> float:
        """Good plus rework units: the day's output."""
        return self.total("good_units") + self.total("rework_units")

    def to_json_obj(self) -> dict[str, Any]:
        """The summary as JSON-ready plain data (see :meth:`from_json_obj`)."""
        return {
            "factory_id": self.factory_id,
            "day": self.day.isoformat(),
            "interval_s": self.interval_s,
            "devices": [
                {"device_id": d.device_id, **{f: getattr(d, f) for f in DEVICE_DAY_FIELDS}}
                for d in self.devices
            ],
            "meters": [{f.name: getattr(m, f.name) for f in fields(MeterDay)} for m in self.meters],
            "cameras": [
                {
                    "camera_id": c.camera_id,
                    "inspected": c.inspected,
                    "defects": c.defects,
                    "readings": c.readings,
                    "lots": [list(lot) for lot in c.lots],
                }
                for c in self.cameras
            ],
            "stock": [{f.name: getattr(k, f.name) for f in fields(StockDay)} for k in self.stock],
        }

    @classmethod
    def from_json_obj(cls, obj: Mapping[str, Any]) -> DaySummary:
        """The summary back from :meth:`to_json_obj` (a summary without the newer parts reads as
        having none)."""
        try:
            return cls(
                factory_id=str(obj["factory_id"]),
                day=date.fromisoformat(obj["day"]),
                interval_s=int(obj["interval_s"]),
                devices=tuple(
                    DeviceDay(
                        device_id=str(d["device_id"]),
                        running_s=float(d["running_s"]),
                        planned_down_s=float(d["planned_down_s"]),
                        unplanned_s=float(d["unplanned_s"]),
                        good_units=float(d["good_units"]),
                        rework_units=float(d["rework_units"]),
                        defect_units=float(d["defect_units"]),
                        ideal_units=float(d["ideal_units"]),
                        readings=int(d["readings"]),
                        expected=int(d["expected"]),
                        stop_starts=int(d.get("stop_starts", 0)),
                        first_state=int(d.get("first_state", NO_STATE)),
                        last_state=int(d.get("last_state", NO_STATE)),
                        last_ms=None if d.get("last_ms") is None else int(d["last_ms"]),
                        commissioned_day=_opt(d.get("commissioned_day")),
                    )
                    for d in obj["devices"]
                ),
                meters=tuple(
                    MeterDay(
                        meter_id=str(m["meter_id"]),
                        machine_id=str(m["machine_id"]),
                        kwh=float(m["kwh"]),
                        readings=int(m["readings"]),
                        expected=int(m["expected"]),
                        matched_kwh=float(m["matched_kwh"]),
                        matched_units=float(m["matched_units"]),
                        matched_good=float(m["matched_good"]),
                    )
                    for m in obj.get("meters", ())
                ),
                cameras=tuple(
                    CameraDay(
                        camera_id=str(c["camera_id"]),
                        inspected=float(c["inspected"]),
                        defects=float(c["defects"]),
                        readings=int(c["readings"]),
                        lots=tuple((str(a), float(b), float(x)) for a, b, x in c.get("lots", ())),
                    )
                    for c in obj.get("cameras", ())
                ),
                stock=tuple(
                    StockDay(
                        counter_id=str(k["counter_id"]),
                        counts=int(k["counts"]),
                        last_ms=None if k.get("last_ms") is None else int(k["last_ms"]),
                        raw=_opt(k.get("raw")),
                        finished=_opt(k.get("finished")),
                    )
                    for k in obj.get("stock", ())
                ),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ProfileError(f"not a day summary: {e}", code="profile.bad_summary") from None


def empty_day(factory: Factory, day: date) -> DaySummary:
    """The summary of a day with no readings (every device silent)."""
    return summarize_day(factory, day, columns_from_readings((), factory))


def summarize_day(
    factory: Factory,
    day: date,
    cols: ReadingColumns,
    *,
    meters: MeterColumns | None = None,
    cameras: CameraColumns | None = None,
    stock: StockColumns | None = None,
) -> DaySummary:
    """Reduce one UTC day of readings to a :class:`DaySummary` (vectorised).

    Each machine and meter reading stands for its interval ``[ts, ts + interval_s)``, slotted from
    00:00 UTC. A second reading of the same device in the same slot is ignored (the first in input
    order counts); a camera's or stock counter's second reading at the same ``ts_ms`` likewise.
    Readings outside ``day`` are refused.
    """
    n_dev = len(factory.device_ids)
    slots = factory.slots_per_day
    start = day_start_ms(day)
    n = len(cols)
    arrays = (cols.device, cols.state, cols.good, cols.rework, cols.defect, cols.ideal_rate_uph)
    if any(a.shape != (n,) for a in arrays) or (
        cols.commissioned_day is not None and cols.commissioned_day.shape != (n,)
    ):
        raise ProfileError("reading columns differ in length", code="profile.columns")
    if n:
        check_day(cols.ts_ms, cols.device, n_dev, start, day, "machine")
        bad = ~np.isin(cols.state, (STATE_OFF, STATE_RUNNING, STATE_UNPLANNED))
        if bad.any():
            raise ProfileError(
                f"state {int(cols.state[bad][0])} is not 0 (off), 1 (running) or 2 (unplanned stop)",
                code="profile.state",
            )
        if (cols.good < 0).any() or (cols.rework < 0).any() or (cols.defect < 0).any():
            raise ProfileError("unit counts must not be negative", code="profile.negative")
    slot = (cols.ts_ms - start) // (factory.interval_s * 1000)
    key = cols.device * slots + slot
    # survivors in (device, slot) order: the first reading of each device-slot
    _, first = np.unique(key, return_index=True)
    dev, state, sl = cols.device[first], cols.state[first], slot[first]
    good, rework, defect = cols.good[first], cols.rework[first], cols.defect[first]
    rate = cols.ideal_rate_uph[first]
    running = state == STATE_RUNNING
    if n and (~np.isfinite(rate[running]) | (rate[running] < 0)).any():
        raise ProfileError(
            f"a running reading lacks a finite non-negative {METRIC_IDEAL_RATE!r}", code="profile.ideal_rate"
        )
    step = float(factory.interval_s)

    def per_device(weights: FloatArray | None = None) -> FloatArray:
        return np.bincount(dev, weights=weights, minlength=n_dev).astype(np.float64)

    run_n = per_device(running.astype(np.float64))
    off_n = per_device((state == STATE_OFF).astype(np.float64))
    unpl_n = per_device((state == STATE_UNPLANNED).astype(np.float64))
    ideal = per_device(np.where(running, rate, 0.0) * (step / 3600.0))
    g, rw, df = per_device(good), per_device(rework), per_device(defect)
    count = np.bincount(dev, minlength=n_dev)
    # state events: a stop starts where a reading in state 2 follows another state (or none) that day
    stopped = state == STATE_UNPLANNED
    new_dev = np.ones(dev.shape[0], dtype=bool)
    new_dev[1:] = dev[1:] != dev[:-1]
    prev_stopped = np.zeros(dev.shape[0], dtype=bool)
    prev_stopped[1:] = stopped[:-1]
    starts = np.bincount(dev[stopped & (new_dev | ~prev_stopped)], minlength=n_dev)
    firsts = np.flatnonzero(new_dev)
    lasts = np.append(firsts[1:] - 1, dev.shape[0] - 1) if dev.shape[0] else firsts
    first_state = np.full(n_dev, NO_STATE, dtype=np.int64)
    last_state = np.full(n_dev, NO_STATE, dtype=np.int64)
    first_state[dev[firsts]] = state[firsts]
    last_state[dev[lasts]] = state[lasts]
    last_ms = np.full(n_dev, -1, dtype=np.int64)
    np.maximum.at(last_ms, dev, cols.ts_ms[first])
    commissioned = np.full(n_dev, np.nan)
    if cols.commissioned_day is not None and n:
        c = cols.commissioned_day[first]
        known = np.isfinite(c)
        commissioned[dev[known]] = c[known]  # the device's last reported value that day
    devices = tuple(
        DeviceDay(
            device_id=factory.device_ids[i],
            running_s=float(run_n[i] * step),
            planned_down_s=float(off_n[i] * step),
            unplanned_s=float(unpl_n[i] * step),
            good_units=float(g[i]),
            rework_units=float(rw[i]),
            defect_units=float(df[i]),
            ideal_units=float(ideal[i]),
            readings=int(count[i]),
            expected=slots,
            stop_starts=int(starts[i]),
            first_state=int(first_state[i]),
            last_state=int(last_state[i]),
            last_ms=int(last_ms[i]) if last_ms[i] >= 0 else None,
            commissioned_day=float(commissioned[i]) if np.isfinite(commissioned[i]) else None,
        )
        for i in range(n_dev)
    )
    made = good + rework + defect
    return DaySummary(
        factory_id=factory.factory_id,
        day=day,
        interval_s=factory.interval_s,
        devices=devices,
        meters=meter_days(factory, day, meters, (dev, sl, running | (made > 0), made, good)),
        cameras=camera_days(factory, day, cameras),
        stock=stock_days(factory, day, stock),
    )


def summarize_inputs(factory: Factory, day: date, inputs: DayInputs) -> DaySummary:
    """:func:`summarize_day` of a :class:`DayInputs` (every role's readings of the day)."""
    return summarize_day(
        factory, day, inputs.machines, meters=inputs.meters, cameras=inputs.cameras, stock=inputs.stock
    )
