"""Yield model of one production line: rank the drivers, fit, score on held-out units, recommend windows.

Method (scikit-learn throughout; no home-made learner: :mod:`analytics.yield_learner` only computes
scikit-learn's weighted bin thresholds and repeated predictions more cheaply, with the same results):

1. **Split.** The units are split, stratified on the outcome and seeded, into a training set
   (``1 - test_fraction``) and a held-out test set.  The training set is split again into a
   *fit* part and a *validation* part (``validation_fraction`` of it).  The test set is touched
   only for the final quality figure and the expected gain, never for choosing anything.
2. **Rank.** A :class:`~sklearn.ensemble.HistGradientBoostingClassifier` (the *screening model*)
   is fitted on the fit part with all ``P`` parameters; the **importance** of a parameter is its
   permutation importance on the validation part: the mean drop of ROC AUC when that column is
   shuffled (``n_repeats`` shuffles, seeded).  Parameters are ranked by it (ties by name).
3. **Fit.** The *final model*, the same learner, is refitted on the whole training set using only
   the ``n_selected`` top-ranked parameters.
4. **Held-out quality.** ``holdout_auc`` is the final model's ROC AUC on the test set.
5. **Windows.** For each of the ``n_windows`` top parameters, the partial dependence of the final
   model's predicted A-grade probability on that parameter is computed over the training units
   (a grid between the 2nd and 98th percentiles).  The **recommended window** is the contiguous
   run of grid points around the maximum whose partial dependence is within
   ``window_fraction`` of the partial dependence's range from the maximum.
6. **Expected gain.** On the test units, each top parameter is moved to the nearest edge of its
   window when outside it (clipped: the smallest change of the process), and the final model
   predicts the A-grade probability again.  ``predicted_yield_in_windows`` is its mean;
   ``expected_gain = predicted_yield_in_windows - observed_yield`` (the observed A-grade rate
   of the test units), as the issue asks; ``model_gain`` is the same against the model's own
   mean prediction on the unchanged units (free of calibration bias).  Each window also carries
   the gain of clipping that parameter alone.

Deterministic given the data and ``seed`` (every random step takes ``seed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
from threadpoolctl import threadpool_limits

if TYPE_CHECKING:  # scikit-learn is imported where a model is fitted: the service starts without it
    from analytics.yield_learner import YieldLearner

from supet_base.errors import SupetError

__all__ = [
    "MODEL_NAME",
    "MODEL_VERSION",
    "OperatingWindow",
    "ParameterImportance",
    "YieldModelError",
    "YieldModelParams",
    "YieldModelResult",
    "fit_yield_model",
    "window_overlap",
]

#: The name of the learner the result was produced with.
MODEL_NAME: Final = "supet.yield-model/sklearn.HistGradientBoostingClassifier"
#: The version of the method in this module (bump when the method changes) and of scikit-learn.
MODEL_VERSION: Final = f"1+sklearn-{version('scikit-learn')}"

FloatArray = npt.NDArray[np.float64]


class YieldModelError(SupetError):
    """The yield model cannot run on the data given (shape, outcome or parameters)."""

    code = "analytics.yield_model"


@dataclass(frozen=True, slots=True)
class YieldModelParams:
    """The knobs of :func:`fit_yield_model`; they are part of the commitment.

    @param seed                seed of every random step
    @param test_fraction       share of units held out for the quality figure
    @param validation_fraction share of the training units used for the permutation importance
    @param n_repeats           shuffles per parameter in the permutation importance
    @param n_selected          parameters the final model is refitted on
    @param n_windows           top parameters a window is recommended for
    @param window_fraction     the window keeps PD values within this share of the PD range of the top
    @param grid_resolution     grid points of the partial dependence
    @param max_iter            boosting iterations (upper bound; early stopping on)
    @param learning_rate       boosting learning rate
    @param max_leaf_nodes      leaves per tree
    @param min_samples_leaf    minimum units per leaf
    @param l2_regularization   L2 penalty on the leaf values
    """

    seed: int = 0
    test_fraction: float = 0.3
    validation_fraction: float = 0.25
    n_repeats: int = 5
    n_selected: int = 15
    n_windows: int = 5
    window_fraction: float = 0.25
    grid_resolution: int = 40
    max_iter: int = 300
    learning_rate: float = 0.05
    max_leaf_nodes: int = 15
    min_samples_leaf: int = 40
    l2_regularization: float = 1.0

    def to_json_obj(self) -> dict[str, Any]:
        """The parameters as a JSON object."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class ParameterImportance:
    """One parameter's rank.

    @param rank            1 = strongest driver
    @param name            parameter name
    @param importance      mean ROC AUC drop when the parameter is shuffled (validation units)
    @param importance_std  standard deviation of that drop over the shuffles
    """

    rank: int
    name: str
    importance: float
    importance_std: float

    def to_json_obj(self) -> dict[str, Any]:
        """As a JSON object."""
        return {
            "rank": self.rank,
            "name": self.name,
            "importance": self.importance,
            "importance_std": self.importance_std,
        }


