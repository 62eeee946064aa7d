"""Credit model: features, simulator, scorecard, master scale, limit rule, assessment."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Callable
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from analytics.commitment import ModelId, canonical_json, verify_commitment
from analytics.period_profile import FactoryProfile
from finance.assessment import CreditModelError, assess, commit_assessment
from finance.credit_sim import simulate_portfolio
from finance.features import FEATURE_NAMES, CreditFeatures, annual_revenue, features_from_profile
from finance.rating import MASTER_SCALE, LimitDecision, LimitPolicy, MasterScale, credit_limit
from finance.scorecard import (
    DEFAULT_MODEL_FILE,
    ScorecardModel,
    load_default_model,
    load_model,
)
from finance.train import train_default_model
from finance.validation import evaluate, ks_statistic
from supet_base.errors import SupetError

GOOD = {
    "oee": 0.78,
    "first_pass_yield": 0.985,
    "otif": 0.95,
    "inventory_days": 5.0,
    "growth": 0.11,
    "volatility": 0.08,
    "coverage": 0.995,
    "capacity": 6000.0,
    "annual_revenue": 12_000_000.0,
    "lot_reject_rate": 0.005,
    "recalls": 0.0,
    "buyer_days_late": 0.0,
    "energy_output_consistency": 0.999,
    "yield_gain_open": 0.005,
}


@pytest.fixture(scope="module")
def model() -> ScorecardModel:
    return load_default_model()


def profile(**over: object) -> FactoryProfile:
    base: dict[str, object] = dict(
        factory_id="fab-1",
        start=date(2026, 3, 1),
        end=date(2026, 3, 31),
        days_in_period=31,
        days_with_data=31,
        capacity_units_per_day=2000.0,
        utilisation=0.8,
        availability=0.9,
        performance=0.85,
        quality=0.95,
        oee=0.9 * 0.85 * 0.95,
        first_pass_yield=0.93,
        sellable_units=50_000.0,
        delivered_units=46_500.0,
        inventory_days=2.4,
        orders_due=8,
        orders_otif=5,
        otif=0.625,
        trend_units_per_day=2.0,
        volatility=0.15,
        readings=900,
        readings_expected=1000,
        coverage=0.9,
        thin=False,
    )
    base.update(over)
    return FactoryProfile(**base)  # type: ignore[arg-type]


# --- features -------------------------------------------------------------------------------


def test_features_from_profile() -> None:
    f = features_from_profile(profile(), price=4.0)
    assert f.annual_revenue == pytest.approx(46_500 * 4.0 * 365 / 31)
    assert f.growth == pytest.approx(2.0 * 30 / 2000.0)
    assert (f.otif, f.oee, f.coverage, f.capacity) == (0.625, pytest.approx(0.72675), 0.9, 2000.0)
    assert features_from_profile(profile(), revenue=1e6).annual_revenue == 1e6


def test_features_keep_none_and_thin() -> None:
    f = features_from_profile(
        profile(otif=None, inventory_days=None, trend_units_per_day=None, coverage=0.5, thin=True), price=1.0
    )
    assert f.otif is None and f.inventory_days is None and f.growth is None and f.thin


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"price": 1.0, "revenue": 1.0}, "credit.input.missing"),
        ({}, "credit.input.missing"),
        ({"price": -1.0}, "credit.input.negative"),
        ({"price": math.nan}, "credit.input.not_finite"),
        ({"revenue": -5.0}, "credit.input.negative"),
        ({"revenue": math.inf}, "credit.input.not_finite"),
    ],
)
def test_features_from_profile_refuses(kwargs: dict[str, float], code: str) -> None:
    with pytest.raises(CreditModelError) as e:
        features_from_profile(profile(), **kwargs)
    assert e.value.code == code and isinstance(e.value, SupetError)


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("otif", math.nan, "credit.input.not_finite"),
        ("otif", 1.2, "credit.input.range"),
        ("annual_revenue", -1.0, "credit.input.negative"),
        ("coverage", None, "credit.input.missing"),
        ("oee", "high", "credit.input.type"),
        ("volatility", -0.1, "credit.input.negative"),
    ],
)
def test_credit_features_refuse(name: str, value: object, code: str) -> None:
    with pytest.raises(CreditModelError) as e:
        CreditFeatures(**{**GOOD, name: value})  # type: ignore[arg-type]
    assert e.value.code == code


def test_unknown_feature_refused(model: ScorecardModel) -> None:
    with pytest.raises(CreditModelError) as e:
        assess({**GOOD, "ebitda": 1.0}, model)
    assert e.value.code == "credit.input.unknown" and "ebitda" in e.value.message
    with pytest.raises(CreditModelError) as e:
        model.score_batch({"ebitda": np.zeros(3)})
    assert e.value.code == "credit.input.unknown"


def test_annual_revenue_refuses_empty_period() -> None:
    with pytest.raises(CreditModelError) as e:
        annual_revenue(10.0, 1.0, 0)
    assert e.value.code == "credit.input.range"


# --- simulator ------------------------------------------------------------------------------


def test_simulator_deterministic_and_documented() -> None:
    a, b = simulate_portfolio(2000, seed=5), simulate_portfolio(2000, seed=5)
    for k in FEATURE_NAMES:
        np.testing.assert_array_equal(a.features[k], b.features[k])
    np.testing.assert_array_equal(a.default, b.default)
    c = simulate_portfolio(2000, seed=6)
    assert not np.array_equal(a.default, c.default)
    assert 0.05 < a.default.mean() < 0.14
    assert 0.03 < np.isnan(a.features["otif"]).mean() < 0.12  # no order due: OTIF missing
    assert 0.80 < a.bayes_auc() < 0.92
    assert isinstance(a.row(0), CreditFeatures)
    with pytest.raises(CreditModelError) as e:
        simulate_portfolio(10)
    assert e.value.code == "credit.sim"


# --- scorecard ------------------------------------------------------------------------------


def test_packaged_model_equals_retraining(model: ScorecardModel) -> None:
    fresh = train_default_model()
    text = resources.files("finance").joinpath(DEFAULT_MODEL_FILE).read_text(encoding="utf-8")
    assert fresh.to_file_text() == text
    assert fresh.model_version == model.model_version


def test_model_json_round_trip(model: ScorecardModel, tmp_path: Path) -> None:
    obj = model.to_json_obj()
    again = ScorecardModel.from_json_obj(json.loads(canonical_json(obj)))
    assert canonical_json(again.to_json_obj()) == canonical_json(obj)
    p = tmp_path / "m.json"
    p.write_text(model.to_file_text())
    assert load_model(p).model_version == model.model_version


def test_model_file_tamper_and_garbage_refused(model: ScorecardModel, tmp_path: Path) -> None:
    obj = json.loads(model.to_file_text())
    obj["features"][0]["bins"][0]["points"] += 10
    with pytest.raises(CreditModelError) as e:
        ScorecardModel.from_json_obj(obj)
    assert e.value.code == "credit.model.version"
    with pytest.raises(CreditModelError) as e:
        ScorecardModel.from_json_obj({"schema": "other"})
    assert e.value.code == "credit.model.invalid"
    bad = json.loads(model.to_file_text())
    del bad["intercept"]
    with pytest.raises(CreditModelError) as e:
        ScorecardModel.from_json_obj(bad)
    assert e.value.code == "credit.model.invalid"
    p = tmp_path / "x.json"
    p.write_text("{not json")
    with pytest.raises(CreditModelError) as e:
        load_model(p)
    assert e.value.code == "credit.model.invalid"


def test_scaling_and_pd_consistent(model: ScorecardModel) -> None:
    s = model.scaling
    assert s.pd(s.base_score) == pytest.approx(1 / (1 + s.base_odds))
    assert s.pd(s.base_score + s.pdo) == pytest.approx(1 / (1 + 2 * s.base_odds))
    # the points table reproduces the regression: logit PD = intercept + sum coef x WoE
    row = {**GOOD, "otif": None}
    logit = model.intercept + sum(
        f.coefficient * f.bins[f.bin_index(row[f.name])].woe for f in model.features
    )
    assert float(model.pd(model.score(row))) == pytest.approx(1 / (1 + math.exp(-logit)), rel=1e-3)


def test_model_beats_chance_below_bayes(model: ScorecardModel) -> None:
    hold = simulate_portfolio(5000, seed=2)
    ev = evaluate(model, hold.features, hold.default)
    assert 0.78 < ev.auc < hold.bayes_auc()
    assert ev.ks > 0.4


@pytest.mark.parametrize(
    "name", ["oee", "first_pass_yield", "otif", "growth", "coverage", "capacity", "annual_revenue"]
)
def test_better_never_lowers_the_score(model: ScorecardModel, name: str) -> None:
    hi = {
        "oee": 1.2,
        "first_pass_yield": 1,
        "otif": 1,
        "growth": 0.5,
        "coverage": 1,
        "capacity": 1e5,
        "annual_revenue": 1e9,
    }[name]
    grid = np.linspace(0.0 if name != "growth" else -0.5, hi, 400)
    scores = [model.score({**GOOD, name: float(v)}) for v in grid]
    assert all(b >= a for a, b in itertools.pairwise(scores))
    assert scores[-1] > scores[0]


@pytest.mark.parametrize("name", ["inventory_days", "volatility"])
def test_worse_never_raises_the_score(model: ScorecardModel, name: str) -> None:
    grid = np.linspace(0.0, 200.0 if name == "inventory_days" else 2.0, 400)
    scores = [model.score({**GOOD, name: float(v)}) for v in grid]
    assert all(b <= a for a, b in itertools.pairwise(scores))
    assert scores[-1] < scores[0]


def test_unseen_missing_scores_as_worst_bin(model: ScorecardModel) -> None:
    inv = model.feature("inventory_days")
    assert model.points({**GOOD, "inventory_days": None})["inventory_days"] == min(b.points for b in inv.bins)


def test_batch_equals_single(model: ScorecardModel) -> None:
    p = simulate_portfolio(300, seed=9)
    batch = model.score_batch(p.features)
    single = [model.score(p.row(i).as_dict()) for i in range(p.n)]
    np.testing.assert_allclose(batch, single, atol=1e-9)


def test_ks_statistic() -> None:
    assert ks_statistic([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert ks_statistic([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]) == pytest.approx(0.5)


# --- master scale and limit -------------------------------------------------------------


@pytest.mark.parametrize(
    ("pd", "grade"),
    [
        (0.0, "S1"),
        (0.00249, "S1"),
        (0.0025, "S2"),
        (0.0099, "S3"),
        (0.01, "S4"),
        (0.04, "S6"),
        (0.0799, "S6"),
        (0.08, "S7"),
        (0.25, "S9"),
        (0.3999, "S9"),
        (0.40, "S10"),
        (1.0, "S10"),
    ],
)
def test_master_scale_boundaries(pd: float, grade: str) -> None:
    assert MASTER_SCALE.grade(pd).name == grade


@pytest.mark.parametrize("pd", [-0.01, 1.01, math.nan])
def test_master_scale_refuses_non_probability(pd: float) -> None:
    with pytest.raises(CreditModelError) as e:
        MASTER_SCALE.grade(pd)
    assert e.value.code == "credit.input.range"


def test_master_scale_must_tile() -> None:
    g = MASTER_SCALE.grades
    with pytest.raises(CreditModelError) as e:
        MasterScale((g[0], g[2]))
    assert e.value.code == "credit.policy"


def _limit(pd: float, revenue: float = 10_000_000.0, thin: bool = False, **policy: Any) -> LimitDecision:
    return credit_limit(
        annual_revenue=revenue, pd=pd, grade=MASTER_SCALE.grade(pd), thin=thin, policy=LimitPolicy(**policy)
    )


def test_limit_rule() -> None:
    low = _limit(0.01)  # revenue cap binds: 20 % of 10 M
    assert (low.limit, low.binding) == (2_000_000, "revenue")
    high = _limit(0.10)  # EL cap: 0.4 % x 10 M / (0.10 x 0.45) = 888,888.9 -> 888,000
    assert (high.limit, high.binding) == (888_000, "expected_loss")
    assert high.expected_loss <= 0.004 * 10_000_000
    assert _limit(0.10, max_limit=500_000).binding == "max_limit"
    assert _limit(0.0).limit == 2_000_000


@pytest.mark.parametrize(
    ("pd", "thin", "revenue", "binding"),
    [
        (0.30, False, 1e7, "grade"),
        (0.60, False, 1e7, "grade"),
        (0.01, True, 1e7, "thin"),
        (0.01, False, 0.0, "no_revenue"),
    ],
)
def test_limit_zero_cases(pd: float, thin: bool, revenue: float, binding: str) -> None:
    d = _limit(pd, revenue, thin)
    assert (d.limit, d.binding, d.expected_loss) == (0, binding, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"revenue": -1.0}, "credit.input.negative"),
        ({"revenue": math.nan}, "credit.input.not_finite"),
        ({"pd": 2.0}, "credit.input.range"),
    ],
)
def test_limit_refuses(kwargs: dict[str, float], code: str) -> None:
    with pytest.raises(CreditModelError) as e:
        credit_limit(
            annual_revenue=kwargs.get("revenue", 1e6),
            pd=kwargs.get("pd", 0.01),
            grade=MASTER_SCALE.grades[0],
            thin=False,
        )
    assert e.value.code == code


@pytest.mark.parametrize("bad", [{"lgd": 0.0}, {"lgd": 1.5}, {"revenue_share": 0.0}, {"rounding": 0}])
def test_policy_refused(bad: dict[str, float]) -> None:
    with pytest.raises(CreditModelError) as e:
        LimitPolicy(**bad)  # type: ignore[arg-type]
    assert e.value.code == "credit.policy"


# --- assessment -----------------------------------------------------------------------------


def test_assess_profile(model: ScorecardModel) -> None:
    a = assess(profile(), model, price=4.0, currency="EUR")
    assert a.subject == "fab-1" and a.period == ("2026-03-01", "2026-03-31")
    assert a.grade == MASTER_SCALE.grade(a.pd).name and a.model_version == model.model_version
    assert a.score == pytest.approx(sum(a.points.values()))
    assert a.limit % 1000 == 0 and a.limit > 0
    assert len(a.reasons) == 3
    assert [r.cost for r in a.reasons] == sorted((r.cost for r in a.reasons), reverse=True)
    assert all(r.text.endswith(f"(costs {round(r.cost)} points)") for r in a.reasons)


def test_reason_wording(model: ScorecardModel) -> None:
    a = assess({**GOOD, "otif": 0.62}, model)
    top = next(r for r in a.reasons if r.feature == "otif")
    assert top.cost == pytest.approx(model.feature("otif").best_points - a.points["otif"], abs=0.01)
    assert top.text == f"On-time-in-full delivery of 62% is low (costs {round(top.cost)} points)"
    b = assess({**GOOD, "inventory_days": 60.0, "capacity": 300.0}, model)
    texts = {r.feature: r.text for r in b.reasons}
    assert texts["inventory_days"].startswith("Unsold stock of 60 days of deliveries is high (costs ")
    assert texts["capacity"].startswith("Production capacity of 300 units/day is small (costs ")


def test_reasons_wording_missing_and_thin(model: ScorecardModel) -> None:
    a = assess({**GOOD, "otif": None, "coverage": 0.5}, model)
    texts = {r.feature: r.text for r in a.reasons}
    assert texts["otif"].startswith(
        "No order fell due in the period, so on-time-in-full delivery is unknown (costs "
    )
    assert texts["coverage"].startswith("Sensor data coverage of 50% is low (costs ")
    assert a.thin and a.limit == 0 and a.limit_decision.binding == "thin"


def test_best_factory_has_no_reasons(model: ScorecardModel) -> None:
    best = {f.name: None for f in model.features}
    a = assess(
        {
            **GOOD,
            "oee": 0.95,
            "first_pass_yield": 1.0,
            "otif": 1.0,
            "inventory_days": 0.0,
            "growth": 0.5,
            "volatility": 0.0,
            "coverage": 1.0,
            "capacity": 1e6,
            "annual_revenue": 1e9,
        },
        model,
    )
    assert a.reasons == () and a.grade == "S1" and best


def test_worst_grade_gets_no_limit(model: ScorecardModel) -> None:
    a = assess(
        {
            "oee": 0.2,
            "first_pass_yield": 0.7,
            "otif": 0.1,
            "inventory_days": 120.0,
            "growth": -0.2,
            "volatility": 1.0,
            "coverage": 0.5,
            "capacity": 30.0,
            "annual_revenue": 50_000.0,
        },
        model,
    )
    assert a.grade_rank >= 9 and a.limit == 0 and a.limit_decision.binding == "grade"


def test_assessment_json_canonical_and_committed(model: ScorecardModel) -> None:
    a = assess(profile(), model, price=4.0, lgd=0.35)
    obj = json.loads(canonical_json(a))
    assert obj["model"]["version"] == model.model_version and obj["policy"]["lgd"] == 0.35
    assert canonical_json(assess(profile(), model, price=4.0, lgd=0.35)) == canonical_json(a)
    digests = [bytes([i]) * 32 for i in range(1, 4)]
    c = commit_assessment(a, digests)
    verify_commitment(
        c,
        a,
        digests,
        ModelId(a.model_name, a.model_version),
        {"policy": a.policy.to_json_obj(), "currency": "EUR"},
    )


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda m: assess(GOOD, m, price=3.0), "credit.input.conflict"),
        (lambda m: assess(GOOD, m, currency="euro"), "credit.input.range"),
        (lambda m: assess(GOOD, m, lgd=2.0), "credit.policy"),
        (lambda m: assess({**GOOD, "otif": math.nan}, m), "credit.input.not_finite"),
        (lambda m: assess({**GOOD, "annual_revenue": -1.0}, m), "credit.input.negative"),
        (lambda m: assess(cast(Any, 42), m), "credit.input.type"),
        (lambda m: assess(profile(), m, price=-2.0), "credit.input.negative"),
    ],
)
def test_assess_refuses(model: ScorecardModel, call: Callable[[ScorecardModel], Any], code: str) -> None:
    with pytest.raises(CreditModelError) as e:
        call(model)
    assert e.value.code == code


def test_features_frozen() -> None:
    f = CreditFeatures(**GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.otif = 0.1  # type: ignore[misc]
