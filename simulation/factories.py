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

**Orders and deliveries.** The buying core enterprise orders every day ``d`` a quantity due by the
end of day ``d + order_lead_days``: ``round(nominal_daily * order_fill * U(0.9, 1.0))`` where
``nominal_daily`` is the output the line would sustain when healthy. The factory ships each
line's sellable output (good + rework) of a day as that day's lot at ``ship_hour`` (lots are
opened and transferred on chain) and the buyer accepts it ``accept_delay_h`` hours later.
Deliveries are matched to the buyer's open orders first-due-first (docs/analytics-profile.md);
the truth applies the same rule to the true deliveries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

from supet_base.errors import SupetError

__all__ = [
    "RUBBER_MIXING",
    "SOLAR_CELL",
    "STATIONS",
    "FactorySpec",
    "FactoryTruth",
    "KeySpec",
    "LineKind",
    "LineTruth",
    "PlannedOrder",
    "SimReading",
    "SimulatorError",
    "World",
    "simulate_factory",
    "simulate_world",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Process-station devices per line.
STATIONS: Final = 7
#: Process parameters per station reading at most (Reading v1: 32 metrics).
PARAMS_PER_STATION: Final = 29
DAY_MS: Final = 86_400_000


class SimulatorError(SupetError):
    """The simulator was asked for an impossible world."""

    code = "simulator.invalid"


@dataclass(frozen=True, slots=True)
class KeySpec:
    """A planted key parameter of a line kind.

    @param name      metric name (``[a-z0-9_]``)
    @param mean      the process mean (physical units)
    @param spread    the process standard deviation
    @param offset    the optimum is ``mean + offset * spread``
    @param width     the half-width of the planted window, in spreads
    @param strength  ``a_j``: logit loss at the window's edge
    """

    name: str
    mean: float
    spread: float
    offset: float
    width: float
    strength: float

    @property
    def center(self) -> float:
        return self.mean + self.offset * self.spread

    @property
    def window(self) -> tuple[float, float]:
        """The planted optimal window ``[c - w, c + w]`` in physical units."""
        w = self.width * self.spread
        return (self.center - w, self.center + w)


@dataclass(frozen=True, slots=True)
class LineKind:
    """The physics of a kind of production line."""

    name: str
    keys: tuple[KeySpec, ...]
    units_per_interval: float
    target_yield: float
    rework_share: float
    n_parameters: int = 203


#: A crystalline-silicon solar-cell line. A-grade = the cell's efficiency bin at or above the
#: line's top bin with no electroluminescence defect. Planted drivers: texturing time (pyramid
#: size), diffusion peak temperature and the resulting emitter sheet resistance, SiNx
#: anti-reflection thickness, and the contact firing peak (too cold: high contact resistance; too
#: hot: junction shunting). The line tests about 40 cells per 5-minute interval.
SOLAR_CELL: Final = LineKind(
    name="solar-cell",
    keys=(
        KeySpec("texture_etch_s", 600.0, 40.0, 0.6, 1.0, 1.0),
        KeySpec("diffusion_peak_c", 845.0, 6.0, -0.5, 0.9, 1.2),
        KeySpec("sheet_res_ohm_sq", 120.0, 8.0, 0.7, 1.1, 0.9),
        KeySpec("sinx_thickness_nm", 78.0, 3.0, -0.6, 1.0, 1.1),
        KeySpec("firing_peak_c", 760.0, 8.0, 0.5, 0.9, 1.3),
    ),
    units_per_interval=40.0,
    target_yield=0.78,
    rework_share=0.4,
)

#: A rubber internal mixer (compounding for tyres and seals). One batch per 5-minute interval;
#: A-grade = the batch's Mooney viscosity and rheometer cure curve inside the customer's band.
#: Planted drivers: dump temperature (scorch above, poor dispersion below), specific mixing
#: energy, ram pressure, rotor speed and the carbon-black feed rate.
RUBBER_MIXING: Final = LineKind(
    name="rubber-mixing",
    keys=(
        KeySpec("dump_temp_c", 150.0, 5.0, -0.6, 0.9, 1.3),
        KeySpec("mix_energy_kwh_t", 110.0, 9.0, 0.5, 1.0, 1.0),
        KeySpec("ram_pressure_bar", 6.0, 0.4, 0.6, 1.1, 0.9),
        KeySpec("rotor_speed_rpm", 45.0, 3.0, -0.5, 1.0, 1.1),
        KeySpec("cb_feed_kg_min", 22.0, 1.5, 0.7, 0.9, 1.0),
    ),
    units_per_interval=1.0,
    target_yield=0.8,
    rework_share=0.6,
)

Health = Literal["healthy", "deteriorating"]


@dataclass(frozen=True, kw_only=True)
class FactorySpec:
    """One simulated factory (see the module docstring for the laws)."""

    factory_id: str
    kind: LineKind
    seed: int
    lines: int = 1
    health: Health = "healthy"
    interval_s: int = 300
    failure_rate: float = 0.004
    repair_intervals: float = 6.0
    speed: float = 0.95
    maintenance_hour: int = 2
    deterioration_failure_factor: float = 8.0
    deterioration_speed_loss: float = 0.2
    deterioration_process_drift: float = 0.8
    outages_per_device_week: float = 1.0
    power_share: float = 0.3
    order_lead_days: int = 1
    order_fill: float = 0.97
    ship_hour: int = 22
    accept_delay_h: int = 10
    sensor_noise: float = 0.15
    sensor_drift: float = 0.25
    gtin: str = "09506000134352"

    def __post_init__(self) -> None:
        if not self.factory_id or len(self.factory_id) > 24 or not self.factory_id.replace("-", "").isalnum():
            raise SimulatorError(f"factory_id must be 1..24 letters, digits or '-', got {self.factory_id!r}")
        if not 1 <= self.lines <= 4:
            raise SimulatorError(f"lines must be 1..4, got {self.lines}")
        if self.interval_s <= 0 or 86_400 % self.interval_s:
            raise SimulatorError(f"interval_s must divide 86400, got {self.interval_s}")
        if self.kind.n_parameters < 200 or self.kind.n_parameters > STATIONS * PARAMS_PER_STATION:
            raise SimulatorError("a line kind has 200 .. 203 process parameters")

    def line_ids(self) -> list[str]:
        return [f"{self.factory_id}-l{i + 1}" for i in range(self.lines)]

    def controller_id(self, line_id: str) -> str:
        return f"{line_id}-ctl"

    def station_ids(self, line_id: str) -> list[str]:
        return [f"{line_id}-st{k + 1}" for k in range(STATIONS)]

    def qc_id(self, line_id: str) -> str:
        return f"{line_id}-qc"

    def scheme_of(self, device_id: str) -> str:
        """Controllers and stations carry P-256 secure elements; the QC test station is a PC gateway
        with an Ethereum (secp256k1) key, cheap to verify on chain where lots are certified."""
        return "secp256k1" if device_id.endswith("-qc") else "p256"

    def device_ids(self) -> list[str]:
        out: list[str] = []
        for line in self.line_ids():
            out.append(self.controller_id(line))
            out.extend(self.station_ids(line))
            out.append(self.qc_id(line))
        return out

    def machine_ids(self) -> list[str]:
        """The devices the factory profile is computed from (the line controllers)."""
        return [self.controller_id(line) for line in self.line_ids()]

    def nominal_daily(self) -> float:
        """Sellable units per day the factory would sustain when healthy (the order basis)."""
        slots = 86_400 // self.interval_s
        running = slots - 3_600 // self.interval_s
        availability = 1.0 / (1.0 + self.failure_rate * self.repair_intervals)
        sellable = self.kind.target_yield + (1 - self.kind.target_yield) * self.kind.rework_share
        return self.lines * running * availability * self.kind.units_per_interval * self.speed * sellable


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
        deadline = _day_ms(o.due + dt.timedelta(days=1))
        if sum(q for q, at in filled[o.order_ref] if at < deadline) >= o.quantity:
            ok += 1
    return ok / len(due)


def _day_ms(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


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
    kind = spec.kind
    p = kind.n_parameters
    n_keys = len(kind.keys)
    slots_per_day = 86_400 // spec.interval_s
    frac = np.arange(n) / max(n - 1, 1)  # 0 .. 1 over the period
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

    # Machine states.
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
    t0 = _day_ms(start)
    iv_ms = spec.interval_s * 1000
    ts = t0 + np.arange(n, dtype=np.int64) * iv_ms

    readings: list[SimReading] = []
    lines: list[LineTruth] = []
    delivered: dict[str, int] = {}
    deliveries: list[PlannedDelivery] = []
    ideal_uph = round(spec.kind.units_per_interval * 3600 / spec.interval_s, 3)

    for line_id in spec.line_ids():
        lt = _line(spec, line_id, rng, n)
        lines.append(lt)
        lots = [
            f"LOT-{line_id}-{(start + dt.timedelta(days=int(d))).strftime('%Y%m%d')}" for d in range(days)
        ]
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
                        "good_units": int(lt.good[t]),
                        "rework_units": int(lt.rework[t]),
                        "defect_units": int(lt.defect[t]),
                        "ideal_rate_uph": ideal_uph,
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
        readings.extend(_qc_readings(spec, lt, rng, line_id, lots, t0, slots))
        sellable = (lt.good + lt.rework).reshape(days, slots).sum(axis=1)
        for d in range(days):
            day = start + dt.timedelta(days=d)
            shipped = _day_ms(day) + spec.ship_hour * 3_600_000
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
                placed_ms=_day_ms(day) + 8 * 3_600_000,
            )
        )
    truth = FactoryTruth(
        spec=spec,
        start=start,
        days=days,
        lines=tuple(lines),
        orders=tuple(orders),
        deliveries=tuple(deliveries),
        delivered_intervals=delivered,
        expected_intervals=n,
    )
    return truth, readings


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