@dataclass(frozen=True, slots=True)
class OperatingWindow:
    """The recommended operating window of one key parameter.

    @param name              parameter name
    @param low               lower edge (parameter units, as measured)
    @param high              upper edge
    @param peak              grid value where the partial dependence is highest
    @param predicted_yield_peak  the partial dependence at the peak (mean predicted A-grade rate)
    @param expected_gain     predicted yield gain on the test units from this window alone
    """

    name: str
    low: float
    high: float
    peak: float
    predicted_yield_peak: float
    expected_gain: float

    def to_json_obj(self) -> dict[str, Any]:
        """As a JSON object."""
        return {
            "name": self.name,
            "low": self.low,
            "high": self.high,
            "peak": self.peak,
            "predicted_yield_peak": self.predicted_yield_peak,
            "expected_gain": self.expected_gain,
        }


@dataclass(frozen=True, slots=True)
class YieldModelResult:
    """What :func:`fit_yield_model` found for one line.

    @param line_id                    the line
    @param n_units                    units used
    @param n_parameters               process parameters screened
    @param n_train                    training units (fit + validation)
    @param n_test                     held-out units
    @param ranking                    every parameter, strongest first
    @param selected                   the parameters of the final model
    @param holdout_auc                final model's ROC AUC on the held-out units
    @param windows                    recommended windows of the top parameters
    @param observed_yield             observed A-grade rate of the held-out units
    @param predicted_yield            final model's mean prediction on the held-out units
    @param predicted_yield_in_windows mean prediction with the top parameters clipped into their windows
    @param expected_gain              ``predicted_yield_in_windows - observed_yield``
    @param model_gain                 ``predicted_yield_in_windows - predicted_yield``
    @param test_indices               row indices of the held-out units (for scoring against a truth)
    @param params                     the knobs used
    """

    line_id: str
    n_units: int
    n_parameters: int
    n_train: int
    n_test: int
    ranking: tuple[ParameterImportance, ...]
    selected: tuple[str, ...]
    holdout_auc: float
    windows: tuple[OperatingWindow, ...]
    observed_yield: float
    predicted_yield: float
    predicted_yield_in_windows: float
    expected_gain: float
    model_gain: float
    test_indices: tuple[int, ...]
    params: YieldModelParams

    def top(self, k: int) -> tuple[str, ...]:
        """The names of the ``k`` top-ranked parameters."""
        return tuple(r.name for r in self.ranking[:k])

    def to_json_obj(self) -> dict[str, Any]:
        """The result as a JSON object (feed it to :func:`analytics.commitment.canonical_json`)."""
        return {
            "schema": "supet.yield-model-result.v1",
            "model": {"name": MODEL_NAME, "version": MODEL_VERSION},
            "line_id": self.line_id,
            "n_units": self.n_units,
            "n_parameters": self.n_parameters,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "ranking": [r.to_json_obj() for r in self.ranking],
            "selected": list(self.selected),
            "holdout_auc": self.holdout_auc,
            "windows": [w.to_json_obj() for w in self.windows],
            "observed_yield": self.observed_yield,
            "predicted_yield": self.predicted_yield,
            "predicted_yield_in_windows": self.predicted_yield_in_windows,
            "expected_gain": self.expected_gain,
            "model_gain": self.model_gain,
            "test_indices": list(self.test_indices),
            "params": self.params.to_json_obj(),
        }


