"""One-pass weighted binning gives scikit-learn's model exactly: thresholds, trees, predictions, results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting import binning as sk_binning
from sklearn.ensemble._hist_gradient_boosting.binning import _find_binning_thresholds

from analytics import yield_model
from analytics.weighted_binning import FastWeightedHistGradientBoostingClassifier, weighted_binning_thresholds
from analytics.yield_model import YieldModelParams, fit_yield_model

FloatArray = npt.NDArray[np.float64]


def _columns(rng: np.random.Generator, n: int) -> list[tuple[FloatArray, FloatArray]]:
    """(column, weights) pairs covering the branches and the awkward cases."""
    cases: list[tuple[FloatArray, FloatArray]] = []
    units = rng.integers(1, 40, n).astype(np.float64)
    cases.append((rng.normal(size=n), units))  # all distinct
    cases.append((np.round(rng.normal(size=n), 2), units))  # many ties, > 255 distinct
    cases.append((np.round(rng.normal(size=n), 1), units))  # < 255 distinct: midpoints
    cases.append((rng.normal(size=n), rng.exponential(size=n)))  # non-integer weights
    sparse = units.copy()
    sparse[rng.random(n) < 0.3] = 0.0  # zero-weight rows are left out of the thresholds
    cases.append((np.round(rng.normal(size=n), 2), sparse))
    with_nan = rng.normal(size=n)
    with_nan[rng.random(n) < 0.2] = np.nan
    cases.append((with_nan, units))
    cases.append((np.full(n, 3.5), units))  # one value
    cases.append((np.round(rng.uniform(0, 1000, n)), np.ones(n)))  # integer-valued, unit weights
    heavy = units.copy()
    heavy[:3] = 1e6  # a few rows carry most of the weight: many duplicate quantiles
    cases.append((rng.normal(size=n), heavy))
    cases.append((rng.normal(size=n) * 1e300, units))  # huge values (clipped thresholds)
    return cases


@pytest.mark.parametrize("seed", range(4))
def test_thresholds_equal_scikit_learns_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n in (300, 2000):
        for col, w in _columns(rng, n):
            for max_bins in (255, 64):
                ours = weighted_binning_thresholds(col, max_bins, w)
                theirs = _find_binning_thresholds(col, max_bins, sample_weight=w)
                assert ours.dtype == theirs.dtype
                assert np.array_equal(ours, theirs), (n, max_bins)


def _weighted_data(seed: int, n: int = 1500, p: int = 8) -> tuple[FloatArray, npt.NDArray[Any], FloatArray]:
    """One row per interval and outcome, weighted by units, as the ledger path fits."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(n, p)), 3)
    logit = 1.5 * x[:, 0] - np.abs(x[:, 1]) + 0.5 * x[:, 2] * x[:, 3]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    w = rng.integers(1, 30, n).astype(np.float64)
    w[rng.random(n) < 0.05] = 0.0
    return x, y, w


def _params(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "max_iter": 60,
        "learning_rate": 0.1,
        "max_leaf_nodes": 15,
        "min_samples_leaf": 20,
        "l2_regularization": 1.0,
        "early_stopping": True,
        "validation_fraction": 0.15,
        "n_iter_no_change": 15,
        "random_state": 3,
    }
    return base | kw


@pytest.mark.parametrize("with_nan", [False, True])
def test_classifier_is_scikit_learns_model(with_nan: bool) -> None:
    x, y, w = _weighted_data(1)
    if with_nan:
        x[np.random.default_rng(2).random(x.shape) < 0.05] = np.nan
    plain = HistGradientBoostingClassifier(**_params()).fit(x, y, sample_weight=w)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("scikit-learn's per-quantile weighted percentile was called")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sk_binning, "_weighted_percentile", refuse)
        fast = FastWeightedHistGradientBoostingClassifier(**_params()).fit(x, y, sample_weight=w)

    assert fast.n_iter_ == plain.n_iter_
    for a, b in zip(fast._bin_mapper.bin_thresholds_, plain._bin_mapper.bin_thresholds_, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(fast._bin_mapper.n_bins_non_missing_, plain._bin_mapper.n_bins_non_missing_)
    assert np.array_equal(fast.validation_score_, plain.validation_score_)
    probe = np.vstack([x, np.random.default_rng(4).normal(size=(500, x.shape[1]))])
    assert np.array_equal(fast.predict_proba(probe), plain.predict_proba(probe))


def test_unweighted_and_unsupported_fits_are_scikit_learns() -> None:
    x, y, _ = _weighted_data(5)
    plain = HistGradientBoostingClassifier(**_params()).fit(x, y)
    fast = FastWeightedHistGradientBoostingClassifier(**_params()).fit(x, y)
    assert np.array_equal(fast.predict_proba(x), plain.predict_proba(x))
    cats = np.column_stack([x, np.random.default_rng(6).integers(0, 4, x.shape[0])])
    w = np.random.default_rng(7).integers(1, 5, x.shape[0]).astype(np.float64)
    kw = _params(categorical_features=[cats.shape[1] - 1])
    plain_c = HistGradientBoostingClassifier(**kw).fit(cats, y, sample_weight=w)
    fast_c = FastWeightedHistGradientBoostingClassifier(**kw).fit(cats, y, sample_weight=w)
    assert np.array_equal(fast_c.predict_proba(cats), plain_c.predict_proba(cats))


def test_weighted_yield_model_result_is_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, w = _weighted_data(11, n=2400, p=10)
    names = [f"p{j:02d}" for j in range(x.shape[1])]
    groups = np.arange(x.shape[0]) // 2  # an interval's two rows stay together
    params = YieldModelParams(seed=3, n_selected=6, n_windows=3, n_repeats=3, grid_resolution=20)

    def run() -> dict[str, Any]:
        r = fit_yield_model(x, y, names, line_id="L", params=params, sample_weight=w, groups=groups)
        return r.to_json_obj()

    fast = run()
    original: Callable[[YieldModelParams], HistGradientBoostingClassifier] = yield_model._learner

    def plain_learner(p: YieldModelParams) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(**original(p).get_params())

    monkeypatch.setattr(yield_model, "_learner", plain_learner)
    plain = run()
    assert fast == plain
