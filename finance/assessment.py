"""One credit assessment: score, PD, grade, limit and the reasons, from a profile or features.

:func:`assess` reads the features off a :class:`~analytics.period_profile.FactoryProfile` (or takes
:class:`~finance.features.CreditFeatures` / a mapping), scores them with a
:class:`~finance.scorecard.ScorecardModel` (default: the packaged model), maps the PD to the master
scale, applies the limit rule and names the top factors.

**Reasons.** A feature's *cost* is the points its bin scores below the best bin of that feature
(what the factory would gain if that feature were at its best). The reasons are the (at most)
three features with the highest cost, of at least one point, highest first (ties: the model's
feature order), each in words: "On-time-in-full delivery of 62% is low (costs 38 points)",
"No order fell due in the period, so on-time-in-full delivery is unknown (costs 9 points)".

**History.** ``history_days`` is the days of data the profile's rates were measured over (given
with features as ``history_days=``; None = a full window, as the model was trained on). The output
trend is stated over that window ("-4.1% of capacity over the 7 days observed") and never scaled
to a month. Below :data:`~finance.features.MIN_HISTORY_DAYS` days the history is *thin*: the trend
scores the feature's neutral points (weight of evidence 0: no evidence either way) instead of its
bin, its reason says so, ``caveats`` carries "thin history: N days" and ``confidence`` is "low"
(as it is for thin coverage).

**Proof** (issue 16). ``proof=`` takes the :class:`~finance.proof.ProofFacts` the ledger gathered
(lot verdicts, recalls, the buyers' payments, energy-vs-output consistency, the yield gain still open),
each with its window and counts. A proof feature that is unknown or thin scores neutral (the model's
``neutral_missing``: weight of evidence 0) and is a *caveat*, never a reason: the reasons name what the
evidence shows, in its own words and window ("2 of 14 lots rejected by the quality certifier in the
last 90 days (costs 21 points)"); the caveats name what it cannot show. Features given directly (no
``proof``) are scored as given and stated "over the period".

:meth:`CreditAssessment.to_json_obj` is canonical (:func:`analytics.commitment.canonical_json`);
:func:`commit_assessment` binds it to its input digests, the model version and the policy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from analytics.commitment import Commitment, ModelId, commit
from analytics.period_profile import FactoryProfile
from finance.errors import CreditModelError
from finance.features import MIN_HISTORY_DAYS, PROOF_FEATURES, CreditFeatures, features_from_profile
from finance.proof import ProofFacts
from finance.rating import MASTER_SCALE, LimitDecision, LimitPolicy, MasterScale, credit_limit
from finance.scorecard import MODEL_NAME, FeatureTable, ScorecardModel, load_default_model

__all__ = [
    "MAX_REASONS",
    "CreditAssessment",
    "CreditModelError",
    "Reason",
    "assess",
    "commit_assessment",
]

#: Reasons given per assessment.
MAX_REASONS: Final = 3
#: A feature costing less than this many points is not a reason.
MIN_REASON_POINTS: Final = 1.0
_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True, slots=True)
class Reason:
    """One factor that lowered the score.

    @param feature the feature
    @param value   its value (None = missing)
    @param cost    points below the feature's best bin
    @param text    the reason in a loan officer's words
    """

    feature: str
    value: float | str | None
    cost: float
    text: str

    def to_json_obj(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": self.value, "cost": self.cost, "text": self.text}


def _window_text(history_days: int | None) -> str:
    return "over the period" if history_days is None else f"over the {history_days} days observed"


def _value_text(table: FeatureTable, value: Any, currency: str, history_days: int | None = None) -> str:
    unit = table.spec.unit
    if unit == "share":
        return f"{value * 100:.0f}%"
    if unit == "trend":
        return f"{value * 100:+.1f}% of capacity {_window_text(history_days)}"
    if unit == "days":
        return f"{value:.0f} days of deliveries"
    if unit == "units_per_day":
        return f"{value:,.0f} units/day"
    if unit == "money":
        return f"{value:,.0f} {currency}"
    if unit == "category":
        return f"'{value}'"
    return f"{value:g}" if isinstance(value, int | float) else f"'{value}'"


def _proof_text(name: str, value: Any, history_days: int | None) -> str:
    """A proof feature's words when it was given as a bare value (no :class:`ProofFacts`)."""
    window = _window_text(history_days)
    if name == "lot_reject_rate":
        return f"{value * 100:.0f}% of lots rejected by the quality certifier {window}"
    if name == "recalls":
        return f"{value:.0f} recall notice{'s' if value != 1 else ''} on its lots {window}"
    if name == "buyer_days_late":
        return f"Buyers paid confirmed receivables {value:.0f} days late on average {window}"
    if name == "energy_output_consistency":
        return (
            f"Metered energy backs {value * 100:.0f}% of the reported output (energy-vs-output consistency "
            f"{value:.2f})"
        )
    return f"The yield model finds {value * 100:.1f} points of yield still to gain"