def _learner(p: YieldModelParams) -> YieldLearner:
    """The learner: scikit-learn's, with weighted binning in one pass per column and cached repeated
    predictions (the same model and predictions, see :mod:`analytics.yield_learner`)."""
    from analytics.yield_learner import YieldLearner

    return YieldLearner(
        max_iter=p.max_iter,
        learning_rate=p.learning_rate,
        max_leaf_nodes=p.max_leaf_nodes,
        min_samples_leaf=p.min_samples_leaf,
        l2_regularization=p.l2_regularization,
        early_stopping=True,
        validation_fraction=0.15,
        n_iter_no_change=15,
        random_state=p.seed,
    )


def _window(grid: FloatArray, pd: FloatArray, fraction: float) -> tuple[float, float, float, float]:
    """(low, high, peak, pd_at_peak): the contiguous run around the PD maximum within ``fraction`` of it."""
    best = int(np.argmax(pd))
    top, bottom = float(pd[best]), float(np.min(pd))
    threshold = top - fraction * (top - bottom)
    lo = best
    while lo > 0 and pd[lo - 1] >= threshold:
        lo -= 1
    hi = best
    while hi < pd.size - 1 and pd[hi + 1] >= threshold:
        hi += 1
    return float(grid[lo]), float(grid[hi]), float(grid[best]), top


def _check(x: FloatArray, y: npt.NDArray[Any], names: Sequence[str], p: YieldModelParams) -> None:
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise YieldModelError(
            f"need X (units x parameters) and y (units), got {x.shape} and {y.shape}",
            code="analytics.yield_model.shape",
        )
    if len(names) != x.shape[1] or len(set(names)) != len(names):
        raise YieldModelError(
            "need one distinct name per parameter column", code="analytics.yield_model.names"
        )
    if not np.all(np.isfinite(x)):
        raise YieldModelError("X holds NaN or infinite values", code="analytics.yield_model.not_finite")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise YieldModelError(
            "y must hold both outcomes 0 and 1 (and nothing else)", code="analytics.yield_model.outcome"
        )
    if not (0 < p.test_fraction < 1 and 0 < p.validation_fraction < 1 and 0 < p.window_fraction <= 1):
        raise YieldModelError("fractions must lie in (0, 1)", code="analytics.yield_model.params")
    if not 1 <= p.n_windows <= p.n_selected <= x.shape[1]:
        raise YieldModelError(
            "need 1 <= n_windows <= n_selected <= number of parameters", code="analytics.yield_model.params"
        )


def fit_yield_model(
    x: FloatArray,
    y: npt.NDArray[Any],
    names: Sequence[str],
    *,
    line_id: str,
    params: YieldModelParams | None = None,
    sample_weight: npt.NDArray[Any] | None = None,
    groups: npt.NDArray[Any] | None = None,
) -> YieldModelResult:
    """Rank the yield drivers of one line, fit the model, score it, and recommend windows.

    @param x        ``(n_units, P)`` process parameters as measured
    @param y        ``(n_units,)`` outcome, 1 = A grade
    @param names    one name per column
    @param line_id  the line's name (goes into the result)
    @param params   the knobs (defaults: :class:`YieldModelParams`)
    @param sample_weight units each row stands for (aggregated data: one row per interval and outcome,
                    weighted by its count); every fit, score and mean is weighted by it
    @param groups   rows of one group (an interval's A-grade and non-A-grade rows) are kept on the same
                    side of every split; the splits are then over groups and not stratified
    @return the frozen :class:`YieldModelResult`
    @raise YieldModelError for malformed data or parameters
    """
    # One OpenMP thread: on a shared 2-core machine the learner's thread pool spin-waits against
    # the other processes and runs 20x slower (measured: 502 s vs 23 s for one line-week).
    with threadpool_limits(limits=1, user_api="openmp"):
        return _fit(x, y, names, line_id=line_id, params=params, sample_weight=sample_weight, groups=groups)


