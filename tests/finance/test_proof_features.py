"""Credit from proof (issue 16): the proof features from their facts, their windows, thin evidence, and
the reasons' words."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import numpy as np
import pytest
from profiles import march_profile

from analytics.commitment import canonical_json
from analytics.period_profile import FactoryProfile
from finance.assessment import CreditModelError, assess
from finance.credit_sim import simulate_portfolio
from finance.features import MIN_LOTS, MIN_RECEIVABLES, PROOF_FEATURES
from finance.proof import BuyerPayments, LotVerdicts, ProofFacts, RecallFacts, ReceivableFacts, YieldGain
from finance.scorecard import ScorecardModel, load_default_model


@pytest.fixture(scope="module")
def model() -> ScorecardModel:
    return load_default_model()


def profile() -> FactoryProfile:
    return march_profile("fab-7")


CLEAN = ProofFacts(
    as_of="2026-04-01",
    lots=LotVerdicts(judged=40, rejected=0, window_days=90),
    recalls=RecallFacts(notices=0, lots=0, window_days=365),
    receivables=ReceivableFacts(buyers=(BuyerPayments("Acme", 6, 0.0),), window_days=180),
    energy_output_consistency=0.999,
    yield_gain=YieldGain(gain=0.005, lines=("L1",), start="2026-03-01", end="2026-03-31", age_days=1),
)
#: The demo's story: a rejected lot and a late-paying buyer.
TROUBLED = dataclasses.replace(
    CLEAN,
    lots=LotVerdicts(judged=14, rejected=2, window_days=90, rejected_lots=("LOT-0007", "LOT-0011")),
    receivables=ReceivableFacts(
        buyers=(BuyerPayments("Acme Retail", 3, 21.0), BuyerPayments("Borg", 2, 0.0)), window_days=180
    ),
)


def test_feature_values_from_the_facts() -> None:
    v = TROUBLED.feature_values()
    assert set(v) == set(PROOF_FEATURES)
    assert v["lot_reject_rate"] == pytest.approx(2 / 14)
    assert v["recalls"] == 0.0
    # the mean over the receivables, each counted once: (3 x 21 + 2 x 0) / 5
    assert v["buyer_days_late"] == pytest.approx(63 / 5)
    assert v["energy_output_consistency"] == 0.999 and v["yield_gain_open"] == 0.005


def test_reasons_name_the_rejected_lots_and_the_late_buyer(model: ScorecardModel) -> None:
    a = assess(profile(), model, price=4.0, proof=TROUBLED)
    texts = {r.feature: r.text for r in a.reasons}
    lot = texts["lot_reject_rate"]
    assert lot.startswith(
        "2 of 14 lots rejected by the quality certifier in the last 90 days (LOT-0007, LOT-0011) (costs "
    )
    late = texts["buyer_days_late"]
    assert late.startswith(
        "Buyers paid 5 confirmed receivables 13 days late on average in the last 180 days; slowest: buyer "
        "Acme Retail paid 3 confirmed receivables 21 days late on average (costs "
    )
    # each reason's cost is the feature's points below its best bin
    for r in a.reasons:
        t = model.feature(r.feature)
        assert r.cost == pytest.approx(t.best_points - a.points[r.feature], abs=0.01)
    assert a.confidence == "full" and a.caveats == ()
    clean = assess(profile(), model, price=4.0, proof=CLEAN)
    assert clean.score > a.score and clean.pd < a.pd
    # the facts are part of the committed assessment
    assert canonical_json(a.to_json_obj()) != canonical_json(clean.to_json_obj())
    assert a.to_json_obj()["proof"]["lots"] == {
        "judged": 14,
        "rejected": 2,
        "window_days": 90,
        "rejected_lots": ["LOT-0007", "LOT-0011"],
    }


def test_one_buyer_is_named_as_the_payer() -> None:
    r = ReceivableFacts(buyers=(BuyerPayments("Acme Retail", 3, 21.0, unpaid=1),), window_days=180)
    assert r.text() == (
        "Buyer Acme Retail paid 3 confirmed receivables 21 days late on average, 1 still unpaid (counted as "
        "days overdue so far) in the last 180 days"
    )


def test_a_short_window_is_stated_not_scaled() -> None:
    lots = LotVerdicts(judged=9, rejected=3, window_days=40)
    assert (
        lots.text() == "3 of 9 lots rejected by the quality certifier in the 40 days since its first verdict"
    )
    assert lots.rate == pytest.approx(3 / 9)  # the share over the 40 days, not a 90-day projection
    rec = ReceivableFacts(buyers=(BuyerPayments("Acme", 4, 10.0),), window_days=30)
    assert "in the 30 days since its first receivable fell due" in rec.text()
    recalls = RecallFacts(notices=1, lots=3, window_days=120)
    assert (
        recalls.text()
        == "1 recall notice on its lots in the 120 days since its first lot (3 lots recalled or flagged)"
    )
    assert recalls.count == 1.0  # a recall over a short history is evidence: scored, not scaled to a year


def test_thin_evidence_is_neutral_with_a_caveat_not_a_reason(model: ScorecardModel) -> None:
    thin = dataclasses.replace(
        TROUBLED,
        lots=LotVerdicts(judged=MIN_LOTS - 1, rejected=2, window_days=90),
        receivables=ReceivableFacts(
            buyers=(BuyerPayments("Acme Retail", MIN_RECEIVABLES - 1, 40.0),), window_days=180
        ),
        recalls=RecallFacts(notices=0, lots=0, window_days=30),
    )
    a = assess(profile(), model, price=4.0, proof=thin)
    for name in ("lot_reject_rate", "buyer_days_late", "recalls"):
        assert getattr(a.features, name) is None
        assert a.points[name] == model.neutral_points(name)
        assert name not in {r.feature for r in a.reasons}
    assert a.confidence == "low"
    assert a.caveats == (
        "thin evidence: 4 lots judged in the last 90 days (2 rejected), under the 5 needed to score the "
        "rejected share",
        "thin evidence: no recall in 30 days of lot history, under the 90 needed to count the absence of "
        "recalls",
        "thin evidence: 2 confirmed receivables due in the last 180 days, under the 3 needed to score the "
        "buyers' payments",
    )
    # thin is between the evidence's best and worst: average, never the worst bin nor the best
    t = model.feature("lot_reject_rate")
    assert min(b.points for b in t.bins) < model.neutral_points("lot_reject_rate") < t.best_points
    # one lot more and the share is scored
    enough = dataclasses.replace(thin, lots=LotVerdicts(judged=MIN_LOTS, rejected=2, window_days=90))
    b = assess(profile(), model, price=4.0, proof=enough)
    assert b.features.lot_reject_rate == pytest.approx(2 / MIN_LOTS)
    assert b.points["lot_reject_rate"] < model.neutral_points("lot_reject_rate")


def test_unknown_proof_is_neutral_with_caveats(model: ScorecardModel) -> None:
    a = assess(profile(), model, price=4.0, proof=ProofFacts(as_of="2026-04-01"))
    assert all(a.points[n] == model.neutral_points(n) for n in PROOF_FEATURES)
    assert a.confidence == "low" and len(a.caveats) == 5
    assert "energy-vs-output consistency unknown: not scored" in a.caveats
    none = assess(profile(), model, price=4.0)  # no proof at all: the same points, said once
    assert none.points == a.points
    assert none.caveats == (
        "no evidence for lots rejected by the quality certifier, recall notices on its lots, buyers' days "
        "late on confirmed receivables, energy-vs-output consistency, yield gain still open: scored as "
        "average",
    )


def test_stale_yield_model_is_not_scored(model: ScorecardModel) -> None:
    gain = YieldGain(gain=0.09, lines=("L1", "L2"), start="2025-01-01", end="2025-03-31", age_days=366)
    a = assess(profile(), model, price=4.0, proof=dataclasses.replace(CLEAN, yield_gain=gain))
    n = "yield_gain_open"
    assert a.features.yield_gain_open is None and a.points[n] == model.neutral_points(n)
    assert any(
        c.startswith("stale evidence: the latest yield model's data ended 366 days ago") for c in a.caveats
    )
    fresh = dataclasses.replace(CLEAN, yield_gain=dataclasses.replace(gain, age_days=10))
    b = assess(profile(), model, price=4.0, proof=fresh)
    assert b.points[n] == min(x.points for x in model.feature(n).bins)
    reason = next(r for r in b.reasons if r.feature == n)
    assert reason.text.startswith(
        "The yield model finds 9.0 points of yield still to gain on lines L1, L2 (data 2025-01-01 to "
        "2025-03-31)"
    )


def test_energy_consistency_unknown_is_neutral(model: ScorecardModel) -> None:
    low = assess(
        profile(),
        model,
        price=4.0,
        proof=dataclasses.replace(CLEAN, energy_output_consistency=0.3, energy_days=12),
    )
    unknown = assess(
        profile(), model, price=4.0, proof=dataclasses.replace(CLEAN, energy_output_consistency=None)
    )
    high = assess(profile(), model, price=4.0, proof=CLEAN)
    n = "energy_output_consistency"
    assert low.points[n] < unknown.points[n] == model.neutral_points(n) < high.points[n]
    assert unknown.caveats == ("energy-vs-output consistency unknown: not scored",)
    assert next(r for r in low.reasons if r.feature == n).text.startswith(
        "Metered energy backs 30% of the reported output (energy-vs-output consistency 0.30 over 12 days of "
        "metered output) (costs "
    )


@pytest.mark.parametrize(
    ("name", "grid", "better_when_higher"),
    [
        ("lot_reject_rate", np.linspace(0, 1, 200), False),
        ("recalls", np.arange(0, 10, 1.0), False),
        ("buyer_days_late", np.linspace(0, 200, 200), False),
        ("energy_output_consistency", np.linspace(0, 1, 200), True),
        ("yield_gain_open", np.linspace(-0.2, 0.5, 200), False),
    ],
)
def test_proof_features_are_monotonic(
    model: ScorecardModel, name: str, grid: np.ndarray, better_when_higher: bool
) -> None:
    base = {**CLEAN.feature_values(), "coverage": 0.95, "annual_revenue": 5e6}
    scores = [model.score({**base, name: float(v)}) for v in grid]
    pairs = list(itertools.pairwise(scores))
    if better_when_higher:
        assert all(b >= a for a, b in pairs) and scores[-1] > scores[0]
    else:
        assert all(b <= a for a, b in pairs) and scores[-1] < scores[0]


def test_proof_given_twice_or_malformed_is_refused(model: ScorecardModel) -> None:
    with pytest.raises(CreditModelError) as e:
        assess({"coverage": 0.9, "annual_revenue": 1e6, "recalls": 1.0}, model, proof=CLEAN)
    assert e.value.code == "credit.input.conflict"
    with pytest.raises(CreditModelError) as e:
        LotVerdicts(judged=3, rejected=4, window_days=90)
    assert e.value.code == "credit.input.range"
    with pytest.raises(CreditModelError) as e:
        ProofFacts(as_of="2026-04-01", energy_output_consistency=1.5)
    assert e.value.code == "credit.input.range"
    with pytest.raises(CreditModelError) as e:
        BuyerPayments("Acme", 2, float("nan"))
    assert e.value.code == "credit.input.not_finite"


def test_simulator_plants_the_proof_features() -> None:
    p = simulate_portfolio(4000, seed=5)
    for name in PROOF_FEATURES:
        x = p.features[name]
        assert 0.0 < np.isnan(x).mean() < 0.5, name  # unknown or thin for some factories, not most
    # more rejected lots, more defaults (the planted law), seen through the observed share
    x, y = p.features["lot_reject_rate"], p.default
    known = ~np.isnan(x)
    hi = x[known] > np.nanmedian(x)
    assert y[known][hi].mean() > y[known][~hi].mean()
    # thin evidence is missing in the features, never a made-up value
    assert np.all(np.isnan(p.features["lot_reject_rate"][p.true["lots_judged"] < MIN_LOTS]))


def test_a_version_2_profile_brings_its_energy_consistency(model: ScorecardModel) -> None:
    """The profile's ``energy_consistency`` (version 2, docs/analytics-profile.md) is the feature: with
    proof facts it goes into them (with its ``energy_days``), without them it is scored as given."""
    if "energy_consistency" not in {f.name for f in dataclasses.fields(FactoryProfile)}:
        pytest.skip("the version-2 profile (energy_consistency) is not on this branch yet")
    v2: dict[str, Any] = {"energy_consistency": 0.62, "energy_days": 27}
    p = dataclasses.replace(profile(), **v2)
    a = assess(p, model, price=4.0, proof=dataclasses.replace(CLEAN, energy_output_consistency=None))
    assert a.features.energy_output_consistency == 0.62 and a.proof is not None and a.proof.energy_days == 27
    assert next(r for r in a.reasons if r.feature == "energy_output_consistency").text.startswith(
        "Metered energy backs 62% of the reported output (energy-vs-output consistency 0.62 over 27 days"
    )
    b = assess(p, model, price=4.0)
    assert b.features.energy_output_consistency == 0.62
    c = assess(p, model, price=4.0, proof=CLEAN)  # the proof's own figure wins
    assert c.features.energy_output_consistency == CLEAN.energy_output_consistency
