"""Factory profile: its inputs and the per-day step (day summaries).

Pure computation, no I/O. Definitions: ``docs/analytics-profile.md`` (kept in step with this file).

The work is split in two so a month is incremental:

1. :func:`summarize_day` (here) turns one factory-day of readings (columns of numpy arrays, see
   :class:`ReadingColumns` for the machines and :class:`MeterColumns`, :class:`CameraColumns`,
   :class:`StockColumns` for the kWh meters, the inspection cameras and the stock counters; or
   Reading v1 JSON objects via :func:`day_inputs_from_readings`) into a :class:`DaySummary`: per
   machine, seconds running / planned down / unplanned stop, units good / rework / defect, ideal
   units, stop events, readings received vs expected; per meter its kWh and the kWh and units of
   the intervals it shares with its machine; per camera units inspected and rejected (per lot); per
   stock counter its day's last count. It is plain data (:meth:`DaySummary.to_json_obj`) and is
   computed once per day.
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
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from supet_base.errors import SupetError

#: Metric names read from a reading's ``metrics`` (Reading v1).
METRIC_STATE = "state"  # 0 = off / planned down, 1 = running, 2 = unplanned stop (required)
METRIC_GOOD = "good_units"  # units right first time (A-grade) in the interval (default 0)
METRIC_REWORK = "rework_units"  # units good only after rework in the interval (default 0)
METRIC_DEFECT = "defect_units"  # units scrapped / rejected in the interval (default 0)
METRIC_IDEAL_RATE = "ideal_rate_uph"  # nameplate rate, units per hour (required when running)
METRIC_COMMISSIONED = "commissioned_day"  # machine nameplate: commissioning date, days since 1970-01-01
METRIC_KWH = "energy_kwh"  # kWh meter: energy drawn over the interval (required)
METRIC_CAM_INSPECTED = "cam_inspected"  # camera: units inspected since its previous reading (required)
METRIC_CAM_DEFECTS = "cam_defects"  # camera: of those, units rejected first time (required)
METRIC_RAW = "raw_material_units"  # stock count: raw material on hand, in units of output it makes
METRIC_FINISHED = "finished_goods_units"  # stock count: finished goods on hand, units

STATE_OFF = 0
STATE_RUNNING = 1
STATE_UNPLANNED = 2

DAY_S = 86_400
DAY_MS = DAY_S * 1000

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class ProfileError(SupetError):
    """Input the profile cannot be computed from (bad reading, bad period, mismatched days)."""

    code = "profile.invalid"


# --- inputs -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Factory:
    """The factory being profiled: its machines (``device_ids``) and the reading interval they
    report at, and optionally its kWh meters (``meters``: ``(meter, machine it meters)`` pairs, one
    meter per machine, reporting at the same interval), inspection cameras and stock counters."""

    factory_id: str
    device_ids: tuple[str, ...]
    interval_s: int = 120
    meters: tuple[tuple[str, str], ...] = ()
    cameras: tuple[str, ...] = ()
    stock_counters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.device_ids:
            raise ProfileError("a factory needs at least one device", code="profile.no_devices")
        every = [*self.device_ids, *self.meter_ids, *self.cameras, *self.stock_counters]
        if len(set(every)) != len(every):
            raise ProfileError("device ids repeat", code="profile.duplicate_device")
        metered = [m for _, m in self.meters]
        if any(m not in self.device_ids for m in metered) or len(set(metered)) != len(metered):
            raise ProfileError(
                "each meter must meter one of the factory's machines, one meter per machine",
                code="profile.meter_machine",
            )
        if self.interval_s <= 0 or DAY_S % self.interval_s:
            raise ProfileError(
                f"interval {self.interval_s} s must be positive and divide a day (86400 s)",
                code="profile.interval",
            )

    @property
    def slots_per_day(self) -> int:
        """Readings one device is expected to send in a day."""
        return DAY_S // self.interval_s

    @property
    def meter_ids(self) -> tuple[str, ...]:
        """The kWh meters, in :attr:`meters` order."""
        return tuple(m for m, _ in self.meters)


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


# --- the other devices' columns ---------------------------------------------------


def _f64(values: Iterable[float] = ()) -> FloatArray:
    return np.asarray(list(values), dtype=np.float64)


def _i64(values: Iterable[int] = ()) -> IntArray:
    return np.asarray(list(values), dtype=np.int64)


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
        return cls(_i64(), _i64(), _f64())


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
        return cls(_i64(), _i64(), _f64(), _f64(), _i64())


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
        return cls(_i64(), _i64(), _f64(), _f64())


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
        meters=MeterColumns(_i64(mt[0]), _i64(mt[1]), _f64(mt[2])),
        cameras=CameraColumns(
            _i64(cam[0]), _i64(cam[1]), _f64(cam[2]), _f64(cam[3]), _i64(cam[4]), tuple(lots)
        ),
        stock=StockColumns(_i64(st[0]), _i64(st[1]), _f64(st[2]), _f64(st[3])),
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


def day_start_ms(day: date) -> int:
    """Unix ms of 00:00 UTC on ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def empty_day(factory: Factory, day: date) -> DaySummary:
    """The summary of a day with no readings (every device silent)."""
    return summarize_day(factory, day, columns_from_readings((), factory))


