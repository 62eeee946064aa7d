"""The credit model's input: a few numbers read off a factory profile.

:class:`CreditFeatures` is what the scorecard scores. :func:`features_from_profile` builds it from
an :class:`analytics.period_profile.FactoryProfile`; the simulator (:mod:`finance.credit_sim`) produces the
same features for its synthetic factories, so training and scoring see one definition.

=====================  =========================================================================
feature                definition (from the profile)
=====================  =========================================================================
``oee``                ``profile.oee`` (availability x performance x quality), a share
``first_pass_yield``   ``profile.first_pass_yield``, a share
``otif``               ``profile.otif``: orders delivered on time and in full over orders due
``inventory_days``     ``profile.inventory_days``: produced-but-not-delivered units in days of deliveries
``growth``             ``trend_units_per_day x (days_with_data - 1) / capacity_units_per_day``: the
                       change of the fitted daily output from the first to the last day observed,
                       as a share of capacity (+0.05 = output grew by 5 % of capacity over the
                       window). Measured over the data's own window and never scaled beyond it;
                       the assessment's ``history_days`` (= ``days_with_data``) is that window. Below
                       :data:`MIN_HISTORY_DAYS` days the assessment does not score it (see
                       :mod:`finance.assessment`).
``volatility``         ``profile.volatility``: coefficient of variation of daily output
``coverage``           ``profile.coverage``: share of the expected device readings that arrived
``capacity``           ``profile.capacity_units_per_day``
``annual_revenue``     verified revenue, annualised: ``delivered_units x price x 365 / days_in_period``
                       (the caller supplies the unit price), or the annual revenue given directly
=====================  =========================================================================

The five **proof features** (:data:`PROOF_FEATURES`: ``lot_reject_rate``, ``recalls``,
``buyer_days_late``, ``energy_output_consistency``, ``yield_gain_open``) are not read off the profile:
they come from :class:`finance.proof.ProofFacts` (what the ledger proves, each fact with its window;
the windows and the thin-evidence thresholds are the constants below). Unknown or thin: ``None``,
scored neutral (``FeatureSpec.neutral_missing``).

**Missing values.** A metric the profile leaves ``None`` (no order due: OTIF unknown; nothing
delivered: inventory days unknown; no data days: capacity, trend and volatility unknown) stays
``None`` here and falls into the feature's own *Missing* bin of the scorecard; it is never
replaced by 0 or an average. A Missing bin that training never saw scores as the feature's worst
bin (see ``docs/credit-model.md``). ``coverage`` and ``annual_revenue`` are always known.
Thin coverage is not a separate input: the scorecard's coverage bins are split at the profile's
thin threshold (0.8), so a thin profile lands in a low-coverage bin that costs points, and the
limit rule gives a thin profile no limit at all.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final

from analytics.period_profile import FactoryProfile
from finance.errors import CreditModelError

__all__ = [
    "DAYS_PER_YEAR",
    "FEATURE_NAMES",
    "GROWTH_DAYS",
    "LOT_WINDOW_DAYS",
    "MIN_HISTORY_DAYS",
    "MIN_LOTS",
    "MIN_RECALL_HISTORY_DAYS",
    "MIN_RECEIVABLES",
    "PROOF_FEATURES",
    "RECALL_WINDOW_DAYS",
    "RECEIVABLE_WINDOW_DAYS",
    "THIN_COVERAGE",
    "YIELD_MAX_AGE_DAYS",
    "CreditFeatures",
    "annual_revenue",
    "features_from_profile",
]

#: Days a year has when a period's revenue is annualised.
DAYS_PER_YEAR: Final = 365
#: The window (days) the model's growth bins were trained on: the simulator's growth is the change
#: over one month of data. A profile's growth is measured over its own window, never scaled to this.
GROWTH_DAYS: Final = 30
#: Fewer days of data than this is a thin history: the output trend is not scored (two weekly
#: cycles, so a weekday/weekend pattern or one bad day cannot pass for a trend).
MIN_HISTORY_DAYS: Final = 14
#: Window (days, up to the assessment) over which lot verdicts are counted.
LOT_WINDOW_DAYS: Final = 90
#: Fewer lots judged in the window than this: the rejected share is not scored (thin evidence).
MIN_LOTS: Final = 5
#: Window (days) over which recall notices on the factory's lots are counted.
RECALL_WINDOW_DAYS: Final = 365
#: With less lot history than this, "no recall" is thin evidence and not scored (a recall always is).
MIN_RECALL_HISTORY_DAYS: Final = 90
#: Window (days) of the confirmed receivables whose due date falls in it (paid, or unpaid and overdue).
RECEIVABLE_WINDOW_DAYS: Final = 180
#: Fewer such receivables than this: the buyers' days late are not scored (thin evidence).
MIN_RECEIVABLES: Final = 3
#: A yield model whose period ended longer ago than this (days) is too old to say what is still open.
YIELD_MAX_AGE_DAYS: Final = 180
#: Coverage below this is thin (the profile's default ``thin_coverage``).
THIN_COVERAGE: Final = 0.8

#: The features, in the scorecard's order.
FEATURE_NAMES: Final = (
    "oee",
    "first_pass_yield",
    "otif",
    "inventory_days",
    "growth",
    "volatility",
    "coverage",
    "capacity",
    "annual_revenue",
    "lot_reject_rate",
    "recalls",
    "buyer_days_late",
    "energy_output_consistency",
    "yield_gain_open",
)
#: The proof features (issue 16): facts the ledger proves beyond the profile. Unknown or thin (too
#: little evidence in their window): scored neutral, with a caveat (``finance.assessment``).
PROOF_FEATURES: Final = (
    "lot_reject_rate",
    "recalls",
    "buyer_days_late",
    "energy_output_consistency",
    "yield_gain_open",
)

# Ranges a value must fall in (None = unbounded). Shares may exceed 1 only where the profile allows
# it (performance above nameplate lifts OEE above 1).
_RANGES: Final[dict[str, tuple[float | None, float | None]]] = {
    "oee": (0.0, 2.0),
    "first_pass_yield": (0.0, 1.0),
    "otif": (0.0, 1.0),
    "inventory_days": (None, None),
    "growth": (None, None),
    "volatility": (0.0, None),
    "coverage": (0.0, 1.0),
    "capacity": (0.0, None),
    "annual_revenue": (0.0, None),
    "lot_reject_rate": (0.0, 1.0),
    "recalls": (0.0, None),
    "buyer_days_late": (0.0, None),
    "energy_output_consistency": (0.0, 1.0),
    "yield_gain_open": (None, 1.0),
}
_REQUIRED: Final = frozenset({"coverage", "annual_revenue"})


def _check(name: str, value: Any) -> float | None:
    if value is None:
        if name in _REQUIRED:
            raise CreditModelError(f"{name} is required and may not be None", code="credit.input.missing")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CreditModelError(
            f"{name} must be a number, got {type(value).__name__}", code="credit.input.type"
        )
    f = float(value)
    if not math.isfinite(f):
        raise CreditModelError(f"{name} is {f}; give a finite number or None", code="credit.input.not_finite")
    low, high = _RANGES[name]
    if low is not None and f < low:
        code = "credit.input.negative" if low == 0.0 else "credit.input.range"
        raise CreditModelError(f"{name} is {f}, below its minimum {low}", code=code)
    if high is not None and f > high:
        raise CreditModelError(f"{name} is {f}, above its maximum {high}", code="credit.input.range")
    return f


@dataclass(frozen=True, slots=True)
class CreditFeatures:
    """The scorecard's input for one factory (see the module docstring). Checked on construction.

    @raise CreditModelError ``credit.input.*`` for NaN, a negative revenue, a share above 1, ...
    """

    coverage: float
    annual_revenue: float
    oee: float | None = None
    first_pass_yield: float | None = None
    otif: float | None = None
    inventory_days: float | None = None
    growth: float | None = None
    volatility: float | None = None
    capacity: float | None = None
    lot_reject_rate: float | None = None
    recalls: float | None = None
    buyer_days_late: float | None = None
    energy_output_consistency: float | None = None
    yield_gain_open: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            object.__setattr__(self, f.name, _check(f.name, getattr(self, f.name)))

    @property
    def thin(self) -> bool:
        """Coverage below the thin threshold."""
        return self.coverage < THIN_COVERAGE

    def as_dict(self) -> dict[str, float | None]:
        """Feature name -> value (None where missing), in :data:`FEATURE_NAMES` order."""
        return {n: getattr(self, n) for n in FEATURE_NAMES}

    def to_json_obj(self) -> dict[str, float | None]:
        """The features as a JSON object (canonical with :func:`analytics.commitment.canonical_json`)."""
        return self.as_dict()

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> CreditFeatures:
        """Build from a mapping of feature name -> value.

        @raise CreditModelError ``credit.input.unknown`` for a name that is not a feature,
               ``credit.input.missing`` when coverage or annual revenue is absent
        """
        unknown = sorted(set(values) - set(FEATURE_NAMES))
        if unknown:
            raise CreditModelError(
                f"unknown feature(s) {', '.join(unknown)}; the features are {', '.join(FEATURE_NAMES)}",
                code="credit.input.unknown",
            )
        missing = sorted(_REQUIRED - set(values))
        if missing:
            raise CreditModelError(
                f"missing required feature(s) {', '.join(missing)}", code="credit.input.missing"
            )
        return cls(**dict(values))


def annual_revenue(delivered_units: float, price: float, days_in_period: int) -> float:
    """Verified revenue of a period, annualised: ``delivered_units x price x 365 / days_in_period``.

    @raise CreditModelError for a price or quantity that is negative or not finite, or a period of
           no days
    """
    for name, v in (("delivered_units", delivered_units), ("price", price)):
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise CreditModelError(f"{name} must be a number", code="credit.input.type")
        if not math.isfinite(v):
            raise CreditModelError(f"{name} is {v}; give a finite number", code="credit.input.not_finite")
        if v < 0:
            raise CreditModelError(f"{name} is {v}; it may not be negative", code="credit.input.negative")
    if days_in_period <= 0:
        raise CreditModelError("the period has no days", code="credit.input.range")
    return float(delivered_units) * float(price) * DAYS_PER_YEAR / days_in_period


def features_from_profile(
    profile: FactoryProfile, *, price: float | None = None, revenue: float | None = None
) -> CreditFeatures:
    """The scorecard's input read off a factory profile.

    @param profile the factory's profile (typically one calendar month)
    @param price   the unit price in the limit's currency: revenue = delivered units x price, annualised
    @param revenue the annual revenue given directly (instead of ``price``); exactly one of the two
    @raise CreditModelError ``credit.input.missing`` when neither or both of price and revenue are
           given; ``credit.input.*`` for a value out of range
    """
    if (price is None) == (revenue is None):
        raise CreditModelError(
            "give exactly one of price (per delivered unit) and revenue (annual)", code="credit.input.missing"
        )
    rev = (
        annual_revenue(profile.delivered_units, price, profile.days_in_period)
        if price is not None
        else _check("annual_revenue", revenue)
    )
    cap = profile.capacity_units_per_day
    trend = profile.trend_units_per_day
    span = profile.days_with_data - 1
    growth = trend * span / cap if trend is not None and cap is not None and cap > 0 else None
    return CreditFeatures(
        coverage=profile.coverage,
        annual_revenue=rev if rev is not None else 0.0,
        oee=profile.oee,
        first_pass_yield=profile.first_pass_yield,
        otif=profile.otif,
        inventory_days=profile.inventory_days,
        growth=growth,
        volatility=profile.volatility,
        capacity=cap,
        # a version-2 profile's energy-vs-output consistency (None before version 2, or not measured)
        energy_output_consistency=getattr(profile, "energy_consistency", None),
    )
