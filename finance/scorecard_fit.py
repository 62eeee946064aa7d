"""Training the credit scorecard (:mod:`finance.scorecard` is the model and its scoring).

**Training** (:func:`fit_scorecard`) uses `optbinning <https://gnpalencia.org/optbinning/>`_: one
``OptimalBinning`` per feature (pre-binning by a decision tree, then the optimal merge solved
exactly by OR-Tools CP-SAT, single worker and fixed seed, so it is deterministic) under the
feature's monotonic constraint, inside a ``BinningProcess``; then its ``Scorecard`` fits a
scikit-learn ``LogisticRegression`` (L2, ``C``, lbfgs) on the bins' weights of evidence and scales
the points. Features whose information value is below ``min_iv`` are left out, and so is a feature
whose coefficient comes out with the wrong sign (which would make a better bin cost points): the
most offending one is dropped and the regression refitted until every coefficient is negative.

The weight of evidence, the points of a bin and the model file are described in
:mod:`finance.scorecard`. Only training needs optbinning, pandas and scikit-learn; they are
imported when a scorecard is fitted, never to score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from finance.errors import CreditModelError
from finance.scorecard import POINTS_DECIMALS, Bin, FeatureSpec, FeatureTable, Scaling, ScorecardModel

__all__ = ["TrainParams", "fit_scorecard"]


@dataclass(frozen=True, slots=True)
class TrainParams:
    """Training parameters (all recorded in the model file).

    @param min_bin_size  smallest bin, share of the training rows
    @param max_n_bins    most bins per feature (the Missing bin not counted)
    @param max_n_prebins pre-bins the tree may cut before the optimal merge
    @param min_iv        features with a lower information value are left out
    @param c             inverse L2 strength of the logistic regression
    """

    min_bin_size: float = 0.05
    max_n_bins: int = 6
    max_n_prebins: int = 20
    min_iv: float = 0.02
    c: float = 1.0

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "min_bin_size": self.min_bin_size,
            "max_n_bins": self.max_n_bins,
            "max_n_prebins": self.max_n_prebins,
            "min_iv": self.min_iv,
            "c": self.c,
        }


def _points(coef: float, woe: float, intercept: float, n: int, scaling: Scaling) -> float:
    raw = -(coef * woe + intercept / n) * scaling.factor + scaling.offset / n
    return round(raw, POINTS_DECIMALS) + 0.0


def _bin_tables(optb: Any, spec: FeatureSpec) -> tuple[list[dict[str, Any]], float]:
    """(bins as dicts without points, information value) read off a fitted ``OptimalBinning``."""
    table = optb.binning_table.build()
    rows = table.drop(index="Totals")
    iv = float(table.loc["Totals", "IV"])
    splits = list(optb.splits)
    out: list[dict[str, Any]] = []
    populated = []
    for _, r in rows.iterrows():
        label = str(r["Bin"])
        if label == "Special":
            continue
        d: dict[str, Any] = {
            "woe": float(r["WoE"]),
            "count": int(r["Count"]),
            "event_rate": float(r["Event rate"]),
        }
        if label == "Missing":
            d["kind"] = "missing"
        elif spec.dtype == "categorical":
            d["kind"] = "categories"
        else:
            d["kind"] = "range"
        if d["count"] > 0:
            populated.append(d["woe"])
        out.append(d)
    ranges = [d for d in out if d["kind"] in ("range", "categories")]
    if spec.dtype == "numerical":
        edges = [None, *(float(s) for s in splits), None]
        for i, d in enumerate(ranges):
            d["low"], d["high"] = edges[i], edges[i + 1]
    else:
        for d, cats in zip(ranges, splits, strict=True):
            d["categories"] = tuple(sorted(str(c) for c in cats))
        out.append({"kind": "other", "woe": 0.0, "count": 0, "event_rate": 0.0})
    worst = min(populated)
    for d in out:
        if spec.neutral_missing and d["kind"] == "missing":
            d["woe"] = 0.0  # unknown or thin evidence: no evidence either way (neutral points)
        elif d["count"] == 0:
            d["woe"] = worst  # never seen: scores as the worst bin seen
    return out, iv


@dataclass(frozen=True, slots=True)
class _Fitter:
    """One training run's data and settings: fits the library's scorecard on a subset of features."""

    frame: Any  # pandas.DataFrame: one column per feature
    y: npt.NDArray[Any]
    by_name: Mapping[str, FeatureSpec]
    scaling: Scaling
    params: TrainParams

    def fit_params(self, s: FeatureSpec) -> dict[str, Any]:
        """``OptimalBinning`` parameters of feature ``s``: its monotonic trend and fixed cuts."""
        p: dict[str, Any] = {"dtype": s.dtype}
        if s.dtype == "numerical":
            p["monotonic_trend"] = {True: "descending", False: "ascending", None: "auto_asc_desc"}[
                s.higher_is_better
            ]
        if s.fixed_splits:
            x = self.frame[s.name].to_numpy(dtype=np.float64)
            grid = np.nanquantile(x, np.linspace(0, 1, self.params.max_n_prebins + 1)[1:-1])
            cuts = sorted({*(round(float(g), 6) for g in grid), *s.fixed_splits})
            p["user_splits"] = cuts
            p["user_splits_fixed"] = [c in s.fixed_splits for c in cuts]
        return p

    def fit(self, selected: list[str]) -> Any:
        """optbinning's ``Scorecard`` fitted on the features ``selected``."""
        from optbinning import BinningProcess, Scorecard
        from sklearn.linear_model import LogisticRegression

        params, scaling = self.params, self.scaling
        bp = BinningProcess(
            selected,
            categorical_variables=[n for n in selected if self.by_name[n].dtype == "categorical"],
            max_n_prebins=params.max_n_prebins,
            min_bin_size=params.min_bin_size,
            max_n_bins=params.max_n_bins,
            binning_fit_params={n: self.fit_params(self.by_name[n]) for n in selected},
        )
        sc = Scorecard(
            binning_process=bp,
            estimator=LogisticRegression(C=params.c, max_iter=1000),
            scaling_method="pdo_odds",
            scaling_method_params={
                "pdo": scaling.pdo,
                "odds": scaling.base_odds,
                "scorecard_points": scaling.base_score,
            },
        )
        sc.fit(self.frame[selected], self.y, metric_special="empirical", metric_missing="empirical")
        return sc

    def select(self, names: list[str]) -> tuple[Any, list[str], dict[str, float], dict[str, str]]:
        """Leave out the features of low information value, then, one by one, those whose coefficient
        has the wrong sign: (the final fit, the features kept, their coefficients, why each other one
        was left out)."""
        params, by_name = self.params, self.by_name
        sc = self.fit(names)
        ivs = {n: _bin_tables(sc.binning_process_.get_binned_variable(n), by_name[n])[1] for n in names}
        selected = [n for n in names if ivs[n] >= params.min_iv or by_name[n].keep]
        dropped: dict[str, str] = {
            n: f"information value {ivs[n]:.4f} below {params.min_iv}" for n in names if n not in selected
        }
        while True:
            if not selected:
                raise CreditModelError("no feature carries information about default", code="credit.train")
            sc = self.fit(selected)
            coefs = dict(zip(selected, (float(c) for c in sc.estimator_.coef_[0]), strict=True))
            wrong = [n for n in selected if coefs[n] >= 0]
            if not wrong:
                return sc, selected, coefs, dropped
            worst = max(wrong, key=lambda n: coefs[n])
            dropped[worst] = f"coefficient {coefs[worst]:.4f} has the wrong sign"
            selected.remove(worst)

    def tables(self, sc: Any, selected: list[str], coefs: Mapping[str, float]) -> list[FeatureTable]:
        """The scored features' bins and points, read off the final fit."""
        intercept = float(sc.estimator_.intercept_[0])
        tables = []
        for n in selected:
            bins, iv = _bin_tables(sc.binning_process_.get_binned_variable(n), self.by_name[n])
            tables.append(
                FeatureTable(
                    spec=self.by_name[n],
                    coefficient=coefs[n],
                    iv=iv,
                    bins=tuple(
                        Bin(
                            kind=d["kind"],
                            woe=d["woe"],
                            points=_points(coefs[n], d["woe"], intercept, len(selected), self.scaling),
                            count=d["count"],
                            event_rate=d["event_rate"],
                            low=d.get("low"),
                            high=d.get("high"),
                            categories=d.get("categories", ()),
                        )
                        for d in bins
                    ),
                )
            )
        return tables


