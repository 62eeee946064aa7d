"""A generative model of one production line (a solar-cell line) with planted yield drivers.

The simulator exists so the yield analytics can be scored against a known truth.

Generative model (all draws from one ``numpy.random.Generator`` seeded with ``seed``):

* **Units.** ``n_units`` cells, processed in order ``t = 0 .. n_units - 1`` (time index).
* **Process parameters.** ``n_parameters`` (``P >= 200``) set-points / measurements
  ``x_true[t, j] = mu_j + s_j * z[t, j]``, each with its own nominal level ``mu_j`` and spread
  ``s_j``.  ``z`` is standard normal, except that the non-key parameters are split into
  correlated groups of ``group_size``: ``z = sqrt(rho) * f_group + sqrt(1 - rho) * e`` with a
  shared group factor ``f_group`` (equipment zones share a chiller, a gas line, ...).  The key
  parameters are independent of each other and of the noise groups.
* **Planted key parameters.** ``n_key`` parameters (chosen at random among the ``P``) each have
  a nonlinear optimal window: their contribution to the A-grade logit is
  ``-a_j * ((x_true_j - c_j) / w_j) ** 2``, an inverted parabola centred at the optimum
  ``c_j`` (placed ``offset_j`` spreads off the process mean, so the line is *not* run at its
  optimum and a window recommendation has something to gain).  The **planted optimal window** is
  ``[c_j - w_j, c_j + w_j]``: inside it the yield loss of that parameter is at most ``a_j``
  logit units.
* **True yield probability.** ``p = sigmoid(b0 + sum_j -a_j ((x_j - c_j)/w_j)^2)`` over the key
  parameters; every other parameter has no effect.  ``b0`` is set so the line's mean yield is
  realistic (about 0.6 - 0.8).
* **Outcome.** ``grade_a[t] ~ Bernoulli(p[t])``: the sampled A-grade flag.
* **Sensors.** What the analytics see is ``x_obs = x_true + sensor noise + drift``: white noise
  of ``sensor_noise`` spreads and a slow linear drift of up to ``drift`` spreads over the run
  (a random sign and size per parameter).  The yield depends on ``x_true``; the model sees only
  ``x_obs``, so even a perfect learner falls short of the Bayes limit computed from ``p``.

Everything is a pure function of the arguments and ``seed``: the same call returns identical
arrays.

**Adopting windows** (:meth:`YieldLine.adopt_windows`): the line keeps each windowed parameter's
*measured* value inside its window, as an operator steering a set-point by its sensor does: a unit whose
reading is outside the window has its process moved by the distance from the reading to the nearest edge
(``x_true += clip(x_obs, low, high) - x_obs``; the sensor's noise and drift stay). The simulator knows
the true yield law, so the gain this realises is measured, not predicted: the mean true A-grade
probability after minus before, on the same units (and, sampled with a seed, the A-grade counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
from eth_utils import keccak

from supet_base.errors import SupetError

__all__ = ["KeyParameter", "RealisedGain", "SimulationError", "WindowLike", "YieldLine", "simulate_line"]

#: The smallest number of process parameters the simulator produces.
MIN_PARAMETERS: Final = 200

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class SimulationError(SupetError):
    """The simulator was asked for an impossible line (too few parameters, units, ...)."""

    code = "analytics.simulation"


@dataclass(frozen=True, slots=True)
class KeyParameter:
    """One planted yield driver.

    @param index    column of the parameter in the matrix
    @param name     its name (``"p017"``)
    @param center   the optimum ``c`` (true process units)
    @param width    the half-width ``w`` of the planted optimal window
    @param strength ``a``: logit loss at the window edge ``c +- w``
    """

    index: int
    name: str
    center: float
    width: float
    strength: float

    @property
    def window(self) -> tuple[float, float]:
        """The planted optimal window ``[c - w, c + w]``."""
        return (self.center - self.width, self.center + self.width)


class WindowLike(Protocol):
    """An operating window: a parameter's name and its edges (``OperatingWindow``, ``Window``)."""

    @property
    def name(self) -> str: ...
    @property
    def low(self) -> float: ...
    @property
    def high(self) -> float: ...


@dataclass(frozen=True, slots=True)
class RealisedGain:
    """What adopting a set of windows did to the yield of some units, by the simulator's true law.

    @param units            units produced before and after
    @param steered          units at least one of whose windowed readings had to be moved into its window
    @param yield_before     mean true A-grade probability of the units as they were produced
    @param yield_after      the same with the windows adopted
    @param gain             ``yield_after - yield_before``: the realised gain (no sampling noise)
    @param grade_a_before   A-grade units as sampled in the simulation
    @param grade_a_after    A-grade units sampled (seeded) from the probabilities after
    """

    units: int
    steered: int
    yield_before: float
    yield_after: float
    gain: float
    grade_a_before: int
    grade_a_after: int

    @property
    def sampled_gain(self) -> float:
        """The A-grade rate after minus before, as sampled (carries the Bernoulli noise)."""
        return (self.grade_a_after - self.grade_a_before) / self.units


