"""Factory profile over a period: capacity, OEE, first-pass yield, inventory days, OTIF, trend, coverage,
and the measured dimensions: energy per good unit and its consistency with output, measured stock and
days of cover, order backlog and its coverage by capacity, the equipment register with its
availability trend, camera-measured first-pass yield and per-lot inspection counts.

Pure computation, no I/O. Definitions: ``docs/analytics-profile.md`` (kept in step with this file).
:func:`build_profile` combines the period's day summaries (:mod:`analytics.profile`) with the
orders and deliveries. It never looks at a reading, so adding a day costs one
:func:`~analytics.profile.summarize_day` plus a cheap combination (:class:`ProfileAccumulator`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from analytics.profile import (
    DayInputs,
    DaySummary,
    Delivery,
    Order,
    ReadingColumns,
    summarize_day,
    summarize_inputs,
)
from analytics.profile_base import DAY_MS, STATE_UNPLANNED, Factory, FloatArray, ProfileError, day_start_ms

#: Coverage below this share of expected device-intervals marks a profile as thin.
DEFAULT_THIN_COVERAGE = 0.8
#: Capacity is this percentile of daily sellable output.
CAPACITY_PERCENTILE = 90.0
#: The energy reference is this percentile of the days' kWh per unit made (the factory's own rate).
ENERGY_REFERENCE_PERCENTILE = 75.0
#: Fewer days with matched energy and output than this: no energy reference, no consistency.
MIN_ENERGY_DAYS = 3
#: Energy consistency below this raises ``energy_inconsistent`` (output not backed by energy).
DEFAULT_ENERGY_FLAG_BELOW = 0.9
#: A day whose kWh per unit falls this far below the reference is an energy-suspect day.
ENERGY_SUSPECT_DROP = 0.15
#: Fewer days with an availability than this: no availability trend.
MIN_TREND_DAYS = 3


# --- the profile ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FactoryProfile:
    """One factory over one period. ``None`` where a metric is undefined (see the docs)."""

    factory_id: str
    start: date
    end: date  # inclusive
    days_in_period: int
    days_with_data: int
    capacity_units_per_day: float | None
    utilisation: float | None
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    first_pass_yield: float | None
    sellable_units: float
    delivered_units: float
    inventory_days: float | None
    orders_due: int
    orders_otif: int
    otif: float | None
    trend_units_per_day: float | None
    volatility: float | None
    readings: int
    readings_expected: int
    coverage: float
    thin: bool
    device_coverage: dict[str, float] = field(default_factory=dict)
    daily_output: tuple[float, ...] = ()
    # --- energy (kWh meters; None when the factory has no meter or the data is too thin)
    energy_kwh: float | None = None
    energy_readings: int = 0
    energy_readings_expected: int = 0
    energy_coverage: float | None = None
    energy_days: int = 0
    energy_per_good_unit_kwh: float | None = None
    energy_per_unit_daily: tuple[float | None, ...] = ()
    energy_reference_kwh_per_unit: float | None = None
    energy_consistency: float | None = None
    energy_suspect_days: int = 0
    energy_inconsistent: bool | None = None
    # --- measured inventory (signed stock counts)
    stock_counts: int = 0
    stock_as_of: str | None = None  # ISO 8601 UTC, like start and end
    raw_material_units: float | None = None
    finished_goods_units: float | None = None
    raw_material_cover_days: float | None = None
    finished_goods_cover_days: float | None = None
    # --- order backlog at the end of the period (on-chain orders)
    backlog_orders: int = 0
    backlog_units: float = 0.0
    backlog_overdue_units: float = 0.0
    backlog_coverage_days: float | None = None
    # --- equipment register (the machines' signed state readings)
    equipment: dict[str, dict[str, Any]] = field(default_factory=dict)
    unplanned_stops: int = 0
    equipment_age_days: float | None = None
    availability_daily: tuple[float | None, ...] = ()
    availability_trend_per_day: float | None = None
    # --- camera inspection
    camera_readings: int = 0
    camera_inspected: float = 0.0
    camera_defects: float = 0.0
    camera_first_pass_yield: float | None = None
    camera_fpy_gap: float | None = None
    camera_lots: dict[str, dict[str, float]] = field(default_factory=dict)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def period_days(start: date, end: date) -> list[date]:
    """Every date from ``start`` to ``end`` inclusive."""
    if end < start:
        raise ProfileError(f"period ends ({end}) before it starts ({start})", code="profile.period")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def month_period(year: int, month: int) -> tuple[date, date]:
    """First and last day of a calendar month."""
    first = date(year, month, 1)
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return first, nxt - timedelta(days=1)


#: The per-device fields of a day summary that a profile adds up, in the matrix's field order (the
#: period's ``expected`` is counted from its days, devices and interval).
_FIELDS = (
    "running_s",
    "planned_down_s",
    "unplanned_s",
    "good_units",
    "rework_units",
    "defect_units",
    "ideal_units",
    "readings",
)
_RUN, _UNPL, _GOOD, _REWORK, _DEFECT, _READINGS = (
    _FIELDS.index(f)
    for f in ("running_s", "unplanned_s", "good_units", "rework_units", "defect_units", "readings")
)


def _day_matrix(
    factory: Factory, start: date, end: date, dates: Sequence[date], days: Iterable[DaySummary]
) -> tuple[dict[date, DaySummary], FloatArray]:
    """The period's summaries by date and their days x devices x :data:`_FIELDS` matrix."""
    by_day: dict[date, DaySummary] = {}
    for s in days:
        if s.factory_id != factory.factory_id or s.interval_s != factory.interval_s:
            raise ProfileError(
                f"summary of {s.day} is for another factory or interval", code="profile.mismatch"
            )
        if start <= s.day <= end:
            by_day[s.day] = s
    n_dev = len(factory.device_ids)
    # matrix: days x devices x fields (small: 31 x devices x 8)
    mat = np.zeros((len(dates), n_dev, len(_FIELDS)), dtype=np.float64)
    pos = {d: i for i, d in enumerate(factory.device_ids)}
    for di, d in enumerate(dates):
        summary = by_day.get(d)
        if summary is None:
            continue
        for dd in summary.devices:
            j = pos.get(dd.device_id)
            if j is None:
                raise ProfileError(
                    f"summary of {d} has unknown device {dd.device_id!r}", code="profile.mismatch"
                )
            mat[di, j] = [getattr(dd, f) for f in _FIELDS]
    return by_day, mat


