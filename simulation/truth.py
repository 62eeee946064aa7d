"""What a simulation returns: the readings as measured, the planned orders and deliveries, and the
truth of every line and factory (what really happened), against which the analytics are scored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simulation._internal import FloatArray, IntArray, day_ms
from simulation.kinds import FactorySpec, KeySpec

__all__ = [
    "FactoryTruth",
    "LineTruth",
    "PlannedDelivery",
    "PlannedOrder",
    "SimReading",
    "StockCount",
    "World",
]


@dataclass(frozen=True, slots=True)
class SimReading:
    """A reading as the device measured it (unsigned); ``send_ms`` is when it leaves the device."""

    device_id: str
    seq: int
    ts_ms: int
    lot_id: str | None
    metrics: dict[str, float | int]
    send_ms: int


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    """An order the buyer places (at ``placed_ms``) for ``quantity`` units due by the end of ``due``."""

    order_ref: str
    quantity: int
    due: dt.date
    placed_ms: int


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """A line-day's lot shipped at ``shipped_ms`` and accepted by the buyer at ``accepted_ms``."""

    lot_id: str
    line_id: str
    day: dt.date
    quantity: int
    shipped_ms: int
    accepted_ms: int


@dataclass(frozen=True, slots=True)
class StockCount:
    """A daily stock count: the true stock at ``ts_ms`` and what the counter reported."""

    ts_ms: int
    raw: float
    finished: float
    raw_counted: int
    finished_counted: int


def _none_int() -> IntArray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class LineTruth:
    """What really happened on one line (every interval, reported or not)."""

    line_id: str
    names: tuple[str, ...]
    keys: tuple[KeySpec, ...]
    intercept: float
    state: IntArray
    units: IntArray
    good: IntArray
    rework: IntArray
    defect: IntArray
    probability: FloatArray
    observed: FloatArray
    true_values: FloatArray
    #: kWh drawn per interval (what the line's meter measures when it reports)
    energy_kwh: FloatArray = field(default_factory=lambda: np.zeros(0))
    #: the machine's commissioning day (days since 1970-01-01)
    commissioned_day: int = 0
    #: good units the machine reports per interval (``good`` unless the supplier inflates them)
    reported_good: IntArray = field(default_factory=_none_int)

    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)


