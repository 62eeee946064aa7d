"""A generative model of small factories and their 12-month defaults, to train and test the scorecard on.

Everything is drawn from one ``numpy.random.Generator(PCG64(seed))``: the same ``(n, seed)`` gives
identical arrays. The law is written out here and in ``docs/credit-model.md``.

**1. Latent profile.** A standard normal vector ``g`` of 7 components (oee, fpy, otif, inv, growth,
vol, size) with the correlation matrix :data:`CORRELATION` (well-run plants have better OEE, yield
and delivery, less unsold stock and steadier output; larger plants are slightly better run).

**2. True features** (what the factory really is):

* ``oee = clip(0.58 + 0.12 g_oee, 0.10, 0.95)``
* ``first_pass_yield = clip(0.93 + 0.035 g_fpy, 0.60, 0.999)``
* ``otif = sigmoid(1.6 + 0.9 g_otif)`` (median 0.83)
* ``inventory_days = 14 exp(0.55 g_inv)``
* ``growth = 0.01 + 0.05 g_growth`` (change of daily output per month, share of capacity)
* ``volatility = 0.20 exp(0.45 g_vol)``
* ``capacity = 1200 exp(0.9 g_size)`` units/day; utilisation ``u ~ U(0.55, 0.95)``; unit price
  ``price ~ 6 exp(0.5 N(0,1))``; ``annual_revenue = capacity x u x price x 365``
* order book: ``orders ~ Poisson(lambda)``, ``lambda = exp(1.5 + 0.9 N(0,1))`` orders due a month;
  ``no_orders = (orders == 0)``
* opacity: ``opaque ~ Bernoulli(0.12)``; coverage ``~ U(0.35, 0.80)`` if opaque else ``U(0.80, 1.0)``

**2b. Proof drivers** (:data:`PROOF_LOADINGS`): standard normal ``q`` (lot quality), ``r = 0.5 q +
sqrt(0.75) e`` (recall propensity), ``b`` (the buyers' lateness), ``en`` (energy discipline), ``yg``
(yield gap), each loading on the latent profile and filled to unit variance with its own noise. True
values: reject rate ``sigmoid(-3.0 + 0.8 q)``, recalls ``exp(-1.6 + 0.8 r)`` a year, typical lateness
``8 exp(0.75 b)`` days, energy consistency ``1 - sigmoid(-3.6 - en)``, open yield gain ``0.03 exp(0.6 yg)``.

**3. Default law.** With the *standardised true features*
``s_oee = (oee - 0.58)/0.12``, ``s_fpy = (fpy - 0.93)/0.035``, ``s_otif = (logit(otif) - 1.6)/0.9``,
``s_inv = ln(inventory_days/14)/0.55``, ``s_growth = (growth - 0.01)/0.05``,
``s_vol = ln(volatility/0.20)/0.45``, ``s_size = ln(capacity/1200)/0.9``,
``s_rev = (ln(annual_revenue) - ln(2e6))/1.0``::

    logit PD = B0 - 0.50 s_oee - 0.30 s_fpy - 0.55 s_otif + 0.35 s_inv - 0.35 s_growth
                  + 0.40 s_vol - 0.15 s_size - 0.30 s_rev + 0.60 no_orders + 0.50 opaque
                  + 0.45 q + 0.25 r + 0.40 b - 0.25 en + 0.20 yg

with ``B0 = -3.8`` (a portfolio default rate of about 10 %). ``default ~ Bernoulli(PD)``. Since PD
is known, the Bayes-optimal AUC of any sample is ``roc_auc(default, PD)`` (:meth:`Portfolio.bayes_auc`).

**4. What the model sees** (the profile's view, noisier where coverage is low; ``k = sqrt(0.9 /
coverage)``): ``oee + N(0, 0.025k)``, ``fpy + N(0, 0.01k)`` (clipped to [0, 1]), OTIF as the
share of ``orders`` that were on time (``Binomial(orders, otif) / orders``, *missing* when no order
was due), ``inventory_days x exp(N(0, 0.25k))``, ``growth + N(0, 0.03k)``,
``volatility x exp(N(0, 0.15k))``, ``capacity x exp(N(0, 0.05k))``, revenue
``x exp(N(0, 0.05))``, coverage exactly. The proof as the ledger sees it: lots judged in 90 days and
the share rejected (NaN under :data:`~finance.features.MIN_LOTS`), the year's recall count (NaN when
zero over under 90 days of history; 15 % of factories are young), the mean days late of the
receivables due in 180 days (NaN under :data:`~finance.features.MIN_RECEIVABLES`), energy for 75 %,
a yield model for 60 % (docs/credit-model.md, 4b). The defaults depend on the true features; the
scorecard sees only the observed ones, so it falls short of the Bayes AUC.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score

from finance.errors import CreditModelError
from finance.features import (
    DAYS_PER_YEAR,
    FEATURE_NAMES,
    LOT_WINDOW_DAYS,
    MIN_LOTS,
    MIN_RECALL_HISTORY_DAYS,
    MIN_RECEIVABLES,
    RECALL_WINDOW_DAYS,
    CreditFeatures,
)

__all__ = ["B0", "COEFFICIENTS", "CORRELATION", "Portfolio", "simulate_portfolio"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Order of the latent components.
LATENT: Final = ("oee", "fpy", "otif", "inv", "growth", "vol", "size")
#: Correlation matrix of the latent profile (rows/columns in :data:`LATENT` order).
CORRELATION: Final = (
    (1.00, 0.45, 0.40, -0.20, 0.20, -0.35, 0.20),
    (0.45, 1.00, 0.30, -0.15, 0.10, -0.20, 0.10),
    (0.40, 0.30, 1.00, -0.30, 0.15, -0.30, 0.15),
    (-0.20, -0.15, -0.30, 1.00, -0.20, 0.20, -0.05),
    (0.20, 0.10, 0.15, -0.20, 1.00, -0.10, 0.05),
    (-0.35, -0.20, -0.30, 0.20, -0.10, 1.00, -0.20),
    (0.20, 0.10, 0.15, -0.05, 0.05, -0.20, 1.00),
)
#: Intercept of the default law.
B0: Final = -3.8
#: Coefficients of the default law on the standardised true features and the two indicators.
COEFFICIENTS: Final = {
    "s_oee": -0.50,
    "s_fpy": -0.30,
    "s_otif": -0.55,
    "s_inv": 0.35,
    "s_growth": -0.35,
    "s_vol": 0.40,
    "s_size": -0.15,
    "s_rev": -0.30,
    "no_orders": 0.60,
    "opaque": 0.50,
    "s_reject": 0.45,
    "s_recall": 0.25,
    "s_late": 0.40,
    "s_energy": -0.25,
    "s_yield_gap": 0.20,
}
#: Loadings of the proof drivers on the latent profile (the rest of each driver's variance is its own).
PROOF_LOADINGS: Final = {
    "quality": {"fpy": -0.45, "oee": -0.15},
    "buyer": {"otif": -0.15, "size": -0.10},
    "energy": {"oee": 0.30, "vol": -0.30},
    "yield_gap": {"fpy": -0.40, "oee": -0.15},
}


def _sigmoid(x: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Portfolio:
    """A simulated portfolio of factories.

    @param seed     the seed it was drawn with
    @param features observed features, name -> array (NaN = missing), in :data:`FEATURE_NAMES`
    @param true     true features and indicators, name -> array
    @param pd       the true 12-month probability of default
    @param default  the drawn outcome (1 = defaulted within 12 months)
    """

    seed: int
    features: dict[str, FloatArray]
    true: dict[str, FloatArray]
    pd: FloatArray
    default: IntArray

    @property
    def n(self) -> int:
        """Number of factories."""
        return int(self.default.shape[0])

    def bayes_auc(self, index: npt.ArrayLike | None = None) -> float:
        """ROC AUC of the true PD on the drawn defaults (of the rows ``index``, default all)."""
        idx = np.arange(self.n) if index is None else np.asarray(index)
        return float(roc_auc_score(self.default[idx], self.pd[idx]))

    def subset(self, index: npt.ArrayLike) -> dict[str, FloatArray]:
        """The observed features of the rows ``index``."""
        idx = np.asarray(index)
        return {k: v[idx] for k, v in self.features.items()}

    def row(self, i: int) -> CreditFeatures:
        """Factory ``i``'s observed features as :class:`CreditFeatures`."""
        values = {k: float(v[i]) for k, v in self.features.items()}
        return CreditFeatures(**{k: (None if np.isnan(v) else v) for k, v in values.items()})  # type: ignore[arg-type]