def reason_text(
    table: FeatureTable,
    value: Any,
    cost: float,
    currency: str,
    history_days: int | None = None,
    proof: ProofFacts | None = None,
) -> str:
    """The words of one reason (see the module docstring)."""
    pts = f"costs {round(cost):d} point{'s' if round(cost) != 1 else ''}"
    spec = table.spec
    if value is None:
        return f"{spec.missing_text or spec.label + ' is unknown'} ({pts})"
    if spec.name in PROOF_FEATURES:
        said = proof.text(spec.name) if proof is not None else None
        text = said if said is not None else _proof_text(spec.name, value, history_days)
        return f"{text[0].upper()}{text[1:]} ({pts})"
    v = _value_text(table, value, currency, history_days)
    if spec.unit == "trend" and _thin_history(history_days):
        return (
            f"Thin history: {history_days} days of data, under the {MIN_HISTORY_DAYS} needed to score "
            f"the output trend ({v}), so it scores as average ({pts})"
        )
    if spec.dtype == "categorical":
        return f"{spec.label} is {v} ({pts})"
    if spec.higher_is_better is None:
        return f"{spec.label} of {v} ({pts})"
    word = "low" if spec.higher_is_better else "high"
    if spec.unit == "trend":
        word = "weak"
    elif spec.unit in ("money", "units_per_day"):
        word = "small"
    return f"{spec.label} of {v} is {word} ({pts})"


def _thin_history(history_days: int | None) -> bool:
    return history_days is not None and history_days < MIN_HISTORY_DAYS


@dataclass(frozen=True, slots=True)
class CreditAssessment:
    """The result of :func:`assess` (amounts in ``currency``, PD over 12 months)."""

    subject: str | None
    period: tuple[str, str] | None
    features: CreditFeatures
    points: Mapping[str, float]
    score: float
    pd: float
    grade: str
    grade_rank: int
    limit: int
    limit_decision: LimitDecision
    currency: str
    annual_revenue: float
    thin: bool
    history_days: int | None
    confidence: str
    caveats: tuple[str, ...]
    reasons: tuple[Reason, ...]
    model_name: str
    model_version: str
    policy: LimitPolicy
    proof: ProofFacts | None = None

    def to_json_obj(self) -> dict[str, Any]:
        """The assessment as a JSON object (canonical through ``canonical_json``)."""
        return {
            "schema": "supet.credit-assessment.v1",
            "subject": self.subject,
            "period": list(self.period) if self.period else None,
            "features": self.features.to_json_obj(),
            "points": dict(self.points),
            "score": self.score,
            "pd": self.pd,
            "grade": self.grade,
            "grade_rank": self.grade_rank,
            "limit": self.limit,
            "limit_decision": self.limit_decision.to_json_obj(),
            "currency": self.currency,
            "annual_revenue": self.annual_revenue,
            "thin": self.thin,
            "history_days": self.history_days,
            "confidence": self.confidence,
            "caveats": list(self.caveats),
            "reasons": [r.to_json_obj() for r in self.reasons],
            "model": {"name": self.model_name, "version": self.model_version},
            "policy": self.policy.to_json_obj(),
            "proof": self.proof.to_json_obj() if self.proof is not None else None,
        }


