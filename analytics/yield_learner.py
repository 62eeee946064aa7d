"""scikit-learn's HistGradientBoostingClassifier, made cheaper for the yield model without changing it.

Two costs of a weighted yield-model fit, removed without changing a bit of its results:

* **Weighted binning.** With sample weights, scikit-learn 1.9 finds a column's bin thresholds by calling
  ``sklearn.utils.stats._weighted_percentile`` once per quantile (254 calls, each sorting the column).
  :func:`weighted_binning_thresholds` computes the same thresholds bit for bit (the same sorts,
  cumulative sum, search and averaging, for all quantiles at once), and :class:`YieldLearner` uses it
  where the learner fits its bin mapper on weighted training data.
* **Predictions with one column changed.** Permutation importance and partial dependence predict the
  same rows again and again with one column replaced.  Inside :meth:`YieldLearner.rows_cached`, the
  learner keeps each tree's predictions of the reference rows and re-predicts only the trees that
  split on a changed column; the raw prediction is summed tree by tree in scikit-learn's order, so
  it is the same float.

Everything else (the early-stopping split, the trees, prediction on raw values, the API used by
``permutation_importance`` and ``partial_dependence``) is scikit-learn's own.  The cases not reproduced
here (categorical features, more rows than the bin mapper's subsample, no weights) go to scikit-learn's
own code.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting.binning import _BinMapper, _find_binning_thresholds
from sklearn.ensemble._hist_gradient_boosting.common import ALMOST_INF, X_DTYPE
from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

__all__ = ["YieldLearner", "weighted_binning_thresholds"]

FloatArray = npt.NDArray[np.float64]

_EPS: Final = float(np.finfo(np.float64).eps)
#: Cache per-tree predictions only up to this many values (8 bytes each).
MAX_CACHED_VALUES: Final = 20_000_000


def weighted_binning_thresholds(col_data: FloatArray, max_bins: int, sample_weight: FloatArray) -> FloatArray:
    """The thresholds scikit-learn's ``_find_binning_thresholds(col_data, max_bins, sample_weight)`` gives.

    The weighted-percentile branch (more than ``max_bins`` distinct values among the rows with a value
    and a non-zero weight) is computed here, for all quantiles at once; the other branches (few distinct
    values: midpoints, one sort) are scikit-learn's own.

    @param col_data       one column (NaN = missing, ignored)
    @param max_bins       bins for non-missing values (the learner's ``max_bins``, at most 255)
    @param sample_weight  one weight per row
    @return the increasing thresholds
    """
    col = np.asarray(col_data, dtype=X_DTYPE)
    w = np.asarray(sample_weight, dtype=np.float64)
    present = ~np.isnan(col)
    if not present.all():
        col, w = col[present], w[present]
    nonzero = w != 0
    col, w = col[nonzero], w[nonzero]
    # the same sort scikit-learn does before looking at the distinct values
    sort_idx = np.argsort(col)
    col, w = col[sort_idx], w[sort_idx]
    if col.size == 0 or np.count_nonzero(np.diff(col)) + 1 <= max_bins:
        thresholds: FloatArray = _find_binning_thresholds(col_data, max_bins, sample_weight=sample_weight)
        return thresholds
    percentiles = np.linspace(0, 100, num=max_bins + 1)[1:-1]
    # _weighted_percentile(col, w, p, average=True) for every p: it sorts its (already sorted) input
    # again, unstably, as a one-column 2-D array; that order decides the cumulative sums, so keep it.
    order = np.argsort(col.reshape(-1, 1), axis=0)[:, 0]
    cdf = np.cumsum(w[order])
    rank = percentiles / 100 * cdf[-1]
    at_zero = rank == 0
    rank[at_zero] = np.nextafter(rank[at_zero], rank[at_zero] + 1)
    last = order.shape[0] - 1
    idx = np.clip(np.searchsorted(cdf, rank), 0, last)
    value = col[order[idx]]
    # every weight is non-zero here, so scikit-learn's "next row has weight 0" search never applies
    above = (cdf[idx] - rank) > _EPS
    value_next = col[order[np.clip(idx + 1, 0, last)]]
    bin_thresholds: FloatArray = np.where(above, value, (value + value_next) / 2)
    unique = np.unique(bin_thresholds)
    if unique.shape[0] != bin_thresholds.shape[0]:
        bin_thresholds = unique
    np.clip(bin_thresholds, a_min=None, a_max=ALMOST_INF, out=bin_thresholds)
    return bin_thresholds


def _fit_bin_mapper(mapper: _BinMapper, x: FloatArray, sample_weight: FloatArray) -> bool:
    """Fit ``mapper`` as ``mapper.fit(x, sample_weight=sample_weight)`` would; ``False`` (untouched)
    for the cases this module leaves to scikit-learn."""
    if not 3 <= mapper.n_bins <= 256 or x.dtype != X_DTYPE or x.ndim != 2:
        return False
    if mapper.subsample is not None and x.shape[0] > mapper.subsample:
        return False  # scikit-learn resamples the rows (by weight) first
    n_features = x.shape[1]
    if mapper.is_categorical is not None and bool(np.any(mapper.is_categorical)):
        return False
    if mapper.known_categories is not None and any(c is not None for c in mapper.known_categories):
        return False
    max_bins = mapper.n_bins - 1
    thresholds = [weighted_binning_thresholds(x[:, j], max_bins, sample_weight) for j in range(n_features)]
    mapper.is_categorical_ = np.zeros(n_features, dtype=np.uint8)
    mapper.missing_values_bin_idx_ = mapper.n_bins - 1
    mapper.bin_thresholds_ = thresholds
    mapper.n_bins_non_missing_ = np.array([t.shape[0] + 1 for t in thresholds], dtype=np.uint32)
    return True


@dataclass(frozen=True, slots=True)
class _RowCache:
    """Per-tree predictions of the reference rows ``x``; ``features[i]``: the columns tree ``i`` splits on."""

    x: FloatArray
    tree_predictions: list[FloatArray]
    features: list[frozenset[int]]


class YieldLearner(HistGradientBoostingClassifier):
    """:class:`~sklearn.ensemble.HistGradientBoostingClassifier` with one-pass weighted binning and
    cached predictions of rows that differ in a few columns; the same parameters, fit and predictions."""

    _row_cache: _RowCache | None = None

    @contextmanager
    def rows_cached(self, x: Any) -> Iterator[None]:
        """Within the block, predictions of rows equal to ``x`` except in some columns re-evaluate only
        the trees splitting on those columns (the results are unchanged; other inputs predict as usual).
        Skipped when the cache would exceed :data:`MAX_CACHED_VALUES`."""
        ref = self._preprocess_X(x, reset=False)
        predictors = [p for per_iteration in self._predictors for p in per_iteration]
        if self.n_trees_per_iteration_ != 1 or ref.shape[0] * len(predictors) > MAX_CACHED_VALUES:
            yield
            return
        known_cat_bitsets, f_idx_map = self._bin_mapper.make_known_categories_bitsets()
        n_threads = _openmp_effective_n_threads()
        tree_predictions = [
            p.predict(ref, known_cat_bitsets=known_cat_bitsets, f_idx_map=f_idx_map, n_threads=n_threads)
            for p in predictors
        ]
        features = [
            frozenset(int(f) for f in p.nodes["feature_idx"][p.nodes["is_leaf"] == 0]) for p in predictors
        ]
        self._row_cache = _RowCache(ref, tree_predictions, features)
        try:
            yield
        finally:
            self._row_cache = None

    def _raw_predict(self, X: Any, n_threads: int | None = None) -> Any:
        cache = self._row_cache
        if cache is None or getattr(self, "_in_fit", False):
            return super()._raw_predict(X, n_threads=n_threads)
        x = self._preprocess_X(X, reset=False)
        if x.shape != cache.x.shape:
            return super()._raw_predict(x, n_threads=n_threads)
        differs = (x != cache.x) & ~(np.isnan(x) & np.isnan(cache.x))  # NaN where NaN is no change
        changed = frozenset(int(j) for j in np.flatnonzero(np.any(differs, axis=0)))
        # as scikit-learn's _raw_predict and _predict_iterations: baseline, then each tree added in turn
        raw = np.zeros(shape=(x.shape[0], 1), dtype=self._baseline_prediction.dtype, order="F")
        raw += self._baseline_prediction
        known_cat_bitsets, f_idx_map = self._bin_mapper.make_known_categories_bitsets()
        threads = _openmp_effective_n_threads(n_threads)
        predictors = (p for per_iteration in self._predictors for p in per_iteration)
        for predictor, cached, uses in zip(predictors, cache.tree_predictions, cache.features, strict=True):
            if uses & changed:
                raw[:, 0] += predictor.predict(
                    x, known_cat_bitsets=known_cat_bitsets, f_idx_map=f_idx_map, n_threads=threads
                )
            else:
                raw[:, 0] += cached
        return raw

    def _bin_data(self, X: Any, sample_weight: Any, is_training_data: bool) -> Any:
        if is_training_data and sample_weight is not None:
            x = np.asarray(X)
            w = np.asarray(sample_weight, dtype=np.float64)
            if _fit_bin_mapper(self._bin_mapper, x, w):
                return self._bin_mapper.transform(x)
        return super()._bin_data(X, sample_weight, is_training_data)
