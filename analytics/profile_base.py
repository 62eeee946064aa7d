"""The ground the factory-profile modules share: the Reading v1 metric names the profile reads, the
machine states, the UTC day, :class:`Factory` (the factory being profiled) and :class:`ProfileError`.

:mod:`analytics.profile` (machines and the day summary) and :mod:`analytics.profile_sources` (kWh
meters, inspection cameras, stock counters) both stand on this module; it imports neither.
Definitions: ``docs/analytics-profile.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt

from supet_base.errors import SupetError

__all__ = [
    "DAY_MS",
    "DAY_S",
    "METRIC_CAM_DEFECTS",
    "METRIC_CAM_INSPECTED",
    "METRIC_COMMISSIONED",
    "METRIC_DEFECT",
    "METRIC_FINISHED",
    "METRIC_GOOD",
    "METRIC_IDEAL_RATE",
    "METRIC_KWH",
    "METRIC_RAW",
    "METRIC_REWORK",
    "METRIC_STATE",
    "STATE_OFF",
    "STATE_RUNNING",
    "STATE_UNPLANNED",
    "Factory",
    "FloatArray",
    "IntArray",
    "ProfileError",
    "check_day",
    "day_start_ms",
    "float_array",
    "int_array",
]

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


def day_start_ms(day: date) -> int:
    """Unix ms of 00:00 UTC on ``day``."""
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1000


def check_day(ts_ms: IntArray, index: IntArray, n: int, start: int, day: date, what: str) -> None:
    """Refuse a device role's readings that fall outside ``day`` (starting at Unix ms ``start``) or
    whose device index is not below ``n``."""
    if not ts_ms.shape[0]:
        return
    if ts_ms.min() < start or ts_ms.max() >= start + DAY_MS:
        raise ProfileError(
            f"a {what} reading falls outside {day.isoformat()} (UTC)", code="profile.outside_day"
        )
    if index.min() < 0 or index.max() >= n:
        raise ProfileError(f"{what} index out of range", code="profile.unknown_device")


def float_array(values: Iterable[float] = ()) -> FloatArray:
    """``values`` as a float64 array."""
    return np.asarray(list(values), dtype=np.float64)


def int_array(values: Iterable[int] = ()) -> IntArray:
    """``values`` as an int64 array."""
    return np.asarray(list(values), dtype=np.int64)
