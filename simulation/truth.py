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
        return {
            "capacity_units_per_day": float(np.percentile(sellable, 90)),
            "utilisation": run / (run + down + unplanned),
            "availability": availability,
            "performance": performance,
            "quality": quality,
            "oee": availability * performance * quality,
            "first_pass_yield": good / units,
            "coverage": coverage,
            "otif": _otif(self.orders, self.deliveries, self.start, self.days),
        }


def _otif(
    orders: tuple[PlannedOrder, ...], deliveries: tuple[PlannedDelivery, ...], start: dt.date, days: int
) -> float | None:
    """OTIF of the orders due inside the period, deliveries matched first-due-first."""
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
