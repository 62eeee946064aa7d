"""One-pass weighted binning gives scikit-learn's model exactly: thresholds, trees, predictions, results."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting import binning as sk_binning
from sklearn.ensemble._hist_gradient_boosting.binning import _find_binning_thresholds
from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
from sklearn.inspection import partial_dependence, permutation_importance

from analytics import yield_model
from analytics.yield_learner import YieldLearner, weighted_binning_thresholds
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


# two seeds: each draws every case of _columns (the branches and awkward shapes) at both sizes and both
# max_bins; the third and fourth seed drew the same shapes again (about 5 CPU-s of scikit-learn's slow
# weighted binning, the reference this compares with)
@pytest.mark.parametrize("seed", range(2))
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
        fast = YieldLearner(**_params()).fit(x, y, sample_weight=w)

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
    fast = YieldLearner(**_params()).fit(x, y)
    assert np.array_equal(fast.predict_proba(x), plain.predict_proba(x))
    cats = np.column_stack([x, np.random.default_rng(6).integers(0, 4, x.shape[0])])
    w = np.random.default_rng(7).integers(1, 5, x.shape[0]).astype(np.float64)
    kw = _params(categorical_features=[cats.shape[1] - 1])
    plain_c = HistGradientBoostingClassifier(**kw).fit(cats, y, sample_weight=w)
    fast_c = YieldLearner(**kw).fit(cats, y, sample_weight=w)
    assert np.array_equal(fast_c.predict_proba(cats), plain_c.predict_proba(cats))


class _Plain(HistGradientBoostingClassifier):
    """scikit-learn's learner as it is, with a cache that caches nothing."""

    @contextmanager
    def rows_cached(self, x: Any) -> Iterator[None]:
        yield


def test_cached_rows_predict_as_scikit_learn(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, w = _weighted_data(21, p=30)
    x[np.random.default_rng(22).random(x.shape) < 0.02] = np.nan
    model = YieldLearner(**_params()).fit(x, y, sample_weight=w)
    val, vy, vw = x[:400], y[:400], w[:400]
    plain_perm = permutation_importance(
        model, val, vy, scoring="roc_auc", n_repeats=3, random_state=1, sample_weight=vw
    )

    def pd_of(j: int) -> Any:
        return partial_dependence(
            model,
            x,
            [j],
            response_method="predict_proba",
            method="brute",
            sample_weight=w,
            grid_resolution=20,
        )

    plain_pd = [pd_of(j) for j in (0, 5)]
    changed = x.copy()
    changed[:, 3] = np.random.default_rng(23).permutation(changed[:, 3])
    changed[7, 9] = np.nan
    plain_changed = model.predict_proba(changed)
    plain_other = model.predict_proba(val)

    calls = 0
    predict = TreePredictor.predict

    def counting(self: TreePredictor, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return predict(self, *args, **kwargs)

    monkeypatch.setattr(TreePredictor, "predict", counting)
    n_trees = len(model._predictors)
    with model.rows_cached(val):
        calls = 0
        perm = permutation_importance(
            model, val, vy, scoring="roc_auc", n_repeats=3, random_state=1, sample_weight=vw
        )
        full = (1 + 3 * val.shape[1]) * n_trees  # every tree for the baseline and each shuffle
        assert 0 < calls < full / 2, (calls, full)  # most trees came from the cache
    with model.rows_cached(x):
        pds = [pd_of(j) for j in (0, 5)]
        assert np.array_equal(model.predict_proba(changed), plain_changed)
        assert np.array_equal(model.predict_proba(val), plain_other)  # other rows: predicted as usual
    for key in ("importances", "importances_mean", "importances_std"):
        assert np.array_equal(perm[key], plain_perm[key])
    for got, want in zip(pds, plain_pd, strict=True):
        assert np.array_equal(got["average"], want["average"])
        assert np.array_equal(got["grid_values"][0], want["grid_values"][0])


@pytest.mark.parametrize("weighted", [True, False])
def test_yield_model_result_is_unchanged(weighted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, units = _weighted_data(11, n=2400, p=10)
    w = units if weighted else None
    names = [f"p{j:02d}" for j in range(x.shape[1])]
    groups = np.arange(x.shape[0]) // 2  # an interval's two rows stay together
    params = YieldModelParams(seed=3, n_selected=6, n_windows=3, n_repeats=3, grid_resolution=20)

    def run() -> dict[str, Any]:
        r = fit_yield_model(x, y, names, line_id="L", params=params, sample_weight=w, groups=groups)
        return r.to_json_obj()

    fast = run()
    original: Callable[[YieldModelParams], HistGradientBoostingClassifier] = yield_model._learner

    def plain_learner(p: YieldModelParams) -> HistGradientBoostingClassifier:
        return _Plain(**original(p).get_params())

    monkeypatch.setattr(yield_model, "_learner", plain_learner)
    plain = run()
    assert fast == plain