def _otif(start: date, end: date, orders: Sequence[Order], deliveries: Sequence[Delivery]) -> tuple[int, int]:
    """(orders due in the period, those delivered in full by the end of their due day)."""
    due = [o for o in orders if start <= o.due <= end]
    by_order: dict[str, list[Delivery]] = {}
    for dl in deliveries:
        by_order.setdefault(dl.order_id, []).append(dl)
    ok = 0
    for o in due:
        deadline = day_start_ms(o.due) + DAY_MS
        got = sum(dl.quantity for dl in by_order.get(o.order_id, ()) if dl.delivered_ms < deadline)
        ok += got >= o.quantity
    return len(due), ok


def iso_utc(ms: int) -> str:
    """Unix ms as ISO 8601 UTC text to the second (``2026-03-08T06:00:00Z``): a profile's times are
    text, like its dates."""
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _slope(x: FloatArray, y: FloatArray) -> float:
    return float(np.polyfit(x, y, 1)[0])


def _energy(
    factory: Factory, dates: Sequence[date], by_day: dict[date, DaySummary], flag_below: float
) -> dict[str, Any]:
    """The energy figures (docs/analytics-profile.md, section 4)."""
    if not factory.meters:
        return {}
    n_days = len(dates)
    kwh = np.zeros(n_days)
    m_kwh = np.zeros(n_days)
    m_units = np.zeros(n_days)
    m_good = np.zeros(n_days)
    readings = 0
    for di, d in enumerate(dates):
        s = by_day.get(d)
        for m in s.meters if s is not None else ():
            kwh[di] += m.kwh
            m_kwh[di] += m.matched_kwh
            m_units[di] += m.matched_units
            m_good[di] += m.matched_good
            readings += m.readings
    expected = n_days * len(factory.meters) * factory.slots_per_day
    have = m_units > 0
    per_unit = np.where(have, m_kwh / np.where(have, m_units, 1.0), np.nan)
    reference = consistency = inconsistent = None
    suspect = 0
    if int(have.sum()) >= MIN_ENERGY_DAYS:
        reference = float(np.percentile(per_unit[have], ENERGY_REFERENCE_PERCENTILE))
        if reference > 0:
            backed = np.minimum(m_units[have], m_kwh[have] / reference)
            consistency = float(backed.sum() / m_units[have].sum())
            suspect = int((per_unit[have] < (1 - ENERGY_SUSPECT_DROP) * reference).sum())
        else:  # output on every day, no energy at all behind it
            consistency, suspect = 0.0, int(have.sum())
        inconsistent = consistency < flag_below
    good = float(m_good.sum())
    return {
        "energy_kwh": float(kwh.sum()),
        "energy_readings": readings,
        "energy_readings_expected": expected,
        "energy_coverage": readings / expected,
        "energy_days": int(have.sum()),
        "energy_per_good_unit_kwh": float(m_kwh.sum()) / good if good > 0 else None,
        "energy_per_unit_daily": tuple(None if np.isnan(v) else float(v) for v in per_unit),
        "energy_reference_kwh_per_unit": reference,
        "energy_consistency": consistency,
        "energy_suspect_days": suspect,
        "energy_inconsistent": inconsistent,
    }