def _weights(n: int, sample_weight: npt.NDArray[Any] | None) -> FloatArray:
    """Each row's weight (default 1), checked."""
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise YieldModelError(
            "sample_weight needs one finite, non-negative weight per row",
            code="analytics.yield_model.weights",
        )
    return w


def _learner_weights(w: FloatArray) -> FloatArray | None:
    """The weights to fit the learner with: ``None`` when every row weighs 1.

    The same model either way; unweighted, the bin thresholds are one ``np.percentile`` call per column
    (weighted, :func:`analytics.yield_learner.weighted_binning_thresholds` computes them).
    """
    return None if bool(np.all(w == 1.0)) else w


def _splits(
    y: npt.NDArray[Any], groups: npt.NDArray[Any] | None, p: YieldModelParams
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]]:
    """Sorted row indices (train, test, fit, val): fit and val split train; whole groups when given."""
    from sklearn.model_selection import train_test_split

    n = y.shape[0]
    idx = np.arange(n)
    if groups is None:
        train, test = train_test_split(idx, test_size=p.test_fraction, random_state=p.seed, stratify=y)
        fit, val = train_test_split(
            train, test_size=p.validation_fraction, random_state=p.seed, stratify=y[train]
        )
    else:
        g = np.asarray(groups)
        if g.shape != (n,):
            raise YieldModelError("groups needs one label per row", code="analytics.yield_model.groups")
        uniq = np.unique(g)
        g_train, g_test = train_test_split(uniq, test_size=p.test_fraction, random_state=p.seed)
        g_fit, g_val = train_test_split(g_train, test_size=p.validation_fraction, random_state=p.seed)
        train, test = idx[np.isin(g, g_train)], idx[np.isin(g, g_test)]
        fit, val = idx[np.isin(g, g_fit)], idx[np.isin(g, g_val)]
    train, test, fit, val = np.sort(train), np.sort(test), np.sort(fit), np.sort(val)
    for part, name in ((test, "test"), (val, "validation")):
        if set(np.unique(y[part]).tolist()) != {0, 1}:
            raise YieldModelError(
                f"the {name} split holds only one outcome: too little data",
                code="analytics.yield_model.outcome",
            )
    return train, test, fit, val


def _ranking(
    x: FloatArray,
    y: npt.NDArray[Any],
    w: FloatArray,
    fit: npt.NDArray[Any],
    val: npt.NDArray[Any],
    names: Sequence[str],
    p: YieldModelParams,
) -> tuple[tuple[ParameterImportance, ...], list[int]]:
    """The parameters ranked by permutation importance on the validation rows, and their column order."""
    from sklearn.inspection import permutation_importance

    screen = _learner(p).fit(x[fit], y[fit], sample_weight=_learner_weights(w[fit]))
    with screen.rows_cached(x[val]):  # each scoring changes one column: re-predict only its trees
        perm = permutation_importance(
            screen,
            x[val],
            y[val],
            scoring="roc_auc",
            n_repeats=p.n_repeats,
            random_state=p.seed,
            sample_weight=w[val],
        )
    imp_mean = np.asarray(perm["importances_mean"], dtype=np.float64)
    imp_std = np.asarray(perm["importances_std"], dtype=np.float64)
    order = sorted(range(x.shape[1]), key=lambda j: (-round(float(imp_mean[j]), 12), names[j]))
    ranking = tuple(
        ParameterImportance(
            rank=r + 1, name=names[j], importance=float(imp_mean[j]), importance_std=float(imp_std[j])
        )
        for r, j in enumerate(order)
    )
    return ranking, order


