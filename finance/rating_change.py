"""What moved between two credit assessments: the grade, the limit and the features behind them.

:func:`compare_assessments` takes two assessments as their JSON (:meth:`CreditAssessment.to_json_obj`,
the form the ledger stores them in) and says whether the record they make would change *materially*
(:func:`RatingChange.material`): another grade, another limit, another set of reason features, or a PD
moved by at least :data:`PD_RELATIVE_MOVE` of its value. A PD that drifts a little with each day's data
is not worth a new record on chain. The *moves* are the features whose scorecard points changed by at
least :data:`MIN_MOVE_POINTS`, largest first, in words: "First-pass yield 96.1% -> 91.4% (-14 points)".

Pure computation: no storage, no chain. The words are for the factory's consented banks only; the
ledger keeps them off chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from finance.errors import CreditModelError
from finance.scorecard import FeatureSpec, load_default_model

__all__ = [
    "MIN_MOVE_POINTS",
    "PD_RELATIVE_MOVE",
    "FeatureMove",
    "RatingChange",
    "compare_assessments",
]

#: A feature whose points moved by less than this is not named as a move.
MIN_MOVE_POINTS: Final = 1.0
#: A PD that moved by this share of its previous value (or more) is a material change on its own.
PD_RELATIVE_MOVE: Final = 0.10


@dataclass(frozen=True, slots=True)
class FeatureMove:
    """One feature that moved: its values before and after, and the points it gained (+) or lost (-)."""

    feature: str
    before: float | str | None
    after: float | str | None
    points: float
    text: str

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "before": self.before,
            "after": self.after,
            "points": self.points,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class RatingChange:
    """Two assessments compared (``before`` None: the first rating)."""

    grade_before: str | None
    grade_after: str
    pd_before: float | None
    pd_after: float
    limit_before: int | None
    limit_after: int
    moves: tuple[FeatureMove, ...]
    reasons_changed: bool

    @property
    def material(self) -> bool:
        """Whether a new record is worth publishing: grade, limit, reason features or PD (relative)."""
        if self.grade_before is None or self.pd_before is None:
            return True
        if self.grade_before != self.grade_after or self.limit_before != self.limit_after:
            return True
        if self.reasons_changed:
            return True
        return abs(self.pd_after - self.pd_before) >= PD_RELATIVE_MOVE * self.pd_before

    def text(self) -> str:
        """The change in words: the grade, then what moved ("no feature moved" when none did)."""
        if self.grade_before is None:
            head = f"first rating: {self.grade_after}"
        elif self.grade_before == self.grade_after:
            head = f"{self.grade_after} kept"
        else:
            head = f"{self.grade_before} -> {self.grade_after}"
        parts = [m.text for m in self.moves]
        if self.limit_before is not None and self.limit_before != self.limit_after:
            parts.append(f"limit {self.limit_before:,} -> {self.limit_after:,}")
        if self.pd_before is not None and not parts:
            parts.append(f"PD {self.pd_before * 100:.2f}% -> {self.pd_after * 100:.2f}%")
        return f"{head}: {'; '.join(parts)}" if parts else head

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "grade_before": self.grade_before,
            "grade_after": self.grade_after,
            "pd_before": self.pd_before,
            "pd_after": self.pd_after,
            "limit_before": self.limit_before,
            "limit_after": self.limit_after,
            "moves": [m.to_json_obj() for m in self.moves],
            "reasons_changed": self.reasons_changed,
            "material": self.material,
            "text": self.text(),
        }


def _value(spec: FeatureSpec | None, value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, str) or spec is None:
        return f"{value}" if isinstance(value, str) else f"{value:g}"
    if spec.unit == "share":
        return f"{value * 100:.1f}%"
    if spec.unit == "trend":
        return f"{value * 100:+.1f}% of capacity"
    if spec.unit == "days":
        return f"{value:.1f} days"
    if spec.unit == "units_per_day":
        return f"{value:,.0f}/day"
    if spec.unit == "money":
        return f"{value:,.0f}"
    if spec.unit == "count":
        return f"{value:.0f}"
    if spec.unit == "days_late":
        return f"{value:.1f} days late"
    if spec.unit == "points":
        return f"{value * 100:.1f} points"
    return f"{value:g}"


def _move_text(spec: FeatureSpec | None, name: str, before: Any, after: Any, points: float) -> str:
    label = spec.label if spec is not None else name
    direction = "better" if points > 0 else "worse"
    return f"{label} {_value(spec, before)} -> {_value(spec, after)} ({direction}, {points:+.0f} points)"


def _mapping(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    if not isinstance(value, Mapping):
        raise CreditModelError(f"an assessment without {key!r}: not a supet.credit-assessment.v1 object")
    return value


def compare_assessments(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> RatingChange:
    """Compare two assessments' JSON (``before`` None: ``after`` is the first rating).

    @raise CreditModelError an object that is not an assessment (no ``features`` or ``points``)
    """
    specs = {t.name: t.spec for t in load_default_model().features}
    features_after, points_after = _mapping(after, "features"), _mapping(after, "points")
    moves: list[FeatureMove] = []
    reasons_changed = True
    if before is not None:
        features_before, points_before = _mapping(before, "features"), _mapping(before, "points")
        for name in points_after:
            delta = round(float(points_after[name]) - float(points_before.get(name, 0.0)), 2)
            if abs(delta) < MIN_MOVE_POINTS:
                continue
            b, a = features_before.get(name), features_after.get(name)
            moves.append(FeatureMove(name, b, a, delta, _move_text(specs.get(name), name, b, a, delta)))
        moves.sort(key=lambda m: -abs(m.points))
        reasons_changed = {r.get("feature") for r in before.get("reasons") or []} != {
            r.get("feature") for r in after.get("reasons") or []
        }
    return RatingChange(
        grade_before=None if before is None else str(before.get("grade")),
        grade_after=str(after.get("grade")),
        pd_before=None if before is None else float(before.get("pd", 0.0)),
        pd_after=float(after.get("pd", 0.0)),
        limit_before=None if before is None else int(before.get("limit", 0)),
        limit_after=int(after.get("limit", 0)),
        moves=tuple(moves),
        reasons_changed=reasons_changed,
    )