@dataclass(frozen=True, slots=True, eq=False)
class YieldLine:
    """One simulated production line.

    @param line_id     a name for the line
    @param seed        the seed it was drawn with
    @param names       parameter names, one per column
    @param observed    ``(n_units, P)`` sensor values the analytics see (with noise and drift)
    @param true_values ``(n_units, P)`` the real process values the yield depends on
    @param probability ``(n_units,)`` the true A-grade probability of each unit
    @param grade_a     ``(n_units,)`` the sampled outcome (1 = A grade)
    @param keys        the planted key parameters
    @param intercept   ``b0`` of the yield logit
    """

    line_id: str
    seed: int
    names: tuple[str, ...]
    observed: FloatArray
    true_values: FloatArray
    probability: FloatArray
    grade_a: IntArray
    keys: tuple[KeyParameter, ...]
    intercept: float

    @property
    def n_units(self) -> int:
        """Number of units (rows)."""
        return int(self.observed.shape[0])

    @property
    def n_parameters(self) -> int:
        """Number of process parameters (columns)."""
        return int(self.observed.shape[1])

    @property
    def key_names(self) -> tuple[str, ...]:
        """Names of the planted key parameters."""
        return tuple(k.name for k in self.keys)

    def yield_probability(self, true_values: FloatArray) -> FloatArray:
        """The true A-grade probability for rows of real process values (the planted law)."""
        logit = np.full(true_values.shape[0], self.intercept, dtype=np.float64)
        for k in self.keys:
            logit -= k.strength * ((true_values[:, k.index] - k.center) / k.width) ** 2
        return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)

    def adopt_windows(
        self, windows: Sequence[WindowLike], rows: Sequence[int] | None = None, *, seed: int = 0
    ) -> RealisedGain:
        """Produce ``rows`` (default: every unit) again with ``windows`` adopted (module docstring).

        @param windows  the windows (parameter names of this line, edges in measured units)
        @param rows     the units to produce again (e.g. a model's held-out units)
        @param seed     the seed of the A-grade draws after
        @raise SimulationError for an unknown parameter name, an empty row set or ``low > high``
        """
        idx = np.arange(self.n_units) if rows is None else np.asarray(rows, dtype=np.int64)
        if idx.size == 0:
            raise SimulationError("no units to produce", code="analytics.simulation.no_units")
        observed = self.observed[idx]
        after = self.true_values[idx].copy()
        steered = np.zeros(idx.size, dtype=bool)
        for w in windows:
            if w.name not in self.names:
                raise SimulationError(
                    f"{w.name!r} is no parameter of line {self.line_id}", code="analytics.simulation.unknown"
                )
            if not w.low <= w.high:
                raise SimulationError(f"window of {w.name} is empty", code="analytics.simulation.bad_window")
            j = self.names.index(w.name)
            move = np.clip(observed[:, j], w.low, w.high) - observed[:, j]
            after[:, j] += move
            steered |= move != 0
        p_before = self.probability[idx]
        p_after = self.yield_probability(after)
        drawn = np.random.default_rng(seed).random(idx.size) < p_after
        before_mean, after_mean = float(np.mean(p_before)), float(np.mean(p_after))
        return RealisedGain(
            units=int(idx.size),
            steered=int(steered.sum()),
            yield_before=before_mean,
            yield_after=after_mean,
            gain=after_mean - before_mean,
            grade_a_before=int(self.grade_a[idx].sum()),
            grade_a_after=int(drawn.sum()),
        )

    def unit_digests(self) -> list[bytes]:
        """A 32-byte keccak256 digest per unit record (its index, observed values and outcome).

        These stand in for the digests of the anchored readings a real line would feed the
        analytics; :func:`analytics.commitment.commit` commits to their Merkle root.
        """
        out: list[bytes] = []
        line = self.line_id.encode()
        for t in range(self.n_units):
            row = np.ascontiguousarray(self.observed[t], dtype="<f8").tobytes()
            out.append(keccak(line + t.to_bytes(8, "big") + row + bytes([int(self.grade_a[t])])))
        return out


