"""The output trend is stated over the data's own window, and a thin history is not scored as a full one."""

from __future__ import annotations

import dataclasses
from datetime import date

import numpy as np
import pytest

from analytics.commitment import canonical_json
from analytics.period_profile import FactoryProfile
from finance.assessment import CreditModelError, assess
from finance.features import MIN_HISTORY_DAYS, features_from_profile
from finance.proof import BuyerPayments, LotVerdicts, ProofFacts, RecallFacts, ReceivableFacts, YieldGain
from finance.scorecard import ScorecardModel, load_default_model

CAPACITY = 2000.0
#: Full, clean proof: no caveat of its own, so the trend's are the only ones.
PROOF = ProofFacts(
    as_of="2026-04-01",
    lots=LotVerdicts(judged=40, rejected=0, window_days=90),
    recalls=RecallFacts(notices=0, lots=0, window_days=365),
    receivables=ReceivableFacts(buyers=(BuyerPayments("Acme", 6, 0.0),), window_days=180),
    energy_output_consistency=0.999,
    yield_gain=YieldGain(gain=0.005, lines=("L1",), start="2026-03-01", end="2026-03-31", age_days=1),
)


@pytest.fixture(scope="module")
def model() -> ScorecardModel:
    return load_default_model()


def falling(days: int, drop_per_day: float = 12.0) -> FactoryProfile:
    """A factory whose output falls by ``drop_per_day`` units a day over ``days`` days of data in March."""
    daily = np.array([1900.0 - drop_per_day * i for i in range(days)])
    slope = float(np.polyfit(np.arange(days, dtype=np.float64), daily, 1)[0])
    return FactoryProfile(
        factory_id="fab-1",
        start=date(2026, 3, 1),
        end=date(2026, 3, 31),
        days_in_period=31,
        days_with_data=days,
        capacity_units_per_day=CAPACITY,
        utilisation=0.8,
        availability=0.9,
        performance=0.85,
        quality=0.95,
        oee=0.9 * 0.85 * 0.95,
        first_pass_yield=0.93,
        sellable_units=float(daily.sum()),
        delivered_units=float(daily.sum()) * 0.95,
        inventory_days=2.4,
        orders_due=8,
        orders_otif=5,
        otif=0.625,
        trend_units_per_day=slope,
        volatility=0.05,
        readings=900,
        readings_expected=1000,
        coverage=0.9,
        thin=False,
        daily_output=tuple(float(v) for v in daily) + (0.0,) * (31 - days),
    )


def test_a_week_of_falling_output_is_stated_over_7_days_not_a_month(model: ScorecardModel) -> None:
    p = falling(7)
    f = features_from_profile(p, price=4.0)
    # the fitted change from the first to the 7th day: 6 days x -12 units, of 2000 capacity
    assert f.growth == pytest.approx(-12.0 * 6 / CAPACITY)
    a = assess(p, model, price=4.0)
    text = " ".join(r.text for r in a.reasons)
    assert "-3.6% of capacity over the 7 days observed" in text
    assert "a month" not in text and "month" not in canonical_json(a.to_json_obj()).decode().replace(
        "months", ""
    )
    # the old definition would have said -18.0% (x 30 / capacity)
    assert "-18.0%" not in text


def test_thin_history_is_flagged_and_not_scored_as_full(model: ScorecardModel) -> None:
    a = assess(falling(7), model, price=4.0, proof=PROOF)
    assert a.history_days == 7 < MIN_HISTORY_DAYS
    assert a.confidence == "low" and "thin history: 7 days" in a.caveats
    # the trend scores the neutral points (weight of evidence 0), not its (worst) bin
    neutral = model.neutral_points("growth")
    growth_bins = model.feature("growth")
    binned = growth_bins.bins[growth_bins.bin_index(a.features.growth)].points
    assert a.points["growth"] == neutral != binned
    assert min(b.points for b in growth_bins.bins) < neutral < growth_bins.best_points
    reason = next(r for r in a.reasons if r.feature == "growth")
    assert reason.text.startswith("Thin history: 7 days of data, under the 14 needed")
    j = a.to_json_obj()
    assert j["history_days"] == 7 and j["confidence"] == "low" and j["caveats"] == ["thin history: 7 days"]


def test_a_full_history_is_scored(model: ScorecardModel) -> None:
    a = assess(falling(31), model, price=4.0, proof=PROOF)
    t = model.feature("growth")
    assert a.history_days == 31 and a.confidence == "full" and a.caveats == ()
    assert a.features.growth == pytest.approx(-12.0 * 30 / CAPACITY)
    assert (
        a.points["growth"]
        == t.bins[t.bin_index(a.features.growth)].points
        == min(b.points for b in t.bins if b.kind == "range")
    )
    reason = next(r for r in a.reasons if r.feature == "growth")
    assert reason.text.startswith("Output trend of -18.0% of capacity over the 31 days observed is weak")
    # at the threshold the trend is scored, one day under it is not
    at = assess(falling(MIN_HISTORY_DAYS), model, price=4.0, proof=PROOF)
    under = assess(falling(MIN_HISTORY_DAYS - 1), model, price=4.0, proof=PROOF)
    assert at.confidence == "full" and at.points["growth"] != model.neutral_points("growth")
    assert under.confidence == "low" and under.points["growth"] == model.neutral_points("growth")


def test_neutral_points_are_the_zero_evidence_points(model: ScorecardModel) -> None:
    t = model.feature("growth")
    for b in t.bins:
        assert b.points + t.coefficient * b.woe * model.scaling.factor == pytest.approx(
            model.neutral_points("growth"), abs=0.011
        )


def test_history_days_with_features(model: ScorecardModel) -> None:
    values = {**dataclasses.asdict(features_from_profile(falling(31), price=4.0)), **PROOF.feature_values()}
    full = assess(values, model)
    assert full.history_days is None and full.confidence == "full"
    assert "over the period" in " ".join(r.text for r in full.reasons)
    thin = assess(values, model, history_days=5)
    assert thin.points["growth"] == model.neutral_points("growth") and thin.caveats == (
        "thin history: 5 days",
    )
    with pytest.raises(CreditModelError) as e:
        assess(falling(31), model, price=4.0, history_days=31)
    assert e.value.code == "credit.input.conflict"
    with pytest.raises(CreditModelError) as e:
        assess(values, model, history_days=-1)
    assert e.value.code == "credit.input.range"