def fit_scorecard(
    columns: Mapping[str, Sequence[Any] | npt.ArrayLike],
    default: npt.ArrayLike,
    specs: Sequence[FeatureSpec],
    *,
    scaling: Scaling | None = None,
    params: TrainParams | None = None,
    training: Mapping[str, Any] | None = None,
) -> ScorecardModel:
    """Fit a scorecard (see the module docstring).

    @param columns  feature name -> values (NaN / None = missing), one entry per spec
    @param default  1 = defaulted, 0 = not, one per row
    @param specs    the features, in order
    @param training a record of the data (name, seed, ...) stored in the model file
    @raise CreditModelError ``credit.train`` when the outcome is not binary with both classes,
           a column is absent or of another length, or no feature survives selection
    """
    import pandas as pd  # training only: optbinning and pandas are not needed to score

    scaling = scaling or Scaling()
    params = params or TrainParams()
    y = np.asarray(default)
    if y.ndim != 1 or not set(np.unique(y).tolist()) == {0, 1}:
        raise CreditModelError("the outcome must be 0/1 with both classes present", code="credit.train")
    names = [s.name for s in specs]
    for n in names:
        if n not in columns or len(columns[n]) != len(y):  # type: ignore[arg-type]
            raise CreditModelError(f"column {n!r} is absent or not one value per row", code="credit.train")
    frame = pd.DataFrame({n: columns[n] for n in names})
    fitter = _Fitter(frame=frame, y=y, by_name={s.name: s for s in specs}, scaling=scaling, params=params)
    sc, selected, coefs, dropped = fitter.select(names)
    record = {
        **(training or {}),
        "rows": len(y),
        "defaults": int(y.sum()),
        "params": params.to_json_obj(),
        "dropped": dropped,
        "library": "optbinning BinningProcess + Scorecard (sklearn LogisticRegression)",
    }
    model = ScorecardModel(
        inputs=tuple(names),
        features=tuple(fitter.tables(sc, selected, coefs)),
        intercept=float(sc.estimator_.intercept_[0]),
        scaling=scaling,
        training=record,
    )
    # Guard: our points table must reproduce the library's scores on the training rows (those where
    # no neutral-missing feature is missing: there the library scores its learnt Missing bin, we the
    # neutral points, on purpose).
    ours = model.score_batch({n: frame[n].to_numpy() for n in names})
    theirs = np.asarray(sc.score(frame[selected]), dtype=np.float64)
    known = np.ones(len(y), dtype=bool)
    for n in selected:
        if fitter.by_name[n].neutral_missing:
            known &= frame[n].notna().to_numpy()
    gap = float(np.max(np.abs(ours - theirs)[known])) if known.any() else 0.0
    if gap > 0.01 * len(selected) + 1e-6:
        raise CreditModelError(
            f"points table differs from optbinning's scores by {gap:.4f}", code="credit.train"
        )
    return model