def _check_day(ts_ms: IntArray, index: IntArray, n: int, start: int, day: date, what: str) -> None:
    if not ts_ms.shape[0]:
        return
    if ts_ms.min() < start or ts_ms.max() >= start + DAY_MS:
        raise ProfileError(
            f"a {what} reading falls outside {day.isoformat()} (UTC)", code="profile.outside_day"
        )
    if index.min() < 0 or index.max() >= n:
        raise ProfileError(f"{what} index out of range", code="profile.unknown_device")


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
        _check_day(cols.ts_ms, cols.device, n_dev, start, day, "machine")
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
        meters=_meter_days(factory, day, meters, (dev, sl, running | (made > 0), made, good)),
        cameras=_camera_days(factory, day, cameras),
        stock=_stock_days(factory, day, stock),
    )


def _meter_days(
    factory: Factory,
    day: date,
    cols: MeterColumns | None,
    machine_slots: tuple[IntArray, IntArray, npt.NDArray[np.bool_], FloatArray, FloatArray],
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
    _check_day(cols.ts_ms, cols.meter, n_m, start, day, "meter")
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


def _camera_days(factory: Factory, day: date, cols: CameraColumns | None) -> tuple[CameraDay, ...]:
    cols = cols if cols is not None else CameraColumns.empty()
    n_c, n = len(factory.cameras), len(cols)
    if any(a.shape != (n,) for a in (cols.camera, cols.inspected, cols.defects, cols.lot)):
        raise ProfileError("camera columns differ in length", code="profile.columns")
    _check_day(cols.ts_ms, cols.camera, n_c, day_start_ms(day), day, "camera")
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


def _stock_days(factory: Factory, day: date, cols: StockColumns | None) -> tuple[StockDay, ...]:
    cols = cols if cols is not None else StockColumns.empty()
    n_k, n = len(factory.stock_counters), len(cols)
    if any(a.shape != (n,) for a in (cols.counter, cols.raw, cols.finished)):
        raise ProfileError("stock columns differ in length", code="profile.columns")
    _check_day(cols.ts_ms, cols.counter, n_k, day_start_ms(day), day, "stock count")
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


def summarize_inputs(factory: Factory, day: date, inputs: DayInputs) -> DaySummary:
    """:func:`summarize_day` of a :class:`DayInputs` (every role's readings of the day)."""
    return summarize_day(
        factory, day, inputs.machines, meters=inputs.meters, cameras=inputs.cameras, stock=inputs.stock
    )