def _mixed(z: dict[str, FloatArray], loadings: dict[str, float], own: FloatArray) -> FloatArray:
    """A standard normal component: ``loadings`` on the latent profile plus its own noise ``own``,
    scaled to unit variance (the loadings part has variance ``a' C a`` under :data:`CORRELATION`)."""
    a = np.array([loadings.get(name, 0.0) for name in LATENT], dtype=np.float64)
    shared = float(a @ np.array(CORRELATION, dtype=np.float64) @ a)
    mixed = sum(w * z[name] for name, w in loadings.items()) + np.sqrt(1.0 - shared) * own
    return np.asarray(mixed, dtype=np.float64)


def _proof(
    rng: np.random.Generator, z: dict[str, FloatArray], n: int
) -> tuple[dict[str, FloatArray], dict[str, FloatArray], dict[str, FloatArray]]:
    """(standardised proof drivers, true proof values, observed proof features), module docstring 2b/4b."""
    own = rng.standard_normal((n, 5))
    q = _mixed(z, PROOF_LOADINGS["quality"], own[:, 0])
    r = 0.5 * q + np.sqrt(0.75) * own[:, 1]
    b = _mixed(z, PROOF_LOADINGS["buyer"], own[:, 2])
    en = _mixed(z, PROOF_LOADINGS["energy"], own[:, 3])
    yg = _mixed(z, PROOF_LOADINGS["yield_gap"], own[:, 4])
    reject = _sigmoid(-3.0 + 0.8 * q)
    recall_rate = np.exp(-1.6 + 0.8 * r)  # notices a year
    late = 8.0 * np.exp(0.75 * b)  # mean days late of the buyers' payments
    energy = 1.0 - _sigmoid(-3.6 - 1.0 * en)  # share of the reported output its metered energy backs
    gain = 0.03 * np.exp(0.6 * yg)  # yield still to gain, share
    drivers = {"s_reject": q, "s_recall": r, "s_late": b, "s_energy": en, "s_yield_gap": yg}
    true = {
        "lot_reject_rate": reject,
        "recall_rate": recall_rate,
        "buyer_days_late": late,
        "energy_output_consistency": energy,
        "yield_gain_open": gain,
    }

    young = rng.random(n) < 0.15
    history = np.where(young, rng.uniform(15.0, 365.0, n), 365.0)  # days of lot history
    lots = rng.poisson(
        np.exp(4.0 + 0.5 * rng.standard_normal(n)) * np.minimum(history, LOT_WINDOW_DAYS) / LOT_WINDOW_DAYS
    )
    rejected = rng.binomial(lots, reject)
    recalls = rng.poisson(recall_rate * np.minimum(history, RECALL_WINDOW_DAYS) / DAYS_PER_YEAR)
    uses_receivables = rng.random(n) < 0.8
    receivables = np.where(uses_receivables, rng.poisson(np.exp(1.5 + 0.7 * rng.standard_normal(n))), 0)
    # each receivable's days late: max(0, the buyer's typical lateness x a log-normal factor - 4 days),
    # averaged over the receivables due in the window
    width = max(int(receivables.max()), 1)
    each = np.maximum(late[:, None] * np.exp(0.4 * rng.standard_normal((n, width))) - 4.0, 0.0)
    due = np.arange(width)[None, :] < receivables[:, None]
    observed_late = (each * due).sum(axis=1) / np.maximum(receivables, 1)
    metered = rng.random(n) < 0.75
    energy_obs = np.clip(energy + rng.normal(0.0, 0.01, n), 0.0, 1.0)
    has_yield = rng.random(n) < 0.6
    gain_obs = np.maximum(gain + rng.normal(0.0, 0.008, n), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        reject_obs = rejected / np.maximum(lots, 1)
    observed = {
        "lot_reject_rate": np.where(lots >= MIN_LOTS, reject_obs, np.nan),
        "recalls": np.where((history >= MIN_RECALL_HISTORY_DAYS) | (recalls > 0), recalls, np.nan).astype(
            np.float64
        ),
        "buyer_days_late": np.where(receivables >= MIN_RECEIVABLES, observed_late, np.nan),
        "energy_output_consistency": np.where(metered, energy_obs, np.nan),
        "yield_gain_open": np.where(has_yield, gain_obs, np.nan),
    }
    true.update(
        {
            "lot_history_days": history,
            "lots_judged": lots.astype(np.float64),
            "lots_rejected": rejected.astype(np.float64),
            "recalls": recalls.astype(np.float64),
            "receivables": receivables.astype(np.float64),
        }
    )
    return drivers, true, observed


def simulate_portfolio(n: int = 20_000, *, seed: int = 0) -> Portfolio:
    """Draw ``n`` factories from the generative model of the module docstring.

    @raise CreditModelError ``credit.sim`` for fewer than 100 factories
    """
    if n < 100:
        raise CreditModelError(f"a portfolio needs at least 100 factories, got {n}", code="credit.sim")
    rng = np.random.Generator(np.random.PCG64(seed))
    corr = np.array(CORRELATION, dtype=np.float64)
    g = rng.standard_normal((n, len(LATENT))) @ np.linalg.cholesky(corr).T
    z = dict(zip(LATENT, g.T, strict=True))

    oee = np.clip(0.58 + 0.12 * z["oee"], 0.10, 0.95)
    fpy = np.clip(0.93 + 0.035 * z["fpy"], 0.60, 0.999)
    otif = _sigmoid(1.6 + 0.9 * z["otif"])
    inv = 14.0 * np.exp(0.55 * z["inv"])
    growth = 0.01 + 0.05 * z["growth"]
    vol = 0.20 * np.exp(0.45 * z["vol"])
    capacity = 1200.0 * np.exp(0.9 * z["size"])
    util = rng.uniform(0.55, 0.95, n)
    price = 6.0 * np.exp(0.5 * rng.standard_normal(n))
    revenue = capacity * util * price * 365.0
    orders = rng.poisson(np.exp(1.5 + 0.9 * rng.standard_normal(n)))
    no_orders = (orders == 0).astype(np.float64)
    opaque = (rng.random(n) < 0.12).astype(np.float64)
    coverage = np.where(opaque > 0, rng.uniform(0.35, 0.80, n), rng.uniform(0.80, 1.0, n))
    drivers, proof_true, proof_observed = _proof(rng, z, n)

    s = {
        "s_oee": (oee - 0.58) / 0.12,
        "s_fpy": (fpy - 0.93) / 0.035,
        "s_otif": (np.log(otif / (1 - otif)) - 1.6) / 0.9,
        "s_inv": np.log(inv / 14.0) / 0.55,
        "s_growth": (growth - 0.01) / 0.05,
        "s_vol": np.log(vol / 0.20) / 0.45,
        "s_size": np.log(capacity / 1200.0) / 0.9,
        "s_rev": np.log(revenue) - np.log(2e6),
        "no_orders": no_orders,
        "opaque": opaque,
        **drivers,
    }
    logit = B0 + sum(COEFFICIENTS[k] * s[k] for k in COEFFICIENTS)
    pd = _sigmoid(np.asarray(logit, dtype=np.float64))
    default = (rng.random(n) < pd).astype(np.int64)

    k = np.sqrt(0.9 / coverage)
    on_time = rng.binomial(orders, otif)
    with np.errstate(invalid="ignore", divide="ignore"):
        otif_obs = np.where(orders > 0, on_time / np.maximum(orders, 1), np.nan)
    observed = {
        "oee": np.clip(oee + rng.normal(0.0, 0.025 * k), 0.0, 1.2),
        "first_pass_yield": np.clip(fpy + rng.normal(0.0, 0.01 * k), 0.0, 1.0),
        "otif": otif_obs,
        "inventory_days": inv * np.exp(rng.normal(0.0, 0.25 * k)),
        "growth": growth + rng.normal(0.0, 0.03 * k),
        "volatility": vol * np.exp(rng.normal(0.0, 0.15 * k)),
        "coverage": coverage,
        "capacity": capacity * np.exp(rng.normal(0.0, 0.05 * k)),
        "annual_revenue": revenue * np.exp(rng.normal(0.0, 0.05, n)),
        **proof_observed,
    }
    true = {
        "oee": oee,
        "first_pass_yield": fpy,
        "otif": otif,
        "inventory_days": inv,
        "growth": growth,
        "volatility": vol,
        "capacity": capacity,
        "annual_revenue": revenue,
        "coverage": coverage,
        "orders": orders.astype(np.float64),
        "no_orders": no_orders,
        "opaque": opaque,
        **proof_true,
    }
    assert tuple(observed) == FEATURE_NAMES
    return Portfolio(
        seed=seed,
        features={k2: np.asarray(v, dtype=np.float64) for k2, v in observed.items()},
        true=true,
        pd=pd,
        default=default,
    )
