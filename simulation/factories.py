"""A simulator of small factories whose devices sign readings, with the truth planted.

The analytics (issue 5) are scored against what is planted here, so every law is written down
and every draw comes from one ``numpy.random.Generator`` seeded per factory: the same
:class:`FactorySpec` and period always give the same world.

**The factory.** One factory (a supplier party) runs ``lines`` production lines of one
:class:`LineKind`. Each line has one *line controller* device and ``STATIONS`` *process station*
devices. Every device measures once per interval of ``interval_s`` seconds (slot ``t``).

* The controller reports the machine ``state`` over the interval (``0`` planned down, ``1``
  running, ``2`` unplanned stop), the units made in it graded ``good_units`` (A grade, right
  first time), ``rework_units`` and ``defect_units``, and the nameplate ``ideal_rate_uph``.
  These are the inputs of the factory profile (docs/analytics-profile.md).
* Station ``k`` reports its share of the line's ``n_parameters`` (>= 200) process parameters,
  at most 29 per reading (Reading v1 allows 32 metrics). They are the yield model's inputs.
* A *QC* device per line tests a sample of the output every two hours (:func:`_qc_readings`);
  its readings name the lot of their line and day (``LOT-<line>-<yyyymmdd>``), the lot's evidence.

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
from dataclasses import replace
from typing import Final

import numpy as np
import numpy.typing as npt

from simulation._internal import DAY_MS, FloatArray, IntArray, day_ms
from simulation.kinds import STATIONS, FactorySpec, SimulatorError
from simulation.truth import (
    FactoryTruth,
    LineTruth,
    PlannedDelivery,
    PlannedOrder,
    SimReading,
    StockCount,
    World,
)

__all__ = [
    "simulate_factory",
    "simulate_world",
]


def _tune_intercept(penalty: FloatArray, target: float) -> float:
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if float(np.mean(1 / (1 + np.exp(-(mid - penalty))))) < target:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 6)


def _line(spec: FactorySpec, line_id: str, rng: np.random.Generator, n: int) -> LineTruth:
    """One line over ``n`` intervals: process values, yield probability, states, output, sensors."""
    kind = spec.kind
    p = kind.n_parameters
    frac = np.arange(n) / max(n - 1, 1)  # 0 .. 1 over the period
    deteriorating = spec.health == "deteriorating"

    names, key_cols, spread, true_values = _process_values(spec, rng, n, frac)
    intercept, probability = _probability(spec, true_values, key_cols, frac)
    state = _machine_states(spec, rng, n, frac)
    speed = spec.speed - (spec.deterioration_speed_loss * frac if deteriorating else 0.0)
    rate = np.broadcast_to(np.asarray(speed, dtype=np.float64), (n,))
    if kind.units_per_interval == 1.0:
        made = rng.binomial(1, np.clip(rate, 0.0, 1.0))  # a batch per interval, or none when slow
    else:
        made = rng.poisson(kind.units_per_interval * rate)
    units = np.where(state == 1, made, 0).astype(np.int64)
    good = rng.binomial(units, probability).astype(np.int64)
    rework = rng.binomial(units - good, kind.rework_share).astype(np.int64)
    defect = units - good - rework

    drift_rate = rng.uniform(-spec.sensor_drift, spec.sensor_drift, size=p) * spread
    observed = (
        true_values + spec.sensor_noise * spread * rng.standard_normal((n, p)) + frac[:, None] * drift_rate
    )
    return LineTruth(
        line_id=line_id,
        names=tuple(names),
        keys=kind.keys,
        intercept=intercept,
        state=state,
        units=units,
        good=good,
        rework=rework,
        defect=defect,
        probability=probability,
        observed=np.asarray(observed, dtype=np.float64),
        true_values=np.asarray(true_values, dtype=np.float64),
    )


def _process_values(
    spec: FactorySpec, rng: np.random.Generator, n: int, frac: FloatArray
) -> tuple[list[str], list[int], FloatArray, FloatArray]:
    """(names, key columns, spreads, ``x_true``): the parameters named and shuffled, their levels and
    spreads drawn, the noise parameters in correlated groups; a deteriorating line's keys drift."""
    kind = spec.kind
    p = kind.n_parameters
    n_keys = len(kind.keys)
    deteriorating = spec.health == "deteriorating"

    # Names: the planted keys hidden among generic parameters, shuffled over the stations.
    generic = [f"{kind.name[:3]}_p{j:03d}" for j in range(p - n_keys)]
    names = [k.name for k in kind.keys] + generic
    order = rng.permutation(p)
    names = [names[i] for i in order]
    key_cols = [names.index(k.name) for k in kind.keys]
    noise_cols = [j for j in range(p) if j not in key_cols]

    mu = rng.uniform(-50.0, 50.0, size=p).round(2)
    spread = rng.uniform(0.5, 5.0, size=p).round(3)
    for k, j in zip(kind.keys, key_cols, strict=True):
        mu[j], spread[j] = k.mean, k.spread
    z = rng.standard_normal((n, p))
    group = 10
    n_groups = -(-len(noise_cols) // group)
    factors = rng.standard_normal((n, n_groups))
    nc = np.asarray(noise_cols)
    for g in range(n_groups):
        cols = nc[g * group : (g + 1) * group]
        z[:, cols] = np.sqrt(0.6) * factors[:, [g]] + np.sqrt(0.4) * z[:, cols]
    true_values = mu + spread * z
    if deteriorating:
        # The process slides away from its optimum: each key moves away from c_j.
        for k, j in zip(kind.keys, key_cols, strict=True):
            away = -np.sign(k.offset) or 1.0
            true_values[:, j] += away * spec.deterioration_process_drift * k.spread * frac
    return names, key_cols, spread, true_values


def _probability(
    spec: FactorySpec, true_values: FloatArray, key_cols: list[int], frac: FloatArray
) -> tuple[float, FloatArray]:
    """(``b0``, the true A-grade probability per interval) of the planted law."""
    kind = spec.kind
    n = true_values.shape[0]
    deteriorating = spec.health == "deteriorating"
    penalty = np.zeros(n)
    for k, j in zip(kind.keys, key_cols, strict=True):
        penalty += k.strength * ((true_values[:, j] - k.center) / (k.width * k.spread)) ** 2
    # The intercept is tuned on a healthy process so deterioration shows as lost yield.
    base = np.zeros(n)
    if deteriorating:
        healthy = true_values.copy()
        for k, j in zip(kind.keys, key_cols, strict=True):
            away = -np.sign(k.offset) or 1.0
            healthy[:, j] -= away * spec.deterioration_process_drift * k.spread * frac
        for k, j in zip(kind.keys, key_cols, strict=True):
            base += k.strength * ((healthy[:, j] - k.center) / (k.width * k.spread)) ** 2
    else:
        base = penalty
    intercept = _tune_intercept(base, kind.target_yield)
    probability = np.asarray(1.0 / (1.0 + np.exp(-(intercept - penalty))), dtype=np.float64)
    return intercept, probability


def _machine_states(spec: FactorySpec, rng: np.random.Generator, n: int, frac: FloatArray) -> IntArray:
    """The state per interval: planned maintenance (0), running (1), unplanned stops (2)."""
    slots_per_day = 86_400 // spec.interval_s
    deteriorating = spec.health == "deteriorating"
    lam = spec.failure_rate * (1 + (spec.deterioration_failure_factor - 1) * frac if deteriorating else 1)
    lam = np.broadcast_to(lam, (n,))
    state = np.ones(n, dtype=np.int64)
    slot_of_day = np.arange(n) % slots_per_day
    maint_from = spec.maintenance_hour * 3600 // spec.interval_s
    maint_to = maint_from + 3600 // spec.interval_s
    planned = (slot_of_day >= maint_from) & (slot_of_day < maint_to)
    u = rng.random(n)
    repair = rng.geometric(1.0 / spec.repair_intervals, size=n)
    down_left = 0
    for t in range(n):
        if planned[t]:
            state[t] = 0
            continue
        if down_left > 0:
            state[t] = 2
            down_left -= 1
            continue
        if u[t] < lam[t]:
            state[t] = 2
            down_left = int(repair[t]) - 1
    return state


def _outages(
    spec: FactorySpec, rng: np.random.Generator, n: int, days: int
) -> tuple[npt.NDArray[np.bool_], IntArray]:
    """(measured, send_slot) per interval: power outages lose intervals, forwarding delays them."""
    measured = np.ones(n, dtype=bool)
    send = np.arange(n, dtype=np.int64)
    per_hour = 3600 // spec.interval_s
    count = rng.poisson(spec.outages_per_device_week * days / 7.0)
    for _ in range(int(count)):
        length = int(rng.integers(1, 7)) * per_hour
        begin = int(rng.integers(0, max(1, n - length)))
        end = min(n, begin + length)
        if rng.random() < spec.power_share:
            measured[begin:end] = False
        else:
            send[begin:end] = np.maximum(send[begin:end], end)
    return measured, send


#: Final inspection of a line, every ``QC_EVERY_S``: the lot's quality evidence (spec bounds).
QC_EVERY_S: Final = 7_200
QC_SAMPLE: Final = 50


def _qc_readings(
    spec: FactorySpec,
    lt: LineTruth,
    rng: np.random.Generator,
    line_id: str,
    lots: list[str],
    t0: int,
    slots: int,
) -> list[SimReading]:
    """The QC device: per ``QC_EVERY_S`` window with production, a test of ``QC_SAMPLE`` units.

    It reports the sample's A-grade share (``Binomial(QC_SAMPLE, p_bar) / QC_SAMPLE`` with ``p_bar``
    the window's mean true yield probability over its running intervals) and one physical figure
    that follows ``p_bar``: a solar cell's efficiency ``cell_eff_pct = 20.8 + 2.2 p_bar + N(0, 0.05)``,
    a rubber batch's Mooney viscosity ``mooney_mu = 50 + 10 p_bar + N(0, 0.4)``. Its readings carry
    the lot of their line and day, so a lot's certification rests on them.
    """
    every = QC_EVERY_S // spec.interval_s
    n = lt.state.shape[0]
    out: list[SimReading] = []
    seq = 0
    for end in range(every, n + 1, every):
        window = slice(end - every, end)
        running = lt.state[window] == 1
        if not running.any():
            continue
        p_bar = float(lt.probability[window][running].mean())
        share = float(rng.binomial(QC_SAMPLE, p_bar)) / QC_SAMPLE
        metrics: dict[str, float | int] = {"a_grade_share": round(share, 4)}
        if spec.kind.name == "solar-cell":
            metrics["cell_eff_pct"] = round(20.8 + 2.2 * p_bar + float(rng.normal(0, 0.05)), 3)
        else:
            metrics["mooney_mu"] = round(50.0 + 10.0 * p_bar + float(rng.normal(0, 0.4)), 2)
        seq += 1
        ts = t0 + (end - 1) * spec.interval_s * 1000
        out.append(
            SimReading(
                device_id=spec.qc_id(line_id),
                seq=seq,
                ts_ms=ts,
                lot_id=lots[(end - 1) // slots],
                metrics=metrics,
                send_ms=ts + spec.interval_s * 1000,
            )
        )
    return out


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
        lt = _line(spec, line_id, rng, n)
        aux = np.random.default_rng([spec.seed, 16, li])  # the measured dimensions' own draws
        lt = _measured_line(spec, lt, aux, start, days)
        lines.append(lt)
        lots = [
            f"LOT-{line_id}-{(start + dt.timedelta(days=int(d))).strftime('%Y%m%d')}" for d in range(days)
        ]
        readings.extend(_device_readings(spec, lt, rng, line_id, days, t0, delivered))
        readings.extend(_qc_readings(spec, lt, rng, line_id, lots, t0, slots))
        readings.extend(_meter_readings(spec, lt, aux, line_id, days, t0, delivered))
        readings.extend(_camera_readings(spec, lt, aux, line_id, lots, days, t0, delivered))
        deliveries.extend(_deliveries(spec, lt, line_id, lots, start, days))
    orders = _orders(spec, rng, start, days)
    counts = _stock_counts(spec, lines, deliveries, np.random.default_rng([spec.seed, 16, 99]), t0, days)
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


def _measured_line(
    spec: FactorySpec, lt: LineTruth, aux: np.random.Generator, start: dt.date, days: int
) -> LineTruth:
    """The line's true energy per interval, its machine's commissioning day and its reported good units."""
    kind = spec.kind
    h = spec.interval_s / 3600
    load = np.select(
        [lt.state == 1, lt.state == 2],
        [kind.base_kw * h + kind.kwh_per_unit * lt.units, np.full(lt.state.shape, kind.standby_kw * h)],
        kind.off_kw * h,
    )
    energy = np.maximum(0.0, load * (1 + spec.energy_noise * aux.standard_normal(lt.state.shape[0])))
    epoch_day = (start - dt.date(1970, 1, 1)).days
    commissioned = epoch_day - int(aux.integers(365, 12 * 365))
    reported = lt.good.copy()
    if spec.inflate_output_from_day is not None:
        slots = 86_400 // spec.interval_s
        frm = min(days, spec.inflate_output_from_day) * slots
        reported[frm:] = np.round(reported[frm:] * spec.inflate_output_factor).astype(np.int64)
    return replace(lt, energy_kwh=energy.round(4), commissioned_day=commissioned, reported_good=reported)


def _meter_readings(
    spec: FactorySpec,
    lt: LineTruth,
    aux: np.random.Generator,
    line_id: str,
    days: int,
    t0: int,
    delivered: dict[str, int],
) -> list[SimReading]:
    """The line's kWh meter: the energy of every interval it measured (its own outages)."""
    n = lt.state.shape[0]
    iv_ms = spec.interval_s * 1000
    measured, send = _outages(spec, aux, n, days)
    device = spec.meter_id(line_id)
    delivered[device] = int(measured.sum())
    return [
        SimReading(
            device_id=device,
            seq=seq,
            ts_ms=t0 + int(t) * iv_ms,
            lot_id=None,
            metrics={"energy_kwh": float(lt.energy_kwh[t])},
            send_ms=int(t0 + (int(send[t]) + 1) * iv_ms),
        )
        for seq, t in enumerate(np.flatnonzero(measured), start=1)
    ]


def _camera_readings(
    spec: FactorySpec,
    lt: LineTruth,
    aux: np.random.Generator,
    line_id: str,
    lots: list[str],
    days: int,
    t0: int,
    delivered: dict[str, int],
) -> list[SimReading]:
    """The line's inspection camera: per ``QC_EVERY_S`` window, units inspected and rejected."""
    every = QC_EVERY_S // spec.interval_s
    n = lt.state.shape[0]
    slots = 86_400 // spec.interval_s
    iv_ms = spec.interval_s * 1000
    measured, _ = _outages(spec, aux, n, days)
    device = spec.camera_id(line_id)
    out: list[SimReading] = []
    for end in range(every, n + 1, every):
        w = slice(end - every, end)
        units = int(lt.units[w].sum())
        good = int(lt.good[w].sum())
        rejected = int(aux.binomial(units - good, spec.camera_detect)) + int(
            aux.binomial(good, spec.camera_false_reject)
        )
        if not measured[end - 1]:
            continue
        metrics: dict[str, float | int] = {"cam_inspected": units, "cam_defects": rejected}
        if units:
            metrics["cam_pass_share"] = round(1 - rejected / units, 4)
        ts = t0 + (end - 1) * iv_ms
        out.append(
            SimReading(
                device_id=device,
                seq=len(out) + 1,
                ts_ms=ts,
                lot_id=lots[(end - 1) // slots],
                metrics=metrics,
                send_ms=ts + iv_ms,
            )
        )
    delivered[device] = len(out)
    return out


def _stock_counts(
    spec: FactorySpec,
    lines: list[LineTruth],
    deliveries: list[PlannedDelivery],
    aux: np.random.Generator,
    t0: int,
    days: int,
) -> list[StockCount]:
    """The daily stock counts (the module docstring's law): true and counted stock."""
    iv_ms = spec.interval_s * 1000
    made = np.cumsum(sum(line.units for line in lines))  # units made in slots 0..t
    sellable = np.cumsum(sum(line.good + line.rework for line in lines))
    fin0 = spec.finished_stock_days * spec.nominal_daily()
    raw0 = spec.raw_stock_days * spec.nominal_made_daily()
    refill = spec.raw_delivery_every_days * spec.nominal_made_daily()
    out: list[StockCount] = []
    for d in range(days):
        ts = t0 + d * DAY_MS + spec.stock_count_hour * 3_600_000
        done = (ts - t0) // iv_ms  # slots completed before the count
        made_before = float(made[done - 1]) if done > 0 else 0.0
        sellable_before = float(sellable[done - 1]) if done > 0 else 0.0
        shipped = float(sum(x.quantity for x in deliveries if x.shipped_ms < ts))
        receipts = sum(
            1 for k in range(0, d + 1, spec.raw_delivery_every_days) if t0 + k * DAY_MS + 12 * 3_600_000 < ts
        )
        raw = raw0 - made_before + receipts * refill
        fin = fin0 + sellable_before - shipped
        err = 1 + spec.stock_count_error * aux.standard_normal(2)
        out.append(
            StockCount(
                ts_ms=ts,
                raw=raw,
                finished=fin,
                raw_counted=max(0, round(raw * float(err[0]))),
                finished_counted=max(0, round(fin * float(err[1]))),
            )
        )
    return out


def _device_readings(
    spec: FactorySpec,
    lt: LineTruth,
    rng: np.random.Generator,
    line_id: str,
    days: int,
    t0: int,
    delivered: dict[str, int],
) -> list[SimReading]:
    """The controller's and the stations' readings of one line, each device with its own outages;
    ``delivered`` gets each device's count of measured intervals."""
    slots = 86_400 // spec.interval_s
    n = slots * days
    iv_ms = spec.interval_s * 1000
    ts = t0 + np.arange(n, dtype=np.int64) * iv_ms
    ideal_uph = round(spec.kind.units_per_interval * 3600 / spec.interval_s, 3)
    readings: list[SimReading] = []
    # Which parameter columns each station reports.
    per_station = -(-len(lt.names) // STATIONS)
    station_cols = [
        list(range(k * per_station, min(len(lt.names), (k + 1) * per_station))) for k in range(STATIONS)
    ]
    devices = [spec.controller_id(line_id), *spec.station_ids(line_id)]
    for k, device in enumerate(devices):
        measured, send = _outages(spec, rng, n, days)
        delivered[device] = int(measured.sum())
        for seq, t in enumerate(np.flatnonzero(measured), start=1):
            metrics: dict[str, float | int]
            if k == 0:
                metrics = {
                    "state": int(lt.state[t]),
                    "good_units": int(lt.reported_good[t]),
                    "rework_units": int(lt.rework[t]),
                    "defect_units": int(lt.defect[t]),
                    "ideal_rate_uph": ideal_uph,
                    "commissioned_day": lt.commissioned_day,
                }
            else:
                cols = station_cols[k - 1]
                metrics = {lt.names[j]: round(float(lt.observed[t, j]), 4) for j in cols}
            readings.append(
                SimReading(
                    device_id=device,
                    seq=seq,
                    ts_ms=int(ts[t]),
                    lot_id=None,
                    metrics=metrics,
                    # A reading leaves the device at the end of its interval (or of the outage).
                    send_ms=int(t0 + (int(send[t]) + 1) * iv_ms),
                )
            )
    return readings


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
