"""Factory profile over a period: capacity, OEE, first-pass yield, inventory days, OTIF, trend, coverage.

Pure computation, no I/O. Definitions: ``docs/analytics-profile.md`` (kept in step with this file).
:func:`build_profile` combines the period's day summaries (:mod:`analytics.profile`) with the
orders and deliveries. It never looks at a reading, so adding a day costs one
:func:`~analytics.profile.summarize_day` plus a cheap combination (:class:`ProfileAccumulator`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from analytics.profile import (
    DAY_MS,
    DEVICE_DAY_FIELDS,
    DaySummary,
    Delivery,
    Factory,
    FloatArray,
    Order,
    ProfileError,
    ReadingColumns,
    day_start_ms,
    summarize_day,
)

#: Coverage below this share of expected device-intervals marks a profile as thin.
DEFAULT_THIN_COVERAGE = 0.8
#: Capacity is this percentile of daily sellable output.
CAPACITY_PERCENTILE = 90.0


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


#: The per-device fields of a day summary that a profile adds up, in the matrix's field order: a
#: :class:`DeviceDay`'s but ``expected`` (the period's is counted from its days, devices and interval).
_FIELDS = tuple(f for f in DEVICE_DAY_FIELDS if f != "expected")
_GOOD, _REWORK, _READINGS = (_FIELDS.index(f) for f in ("good_units", "rework_units", "readings"))


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


def build_profile(
    factory: Factory,
    start: date,
    end: date,
    days: Iterable[DaySummary],
    orders: Sequence[Order] = (),
    deliveries: Sequence[Delivery] = (),
    *,
    thin_coverage: float = DEFAULT_THIN_COVERAGE,
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
    trend = float(np.polyfit(x, series, 1)[0]) if series.size >= 2 else None
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
    return FactoryProfile(
        factory_id=factory.factory_id,
        start=start,
        end=end,
        days_in_period=len(dates),
        days_with_data=int(have.sum()),
        capacity_units_per_day=capacity,
        utilisation=_ratio(run, run + off + unpl),
        availability=availability,
        performance=performance,
        quality=quality,
        oee=oee,
        first_pass_yield=_ratio(good, units),
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

    def add_day(self, day: date, cols: ReadingColumns) -> DaySummary:
        """Summarise ``day`` from its readings and store it; returns the summary."""
        s = summarize_day(self.factory, day, cols)
        self.add_summary(s)
        return s

    def profile(
        self,
        orders: Sequence[Order] = (),
        deliveries: Sequence[Delivery] = (),
        *,
        thin_coverage: float = DEFAULT_THIN_COVERAGE,
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
        )