def _operating_windows(
    model: YieldLearner,
    x_train: FloatArray,
    w_train: FloatArray,
    x_test: FloatArray,
    w_test: FloatArray,
    pred: FloatArray,
    names: Sequence[str],
    p: YieldModelParams,
) -> tuple[list[OperatingWindow], FloatArray]:
    """The windows of the first ``p.n_windows`` selected parameters, and ``x_test`` clipped to all of
    them (columns: the selected parameters, in order; ``names``: those parameters' names)."""
    from sklearn.inspection import partial_dependence

    windows: list[OperatingWindow] = []
    clipped = x_test.copy()
    # each grid point changes one column of the training rows: re-predict only the trees using it
    with model.rows_cached(x_train):
        for pos in range(p.n_windows):
            pd = partial_dependence(
                model,
                x_train,
                [pos],
                percentiles=(0.02, 0.98),
                grid_resolution=p.grid_resolution,
                response_method="predict_proba",
                kind="average",
                method="brute",
                sample_weight=w_train,
            )
            grid = np.asarray(pd["grid_values"][0], dtype=np.float64)
            curve = np.asarray(pd["average"][0], dtype=np.float64)
            low, high, peak, at_peak = _window(grid, curve, p.window_fraction)
            alone = x_test.copy()
            alone[:, pos] = np.clip(alone[:, pos], low, high)
            clipped[:, pos] = np.clip(clipped[:, pos], low, high)
            alone_mean = np.average(model.predict_proba(alone)[:, 1], weights=w_test)
            gain = float(alone_mean - np.average(pred, weights=w_test))
            windows.append(
                OperatingWindow(
                    name=names[pos],
                    low=low,
                    high=high,
                    peak=peak,
                    predicted_yield_peak=at_peak,
                    expected_gain=gain,
                )
            )
    return windows, clipped


def _fit(
    x: FloatArray,
    y: npt.NDArray[Any],
    names: Sequence[str],
    *,
    line_id: str,
    params: YieldModelParams | None,
    sample_weight: npt.NDArray[Any] | None,
    groups: npt.NDArray[Any] | None,
) -> YieldModelResult:
    from sklearn.metrics import roc_auc_score

    p = params or YieldModelParams()
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y).astype(np.int64)
    _check(x, y, names, p)
    n, n_par = x.shape
    w = _weights(n, sample_weight)
    train, test, fit, val = _splits(y, groups, p)
    ranking, order = _ranking(x, y, w, fit, val, names, p)
    sel = np.asarray(order[: p.n_selected])
    selected = tuple(names[int(j)] for j in sel)
    model = _learner(p).fit(x[train][:, sel], y[train], sample_weight=_learner_weights(w[train]))
    x_test = x[test][:, sel]
    w_test = w[test]
    pred = model.predict_proba(x_test)[:, 1]
    auc = float(roc_auc_score(y[test], pred, sample_weight=w_test))
    windows, clipped = _operating_windows(
        model, x[train][:, sel], w[train], x_test, w_test, pred, selected, p
    )
    in_windows = float(np.average(model.predict_proba(clipped)[:, 1], weights=w_test))
    observed = float(np.average(y[test], weights=w_test))
    predicted = float(np.average(pred, weights=w_test))
    return YieldModelResult(
        line_id=line_id,
        n_units=n,
        n_parameters=n_par,
        n_train=int(train.size),
        n_test=int(test.size),
        ranking=ranking,
        selected=selected,
        holdout_auc=auc,
        windows=tuple(windows),
        observed_yield=observed,
        predicted_yield=predicted,
        predicted_yield_in_windows=in_windows,
        expected_gain=in_windows - observed,
        model_gain=in_windows - predicted,
        test_indices=tuple(int(i) for i in test),
        params=p,
    )


def window_overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Length of the intersection of two intervals divided by the length of the shorter (0 .. 1)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    shorter = min(a[1] - a[0], b[1] - b[0])
    if shorter <= 0:
        return 1.0 if a[0] <= b[1] and b[0] <= a[1] else 0.0
    return inter / shorter