@dataclass(frozen=True)
class FactoryTruth:
    """The truth of one factory over the period, for scoring the analytics."""

    spec: FactorySpec
    start: dt.date
    days: int
    lines: tuple[LineTruth, ...]
    orders: tuple[PlannedOrder, ...]
    deliveries: tuple[PlannedDelivery, ...]
    delivered_intervals: dict[str, int]
    expected_intervals: int
    stock_counts: tuple[StockCount, ...] = ()

    def daily(self, field_name: str) -> list[int]:
        """Per day, the summed ``units``/``good``/``rework``/``defect`` over the lines."""
        slots = 86_400 // self.spec.interval_s
        total = sum(np.asarray(getattr(line, field_name)) for line in self.lines)
        return [int(x) for x in np.asarray(total).reshape(self.days, slots).sum(axis=1)]

    def daily_sellable(self) -> list[int]:
        return [g + r for g, r in zip(self.daily("good"), self.daily("rework"), strict=True)]

    def figures(self) -> dict[str, Any]:
        """True profile figures, with the definitions of docs/analytics-profile.md."""
        iv = self.spec.interval_s
        slots = 86_400 // iv
        state = np.concatenate([line.state for line in self.lines])
        run = float(np.sum(state == 1)) * iv
        down = float(np.sum(state == 0)) * iv
        unplanned = float(np.sum(state == 2)) * iv
        units = float(sum(int(line.units.sum()) for line in self.lines))
        good = float(sum(int(line.good.sum()) for line in self.lines))
        rework = float(sum(int(line.rework.sum()) for line in self.lines))
        ideal = float(np.sum(state == 1)) * self.spec.kind.units_per_interval
        sellable = self.daily_sellable()
        availability = run / (run + unplanned)
        performance = units / ideal
        quality = (good + rework) / units
        coverage = sum(self.delivered_intervals[d] for d in self.spec.machine_ids()) / (
            self.expected_intervals * len(self.spec.machine_ids())
        )
        capacity = float(np.percentile(sellable, 90))
        filled = _match(self.orders, self.deliveries)
        start_ms, end_ms = day_ms(self.start), day_ms(self.start + dt.timedelta(days=self.days))
        delivered = float(sum(q for f in filled.values() for q, at in f if start_ms <= at < end_ms))
        backlog = [
            o.quantity - sum(q for q, at in filled[o.order_ref] if at < end_ms)
            for o in self.orders
            if o.placed_ms < end_ms
        ]
        backlog_units = float(sum(b for b in backlog if b > 0))
        # equipment: stops are runs of state 2 per line; availability per day
        stops = sum(
            int(np.sum(np.diff(np.concatenate([[0], (line.state == 2).astype(int)])) == 1))
            for line in self.lines
        )
        st = np.stack([line.state for line in self.lines]).reshape(len(self.lines), self.days, slots)
        run_d, unpl_d = (st == 1).sum(axis=(0, 2)), (st == 2).sum(axis=(0, 2))
        avail_daily = run_d / (run_d + unpl_d)
        end_day = (self.start - dt.date(1970, 1, 1)).days + self.days - 1
        # energy: production intervals (running, or units made)
        prod_kwh = prod_units = prod_good = 0.0
        reported = float(
            sum(int(line.reported_good.sum() + line.rework.sum() + line.defect.sum()) for line in self.lines)
        )
        for line in self.lines:
            prod = (line.state == 1) | (line.units > 0)
            prod_kwh += float(line.energy_kwh[prod].sum())
            prod_units += float(line.units[prod].sum())
            prod_good += float(line.good[prod].sum())
        last = self.stock_counts[-1] if self.stock_counts else None
        made_per_day = units / self.days
        delivered_per_day = delivered / self.days
        return {
            "capacity_units_per_day": capacity,
            "utilisation": run / (run + down + unplanned),
            "availability": availability,
            "performance": performance,
            "quality": quality,
            "oee": availability * performance * quality,
            "first_pass_yield": good / units,
            "coverage": coverage,
            "otif": _otif(self.orders, filled, self.start, self.days),
            "delivered_units": delivered,
            # energy: what the meters drew; per good unit over production intervals; the share of
            # the reported units that energy backs (1 unless the supplier inflates its output)
            "energy_kwh": float(sum(float(line.energy_kwh.sum()) for line in self.lines)),
            "energy_per_good_unit_kwh": prod_kwh / prod_good if prod_good else None,
            "energy_consistency": units / reported if reported else None,
            "energy_inconsistent": self.spec.inflate_output_from_day is not None
            and self.spec.inflate_output_from_day < self.days,
            # stock at the last count
            "raw_material_units": last.raw if last else None,
            "finished_goods_units": last.finished if last else None,
            "raw_material_cover_days": last.raw / made_per_day if last and made_per_day else None,
            "finished_goods_cover_days": last.finished / delivered_per_day
            if last and delivered_per_day
            else None,
            # backlog at the end of the period
            "backlog_units": backlog_units,
            "backlog_orders": sum(1 for b in backlog if b > 0),
            "backlog_coverage_days": backlog_units / capacity if capacity > 0 else None,
            # equipment
            "unplanned_stops": stops,
            "availability_daily": tuple(float(a) for a in avail_daily),
            "availability_trend_per_day": float(np.polyfit(np.arange(self.days), avail_daily, 1)[0])
            if self.days >= 3
            else None,
            "equipment_age_days": float(np.mean([end_day - line.commissioned_day for line in self.lines])),
            # camera: it estimates the true first-pass yield
            "camera_first_pass_yield": good / units,
        }


def _match(
    orders: tuple[PlannedOrder, ...], deliveries: tuple[PlannedDelivery, ...]
) -> dict[str, list[tuple[int, int]]]:
    """Per order, the (units, accepted_ms) it got: deliveries matched first-due-first."""
    filled: dict[str, list[tuple[int, int]]] = {o.order_ref: [] for o in orders}
    remaining = {o.order_ref: o.quantity for o in orders}
    by_due = sorted(orders, key=lambda o: (o.due, o.placed_ms, o.order_ref))
    for d in sorted(deliveries, key=lambda d: (d.accepted_ms, d.lot_id)):
        qty = d.quantity
        for o in by_due:
            if qty <= 0:
                break
            if remaining[o.order_ref] <= 0 or o.placed_ms > d.accepted_ms:
                continue
            take = min(qty, remaining[o.order_ref])
            remaining[o.order_ref] -= take
            filled[o.order_ref].append((take, d.accepted_ms))
            qty -= take
    return filled


def _otif(
    orders: tuple[PlannedOrder, ...], filled: dict[str, list[tuple[int, int]]], start: dt.date, days: int
) -> float | None:
    """OTIF of the orders due inside the period, deliveries matched first-due-first."""
    end = start + dt.timedelta(days=days)
    due = [o for o in orders if start <= o.due < end]
    if not due:
        return None
    ok = 0
    for o in due:
        deadline = day_ms(o.due + dt.timedelta(days=1))
        if sum(q for q, at in filled[o.order_ref] if at < deadline) >= o.quantity:
            ok += 1
    return ok / len(due)


@dataclass(frozen=True)
class World:
    """Several factories over one period."""

    start: dt.date
    days: int
    factories: tuple[FactoryTruth, ...]
    readings: dict[str, tuple[SimReading, ...]] = field(repr=False)

    def all_readings(self) -> Iterator[SimReading]:
        for rs in self.readings.values():
            yield from rs

    def send_order(self) -> list[SimReading]:
        """Every reading in the order the devices send them (by send time, then device, seq)."""
        return sorted(self.all_readings(), key=lambda r: (r.send_ms, r.device_id, r.seq))
