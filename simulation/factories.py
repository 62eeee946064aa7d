"""A simulator of small factories whose devices sign readings, with the truth planted.

The analytics (issue 5) are scored against what is planted here, so every law is written down
and every draw comes from one ``numpy.random.Generator`` seeded per factory: the same
:class:`FactorySpec` and period always give the same world.

This docstring holds every law. The code: :mod:`simulation.lines` (a line's planted truth),
:mod:`simulation.device_readings` (what its devices report) and, here, :func:`simulate_factory`
(the factory's lines, orders and deliveries) and :func:`simulate_world`.

**The factory.** One factory (a supplier party) runs ``lines`` production lines of one
:class:`LineKind`. Each line has one *line controller* device and ``STATIONS`` *process station*
devices. Every device measures once per interval of ``interval_s`` seconds (slot ``t``).

* The controller reports the machine ``state`` over the interval (``0`` planned down, ``1``
  running, ``2`` unplanned stop), the units made in it graded ``good_units`` (A grade, right
  first time), ``rework_units`` and ``defect_units``, and the nameplate ``ideal_rate_uph``.
  These are the inputs of the factory profile (docs/analytics-profile.md).
* Station ``k`` reports its share of the line's ``n_parameters`` (>= 200) process parameters,
  at most 29 per reading (Reading v1 allows 32 metrics). They are the yield model's inputs.
* A *QC* device per line tests a sample of the output every two hours
  (:func:`simulation.device_readings.qc_readings`); its readings name the lot of their line and day
  (``LOT-<line>-<yyyymmdd>``), the lot's evidence.

**Machine states** (per line). Planned maintenance every day from ``maintenance_hour`` for one
hour (state 0). Otherwise an unplanned stop starts in an interval with probability ``lambda(t)``
and lasts a geometric number of intervals with mean ``repair_intervals`` (state 2). A healthy
factory keeps ``lambda = failure_rate``; a *deteriorating* one rises linearly to
``failure_rate * deterioration_failure_factor`` over the period.

**Output.** A running interval makes ``Poisson(units_per_interval * speed(t))`` units (a line of one
batch per interval: one batch with probability ``speed(t)``), where the
speed factor is ``speed`` (healthy) or falls linearly to ``speed - deterioration_speed_loss``.
The nameplate is ``units_per_interval`` per interval, so performance is about ``speed``.

**Yield** (the planted law, as in :mod:`analytics.yield_sim`). The line's process values
``x_true`` are drawn per interval: key parameters independent, the other parameters in
correlated groups (equipment zones). Each planted key parameter ``j`` has an optimum ``c_j``
(offset from the process mean, so the line does not run at its optimum) and a width ``w_j``;
the true A-grade probability of every unit of the interval is
``p = sigmoid(b0 - sum_j a_j ((x_true_j - c_j) / w_j)^2)``, ``b0`` tuned to the kind's target
yield. A deteriorating factory's key parameters drift away from their optima (up to
``deterioration_process_drift`` spreads over the period), so its yield falls. Of the ``n`` units
of an interval ``good ~ Binomial(n, p)``; of the others ``rework ~ Binomial(n - good,
rework_share)`` and the rest are defects. The stations report ``x_obs = x_true + noise + drift``
(white noise and a slow linear sensor drift per parameter), never ``x_true``.

**Data delivery.** Each device has outage windows (``outages_per_device_week`` per week, 1 to 6
hours each): in a *store-and-forward* outage the device keeps measuring and sends the buffered
readings when the window ends (late readings, in order of their ``seq``); in a *power* outage it
measures nothing (those intervals are missing for good; production goes on and is in the truth
but not in the ledger). ``power_share`` of the outages are power outages.

**Energy** (a kWh meter per line, one reading per interval): an interval draws
``(base_kw h + kwh_per_unit units)`` running, ``standby_kw h`` in an unplanned stop and ``off_kw h``
planned down (``h`` the interval in hours), times ``1 + energy_noise N(0, 1)``. The meter has its own
outages. A supplier may inflate its machines' reported good units (``inflate_output_from_day``,
``inflate_output_factor``): the meter, the camera and the lots keep the true production, which is
what the profile's energy consistency exists to catch.

**Camera** (one per line, one reading per ``QC_EVERY_S`` window, carrying the window's lot): units
inspected = units made in the window; rejected = ``Binomial(rework + defect, camera_detect) +
Binomial(good, camera_false_reject)``. The camera has its own power outages (a window whose last
interval falls in one is not reported).

**Stock** (one counter per factory, a count every day at ``stock_count_hour``): finished goods start
at ``finished_stock_days`` of nominal sellable output, grow by the sellable output and fall by the
lots shipped; raw material (in units of output it makes) starts at ``raw_stock_days`` of nominal
output, falls by every unit made and is replenished every ``raw_delivery_every_days`` days at noon
by that many days of nominal output. A count is the true stock times ``1 + stock_count_error N(0, 1)``.

**Equipment**: each line's machine was commissioned 1 to 12 years before the period (uniform); its
controller reports it as ``commissioned_day`` (days since 1970-01-01) on every reading.

The measured dimensions draw from their own generators (seeded from the spec's seed), so adding them
left every earlier draw, and so every earlier planted figure, unchanged.

**Orders and deliveries.** The buying core enterprise orders every day ``d`` a quantity due by the
end of day ``d + order_lead_days``: ``round(nominal_daily * order_fill * U(0.9, 1.0))`` where
``nominal_daily`` is the output the line would sustain when healthy. The factory ships each
line's sellable output (good + rework) of a day as that day's lot at ``ship_hour`` (lots are
opened and transferred on chain) and the buyer accepts it ``accept_delay_h`` hours later.
Deliveries are matched to the buyer's open orders first-due-first (docs/analytics-profile.md);
the truth applies the same rule to the true deliveries.
"""

