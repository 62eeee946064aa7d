"""The master scale (PD -> grade) and the credit limit rule.

**Master scale** (:data:`MASTER_SCALE`): ten grades, S1 best to S10 worst, each a half-open band
``[pd_low, pd_high)`` of the 12-month probability of default (S10 includes PD = 1). The bands
roughly double from grade to grade, so one grade is about one PDO of score (20 points):

=====  ===============  ==========================
grade  PD band          reading
=====  ===============  ==========================
S1     [0, 0.25 %)      minimal risk
S2     [0.25, 0.5 %)    very low risk
S3     [0.5, 1 %)       low risk
S4     [1, 2 %)         moderate risk
S5     [2, 4 %)         acceptable risk
S6     [4, 8 %)         elevated risk
S7     [8, 15 %)        high risk
S8     [15, 25 %)       very high risk
S9     [25, 40 %)       watch: no new limit
S10    [40, 100 %]      default-like: no new limit
=====  ===============  ==========================

**Limit rule** (:func:`credit_limit`, parameters in :class:`LimitPolicy`)::

    revenue cap = revenue_share x verified annual revenue              (default 20 %)
    EL cap      = EL budget / (PD x LGD),  EL budget = el_budget_share x verified annual revenue (0.4 %)
    limit       = floor(min(revenue cap, EL cap, max_limit) / rounding) x rounding     (rounding 1,000)

so the expected loss of the limit, ``PD x LGD x limit``, never exceeds the EL budget. The limit
is 0 for a grade at or worse than ``no_limit_from`` (S9), for a thin profile (coverage below
0.8: too little evidence), and for no verified revenue. **LGD** defaults to 45 %, the Basel
foundation-IRB loss given default of a senior unsecured claim; a lender financing receivables it
holds may pass its own (between 0 and 1).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Final, Literal

from finance.errors import CreditModelError

__all__ = [
    "DEFAULT_LGD",
    "MASTER_SCALE",
    "Grade",
    "LimitDecision",
    "LimitPolicy",
    "MasterScale",
    "credit_limit",
]

#: Default loss given default: Basel F-IRB senior unsecured.
DEFAULT_LGD: Final = 0.45


@dataclass(frozen=True, slots=True)
class Grade:
    """One grade of the master scale: ``rank`` 1 = best, PD in ``[pd_low, pd_high)``."""

    rank: int
    name: str
    pd_low: float
    pd_high: float
    reading: str


@dataclass(frozen=True, slots=True)
class MasterScale:
    """Contiguous PD bands from 0 to 1, best grade first.

    @raise CreditModelError ``credit.policy`` for bands that leave a gap, overlap or do not span [0, 1]
    """

    grades: tuple[Grade, ...]

    def __post_init__(self) -> None:
        g = self.grades
        ok = (
            bool(g)
            and g[0].pd_low == 0.0
            and g[-1].pd_high == 1.0
            and all(a.pd_high == b.pd_low for a, b in itertools.pairwise(g))
            and all(x.pd_low < x.pd_high for x in g)
            and [x.rank for x in g] == list(range(1, len(g) + 1))
        )
        if not ok:
            raise CreditModelError("master scale bands must tile [0, 1] in rank order", code="credit.policy")

    def grade(self, pd: float) -> Grade:
        """The grade whose band holds ``pd``.

        @raise CreditModelError ``credit.input.range`` for a PD outside [0, 1] or NaN
        """
        if not (isinstance(pd, int | float) and 0.0 <= pd <= 1.0):
            raise CreditModelError(f"PD {pd} is not a probability", code="credit.input.range")
        for x in self.grades:
            if pd < x.pd_high:
                return x
        return self.grades[-1]

    def by_name(self, name: str) -> Grade:
        """The grade called ``name``."""
        for x in self.grades:
            if x.name == name:
                return x
        raise CreditModelError(f"no grade {name!r} on the master scale", code="credit.policy")

    def to_json_obj(self) -> list[dict[str, object]]:
        return [
            {"rank": x.rank, "name": x.name, "pd_low": x.pd_low, "pd_high": x.pd_high, "reading": x.reading}
            for x in self.grades
        ]


_BANDS: Final = (
    (0.0, 0.0025, "minimal risk"),
    (0.0025, 0.005, "very low risk"),
    (0.005, 0.01, "low risk"),
    (0.01, 0.02, "moderate risk"),
    (0.02, 0.04, "acceptable risk"),
    (0.04, 0.08, "elevated risk"),
    (0.08, 0.15, "high risk"),
    (0.15, 0.25, "very high risk"),
    (0.25, 0.40, "watch: no new limit"),
    (0.40, 1.0, "default-like: no new limit"),
)
#: The master scale S1..S10.
MASTER_SCALE: Final = MasterScale(
    tuple(Grade(i + 1, f"S{i + 1}", lo, hi, reading) for i, (lo, hi, reading) in enumerate(_BANDS))
)


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """Parameters of the limit rule (see the module docstring).

    @param revenue_share   largest limit as a share of verified annual revenue
    @param el_budget_share expected-loss budget as a share of verified annual revenue
    @param lgd             loss given default
    @param rounding        the limit is rounded down to a multiple of this (currency units)
    @param no_limit_from   rank from which a grade gets no limit (9 = S9 and S10)
    @param max_limit       absolute ceiling (None = none)
    """

    revenue_share: float = 0.20
    el_budget_share: float = 0.004
    lgd: float = DEFAULT_LGD
    rounding: int = 1000
    no_limit_from: int = 9
    max_limit: int | None = None

    def __post_init__(self) -> None:
        checks = (
            ("revenue_share", 0.0 < self.revenue_share <= 1.0),
            ("el_budget_share", 0.0 < self.el_budget_share <= 1.0),
            ("lgd", isinstance(self.lgd, int | float) and 0.0 < self.lgd <= 1.0),
            ("rounding", isinstance(self.rounding, int) and self.rounding >= 1),
            ("no_limit_from", isinstance(self.no_limit_from, int) and self.no_limit_from >= 1),
            (
                "max_limit",
                self.max_limit is None or (isinstance(self.max_limit, int) and self.max_limit >= 0),
            ),
        )
        for name, ok in checks:
            if not ok:
                raise CreditModelError(f"limit policy: {name} is out of range", code="credit.policy")

    def to_json_obj(self) -> dict[str, object]:
        return {
            "revenue_share": self.revenue_share,
            "el_budget_share": self.el_budget_share,
            "lgd": self.lgd,
            "rounding": self.rounding,
            "no_limit_from": self.no_limit_from,
            "max_limit": self.max_limit,
        }


Binding = Literal["revenue", "expected_loss", "max_limit", "grade", "thin", "no_revenue"]


@dataclass(frozen=True, slots=True)
class LimitDecision:
    """A limit and why it is what it is.

    @param limit         the limit, whole currency units
    @param binding       what set it: ``revenue`` / ``expected_loss`` / ``max_limit`` cap, or the
                         reason for a zero: ``grade``, ``thin``, ``no_revenue``
    @param revenue_cap   revenue_share x annual revenue
    @param el_cap        EL budget / (PD x LGD) (None when PD is 0)
    @param expected_loss PD x LGD x limit
    """

    limit: int
    binding: Binding
    revenue_cap: float
    el_cap: float | None
    expected_loss: float

    def to_json_obj(self) -> dict[str, object]:
        return {
            "limit": self.limit,
            "binding": self.binding,
            "revenue_cap": self.revenue_cap,
            "el_cap": self.el_cap,
            "expected_loss": self.expected_loss,
        }


def credit_limit(
    *,
    annual_revenue: float,
    pd: float,
    grade: Grade,
    thin: bool,
    policy: LimitPolicy | None = None,
) -> LimitDecision:
    """The credit limit of the module docstring's rule.

    @raise CreditModelError ``credit.input.*`` for a negative or non-finite revenue or a PD outside [0, 1]
    """
    policy = policy or LimitPolicy()
    if not isinstance(annual_revenue, int | float) or not math.isfinite(annual_revenue):
        raise CreditModelError(
            f"annual revenue {annual_revenue} is not a finite number", code="credit.input.not_finite"
        )
    if annual_revenue < 0:
        raise CreditModelError(f"annual revenue {annual_revenue} is negative", code="credit.input.negative")
    if not (isinstance(pd, int | float) and 0.0 <= pd <= 1.0):
        raise CreditModelError(f"PD {pd} is not a probability", code="credit.input.range")
    revenue_cap = policy.revenue_share * annual_revenue
    el_cap = policy.el_budget_share * annual_revenue / (pd * policy.lgd) if pd > 0 else None
    zero: Binding | None = None
    if grade.rank >= policy.no_limit_from:
        zero = "grade"
    elif thin:
        zero = "thin"
    elif annual_revenue == 0:
        zero = "no_revenue"
    if zero is not None:
        return LimitDecision(0, zero, revenue_cap, el_cap, 0.0)
    caps: list[tuple[float, Binding]] = [(revenue_cap, "revenue")]
    if el_cap is not None:
        caps.append((el_cap, "expected_loss"))
    if policy.max_limit is not None:
        caps.append((float(policy.max_limit), "max_limit"))
    cap, binding = min(caps, key=lambda c: c[0])
    limit = math.floor(cap / policy.rounding) * policy.rounding
    return LimitDecision(limit, binding, revenue_cap, el_cap, pd * policy.lgd * limit)