def _stock(
    factory: Factory,
    dates: Sequence[date],
    by_day: dict[date, DaySummary],
    made_per_day: float | None,
    delivered_per_day: float,
) -> dict[str, Any]:
    """The measured inventory: each counter's latest count of the period, summed over counters."""
    if not factory.stock_counters:
        return {}
    latest: dict[str, tuple[int, float | None, float | None]] = {}
    counts = 0
    for d in dates:
        s = by_day.get(d)
        for k in s.stock if s is not None else ():
            counts += k.counts
            if k.last_ms is not None and (k.counter_id not in latest or k.last_ms >= latest[k.counter_id][0]):
                latest[k.counter_id] = (k.last_ms, k.raw, k.finished)
    if not latest:
        return {"stock_counts": 0}
    raws = [r for _, r, _ in latest.values()]
    fins = [f for _, _, f in latest.values()]
    raw = float(sum(r for r in raws if r is not None)) if all(r is not None for r in raws) else None
    fin = float(sum(f for f in fins if f is not None)) if all(f is not None for f in fins) else None
    return {
        "stock_counts": counts,
        "stock_as_of": iso_utc(min(t for t, _, _ in latest.values())),
        "raw_material_units": raw,
        "finished_goods_units": fin,
        "raw_material_cover_days": raw / made_per_day if raw is not None and made_per_day else None,
        "finished_goods_cover_days": fin / delivered_per_day
        if fin is not None and delivered_per_day > 0
        else None,
    }


def _backlog(
    end: date, orders: Sequence[Order], deliveries: Sequence[Delivery], capacity: float | None
) -> dict[str, Any]:
    """Orders placed by the end of the period still short of their quantity then (deliveries before
    00:00 UTC after ``end``), and the days of capacity they take."""
    cut = day_start_ms(end) + DAY_MS
    got: dict[str, float] = {}
    for dl in deliveries:
        if dl.delivered_ms < cut:
            got[dl.order_id] = got.get(dl.order_id, 0.0) + dl.quantity
    n, units, overdue = 0, 0.0, 0.0
    for o in orders:
        if o.placed_ms is not None and o.placed_ms >= cut:
            continue
        left = o.quantity - got.get(o.order_id, 0.0)
        if left > 0:
            n += 1
            units += left
            overdue += left if o.due <= end else 0.0
    return {
        "backlog_orders": n,
        "backlog_units": units,
        "backlog_overdue_units": overdue,
        "backlog_coverage_days": units / capacity if capacity is not None and capacity > 0 else None,
    }