def simulate_line(
    *,
    n_units: int = 3000,
    n_parameters: int = MIN_PARAMETERS,
    n_key: int = 5,
    seed: int = 0,
    line_id: str = "line-1",
    group_size: int = 10,
    group_correlation: float = 0.6,
    sensor_noise: float = 0.15,
    drift: float = 0.25,
    target_yield: float = 0.7,
) -> YieldLine:
    """Draw one production line.

    @param n_units           number of units (cells), at least 100
    @param n_parameters      number of process parameters, at least 200
    @param n_key             number of planted key parameters (1 .. 20)
    @param seed              the seed; the same arguments give the same line
    @param group_size        size of the correlated groups of noise parameters
    @param group_correlation correlation inside a group (0 .. 1)
    @param sensor_noise      sensor white noise, in parameter spreads
    @param drift             largest slow sensor drift over the run, in parameter spreads
    @param target_yield      the mean A-grade rate ``b0`` is tuned to (approximately)
    @return the line (see :class:`YieldLine`)
    @raise SimulationError for out-of-range arguments
    """
    _check_arguments(n_units, n_parameters, n_key, group_size, group_correlation, target_yield)

    rng = np.random.default_rng(seed)
    p = n_parameters
    names = tuple(f"p{j:03d}" for j in range(p))
    mu = rng.uniform(-50.0, 50.0, size=p).round(2)
    spread = rng.uniform(0.5, 5.0, size=p).round(3)
    key_idx = np.sort(rng.choice(p, size=n_key, replace=False))
    noise_idx = np.setdiff1d(np.arange(p), key_idx)

    # Standardized process values: key parameters independent, noise parameters in correlated groups.
    z = rng.standard_normal((n_units, p))
    n_groups = -(-noise_idx.size // group_size)
    factors = rng.standard_normal((n_units, n_groups))
    for g in range(n_groups):
        cols = noise_idx[g * group_size : (g + 1) * group_size]
        z[:, cols] = (
            np.sqrt(group_correlation) * factors[:, [g]] + np.sqrt(1 - group_correlation) * z[:, cols]
        )
    true_values = mu + spread * z

    keys = _draw_keys(rng, key_idx, names, mu, spread)

    # Tune b0 so the mean true probability is about target_yield (bisection: the mean is monotone in b0).
    penalty = np.zeros(n_units)
    for k in keys:
        penalty += k.strength * ((true_values[:, k.index] - k.center) / k.width) ** 2
    intercept = _tune_intercept(penalty, target_yield)
    probability = np.asarray(1.0 / (1.0 + np.exp(-(intercept - penalty))), dtype=np.float64)
    grade_a = (rng.random(n_units) < probability).astype(np.int64)

    # Sensors: white noise plus a slow linear drift per parameter.
    t = np.linspace(0.0, 1.0, n_units)[:, None]
    drift_rate = rng.uniform(-drift, drift, size=p) * spread
    observed = true_values + sensor_noise * spread * rng.standard_normal((n_units, p)) + t * drift_rate

    return YieldLine(
        line_id=line_id,
        seed=seed,
        names=names,
        observed=np.asarray(observed, dtype=np.float64),
        true_values=np.asarray(true_values, dtype=np.float64),
        probability=probability,
        grade_a=grade_a,
        keys=tuple(keys),
        intercept=intercept,
    )


def _check_arguments(
    n_units: int,
    n_parameters: int,
    n_key: int,
    group_size: int,
    group_correlation: float,
    target_yield: float,
) -> None:
    """Refuse out-of-range arguments of :func:`simulate_line` (:class:`SimulationError`)."""
    if n_parameters < MIN_PARAMETERS:
        raise SimulationError(
            f"a line has at least {MIN_PARAMETERS} process parameters, got {n_parameters}",
            code="analytics.simulation.too_few_parameters",
        )
    if n_units < 100:
        raise SimulationError(
            f"need at least 100 units, got {n_units}", code="analytics.simulation.too_few_units"
        )
    if not 1 <= n_key <= 20:
        raise SimulationError(f"n_key must be 1 .. 20, got {n_key}", code="analytics.simulation.bad_n_key")
    if not 0.0 <= group_correlation < 1.0 or group_size < 1:
        raise SimulationError(
            "group_correlation must be in [0, 1) and group_size >= 1", code="analytics.simulation.bad_groups"
        )
    if not 0.0 < target_yield < 1.0:
        raise SimulationError("target_yield must be in (0, 1)", code="analytics.simulation.bad_target")


def _draw_keys(
    rng: np.random.Generator, key_idx: IntArray, names: tuple[str, ...], mu: FloatArray, spread: FloatArray
) -> list[KeyParameter]:
    """The planted key parameters: each one's optimum offset, window width and strength drawn in turn."""
    keys: list[KeyParameter] = []
    for j in key_idx:
        offset = rng.uniform(0.4, 0.8) * rng.choice([-1.0, 1.0])
        width = rng.uniform(0.8, 1.2)
        strength = rng.uniform(0.8, 1.4)
        keys.append(
            KeyParameter(
                index=int(j),
                name=names[j],
                center=float(mu[j] + offset * spread[j]),
                width=float(width * spread[j]),
                strength=float(strength),
            )
        )
    return keys


def _tune_intercept(penalty: FloatArray, target_yield: float) -> float:
    """``b0`` such that the mean true probability is about ``target_yield`` (bisection: the mean is
    monotone in ``b0``), rounded to 6 decimals."""
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if float(np.mean(1 / (1 + np.exp(-(mid - penalty))))) < target_yield:
            lo = mid
        else:
            hi = mid
    return round((lo + hi) / 2, 6)