import datetime as dt

import numpy as np

from simulation._internal import day_ms
from simulation.device_readings import (
    camera_readings,
    device_readings,
    meter_readings,
    qc_readings,
    stock_counts,
)
from simulation.kinds import FactorySpec, SimulatorError
from simulation.lines import line_truth, measured_line
from simulation.truth import (
    FactoryTruth,
    LineTruth,
    PlannedDelivery,
    PlannedOrder,
    SimReading,
    World,
)

__all__ = [
    "simulate_factory",
    "simulate_world",
]


def simulate_factory(spec: FactorySpec, start: dt.date, days: int) -> tuple[FactoryTruth, list[SimReading]]:
    """Simulate one factory from 00:00 UTC of ``start`` for ``days`` days."""
    if not 1 <= days <= 62:
        raise SimulatorError(f"days must be 1..62, got {days}")
    rng = np.random.default_rng(spec.seed)
    slots = 86_400 // spec.interval_s
    n = slots * days
    t0 = day_ms(start)

    readings: list[SimReading] = []
    lines: list[LineTruth] = []
    delivered: dict[str, int] = {}
    deliveries: list[PlannedDelivery] = []

    for li, line_id in enumerate(spec.line_ids()):
        lt = line_truth(spec, line_id, rng, n)
        aux = np.random.default_rng([spec.seed, 16, li])  # the measured dimensions' own draws
        lt = measured_line(spec, lt, aux, start, days)
        lines.append(lt)
        lots = [
            f"LOT-{line_id}-{(start + dt.timedelta(days=int(d))).strftime('%Y%m%d')}" for d in range(days)
        ]
        readings.extend(device_readings(spec, lt, rng, line_id, days, t0, delivered))
        readings.extend(qc_readings(spec, lt, rng, line_id, lots, t0, slots))
        readings.extend(meter_readings(spec, lt, aux, line_id, days, t0, delivered))
        readings.extend(camera_readings(spec, lt, aux, line_id, lots, days, t0, delivered))
        deliveries.extend(_deliveries(spec, lt, line_id, lots, start, days))
    orders = _orders(spec, rng, start, days)
    counts = stock_counts(spec, lines, deliveries, np.random.default_rng([spec.seed, 16, 99]), t0, days)
    readings.extend(
        SimReading(
            device_id=spec.stock_counter_id(),
            seq=i + 1,
            ts_ms=c.ts_ms,
            lot_id=None,
            metrics={"raw_material_units": c.raw_counted, "finished_goods_units": c.finished_counted},
            send_ms=c.ts_ms + 60_000,
        )
        for i, c in enumerate(counts)
    )
    delivered[spec.stock_counter_id()] = len(counts)
    truth = FactoryTruth(
        spec=spec,
        start=start,
        days=days,
        lines=tuple(lines),
        orders=tuple(orders),
        deliveries=tuple(deliveries),
        delivered_intervals=delivered,
        expected_intervals=n,
        stock_counts=tuple(counts),
    )
    return truth, readings


def _deliveries(
    spec: FactorySpec, lt: LineTruth, line_id: str, lots: list[str], start: dt.date, days: int
) -> list[PlannedDelivery]:
    """Each day's sellable output of a line shipped as that day's lot at ``ship_hour``."""
    slots = 86_400 // spec.interval_s
    deliveries: list[PlannedDelivery] = []
    sellable = (lt.good + lt.rework).reshape(days, slots).sum(axis=1)
    for d in range(days):
        day = start + dt.timedelta(days=d)
        shipped = day_ms(day) + spec.ship_hour * 3_600_000
        deliveries.append(
            PlannedDelivery(
                lot_id=lots[d],
                line_id=line_id,
                day=day,
                quantity=int(sellable[d]),
                shipped_ms=shipped,
                accepted_ms=shipped + spec.accept_delay_h * 3_600_000,
            )
        )
    return deliveries


def _orders(spec: FactorySpec, rng: np.random.Generator, start: dt.date, days: int) -> list[PlannedOrder]:
    """The buyer's daily orders, due ``order_lead_days`` later (the module docstring's law)."""
    orders: list[PlannedOrder] = []
    nominal = spec.nominal_daily()
    for d in range(days):
        day = start + dt.timedelta(days=d)
        qty = round(float(nominal * spec.order_fill * float(rng.uniform(0.9, 1.0))))
        orders.append(
            PlannedOrder(
                order_ref=f"PO-{spec.factory_id}-{day.strftime('%Y%m%d')}",
                quantity=max(1, qty),
                due=day + dt.timedelta(days=spec.order_lead_days),
                placed_ms=day_ms(day) + 8 * 3_600_000,
            )
        )
    return orders


def simulate_world(specs: list[FactorySpec], start: dt.date, days: int) -> World:
    """Simulate several factories over the same period."""
    ids = [s.factory_id for s in specs]
    if len(set(ids)) != len(ids):
        raise SimulatorError("factory ids must be distinct")
    truths: list[FactoryTruth] = []
    readings: dict[str, tuple[SimReading, ...]] = {}
    for spec in specs:
        truth, rs = simulate_factory(spec, start, days)
        truths.append(truth)
        readings[spec.factory_id] = tuple(rs)
    return World(start=start, days=days, factories=tuple(truths), readings=readings)