def _equipment(
    factory: Factory, end: date, dates: Sequence[date], by_day: dict[date, DaySummary], mat: FloatArray
) -> dict[str, Any]:
    """The equipment register (one entry per machine) and the daily availability with its trend."""
    end_day = (end - date(1970, 1, 1)).days
    register: dict[str, dict[str, Any]] = {}
    total_stops = 0
    ages: list[float] = []
    per_day = [{x.device_id: x for x in by_day[d].devices} if d in by_day else {} for d in dates]
    for j, dev in enumerate(factory.device_ids):
        stops, prev_last = 0, None
        state, last_ms, commissioned = None, None, None
        for day_devices in per_day:
            dd = day_devices.get(dev)
            if dd is None or dd.readings == 0:
                continue  # a silent day: the stop in progress, if any, is still the same stop
            stops += dd.stop_starts
            if dd.first_state == STATE_UNPLANNED and prev_last == STATE_UNPLANNED:
                stops -= 1  # the day begins inside the stop the day before ended in
            prev_last = dd.last_state
            state, last_ms = dd.last_state, dd.last_ms
            if dd.commissioned_day is not None:
                commissioned = dd.commissioned_day
        run, unpl = float(mat[:, j, _RUN].sum()), float(mat[:, j, _UNPL].sum())
        age = float(end_day - commissioned) if commissioned is not None else None
        if age is not None:
            ages.append(age)
        total_stops += stops
        register[dev] = {
            "state": state,
            "last_reading": iso_utc(last_ms) if last_ms is not None else None,
            "age_days": age,
            "running_s": run,
            "unplanned_s": unpl,
            "unplanned_stops": stops,
            "availability": _ratio(run, run + unpl),
        }
    run_d, unpl_d = mat[:, :, _RUN].sum(axis=1), mat[:, :, _UNPL].sum(axis=1)
    planned = run_d + unpl_d
    daily = np.where(planned > 0, run_d / np.where(planned > 0, planned, 1.0), np.nan)
    have = np.isfinite(daily)
    trend = (
        _slope(np.arange(len(dates), dtype=np.float64)[have], daily[have])
        if int(have.sum()) >= MIN_TREND_DAYS
        else None
    )
    return {
        "equipment": register,
        "unplanned_stops": total_stops,
        "equipment_age_days": float(np.mean(ages)) if ages else None,
        "availability_daily": tuple(None if np.isnan(v) else float(v) for v in daily),
        "availability_trend_per_day": trend,
    }


def _camera(
    factory: Factory, dates: Sequence[date], by_day: dict[date, DaySummary], fpy: float | None
) -> dict[str, Any]:
    """Camera-measured first-pass yield, its gap to the reported one, and per-lot inspection counts."""
    if not factory.cameras:
        return {}
    readings, inspected, defects = 0, 0.0, 0.0
    lots: dict[str, list[float]] = {}
    for d in dates:
        s = by_day.get(d)
        for c in s.cameras if s is not None else ():
            readings += c.readings
            inspected += c.inspected
            defects += c.defects
            for lot_id, a, b in c.lots:
                acc = lots.setdefault(lot_id, [0.0, 0.0])
                acc[0] += a
                acc[1] += b
    cam_fpy = 1.0 - defects / inspected if inspected > 0 else None
    return {
        "camera_readings": readings,
        "camera_inspected": inspected,
        "camera_defects": defects,
        "camera_first_pass_yield": cam_fpy,
        "camera_fpy_gap": fpy - cam_fpy if fpy is not None and cam_fpy is not None else None,
        "camera_lots": {
            k: {"inspected": a, "defects": b, "defect_rate": b / a if a > 0 else None}
            for k, (a, b) in sorted(lots.items())
        },
    }


