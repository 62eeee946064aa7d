"""A simulated line's planted truth: its process values, yield probability, machine states and
output, and the truth of its measured dimensions (energy, commissioning day, reported good units).

The laws are written down in :mod:`simulation.factories`' docstring (sections *Machine states*,
*Output*, *Yield*, *Energy* and *Equipment*); :func:`simulation.factories.simulate_factory` calls
:func:`line_truth` then :func:`measured_line` for each line, and :mod:`simulation.device_readings`
turns the result into what the line's devices report.
"""

import datetime as dt
from dataclasses import replace

import numpy as np

from simulation._internal import FloatArray, IntArray
from simulation.kinds import FactorySpec
from simulation.truth import LineTruth

__all__ = [
    "line_truth",
    "measured_line",
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


def line_truth(spec: FactorySpec, line_id: str, rng: np.random.Generator, n: int) -> LineTruth:
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


def measured_line(
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