def _features_of(
    subject: FactoryProfile | CreditFeatures | Mapping[str, Any],
    model: ScorecardModel,
    *,
    price: float | None,
    revenue: float | None,
) -> tuple[CreditFeatures, str | None, tuple[str, str] | None, int | None]:
    """(the features, the factory's id, the period, the days of data) of what :func:`assess` was given."""
    if isinstance(subject, FactoryProfile):
        features = features_from_profile(subject, price=price, revenue=revenue)
        period = (subject.start.isoformat(), subject.end.isoformat())
        return features, subject.factory_id, period, subject.days_with_data
    if price is not None or revenue is not None:
        raise CreditModelError(
            "price and revenue go with a profile; features carry annual_revenue themselves",
            code="credit.input.conflict",
        )
    if isinstance(subject, CreditFeatures):
        return subject, None, None, None
    if isinstance(subject, Mapping):
        model.check_inputs(list(subject))
        return CreditFeatures.from_mapping(subject), None, None, None
    raise CreditModelError(
        f"cannot assess a {type(subject).__name__}; give a FactoryProfile or features",
        code="credit.input.type",
    )


def _reasons(
    model: ScorecardModel,
    points: Mapping[str, float],
    values: Mapping[str, Any],
    currency: str,
    history_days: int | None,
    proof: ProofFacts | None = None,
) -> tuple[Reason, ...]:
    """The features that cost the most points against their best bin (at most :data:`MAX_REASONS`); a
    feature scored neutral for want of evidence is a caveat, not a reason."""
    costs = [
        (round(t.best_points - points[t.name], 2), i, t)
        for i, t in enumerate(model.features)
        if not (t.spec.neutral_missing and values.get(t.name) is None)
    ]
    costs = [c for c in costs if c[0] >= MIN_REASON_POINTS]
    costs.sort(key=lambda c: (-c[0], c[1]))
    return tuple(
        Reason(
            t.name,
            values.get(t.name),
            cost,
            reason_text(t, values.get(t.name), cost, currency, history_days, proof),
        )
        for cost, _, t in costs[:MAX_REASONS]
    )


def _with_proof(features: CreditFeatures, proof: ProofFacts | None) -> CreditFeatures:
    """``features`` with the proof features taken from ``proof`` (refused when both give them)."""
    if proof is None:
        return features
    given = [n for n in PROOF_FEATURES if getattr(features, n) is not None]
    if given:
        raise CreditModelError(
            f"{', '.join(given)} given both as features and as proof; give one", code="credit.input.conflict"
        )
    return CreditFeatures.from_mapping({**features.as_dict(), **proof.feature_values()})


def _proof_caveats(
    model: ScorecardModel, values: Mapping[str, Any], proof: ProofFacts | None
) -> tuple[str, ...]:
    """What the proof cannot show: the proof's own words, or the unknown proof features given directly."""
    if proof is not None:
        return proof.caveats()
    unknown = [
        t.spec.label[0].lower() + t.spec.label[1:]
        for t in model.features
        if t.spec.neutral_missing and values.get(t.name) is None
    ]
    return (f"no evidence for {', '.join(unknown)}: scored as average",) if unknown else ()


