"""The proof features (issue 16): what the ledger proves about a factory beyond its profile, with the
evidence behind each figure, its window, and what is too thin to score.

:class:`ProofFacts` is what the ledger gathers (``ledger_service.credit_desk.proof_facts``) and
:func:`finance.assessment.assess` takes next to a profile. Each fact carries its counts and its window,
so the figure is stated as measured ("2 of 14 lots rejected in the last 90 days") and never scaled to a
longer period than the data covers. :meth:`ProofFacts.feature_values` gives the scorecard its five
inputs; a fact that is unknown or *thin* (too little evidence in its window, thresholds in
:mod:`finance.features`) gives ``None``, which the scorecard scores as neutral (weight of evidence 0,
``FeatureSpec.neutral_missing``), and :meth:`ProofFacts.caveats` says so.

=============================  ==================================================================
feature                        fact (window; thin when)
=============================  ==================================================================
``lot_reject_rate``            lots of the factory with a verdict in the window, share rejected at
                               least once (:data:`LOT_WINDOW_DAYS`; fewer than :data:`MIN_LOTS` lots)
``recalls``                    recall notices under which a lot of the factory is recalled or flagged
                               (:data:`RECALL_WINDOW_DAYS`; no notice and under
                               :data:`MIN_RECALL_HISTORY_DAYS` of lot history)
``buyer_days_late``            mean days late of the confirmed receivables due in the window, paid
                               (paid - due) or unpaid and overdue (now - due, a lower bound)
                               (:data:`RECEIVABLE_WINDOW_DAYS`; fewer than :data:`MIN_RECEIVABLES`)
``energy_output_consistency``  the profile's ``energy_consistency``: the share of the reported output
                               that metered energy backs, 0..1 (its energy days; unknown when no
                               energy was measured, or on fewer than 3 days)
``yield_gain_open``            yield still to gain by running the lines in the yield model's windows
                               (``model_gain``), mean over the factory's lines weighted by units
                               (the model's period; none ended in the last :data:`YIELD_MAX_AGE_DAYS`)
=============================  ==================================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from finance.errors import CreditModelError
from finance.features import (
    LOT_WINDOW_DAYS,
    MIN_LOTS,
    MIN_RECALL_HISTORY_DAYS,
    MIN_RECEIVABLES,
    PROOF_FEATURES,
    RECALL_WINDOW_DAYS,
    RECEIVABLE_WINDOW_DAYS,
    YIELD_MAX_AGE_DAYS,
)

__all__ = [
    "BuyerPayments",
    "LotVerdicts",
    "ProofFacts",
    "RecallFacts",
    "ReceivableFacts",
    "YieldGain",
    "window_text",
]


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CreditModelError(
            f"{name} must be a count (an int >= 0), got {value!r}", code="credit.input.range"
        )
    return value


def _number(name: str, value: Any, low: float | None = 0.0, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CreditModelError(
            f"{name} must be a number, got {type(value).__name__}", code="credit.input.type"
        )
    f = float(value)
    if not math.isfinite(f):
        raise CreditModelError(f"{name} is {f}; give a finite number", code="credit.input.not_finite")
    if (low is not None and f < low) or (high is not None and f > high):
        raise CreditModelError(f"{name} is {f}, outside [{low}, {high}]", code="credit.input.range")
    return f


def window_text(window_days: int, full_days: int, since: str) -> str:
    """``in the last 90 days`` when the data covers the whole window, else ``in the 40 days since its
    first verdict``: the counts are never scaled to a longer period than they cover."""
    if window_days >= full_days:
        return f"in the last {full_days} days"
    return f"in the {window_days} day{'s' if window_days != 1 else ''} since {since}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True, slots=True)
class LotVerdicts:
    """The quality certifier's verdicts on the factory's lots in the window.

    @param judged      lots with at least one verdict in the window
    @param rejected    of them, lots rejected at least once in the window (a lot that failed and
                       passed later still failed first: the first-pass view)
    @param window_days days the counts cover: :data:`LOT_WINDOW_DAYS`, or fewer when the factory's
                       first verdict is more recent
    @param rejected_lots ids of (some of) the rejected lots, for the reason's words
    """

    judged: int
    rejected: int
    window_days: int
    rejected_lots: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _count("lots judged", self.judged)
        _count("lots rejected", self.rejected)
        _count("lot window days", self.window_days)
        if self.rejected > self.judged:
            raise CreditModelError(
                f"{self.rejected} lots rejected of {self.judged} judged", code="credit.input.range"
            )

    @property
    def thin(self) -> bool:
        return self.judged < MIN_LOTS

    @property
    def rate(self) -> float | None:
        """The rejected share; None when thin."""
        return None if self.thin else self.rejected / self.judged

    def window(self) -> str:
        return window_text(self.window_days, LOT_WINDOW_DAYS, "its first verdict")

    def text(self) -> str:
        """``2 of 14 lots rejected by the quality certifier in the last 90 days (lot-7, lot-9)``."""
        named = f" ({', '.join(self.rejected_lots[:3])})" if self.rejected_lots else ""
        return (
            f"{self.rejected} of {_plural(self.judged, 'lot')} rejected by the quality certifier "
            f"{self.window()}{named}"
        )

    def caveat(self) -> str | None:
        if not self.thin:
            return None
        return (
            f"thin evidence: {_plural(self.judged, 'lot')} judged {self.window()} "
            f"({self.rejected} rejected), under the {MIN_LOTS} needed to score the rejected share"
        )

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "judged": self.judged,
            "rejected": self.rejected,
            "window_days": self.window_days,
            "rejected_lots": list(self.rejected_lots),
        }


@dataclass(frozen=True, slots=True)
class RecallFacts:
    """Recall notices on the factory's lots in the window.

    @param notices     distinct notices under which a lot of the factory is recalled or flagged
    @param lots        the factory's lots recalled or flagged under them
    @param window_days days covered: :data:`RECALL_WINDOW_DAYS`, or the factory's lot history if shorter
    """

    notices: int
    lots: int
    window_days: int

    def __post_init__(self) -> None:
        _count("recall notices", self.notices)
        _count("recalled lots", self.lots)
        _count("recall window days", self.window_days)

    @property
    def thin(self) -> bool:
        """No recall over a short history is no evidence of safety (a recall always is evidence)."""
        return self.notices == 0 and self.window_days < MIN_RECALL_HISTORY_DAYS

    @property
    def count(self) -> float | None:
        return None if self.thin else float(self.notices)

    def window(self) -> str:
        return window_text(self.window_days, RECALL_WINDOW_DAYS, "its first lot")

    def text(self) -> str:
        return (
            f"{_plural(self.notices, 'recall notice')} on its lots {self.window()} "
            f"({_plural(self.lots, 'lot')} recalled or flagged)"
        )

    def caveat(self) -> str | None:
        if not self.thin:
            return None
        return (
            f"thin evidence: no recall in {self.window_days} days of lot history, under the "
            f"{MIN_RECALL_HISTORY_DAYS} needed to count the absence of recalls"
        )

    def to_json_obj(self) -> dict[str, Any]:
        return {"notices": self.notices, "lots": self.lots, "window_days": self.window_days}


@dataclass(frozen=True, slots=True)
class BuyerPayments:
    """One buyer's confirmed receivables to the factory that fell due in the window.

    @param buyer       the buyer's name (or address)
    @param receivables receivables due in the window: paid, or unpaid and overdue
    @param days_late   their mean days late (paid: paid - due, 0 when on time; unpaid: days overdue
                       so far, a lower bound)
    @param unpaid      of them, still unpaid
    """

    buyer: str
    receivables: int
    days_late: float
    unpaid: int = 0

    def __post_init__(self) -> None:
        _count("receivables", self.receivables)
        _count("unpaid receivables", self.unpaid)
        object.__setattr__(self, "days_late", _number("days late", self.days_late))

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "buyer": self.buyer,
            "receivables": self.receivables,
            "days_late": self.days_late,
            "unpaid": self.unpaid,
        }


@dataclass(frozen=True, slots=True)
class ReceivableFacts:
    """The buyers' payments of the factory's confirmed receivables due in the window.

    @param buyers      per buyer (any order; the reason names the slowest)
    @param window_days days covered: :data:`RECEIVABLE_WINDOW_DAYS`, or fewer when the first
                       receivable fell due more recently
    """

    buyers: tuple[BuyerPayments, ...]
    window_days: int

    def __post_init__(self) -> None:
        _count("receivable window days", self.window_days)

    @property
    def receivables(self) -> int:
        return sum(b.receivables for b in self.buyers)

    @property
    def thin(self) -> bool:
        return self.receivables < MIN_RECEIVABLES

    @property
    def days_late(self) -> float | None:
        """The mean days late over all the receivables (each counts once); None when thin."""
        if self.thin:
            return None
        return sum(b.days_late * b.receivables for b in self.buyers) / self.receivables

    def slowest(self) -> BuyerPayments | None:
        paid = [b for b in self.buyers if b.receivables > 0]
        return max(paid, key=lambda b: (b.days_late, b.receivables, b.buyer)) if paid else None

    def window(self) -> str:
        return window_text(self.window_days, RECEIVABLE_WINDOW_DAYS, "its first receivable fell due")

    @staticmethod
    def _buyer_text(b: BuyerPayments) -> str:
        unpaid = f", {b.unpaid} still unpaid (counted as days overdue so far)" if b.unpaid else ""
        return (
            f"buyer {b.buyer} paid {_plural(b.receivables, 'confirmed receivable')} {b.days_late:.0f} days "
            f"late on average{unpaid}"
        )

    def text(self) -> str:
        """``Buyer Acme paid 3 confirmed receivables 21 days late on average in the last 180 days``."""
        buyers = [b for b in self.buyers if b.receivables > 0]
        slow = self.slowest()
        if slow is None:
            return f"no confirmed receivable fell due {self.window()}"
        if len(buyers) == 1:
            t = self._buyer_text(slow)
            return f"{t[0].upper()}{t[1:]} {self.window()}"
        late = self.days_late
        mean = f"{late:.0f}" if late is not None else "?"
        return (
            f"Buyers paid {_plural(self.receivables, 'confirmed receivable')} {mean} days late on average "
            f"{self.window()}; slowest: {self._buyer_text(slow)}"
        )

    def caveat(self) -> str | None:
        if not self.thin:
            return None
        return (
            f"thin evidence: {_plural(self.receivables, 'confirmed receivable')} due {self.window()}, "
            f"under the {MIN_RECEIVABLES} needed to score the buyers' payments"
        )

    def to_json_obj(self) -> dict[str, Any]:
        return {"buyers": [b.to_json_obj() for b in self.buyers], "window_days": self.window_days}


@dataclass(frozen=True, slots=True)
class YieldGain:
    """The published yield models' estimate of the yield still to gain.

    @param gain     ``model_gain`` (share, 0.04 = 4 points of yield), mean over the lines weighted by units
    @param lines    the lines
    @param start    first day of the models' periods (ISO date)
    @param end      last day (ISO date)
    @param age_days days from ``end`` to the assessment
    """

    gain: float
    lines: tuple[str, ...]
    start: str
    end: str
    age_days: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "gain", _number("yield gain", self.gain, -1.0, 1.0))
        _count("yield model age", self.age_days)

    @property
    def stale(self) -> bool:
        return self.age_days > YIELD_MAX_AGE_DAYS

    @property
    def value(self) -> float | None:
        return None if self.stale else self.gain

    def text(self) -> str:
        lines = ", ".join(self.lines)
        return (
            f"The yield model finds {self.gain * 100:.1f} points of yield still to gain on "
            f"{'line' if len(self.lines) == 1 else 'lines'} {lines} (data {self.start} to {self.end})"
        )

    def caveat(self) -> str | None:
        if not self.stale:
            return None
        return (
            f"stale evidence: the latest yield model's data ended {self.age_days} days ago, over the "
            f"{YIELD_MAX_AGE_DAYS} its open gain is scored for"
        )

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "gain": self.gain,
            "lines": list(self.lines),
            "start": self.start,
            "end": self.end,
            "age_days": self.age_days,
        }


@dataclass(frozen=True, slots=True)
class ProofFacts:
    """Everything the ledger proves about a factory for the proof features (module docstring).

    ``None`` for a fact means it is unknown (nothing to read: no lot, no receivable, no energy meter,
    no yield model); it scores neutral and :meth:`caveats` names it.

    @param as_of  the chain time the facts were read at (ISO date), the end of every window
    @param source where they were read (block numbers, ...), kept with the assessment
    @param energy_days the days the energy consistency was measured over (the profile's ``energy_days``)
    """

    as_of: str
    lots: LotVerdicts | None = None
    recalls: RecallFacts | None = None
    receivables: ReceivableFacts | None = None
    energy_output_consistency: float | None = None
    yield_gain: YieldGain | None = None
    source: tuple[tuple[str, Any], ...] = ()
    energy_days: int | None = None

    def __post_init__(self) -> None:
        if self.energy_output_consistency is not None:
            object.__setattr__(
                self,
                "energy_output_consistency",
                _number("energy_output_consistency", self.energy_output_consistency, 0.0, 1.0),
            )

    def feature_values(self) -> dict[str, float | None]:
        """The five proof features (None: unknown or thin, scored neutral)."""
        return {
            "lot_reject_rate": self.lots.rate if self.lots else None,
            "recalls": self.recalls.count if self.recalls else None,
            "buyer_days_late": self.receivables.days_late if self.receivables else None,
            "energy_output_consistency": self.energy_output_consistency,
            "yield_gain_open": self.yield_gain.value if self.yield_gain else None,
        }

    def caveats(self) -> tuple[str, ...]:
        """What the proof cannot show, in words (each lowers the assessment's confidence)."""
        out: list[str] = []
        if self.lots is None:
            out.append("no lot verdicts: the rejected share of lots is not scored")
        elif (c := self.lots.caveat()) is not None:
            out.append(c)
        if self.recalls is None:
            out.append("no lot history: recalls are not scored")
        elif (c := self.recalls.caveat()) is not None:
            out.append(c)
        if self.receivables is None:
            out.append("no confirmed receivables: the buyers' payments are not scored")
        elif (c := self.receivables.caveat()) is not None:
            out.append(c)
        if self.energy_output_consistency is None:
            out.append("energy-vs-output consistency unknown: not scored")
        if self.yield_gain is None:
            out.append("no yield model: the yield gain still open is not scored")
        elif (c := self.yield_gain.caveat()) is not None:
            out.append(c)
        return tuple(out)

    def text(self, feature: str) -> str | None:
        """The fact behind ``feature`` in words (None when unknown)."""
        if feature not in PROOF_FEATURES:
            raise CreditModelError(f"{feature!r} is not a proof feature", code="credit.input.unknown")
        if feature == "lot_reject_rate" and self.lots is not None:
            return self.lots.text()
        if feature == "recalls" and self.recalls is not None:
            return self.recalls.text()
        if feature == "buyer_days_late" and self.receivables is not None:
            return self.receivables.text()
        if feature == "energy_output_consistency" and self.energy_output_consistency is not None:
            c = self.energy_output_consistency
            over = f" over {_plural(self.energy_days, 'day')} of metered output" if self.energy_days else ""
            return (
                f"Metered energy backs {c * 100:.0f}% of the reported output (energy-vs-output consistency "
                f"{c:.2f}{over})"
            )
        if feature == "yield_gain_open" and self.yield_gain is not None:
            return self.yield_gain.text()
        return None

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of,
            "lots": self.lots.to_json_obj() if self.lots else None,
            "recalls": self.recalls.to_json_obj() if self.recalls else None,
            "receivables": self.receivables.to_json_obj() if self.receivables else None,
            "energy_output_consistency": self.energy_output_consistency,
            "energy_days": self.energy_days,
            "yield_gain": self.yield_gain.to_json_obj() if self.yield_gain else None,
            "source": {k: v for k, v in self.source},
        }
