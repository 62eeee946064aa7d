"""Factory profile: its inputs and the per-day step (day summaries).

Pure computation, no I/O. Definitions: ``docs/analytics-profile.md`` (kept in step with this file).

The work is split in two so a month is incremental:

1. :func:`summarize_day` (here) turns one factory-day of readings (columns of numpy arrays, see
   :class:`ReadingColumns`, or Reading v1 JSON objects via :func:`columns_from_readings`) into a
   :class:`DaySummary`: per device, seconds running / planned down / unplanned stop, units
   good / rework / defect, ideal units, readings received vs expected. It is plain data
   (:meth:`DaySummary.to_json_obj`) and is computed once per day.
2. :func:`analytics.period_profile.build_profile` combines the period's day summaries with the
   orders and deliveries into capacity, OEE, first-pass yield, inventory days, OTIF, trend and
   coverage. It never looks at a reading, so adding a day costs one :func:`summarize_day` plus a
   cheap combination (:class:`analytics.period_profile.ProfileAccumulator`).
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
    """The factory being profiled: its devices and the reading interval they report at."""

    factory_id: str
    device_ids: tuple[str, ...]
    interval_s: int = 120

    def __post_init__(self) -> None:
        if not self.device_ids:
            raise ProfileError("a factory needs at least one device", code="profile.no_devices")
        if len(set(self.device_ids)) != len(self.device_ids):
            raise ProfileError("device ids repeat", code="profile.duplicate_device")
        if self.interval_s <= 0 or DAY_S % self.interval_s:
            raise ProfileError(
                f"interval {self.interval_s} s must be positive and divide a day (86400 s)",
                code="profile.interval",
            )

    @property
    def slots_per_day(self) -> int:
        """Readings one device is expected to send in a day."""
        return DAY_S // self.interval_s


@dataclass(frozen=True, slots=True)
class Order:
    """A buyer's order: ``quantity`` units due by the end (UTC) of ``due``."""

    order_id: str
    buyer: str
    quantity: float
    due: date


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
    return ReadingColumns(
        device=np.asarray(dev, dtype=np.int64),
        ts_ms=np.asarray(ts, dtype=np.int64),
        state=np.asarray(state, dtype=np.int64),
        good=np.asarray(good, dtype=np.float64),
        rework=np.asarray(rework, dtype=np.float64),
        defect=np.asarray(defect, dtype=np.float64),
        ideal_rate_uph=np.asarray(rate, dtype=np.float64),
    )


# --- the day summary --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceDay:
    """One device's day: seconds per state, units, ideal units, readings received / expected."""

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


#: The per-device fields of a :class:`DeviceDay` (all but ``device_id``), in declaration order.
DEVICE_DAY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(DeviceDay) if f.name != "device_id")


@dataclass(frozen=True, slots=True)
class DaySummary:
    """A factory-day reduced to per-device totals; plain data, computed once per day."""

    factory_id: str
    day: date
    interval_s: int
    devices: tuple[DeviceDay, ...]

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
        }

    @classmethod
    def from_json_obj(cls, obj: Mapping[str, Any]) -> DaySummary:
        """The summary back from :meth:`to_json_obj`."""
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
                    )
                    for d in obj["devices"]
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


def summarize_day(factory: Factory, day: date, cols: ReadingColumns) -> DaySummary:
    """Reduce one UTC day of readings to a :class:`DaySummary` (vectorised).

    Each reading stands for its interval ``[ts, ts + interval_s)``, slotted from 00:00 UTC. A
    second reading of the same device in the same slot is ignored (the first in input order
    counts). Readings outside ``day`` are refused.
    """
    n_dev = len(factory.device_ids)
    slots = factory.slots_per_day
    start = day_start_ms(day)
    n = len(cols)
    arrays = (cols.device, cols.state, cols.good, cols.rework, cols.defect, cols.ideal_rate_uph)
    if any(a.shape != (n,) for a in arrays):
        raise ProfileError("reading columns differ in length", code="profile.columns")
    if n:
        if cols.ts_ms.min() < start or cols.ts_ms.max() >= start + DAY_MS:
            raise ProfileError(f"a reading falls outside {day.isoformat()} (UTC)", code="profile.outside_day")
        if cols.device.min() < 0 or cols.device.max() >= n_dev:
            raise ProfileError("device index out of range", code="profile.unknown_device")
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
    _, first = np.unique(key, return_index=True)
    if first.shape[0] != n:
        first.sort()  # keep input order of the survivors
        dev = cols.device[first]
        state = cols.state[first]
        good, rework, defect = cols.good[first], cols.rework[first], cols.defect[first]
        rate = cols.ideal_rate_uph[first]
    else:
        dev, state = cols.device, cols.state
        good, rework, defect, rate = cols.good, cols.rework, cols.defect, cols.ideal_rate_uph
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
        )
        for i in range(n_dev)
    )
    return DaySummary(factory_id=factory.factory_id, day=day, interval_s=factory.interval_s, devices=devices)