def assess(
    subject: FactoryProfile | CreditFeatures | Mapping[str, Any],
    model: ScorecardModel | None = None,
    *,
    price: float | None = None,
    revenue: float | None = None,
    lgd: float | None = None,
    currency: str = "EUR",
    policy: LimitPolicy | None = None,
    scale: MasterScale = MASTER_SCALE,
    history_days: int | None = None,
    proof: ProofFacts | None = None,
) -> CreditAssessment:
    """Assess one factory.

    @param subject  a profile (then give ``price`` per delivered unit or annual ``revenue``), or
                    the features themselves (a :class:`CreditFeatures` or a name -> value mapping)
    @param model    the scorecard (default: the packaged model)
    @param lgd      loss given default (overrides ``policy.lgd``; default 0.45)
    @param currency ISO 4217 code of the price, revenue and limit
    @param history_days days of data behind features given directly (a profile carries its own;
                    None = a full window); below ``MIN_HISTORY_DAYS`` the trend is not scored
    @param proof    the ledger's proof facts (the five proof features with their evidence); the
                    features must not give those features too
    @raise CreditModelError ``credit.input.*`` for bad input (NaN, negative revenue, unknown feature,
           a price given with features), ``credit.policy`` for an incoherent policy
    """
    model = model or load_default_model()
    if not isinstance(currency, str) or not _CURRENCY.match(currency):
        raise CreditModelError(f"currency {currency!r} is not an ISO 4217 code", code="credit.input.range")
    policy = policy or LimitPolicy()
    if lgd is not None:
        policy = replace(policy, lgd=lgd)
    features, subject_id, period, days = _features_of(subject, model, price=price, revenue=revenue)
    if (
        isinstance(subject, FactoryProfile)
        and proof is not None
        and features.energy_output_consistency is not None
    ):
        # the profile's own energy consistency goes into the proof (the proof's, when it has one, wins)
        if proof.energy_output_consistency is None:
            energy_days = getattr(subject, "energy_days", None)
            proof = replace(
                proof,
                energy_output_consistency=features.energy_output_consistency,
                energy_days=int(energy_days) if energy_days else None,
            )
        features = replace(features, energy_output_consistency=None)
    features = _with_proof(features, proof)
    if history_days is not None:
        if days is not None:
            raise CreditModelError(
                "history_days goes with features; a profile carries its own days of data",
                code="credit.input.conflict",
            )
        if isinstance(history_days, bool) or not isinstance(history_days, int) or history_days < 0:
            raise CreditModelError(
                f"history_days must be a count of days, got {history_days!r}", code="credit.input.range"
            )
        days = history_days
    values = features.as_dict()
    points = model.points(values)
    if _thin_history(days) and "growth" in points:
        points["growth"] = model.neutral_points("growth")
    caveats = (
        *((f"thin history: {days} days",) if _thin_history(days) else ()),
        *((f"thin coverage: {features.coverage * 100:.0f}% of expected readings",) if features.thin else ()),
        *_proof_caveats(model, values, proof),
    )
    score = round(sum(points.values()), 2)
    pd = float(model.pd(score))
    grade = scale.grade(pd)
    decision = credit_limit(
        annual_revenue=features.annual_revenue, pd=pd, grade=grade, thin=features.thin, policy=policy
    )
    return CreditAssessment(
        subject=subject_id,
        period=period,
        features=features,
        points=points,
        score=score,
        pd=pd,
        grade=grade.name,
        grade_rank=grade.rank,
        limit=decision.limit,
        limit_decision=decision,
        currency=currency,
        annual_revenue=features.annual_revenue,
        thin=features.thin,
        history_days=days,
        confidence="low" if caveats else "full",
        caveats=caveats,
        reasons=_reasons(model, points, values, currency, days, proof),
        model_name=MODEL_NAME,
        model_version=model.model_version,
        policy=policy,
        proof=proof,
    )


def commit_assessment(assessment: CreditAssessment, inputs: Sequence[bytes | str]) -> Commitment:
    """Commit to an assessment: its canonical JSON, the digests of the readings / batch roots its
    profile was built from, the model (name, version) and the limit policy."""
    return commit(
        assessment,
        inputs,
        ModelId(assessment.model_name, assessment.model_version),
        {"policy": assessment.policy.to_json_obj(), "currency": assessment.currency},
    )