def build_profile(
    factory: Factory,
    start: date,
    end: date,
    days: Iterable[DaySummary],
    orders: Sequence[Order] = (),
    deliveries: Sequence[Delivery] = (),
    *,
    thin_coverage: float = DEFAULT_THIN_COVERAGE,
    energy_flag_below: float = DEFAULT_ENERGY_FLAG_BELOW,
) -> FactoryProfile:
    """Combine day summaries (a day missing counts as silent) with orders and deliveries."""
    dates = period_days(start, end)
    by_day, mat = _day_matrix(factory, start, end, dates, days)
    tot = mat.sum(axis=(0, 1))
    run, off, unpl, good, rework, defect, ideal, readings = (float(x) for x in tot)
    expected = len(dates) * len(factory.device_ids) * factory.slots_per_day
    units = good + rework + defect
    sellable = good + rework

    have = np.array([d in by_day and by_day[d].total("readings") > 0 for d in dates])
    daily = (mat[:, :, _REWORK] + mat[:, :, _GOOD]).sum(axis=1)  # good + rework, per day
    series = daily[have]
    x = np.arange(len(dates), dtype=np.float64)[have]

    capacity = float(np.percentile(series, CAPACITY_PERCENTILE)) if series.size else None
    trend = _slope(x, series) if series.size >= 2 else None
    mean = float(series.mean()) if series.size else 0.0
    volatility = float(series.std()) / mean if mean > 0 else None

    availability = _ratio(run, run + unpl)
    performance = _ratio(units, ideal)
    quality = _ratio(sellable, units)
    oee = (
        availability * performance * quality
        if availability is not None and performance is not None and quality is not None
        else None
    )

    p_start, p_end = day_start_ms(start), day_start_ms(end) + DAY_MS
    delivered = float(sum(d.quantity for d in deliveries if p_start <= d.delivered_ms < p_end))
    avg_daily_delivered = delivered / len(dates)
    inventory_days = (sellable - delivered) / avg_daily_delivered if avg_daily_delivered > 0 else None

    due, ok = _otif(start, end, orders, deliveries)
    coverage = readings / expected
    dev_read = mat[:, :, _READINGS].sum(axis=0)
    fpy = _ratio(good, units)
    data_days = int(have.sum())
    made_per_day = units / data_days if data_days and units > 0 else None
    return FactoryProfile(
        factory_id=factory.factory_id,
        start=start,
        end=end,
        days_in_period=len(dates),
        days_with_data=data_days,
        capacity_units_per_day=capacity,
        utilisation=_ratio(run, run + off + unpl),
        availability=availability,
        performance=performance,
        quality=quality,
        oee=oee,
        first_pass_yield=fpy,
        sellable_units=sellable,
        delivered_units=delivered,
        inventory_days=inventory_days,
        orders_due=due,
        orders_otif=ok,
        otif=_ratio(ok, due),
        trend_units_per_day=trend,
        volatility=volatility,
        readings=int(readings),
        readings_expected=expected,
        coverage=coverage,
        thin=coverage < thin_coverage,
        device_coverage={
            d: float(dev_read[j]) / (len(dates) * factory.slots_per_day)
            for j, d in enumerate(factory.device_ids)
        },
        daily_output=tuple(float(v) for v in daily),
        **_energy(factory, dates, by_day, energy_flag_below),
        **_stock(factory, dates, by_day, made_per_day, avg_daily_delivered),
        **_backlog(end, orders, deliveries, capacity),
        **_equipment(factory, end, dates, by_day, mat),
        **_camera(factory, dates, by_day, fpy),
    )


class ProfileAccumulator:
    """Keeps one summary per day; adding a day summarises that day only (incremental)."""

    def __init__(self, factory: Factory, start: date, end: date) -> None:
        period_days(start, end)
        self.factory, self.start, self.end = factory, start, end
        self._days: dict[date, DaySummary] = {}

    @property
    def days(self) -> dict[date, DaySummary]:
        """The stored summaries by date (a copy)."""
        return dict(self._days)

    def add_summary(self, summary: DaySummary) -> None:
        """Store (or replace) a day's summary."""
        if not self.start <= summary.day <= self.end:
            raise ProfileError(f"{summary.day} is outside the period", code="profile.period")
        self._days[summary.day] = summary

    def add_day(self, day: date, cols: ReadingColumns | DayInputs) -> DaySummary:
        """Summarise ``day`` from its readings (the machines' columns, or every role's) and store it."""
        s = (
            summarize_inputs(self.factory, day, cols)
            if isinstance(cols, DayInputs)
            else summarize_day(self.factory, day, cols)
        )
        self.add_summary(s)
        return s

    def profile(
        self,
        orders: Sequence[Order] = (),
        deliveries: Sequence[Delivery] = (),
        *,
        thin_coverage: float = DEFAULT_THIN_COVERAGE,
        energy_flag_below: float = DEFAULT_ENERGY_FLAG_BELOW,
    ) -> FactoryProfile:
        """The period's profile from the stored summaries."""
        return build_profile(
            self.factory,
            self.start,
            self.end,
            self._days.values(),
            orders,
            deliveries,
            thin_coverage=thin_coverage,
            energy_flag_below=energy_flag_below,
        )
